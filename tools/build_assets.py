"""Build `assets/face_model.npz` from ICT-FaceKit (MIT): the model plus the project's
skeleton, skinning weights, fitting mesh and landmark embeddings.

    python -m tools.build_assets [--ict ../shared/ict-facekit/ict_face_model.npz | --ict CHECKOUT]
                                 [--out assets/face_model.npz]

`--ict` takes the packed npz or an ICT-FaceKit checkout (FaceXModel/*.obj +
vertex_indices.json). Everything derived here is a documented geometric rule on the
neutral mesh, so it follows any identity; see `derive_skeleton` and `skinning_weights`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ICT = ROOT.parent / "shared" / "ict-facekit" / "ict_face_model.npz"
DEFAULT_OUT = ROOT / "assets" / "face_model.npz"
#: Committed landmark embeddings made by other tools (`<set>_embedding.npz`, e.g. by
#: tools/build_correspondence.py), added to the model as landmarks_<set>_*.
EMBEDDINGS_DIR = ROOT / "landmarks" / "data"
FORMAT_VERSION = 1  # keep equal to solver.face_model.FORMAT_VERSION

# Vertex ranges of the ICT parts (inclusive ends, from the ICT-FaceKit README).
PARTS = {
    "face": (0, 9408),
    "head_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_socket_L": (13294, 13677),
    "eye_socket_R": (13678, 14061),
    "gums_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeball_L": (21451, 23020),   # +X side: the subject's left
    "sclera_L": (21451, 22220),
    "eyeball_R": (23021, 24590),
    "sclera_R": (23021, 23790),
    "eyelashes": (25351, 26718),
}
# Materials the generated rig shows (the rest are ICT's transparent overlay helpers).
RENDER_MATERIALS = ("M_Face", "M_BackHead", "M_GumsTongue", "M_Teeth", "M_ScleraLeft",
                    "M_IrisLeft", "M_ScleraRight", "M_IrisRight", "M_EyeLashes")
FITTING_PARTS = ("face", "head_neck", "eyeball_L", "eyeball_R", "teeth")

# Skeleton targets on the neutral, relative to anatomical features (cm, model axes):
#   neck (= root) pivot: the centre of the neck at its base, NECK_BASE_Y;
#   head pivot (atlanto-occipital joint): on the midline, HEAD_BELOW_JAW_HINGE below and
#   HEAD_BEHIND_JAW_HINGE behind the jaw-hinge landmarks (iBUG 0 and 16);
#   eye pivots: the least-squares sphere centres of the scleras.
NECK_BASE_Y = -12.0
HEAD_BELOW_JAW_HINGE = 5.5
HEAD_BEHIND_JAW_HINGE = 4.0
REGRESSOR_BAND = 1.0       # cm: half height of the vertex ring a neck/head pivot is regressed from

# Skinning: s = (v - neck pivot) . n, n tilted SKIN_TILT_DEG forward from +Y, follows the
# jaw line; weights ramp with smoothstep over these bands of s (cm).
SKIN_TILT_DEG = 20.0
NECK_BAND = (0.0, 5.0)      # root -> neck
HEAD_BAND = (5.5, 8.5)      # neck -> head


def part_ids(name: str) -> np.ndarray:
    start, end = PARTS[name]
    return np.arange(start, end + 1)


# ----------------------------------------------------------------------------- sources

def load_ict(source: Path) -> dict[str, np.ndarray]:
    """The ICT arrays (as laid out in ../shared/ict-facekit/README.md) from the packed
    npz or from a checkout of the ICT-FaceKit repository."""
    if source.is_dir():
        return _load_ict_checkout(source)
    with np.load(source, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _read_obj(path: Path, with_topology: bool) -> dict[str, np.ndarray]:
    """Vertex positions of an OBJ file, and with `with_topology` its UVs, polygons and
    materials in the layout of the packed npz."""
    lines = path.read_text(encoding="utf-8").splitlines()
    coords = " ".join(line[2:] for line in lines if line.startswith("v "))
    out = {"vertices": np.array(coords.split(), dtype=np.float32).reshape(-1, 3)}
    if not with_topology:
        return out
    uvs, sizes, corners, corner_uvs, materials = [], [], [], [], []
    material_names: list[str] = []
    current = -1
    for line in lines:
        tag, _, rest = line.partition(" ")
        if tag == "vt":
            uvs.append([float(x) for x in rest.split()[:2]])
        elif tag == "usemtl":
            name = rest.strip()
            if name not in material_names:
                material_names.append(name)
            current = material_names.index(name)
        elif tag == "f":
            refs = [ref.split("/") for ref in rest.split()]
            sizes.append(len(refs))
            corners.extend(int(r[0]) - 1 for r in refs)
            corner_uvs.extend(int(r[1]) - 1 if len(r) > 1 and r[1] else 0 for r in refs)
            materials.append(current)
    out.update(uv_coords=np.asarray(uvs, dtype=np.float32),
               polygon_sizes=np.asarray(sizes, dtype=np.int32),
               polygon_vertices=np.asarray(corners, dtype=np.int32),
               polygon_uv_indices=np.asarray(corner_uvs, dtype=np.int32),
               polygon_material=np.asarray(materials, dtype=np.int16),
               material_names=np.asarray(material_names))
    return out


def _load_ict_checkout(checkout: Path) -> dict[str, np.ndarray]:
    """Read FaceXModel/: generic_neutral_mesh.obj (topology), identityNNN.obj and one OBJ
    per expression (full meshes; stored here as offsets from the neutral), and
    vertex_indices.json (expression order, 68 landmark vertices)."""
    model_dir = checkout / "FaceXModel"
    indices = json.loads((model_dir / "vertex_indices.json").read_text(encoding="utf-8"))
    if "idx_to_landmark_verts" not in indices or "expressions" not in indices:
        raise ValueError(f"{model_dir / 'vertex_indices.json'} lacks 'expressions' or "
                         f"'idx_to_landmark_verts' (keys: {sorted(indices)})")
    neutral = _read_obj(model_dir / "generic_neutral_mesh.obj", with_topology=True)
    base = neutral.pop("vertices")
    identity_files = sorted(model_dir.glob("identity[0-9][0-9][0-9].obj"))
    # ICT's order: the ARKit expressions as listed, then the pupil shapes.
    names = list(indices["expressions"]) + sorted(
        p.stem for p in model_dir.glob("PupilDilate_*.obj"))

    def offsets(files):
        return np.stack([_read_obj(p, with_topology=False)["vertices"] - base for p in files])

    return dict(neutral, neutral_vertices=base,
                identity_modes=offsets(identity_files),
                expression_modes=offsets([model_dir / f"{name}.obj" for name in names]),
                expression_names=np.asarray(names),
                landmarks68=np.asarray(indices["idx_to_landmark_verts"], dtype=np.int32))


# ----------------------------------------------------------------------------- geometry

def triangulate(polygon_sizes: np.ndarray, polygon_vertices: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate polygons. Returns triangles (T, 3) and their polygon index (T,)."""
    starts = np.concatenate([[0], np.cumsum(polygon_sizes)[:-1]])
    triangles, owner = [], []
    for fan in range(1, int(polygon_sizes.max()) - 1):
        polys = np.nonzero(polygon_sizes > fan + 1)[0]
        s = starts[polys]
        triangles.append(np.stack([polygon_vertices[s], polygon_vertices[s + fan],
                                   polygon_vertices[s + fan + 1]], 1))
        owner.append(polys)
    order = np.argsort(np.concatenate(owner), kind="stable")
    return (np.concatenate(triangles)[order].astype(np.int32),
            np.concatenate(owner)[order].astype(np.int32))


