"""Dense landmark sets on the ICT surface: `landmarks/data/dense703_embedding.npz` and
`dense320_embedding.npz` (the paper's offline and real-time sets, section 3.3).

    python -m tools.build_landmark_sets [--model assets/face_model.npz] [--out landmarks/data]

Each set is, in order:

1. the 68 iBUG points (`model.landmark_embedding("ibug68")`), so the 68-point
   evaluation reads the first 68 landmarks of any dense prediction;
2. iris points per eye (subject's right eye, ICT `_R`, first): `iris_rim` points at
   `IRIS_RIM_DEG` from the optical axis on the inner eyeball sphere (just inside the iris
   border that renders draw), then `pupil_rim` points at `PUPIL_DEG` (the pupil border),
   evenly spaced in angle starting from the top and going towards the subject's left,
   each where the ray from the eye centre leaves the surface; the iris centre is the
   mean of the rim;
3. points chosen by weighted farthest-point sampling (below) from the centroids of the
   candidate triangles, until the set has its size.

Candidate triangles (regions), on the neutral mesh:

- `face`: ICT's face skin (vertices 0..9408); `head`: back of the head, ears and neck
  (9409..11247);
- `inner_mouth`: mouth-socket triangles within `INNER_MOUTH_RADIUS` of the inner lip
  line (iBUG 60-67), the part seen when the mouth opens;
- `teeth`: teeth triangles facing forwards (normal z > `TEETH_MIN_NZ`) within
  `TEETH_DEPTH` of the front-most tooth (incisors, canines, the fronts of premolars).

Weighted farthest-point sampling: repeatedly take the candidate c maximising
``w(c) * min_s |c - s|`` over the points s already in the set on the same layer (the
iBUG and iris points seed it; Euclidean distance on the neutral mesh, cm), so the
spacing around c goes as 1 / w(c). Layers are the skin (face, head), the inner mouth
and the teeth: measured apart, the teeth 5 mm behind the lips are not crowded out by
the lip points. The weight is ``w = REGION_WEIGHT[region] * (1 + sum_k A_k exp(-d_k^2 / 2 s_k^2))``
with d_k the distance to feature line k (`FEATURES`: the iBUG eye contours, i.e. the
eyelid margins; the outer and inner lip contours; the brows; the nose), so the eyes,
eyelids and lips get the densest sampling, the back of the head and the neck the
sparsest. Everything is deterministic (ties broken by the lowest candidate index).

Arrays of each file: `triangles` (L,) int32 into the model's triangles, `barycentric`
(L, 3) float32, `corners` (L, 3) int32 the triangles' vertex ids (checked by
`tools/build_assets.py`), `region` (L,) int8 index into `region_names` (R,) str
("ibug", "iris", "face", "head", "inner_mouth", "teeth"), `weight` (L,) float32 the
sampling weight w at each point (the iBUG and iris points get their region's weight).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..solver import load_face_model
from ..solver.face_model import FaceModel
from ..solver.model import landmark_vertex_ids, vertices2landmarks
from ..training.render.head import PUPIL_DEG, eye_geometry
from .build_assets import EMBEDDINGS_DIR, PARTS

REGION_NAMES = ("ibug", "iris", "face", "head", "inner_mouth", "teeth")
#: Base sampling weight per sampled region.
REGION_WEIGHT = {"face": 1.0, "head": 0.45, "inner_mouth": 0.8, "teeth": 0.6}
#: Surface layer of each region (distances are measured within a layer).
REGION_LAYER = {"ibug": 0, "iris": 1, "face": 0, "head": 0, "inner_mouth": 2, "teeth": 3}
#: Feature lines (iBUG indices, closed or open) and their weight boost A and width s (cm).
FEATURES = (
    ("eye_R", tuple(range(36, 42)), True, 3.5, 0.5),
    ("eye_L", tuple(range(42, 48)), True, 3.5, 0.5),
    ("lips_outer", tuple(range(48, 60)), True, 1.6, 0.5),
    ("lips_inner", tuple(range(60, 68)), True, 1.6, 0.5),
    ("brow_R", tuple(range(17, 22)), False, 0.5, 0.6),
    ("brow_L", tuple(range(22, 27)), False, 0.5, 0.6),
    ("nose", tuple(range(27, 36)), False, 0.4, 0.6),
)
INNER_MOUTH_RADIUS = 1.6
#: Angle (degrees from the optical axis) of the iris-rim points: just inside the drawn
#: iris border (render.head.IRIS_DEG = 24), where ICT's iris dome steps down to the sphere.
IRIS_RIM_DEG = 22.5
TEETH_MIN_NZ = 0.5
TEETH_DEPTH = 0.8


@dataclass(frozen=True)
class SetSpec:
    """Size of a landmark set and its iris points per eye."""

    size: int
    iris_rim: int
    pupil_rim: int


SETS = {"dense703": SetSpec(703, 8, 4), "dense320": SetSpec(320, 4, 0)}


def _part_vertices(name: str) -> np.ndarray:
    start, end = PARTS[name]
    return np.arange(start, end + 1)


def _triangles_within(model: FaceModel, vertex_ids: np.ndarray) -> np.ndarray:
    inside = np.zeros(model.num_vertices, dtype=bool)
    inside[vertex_ids] = True
    return np.nonzero(inside[model.triangles].all(1))[0]


def _ibug_points(model: FaceModel) -> np.ndarray:
    """(68, 3) iBUG points on the neutral, cm."""
    ibug = model.landmark_embedding("ibug68")
    return vertices2landmarks(model.neutral.astype(np.float64), landmark_vertex_ids(model, ibug),
                              ibug.barycentric)


def candidate_regions(model: FaceModel) -> dict[str, np.ndarray]:
    """Candidate triangle ids (t,) per sampled region (see the module docstring)."""
    neutral = model.neutral.astype(np.float64)
    centroids = neutral[model.triangles].mean(1)
    regions = {"face": _triangles_within(model, _part_vertices("face")),
               "head": _triangles_within(model, _part_vertices("head_neck"))}
    socket = _triangles_within(model, _part_vertices("mouth_socket"))
    inner_lip = _ibug_points(model)[60:68]
    near = np.linalg.norm(centroids[socket, None] - inner_lip, axis=-1).min(1)
    regions["inner_mouth"] = socket[near < INNER_MOUTH_RADIUS]
    teeth = _triangles_within(model, _part_vertices("teeth"))
    corners = neutral[model.triangles[teeth]]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-30
    front = centroids[teeth, 2] > neutral[_part_vertices("teeth"), 2].max() - TEETH_DEPTH
    regions["teeth"] = teeth[(normal[:, 2] > TEETH_MIN_NZ) & front]
    return regions


def _polyline_distance(points: np.ndarray, line: np.ndarray, closed: bool) -> np.ndarray:
    """Distance (n,) of points (n, 3) to a polyline (m, 3)."""
    if closed:
        line = np.vstack([line, line[:1]])
    a, d = line[:-1], line[1:] - line[:-1]
    t = np.clip(((points[:, None] - a) * d).sum(-1) / (d * d).sum(-1), 0.0, 1.0)
    return np.linalg.norm(points[:, None] - (a + t[..., None] * d), axis=-1).min(1)


def importance(model: FaceModel, points: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Sampling weight w (n,) of points (n, 3) on the neutral with region weights (n,)."""
    ibug = _ibug_points(model)
    boost = np.ones(len(points))
    for _, ids, closed, amplitude, width in FEATURES:
        distance = _polyline_distance(points, ibug[list(ids)], closed)
        boost += amplitude * np.exp(-0.5 * (distance / width) ** 2)
    return base * boost


