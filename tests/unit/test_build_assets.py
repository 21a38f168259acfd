"""The asset build reads an ICT-FaceKit checkout (OBJ + JSON) the same as the packed npz."""

import json

import numpy as np
import pytest

from tools import build_assets


def _write_obj(path, vertices, topology=None):
    if topology is None:
        np.savetxt(path, vertices, fmt="v %.6f %.6f %.6f")
        return
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in topology["uv_coords"]]
    start = 0
    current = None
    for size, material in zip(topology["polygon_sizes"], topology["polygon_material"]):
        if material != current:
            lines.append(f"usemtl {topology['material_names'][material]}")
            current = material
        corners = range(start, start + size)
        lines.append("f " + " ".join(f"{topology['polygon_vertices'][c] + 1}/"
                                     f"{topology['polygon_uv_indices'][c] + 1}"
                                     for c in corners))
        start += size
    path.write_text("\n".join(lines) + "\n")


def test_checkout_matches_packed_npz(tmp_path, shared_dir):
    packed = build_assets.load_ict(shared_dir / "ict-facekit" / "ict_face_model.npz")
    model_dir = tmp_path / "FaceXModel"
    model_dir.mkdir()
    neutral = packed["neutral_vertices"]
    _write_obj(model_dir / "generic_neutral_mesh.obj", neutral, packed)
    for i in range(2):  # two identity modes are enough to check the reader
        _write_obj(model_dir / f"identity{i:03d}.obj", neutral + packed["identity_modes"][i])
    names = [str(n) for n in packed["expression_names"]]
    for name, offset in zip(names, packed["expression_modes"]):
        _write_obj(model_dir / f"{name}.obj", neutral + offset)
    (model_dir / "vertex_indices.json").write_text(json.dumps({
        "expressions": [n for n in names if not n.startswith("Pupil")],
        "idx_to_landmark_verts": packed["landmarks68"].tolist()}))

    read = build_assets.load_ict(tmp_path)
    assert [str(n) for n in read["expression_names"]] == names
    np.testing.assert_allclose(read["neutral_vertices"], neutral, atol=1e-5)
    np.testing.assert_allclose(read["identity_modes"], packed["identity_modes"][:2], atol=2e-5)
    np.testing.assert_allclose(read["expression_modes"], packed["expression_modes"], atol=2e-5)
    for key in ("polygon_sizes", "polygon_vertices", "polygon_uv_indices", "polygon_material",
                "landmarks68"):
        np.testing.assert_array_equal(read[key], packed[key])
    assert [str(m) for m in read["material_names"]] == [str(m) for m in packed["material_names"]]
    np.testing.assert_allclose(read["uv_coords"], packed["uv_coords"], atol=1e-5)


def test_build_fails_clearly_without_landmark_indices(tmp_path):
    model_dir = tmp_path / "FaceXModel"
    model_dir.mkdir()
    (model_dir / "vertex_indices.json").write_text(json.dumps({"expressions": []}))
    with pytest.raises(ValueError, match="idx_to_landmark_verts"):
        build_assets.load_ict(tmp_path)