def sphere_centre(points: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points (n, 3)."""
    a = np.c_[2.0 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)[0]
    return solution[:3]


def affine_regressor(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Minimum-norm weights w (n,) with sum(w) = 1 and w @ points = target.

    Weights that sum to one make the regressed joint follow any affine change of the
    vertex set (translation, scale, shear), so joints track identity."""
    constraints = np.vstack([points.T, np.ones(len(points))])           # (4, n)
    rhs = np.r_[target, 1.0]
    return np.linalg.lstsq(constraints, rhs, rcond=None)[0]


def derive_skeleton(neutral: np.ndarray, landmarks68: np.ndarray
                    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Joint targets (K, 3) on the neutral and a (vertex ids, weights) regressor per joint
    (order: root, neck, head, eye_L, eye_R)."""
    skin = np.concatenate([part_ids("face"), part_ids("head_neck")])
    v = neutral.astype(np.float64)

    def ring(y):
        return skin[np.abs(v[skin, 1] - y) < REGRESSOR_BAND]

    neck_ring = ring(NECK_BASE_Y)
    neck = np.array([0.0, NECK_BASE_Y, v[neck_ring, 2].mean()])
    hinge = v[landmarks68[[0, 16]]].mean(0)
    head = np.array([0.0, hinge[1] - HEAD_BELOW_JAW_HINGE, hinge[2] - HEAD_BEHIND_JAW_HINGE])
    head_ring = ring(head[1])
    eyes = [part_ids("sclera_L"), part_ids("sclera_R")]
    targets = np.stack([neck, neck, head] + [sphere_centre(v[ids]) for ids in eyes])
    vertex_sets = [neck_ring, neck_ring, head_ring] + eyes
    regressors = [(ids.astype(np.int32), affine_regressor(v[ids], t))
                  for ids, t in zip(vertex_sets, targets)]
    return targets, regressors


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(n,) of x (n,) rising smoothly from 0 at lo to 1 at hi (falling when hi < lo)."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def skinning_weights(neutral: np.ndarray, joint_targets: np.ndarray) -> np.ndarray:
    """LBS weights (N, K): eyeballs rigid to their eye joints; inner-mouth, teeth, eye and
    lash parts rigid to the head; skin blends root -> neck -> head along a jaw-parallel
    axis, so the lower neck stays with the root when the head turns."""
    n = len(neutral)
    weights = np.zeros((n, 5), dtype=np.float64)
    tilt = np.radians(SKIN_TILT_DEG)
    axis = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    s = (neutral - joint_targets[1]) @ axis
    upper = smoothstep(s, *NECK_BAND)
    head = upper * smoothstep(s, *HEAD_BAND)
    weights[:, 0] = 1.0 - upper
    weights[:, 1] = upper - head
    weights[:, 2] = head
    rigid_head = np.concatenate([np.arange(PARTS["mouth_socket"][0], PARTS["eyeball_L"][0]),
                                 np.arange(PARTS["eyeball_R"][1] + 1, n)])
    weights[rigid_head] = [0, 0, 1, 0, 0]
    weights[part_ids("eyeball_L")] = [0, 0, 0, 1, 0]
    weights[part_ids("eyeball_R")] = [0, 0, 0, 0, 1]
    return weights.astype(np.float32)


def vertex_embedding(triangles: np.ndarray, allowed: np.ndarray, vertex_ids: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Embed mesh vertices as (triangle index, one-hot barycentric) on allowed triangles."""
    tris, bary = [], []
    for vid in vertex_ids:
        hits = allowed[np.nonzero((triangles[allowed] == vid).any(1))[0]]
        if len(hits) == 0:
            raise ValueError(f"vertex {vid} lies on no fitting triangle")
        tri = hits[0]
        tris.append(tri)
        bary.append((triangles[tri] == vid).astype(np.float32))
    return np.asarray(tris, dtype=np.int32), np.asarray(bary, dtype=np.float32)


def load_embeddings(folder: Path, triangles: np.ndarray) -> dict[str, np.ndarray]:
    """The committed embeddings `<set>_embedding.npz` in `folder` as model arrays
    landmarks_<set>_triangles / _barycentric. Each file's `corners` (L, 3) must match
    `triangles` (T, 3) at its triangle indices, so a changed triangulation fails here."""
    arrays = {}
    for path in sorted(folder.glob("*_embedding.npz")) if folder.is_dir() else []:
        name = path.name[:-len("_embedding.npz")]
        with np.load(path, allow_pickle=False) as data:
            tris = data["triangles"].astype(np.int32)
            if tris.min() < 0 or tris.max() >= len(triangles) or not np.array_equal(
                    triangles[tris], data["corners"]):
                raise ValueError(f"{path} was made for another triangulation: rebuild it")
            arrays[f"landmarks_{name}_triangles"] = tris
            arrays[f"landmarks_{name}_barycentric"] = data["barycentric"].astype(np.float32)
    return arrays


# ----------------------------------------------------------------------------- build

def build(ict: dict[str, np.ndarray], embeddings_dir: Path | None = None) -> dict[str, np.ndarray]:
    neutral = ict["neutral_vertices"].astype(np.float32)
    identity = ict["identity_modes"].astype(np.float32)
    expression = ict["expression_modes"].astype(np.float32)
    triangles, owner = triangulate(ict["polygon_sizes"], ict["polygon_vertices"])

    targets, regressors = derive_skeleton(neutral, ict["landmarks68"])

    def regress(vertices):  # (..., N, 3) -> (..., K, 3)
        return np.stack([np.einsum("n,...ni->...i", w, vertices[..., ids, :].astype(np.float64))
                         for ids, w in regressors], -2)

    fitting_vertices = np.concatenate([part_ids(p) for p in FITTING_PARTS])
    fitting = np.nonzero(np.isin(triangles, fitting_vertices).all(1))[0].astype(np.int32)
    materials = [str(m) for m in ict["material_names"]]
    shown = np.isin(ict["polygon_material"], [materials.index(m) for m in RENDER_MATERIALS])
    render_vertices = np.unique(triangles[np.isin(owner, np.nonzero(shown)[0])]).astype(np.int32)
    lmk_tris, lmk_bary = vertex_embedding(triangles, fitting, ict["landmarks68"])

    return {
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.int32),
        "neutral": neutral,
        "identity_basis": identity,
        "expression_basis": expression,
        "expression_names": np.asarray([str(s) for s in ict["expression_names"]]),
        "joint_template": regress(neutral),
        "joint_identity": regress(identity),
        "joint_parents": np.asarray([-1, 0, 1, 2, 2], dtype=np.int32),
        "skin_weights": skinning_weights(neutral.astype(np.float64), targets),
        "triangles": triangles,
        "fitting_triangles": fitting,
        "polygon_sizes": ict["polygon_sizes"].astype(np.int32),
        "polygon_vertices": ict["polygon_vertices"].astype(np.int32),
        "polygon_uv_indices": ict["polygon_uv_indices"].astype(np.int32),
        "uv_coords": ict["uv_coords"].astype(np.float32),
        "polygon_material": ict["polygon_material"].astype(np.int16),
        "material_names": np.asarray(materials),
        "render_vertices": render_vertices,
        "landmarks_ibug68_triangles": lmk_tris,
        "landmarks_ibug68_barycentric": lmk_bary,
        **(load_embeddings(embeddings_dir, triangles) if embeddings_dir else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ict", type=Path, default=DEFAULT_ICT,
                        help="ict_face_model.npz or an ICT-FaceKit checkout (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.ict.exists():
        print(f"error: ICT-FaceKit not found at {args.ict}", file=sys.stderr)
        return 2
    try:
        assets = build(load_ict(args.ict), EMBEDDINGS_DIR)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot build the face model from {args.ict}: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp.npz")
    np.savez(tmp, **assets)
    tmp.replace(args.out)
    licence_dir = args.out.parent / "licenses" / "ict-facekit"
    licence_dir.mkdir(parents=True, exist_ok=True)
    source_dir = args.ict if args.ict.is_dir() else args.ict.parent
    for name in ("LICENSE", "CREDITS.md"):
        if (source_dir / name).is_file():
            shutil.copy(source_dir / name, licence_dir / name)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
