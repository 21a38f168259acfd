"""The face model as data: loading and validating `assets/face_model.npz`.

The file is built by `tools/build_assets.py` from ICT-FaceKit (MIT). Arrays, with
N vertices, B identity modes, E expressions, K joints, T triangles:

==========================  =================  ==============================================
neutral                     (N, 3) float32     neutral mesh, cm, model axes
identity_basis              (B, N, 3) float32  identity offsets, weights ~ N(0, 1)
expression_basis            (E, N, 3) float32  expression offsets, weights in [0, 1]
expression_names            (E,) str           ARKit names (53) + PupilDilate_L/R
joint_template              (K, 3) float64     joint rest positions of the neutral
joint_identity              (B, K, 3) float64  joint offsets per identity mode
joint_parents               (K,) int32         parent joint index, -1 for the root
skin_weights                (N, K) float32     linear blend skinning weights, rows sum to 1
                                               (loaded as float64)
triangles                   (T, 3) int32       triangulation of all polygons
fitting_triangles           (Tf,) int32        triangles of face, head, eyes and teeth
polygon_sizes               (P,) int32         corners per render polygon (3 or 4)
polygon_vertices            (C,) int32         corner vertex indices, concatenated
polygon_uv_indices          (C,) int32         corner UV indices, concatenated
uv_coords                   (U, 2) float32     UV coordinates
polygon_material            (P,) int16         index into material_names
material_names              (M,) str           ICT material names
render_vertices             (Nr,) int32        vertices of the parts the rig shows
landmarks_<set>_triangles   (L,) int32         landmark embedding: triangle index
landmarks_<set>_barycentric (L, 3) float32     landmark embedding: barycentric weights
==========================  =================  ==============================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .conventions import JOINT_PARENTS, NUM_JOINTS
from .errors import SolverError

FORMAT_VERSION = 1

#: Where the build puts the model: `<package root>/assets/face_model.npz`.
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "assets" / "face_model.npz"


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Landmarks as points on the model surface (smplx style).

    triangles : (L,) int32, index into FaceModel.triangles
    barycentric : (L, 3) float32, weights of the triangle's corners (rows sum to 1)
    """

    name: str
    triangles: np.ndarray
    barycentric: np.ndarray

    def __len__(self) -> int:
        return len(self.triangles)


@dataclass(frozen=True)
class FaceModel:
    """ICT-FaceKit with the project's skeleton, skinning and landmark embeddings."""

    neutral: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: tuple[str, ...]
    joint_template: np.ndarray
    joint_identity: np.ndarray
    joint_parents: np.ndarray
    skin_weights: np.ndarray
    triangles: np.ndarray
    fitting_triangles: np.ndarray
    polygon_sizes: np.ndarray
    polygon_vertices: np.ndarray
    polygon_uv_indices: np.ndarray
    uv_coords: np.ndarray
    polygon_material: np.ndarray
    material_names: tuple[str, ...]
    render_vertices: np.ndarray
    landmarks: dict[str, LandmarkEmbedding] = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return self.neutral.shape[0]

    @property
    def num_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def num_expressions(self) -> int:
        return self.expression_basis.shape[0]

    def landmark_embedding(self, name: str) -> LandmarkEmbedding:
        """The embedding of landmark set `name` (e.g. "ibug68"); SolverError if absent."""
        try:
            return self.landmarks[name]
        except KeyError:
            raise SolverError(
                f"landmark set {name!r} is not in the face model "
                f"(it has: {', '.join(sorted(self.landmarks)) or 'none'})") from None


