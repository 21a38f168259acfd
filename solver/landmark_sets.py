"""Landmark embeddings beyond the ones stored in the face model.

`random_embedding` makes seeded synthetic dense sets of any size on the face area, so the
fitters can be tested and benchmarked at 68/320/478/703 landmarks before the real dense
sets exist; real sets come as `LandmarkEmbedding`s in the same format.
"""

from __future__ import annotations

import numpy as np

from .errors import SolverError
from .face_model import FaceModel, LandmarkEmbedding
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
