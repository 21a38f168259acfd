"""Named vertex and triangle sets of the face model, derived from its data (materials,
skinning, the iBUG-68 embedding), never from hard-coded vertex ranges."""

from __future__ import annotations

import numpy as np

from .errors import SolverError
from .face_model import FaceModel

#: Margin (cm) around the iBUG-68 bounding box (x, y) that still counts as the face region.
FACE_REGION_MARGIN = 1.0
#: Skin whose outward normal is at most this far from the viewing axis (cos) is "frontal".
FRONTAL_MIN_COS = 0.2


def material_vertices(model: FaceModel, material: str) -> np.ndarray:
    """Sorted vertex ids (n,) of the render polygons of `material` (e.g. "M_Teeth")."""
    if material not in model.material_names:
        raise SolverError(f"face model has no material {material!r}")
    starts = np.r_[0, np.cumsum(model.polygon_sizes)[:-1]]
    selected = model.polygon_material == model.material_names.index(material)
    corners = [model.polygon_vertices[s:s + n]
               for s, n in zip(starts[selected], model.polygon_sizes[selected])]
    return np.unique(np.concatenate(corners)).astype(np.int32)


def _face_box(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    ibug = model.landmark_embedding("ibug68")
    corners = model.neutral[model.triangles[ibug.triangles]]          # (68, 3, 3)
    points = np.einsum("lc,lci->li", ibug.barycentric, corners)
    return points.min(0) - FACE_REGION_MARGIN, points.max(0) + FACE_REGION_MARGIN


def face_region_vertices(model: FaceModel) -> np.ndarray:
    """Skin vertices (n,) of the face: M_Face vertices inside the (x, y) box of the iBUG-68
    landmarks grown by FACE_REGION_MARGIN, in front of the deepest landmark (jaw hinge).
    This is the region mesh errors are measured on."""
    low, high = _face_box(model)
    skin = material_vertices(model, "M_Face")
    p = model.neutral[skin]
    inside = ((p[:, 0] >= low[0]) & (p[:, 0] <= high[0]) & (p[:, 1] >= low[1])
              & (p[:, 1] <= high[1]) & (p[:, 2] >= low[2]))
    return skin[inside]


def face_area_triangles(model: FaceModel) -> np.ndarray:
    """Fitting triangles (t,) whose corners are all face-region vertices and that face the
    camera (normal z > FRONTAL_MIN_COS on the neutral): where dense landmarks may lie."""
    tris = model.fitting_triangles
    corners = model.triangles[tris]
    keep = np.isin(corners, face_region_vertices(model)).all(1)
    v = model.neutral[corners].astype(np.float64)
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-30
    return tris[keep & (normal[:, 2] > FRONTAL_MIN_COS)]