def weighted_farthest_points(points: np.ndarray, weights: np.ndarray, layers: np.ndarray,
                             seeds: np.ndarray, seed_layers: np.ndarray, count: int) -> np.ndarray:
    """Greedy weighted farthest-point sampling with distances measured within layers.

    Parameters
    ----------
    points : (n, 3) candidates; weights : (n,) positive; layers : (n,) int
    seeds : (s, 3) points already chosen; seed_layers : (s,) int
    count : how many candidates to pick

    Returns
    -------
    (count,) int64, indices into `points` in the order picked (a layer without seeds
    starts at its lowest-index candidate).
    """
    if not 0 <= count <= len(points):
        raise ValueError(f"cannot pick {count} of {len(points)} candidates")
    nearest = np.full(len(points), np.inf)

    def add(point, layer):
        same = layers == layer
        nearest[same] = np.minimum(nearest[same], np.linalg.norm(points[same] - point, axis=1))

    for seed, layer in zip(seeds, seed_layers):
        add(seed, layer)
    picked = np.empty(count, dtype=np.int64)
    for k in range(count):
        picked[k] = np.argmax(weights * nearest)
        add(points[picked[k]], layers[picked[k]])
    return picked


def _outermost_hit(corners: np.ndarray, origin: np.ndarray, direction: np.ndarray
                   ) -> tuple[int, np.ndarray]:
    """The farthest intersection of the ray origin + t direction (t > 0) with triangles
    (T, 3, 3): (triangle index, barycentric (3,)) (Moller-Trumbore)."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    e1, e2 = b - a, c - a
    p = np.cross(direction, e2)
    det = (e1 * p).sum(1)
    safe = np.where(np.abs(det) < 1e-12, 1e-12, det)
    s = origin - a
    u = (s * p).sum(1) / safe
    q = np.cross(s, e1)
    v = (q * direction).sum(1) / safe
    t = (e2 * q).sum(1) / safe
    hit = (np.abs(det) >= 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    if not hit.any():
        raise ValueError("the ray meets no triangle")
    best = int(np.argmax(np.where(hit, t, -np.inf)))
    return best, np.array([1.0 - u[best] - v[best], u[best], v[best]])


def iris_embedding(model: FaceModel, iris_rim: int, pupil_rim: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iris and pupil rim points of both eyes (right eye first) on the inner eyeball
    sphere: the outermost surface along the rays from the eye centre at IRIS_RIM_DEG and
    PUPIL_DEG from the optical axis.

    Returns triangles (k,) int32, barycentric (k, 3) float64 and points (k, 3) on the neutral.
    """
    neutral = model.neutral.astype(np.float64)
    triangles, barycentric = [], []
    for side in "RL":
        centre, axis, inner = eye_geometry(neutral, side)
        allowed = _triangles_within(model, inner)
        corners = neutral[model.triangles[allowed]]
        # Rim direction 0 points up (+Y) orthogonal to the axis; then towards +X.
        up = np.array([0.0, 1.0, 0.0]) - axis[1] * axis
        up /= np.linalg.norm(up)
        side_axis = np.cross(up, axis)
        if side_axis[0] < 0:
            side_axis = -side_axis
        for count, degrees in ((iris_rim, IRIS_RIM_DEG), (pupil_rim, PUPIL_DEG)):
            angle = np.radians(degrees)
            for phi in 2 * np.pi * np.arange(count) / max(count, 1):
                direction = (np.cos(angle) * axis
                             + np.sin(angle) * (np.cos(phi) * up + np.sin(phi) * side_axis))
                tri, bary = _outermost_hit(corners, centre, direction)
                triangles.append(allowed[tri])
                barycentric.append(bary)
    triangles = np.asarray(triangles, dtype=np.int32)
    barycentric = np.asarray(barycentric, dtype=np.float64).reshape(-1, 3)
    return triangles, barycentric, vertices2landmarks(neutral, model.triangles[triangles],
                                                      barycentric)