def _require(arrays, name: str, ndim: int, kind: str) -> np.ndarray:
    if name not in arrays:
        raise SolverError(f"face model file has no array {name!r}")
    try:
        value = arrays[name]
    except Exception as exc:  # truncated zip member, bad header, ...
        raise SolverError(f"face model array {name!r} cannot be read: {exc}") from exc
    if value.ndim != ndim:
        raise SolverError(f"face model array {name!r} has {value.ndim} dimensions, expected {ndim} "
                          f"(shape {value.shape})")
    if np.dtype(value.dtype).kind not in kind:
        raise SolverError(f"face model array {name!r} has dtype {value.dtype}, expected kind {kind!r}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise SolverError(f"face model array {name!r} holds non-finite values")
    return value


def _expect(name: str, value: np.ndarray, shape: tuple) -> None:
    for axis, (got, want) in enumerate(zip(value.shape, shape)):
        if want is not None and got != want:
            raise SolverError(f"face model array {name!r} has shape {value.shape}: "
                              f"axis {axis} should be {want}")


def load_face_model(path: str | os.PathLike | None = None) -> FaceModel:
    """Load and validate the face model built by `tools/build_assets.py`.

    Raises SolverError naming the array at fault when the file is missing, truncated,
    incomplete or holds arrays of the wrong shape.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    if not path.is_file():
        raise SolverError(f"face model file not found: {path} (build it with `make assets`)")
    try:
        arrays = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise SolverError(f"face model file {path} is not a readable npz: {exc}") from exc
    with arrays:
        version = _require(arrays, "format_version", 0, "iu")
        if int(version) != FORMAT_VERSION:
            raise SolverError(f"face model file {path} has format_version {int(version)}, "
                              f"this code reads {FORMAT_VERSION}: rebuild it with `make assets`")
        neutral = _require(arrays, "neutral", 2, "f")
        n = neutral.shape[0]
        _expect("neutral", neutral, (None, 3))
        identity = _require(arrays, "identity_basis", 3, "f")
        _expect("identity_basis", identity, (None, n, 3))
        expression = _require(arrays, "expression_basis", 3, "f")
        _expect("expression_basis", expression, (None, n, 3))
        names = _require(arrays, "expression_names", 1, "U")
        _expect("expression_names", names, (expression.shape[0],))
        parents = _require(arrays, "joint_parents", 1, "iu")
        if tuple(int(p) for p in parents) != JOINT_PARENTS:
            raise SolverError(f"face model array 'joint_parents' is {parents.tolist()}, "
                              f"expected {list(JOINT_PARENTS)}")
        joint_template = _require(arrays, "joint_template", 2, "f")
        _expect("joint_template", joint_template, (NUM_JOINTS, 3))
        joint_identity = _require(arrays, "joint_identity", 3, "f")
        _expect("joint_identity", joint_identity, (identity.shape[0], NUM_JOINTS, 3))
        weights = _require(arrays, "skin_weights", 2, "f")
        _expect("skin_weights", weights, (n, NUM_JOINTS))
        if (weights < 0).any() or (weights.sum(axis=1) <= 0).any():
            raise SolverError("face model array 'skin_weights' has negative weights or empty rows")
        triangles = _require(arrays, "triangles", 2, "iu")
        _expect("triangles", triangles, (None, 3))
        if triangles.size and (triangles.min() < 0 or triangles.max() >= n):
            raise SolverError("face model array 'triangles' indexes outside the vertices")
        polygon_sizes = _require(arrays, "polygon_sizes", 1, "iu")
        polygon_vertices = _require(arrays, "polygon_vertices", 1, "iu")
        _expect("polygon_vertices", polygon_vertices, (int(polygon_sizes.sum()),))
        polygon_uv_indices = _require(arrays, "polygon_uv_indices", 1, "iu")
        _expect("polygon_uv_indices", polygon_uv_indices, (polygon_vertices.shape[0],))
        polygon_material = _require(arrays, "polygon_material", 1, "iu")
        _expect("polygon_material", polygon_material, (polygon_sizes.shape[0],))
        uv_coords = _require(arrays, "uv_coords", 2, "f")
        _expect("uv_coords", uv_coords, (None, 2))
        landmarks = {}
        for key in arrays.files:
            if key.startswith("landmarks_") and key.endswith("_triangles"):
                set_name = key[len("landmarks_"):-len("_triangles")]
                tris = _require(arrays, key, 1, "iu")
                bary = _require(arrays, f"landmarks_{set_name}_barycentric", 2, "f")
                _expect(f"landmarks_{set_name}_barycentric", bary, (tris.shape[0], 3))
                landmarks[set_name] = LandmarkEmbedding(set_name, tris.astype(np.int32),
                                                        bary.astype(np.float32))
        return FaceModel(
            neutral=neutral,
            identity_basis=identity,
            expression_basis=expression,
            expression_names=tuple(str(s) for s in names),
            joint_template=joint_template.astype(np.float64),
            joint_identity=joint_identity.astype(np.float64),
            joint_parents=parents.astype(np.int32),
            # Normalised in float64, as Blender's Armature modifier does, so rows sum to 1.
            skin_weights=weights / weights.sum(axis=1, keepdims=True, dtype=np.float64),
            triangles=triangles.astype(np.int32),
            fitting_triangles=_require(arrays, "fitting_triangles", 1, "iu").astype(np.int32),
            polygon_sizes=polygon_sizes.astype(np.int32),
            polygon_vertices=polygon_vertices.astype(np.int32),
            polygon_uv_indices=polygon_uv_indices.astype(np.int32),
            uv_coords=uv_coords,
            polygon_material=polygon_material.astype(np.int16),
            material_names=tuple(str(s) for s in _require(arrays, "material_names", 1, "U")),
            render_vertices=_require(arrays, "render_vertices", 1, "iu").astype(np.int32),
            landmarks=landmarks,
        )
