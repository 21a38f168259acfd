"""Landmark embeddings beyond the ones stored in the face model, and their symmetry.

`random_embedding` makes seeded synthetic dense sets of any size on the face area, so the
fitters can be tested and benchmarked at 68/320/478/703 landmarks before the real dense
sets exist; real sets come as `LandmarkEmbedding`s in the same format.
`neutral_landmark_points` places a set on the neutral face (how sets are compared), and
`mirror_landmarks` pairs each landmark with its mirror image (the dense front end's
flipped-crop averaging).
"""

from __future__ import annotations

import numpy as np

from .conventions import THETA_SIZE
from .errors import SolverError
from .face_model import FaceModel, LandmarkEmbedding
from .problem import landmark_points
from .regions import face_area_triangles


def random_embedding(model: FaceModel, count: int, seed: int = 0) -> LandmarkEmbedding:
    """`count` landmarks on distinct random face-area triangles with random barycentrics.

    Triangles are drawn without replacement from `regions.face_area_triangles` (frontal face
    skin), barycentrics uniformly on the triangle. Deterministic for a given seed.
    """
    candidates = face_area_triangles(model)
    if not 0 < count <= len(candidates):
        raise SolverError(f"random_embedding: count must be in 1..{len(candidates)}, got {count}")
    rng = np.random.default_rng(seed)
    triangles = np.sort(rng.choice(candidates, size=count, replace=False)).astype(np.int32)
    barycentric = rng.dirichlet(np.ones(3), size=count).astype(np.float32)
    return LandmarkEmbedding(f"random{count}_seed{seed}", triangles, barycentric)


def neutral_landmark_points(model: FaceModel, embedding: LandmarkEmbedding) -> np.ndarray:
    """(L, 3) model cm: the landmarks on the mean identity, no expression, rest pose."""
    return landmark_points(model, embedding, np.zeros(model.num_identity),
                           np.zeros(model.num_expressions), np.zeros(THETA_SIZE))


#: Farthest a landmark's mirror image may lie from the landmark paired with it (cm).
MIRROR_TOLERANCE_CM = 0.25


def mirror_landmarks(model: FaceModel, embedding: LandmarkEmbedding,
                     tolerance: float = MIRROR_TOLERANCE_CM) -> np.ndarray:
    """(L,) int: for each landmark, the one nearest its mirror image across the model's
    plane of symmetry (x = 0) on the neutral face, or -1 when none lies within `tolerance`
    cm (a landmark on the midline is its own mirror)."""
    points = neutral_landmark_points(model, embedding)
    mirrored = points * np.array([-1.0, 1.0, 1.0])
    distance = np.linalg.norm(mirrored[:, None] - points[None], axis=2)
    nearest = distance.argmin(1)
    return np.where(distance[np.arange(len(points)), nearest] <= tolerance, nearest, -1)
