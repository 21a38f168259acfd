"""Face model, cameras, energy terms and fitters: numpy + numba, no bpy."""

from .errors import SolverError
from .face_model import FaceModel, LandmarkEmbedding, load_face_model
from .model import joints, lbs, mesh, mesh_jacobian, rodrigues, shape, vertices2landmarks

__all__ = ["SolverError", "FaceModel", "LandmarkEmbedding", "load_face_model", "joints", "lbs",
           "mesh", "mesh_jacobian", "rodrigues", "shape", "vertices2landmarks"]