def build_set(model: FaceModel, spec: SetSpec) -> dict[str, np.ndarray]:
    """The arrays of one landmark set (see the module docstring)."""
    ibug = model.landmark_embedding("ibug68")
    iris_tri, iris_bary, iris_points = iris_embedding(model, spec.iris_rim, spec.pupil_rim)
    fixed = len(ibug) + len(iris_tri)
    if spec.size <= fixed:
        raise ValueError(f"a set of {spec.size} cannot hold the {fixed} iBUG and iris points")
    regions = candidate_regions(model)
    names = [name for name in REGION_NAMES if name in regions]
    candidates = np.concatenate([regions[name] for name in names])
    region = np.concatenate([np.full(len(regions[name]), REGION_NAMES.index(name))
                             for name in names])
    base = np.concatenate([np.full(len(regions[name]), REGION_WEIGHT[name]) for name in names])
    centroids = model.neutral.astype(np.float64)[model.triangles[candidates]].mean(1)
    weights = importance(model, centroids, base)
    layers = np.array([REGION_LAYER[REGION_NAMES[r]] for r in region])
    seeds = np.vstack([_ibug_points(model), iris_points])
    seed_layers = np.r_[np.full(len(ibug), REGION_LAYER["ibug"]),
                        np.full(len(iris_tri), REGION_LAYER["iris"])]
    picked = weighted_farthest_points(centroids, weights, layers, seeds, seed_layers,
                                      spec.size - fixed)
    fixed_weight = importance(model, seeds, np.full(len(seeds), REGION_WEIGHT["face"]))
    triangles = np.concatenate([ibug.triangles, iris_tri, candidates[picked]]).astype(np.int32)
    barycentric = np.vstack([ibug.barycentric, iris_bary,
                             np.full((len(picked), 3), 1.0 / 3.0)]).astype(np.float32)
    return {
        "triangles": triangles,
        "barycentric": barycentric,
        "corners": model.triangles[triangles].astype(np.int32),
        "region": np.concatenate([np.full(len(ibug), 0), np.full(len(iris_tri), 1),
                                  region[picked]]).astype(np.int8),
        "region_names": np.asarray(REGION_NAMES),
        "weight": np.concatenate([fixed_weight, weights[picked]]).astype(np.float32),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="face model npz (default: assets/face_model.npz)")
    parser.add_argument("--out", type=Path, default=EMBEDDINGS_DIR)
    args = parser.parse_args(argv)
    model = load_face_model(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, spec in SETS.items():
        arrays = build_set(model, spec)
        path = args.out / f"{name}_embedding.npz"
        np.savez_compressed(path, **arrays)
        counts = {r: int((arrays["region"] == i).sum()) for i, r in enumerate(REGION_NAMES)}
        print(f"wrote {path}: {len(arrays['triangles'])} landmarks {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
