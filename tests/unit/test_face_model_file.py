"""The loader refuses bad model files with a message naming what is wrong."""

import zipfile

import numpy as np
import pytest

from densecap.solver import SolverError, load_face_model
from densecap.solver.face_model import DEFAULT_MODEL_PATH


@pytest.fixture(scope="module")
def arrays():
    with np.load(DEFAULT_MODEL_PATH) as data:
        return {k: data[k] for k in data.files}


def _write(tmp_path, arrays, **changes):
    out = dict(arrays, **changes)
    out = {k: v for k, v in out.items() if v is not None}
    path = tmp_path / "model.npz"
    np.savez(path, **out)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(SolverError, match="not found"):
        load_face_model(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    data = DEFAULT_MODEL_PATH.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(SolverError):
        load_face_model(path)


def test_truncated_member_names_the_array(tmp_path, arrays):
    path = _write(tmp_path, arrays)
    # Cut the skin weights member short inside a valid zip.
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            payload = src.read(item)
            if item.filename == "skin_weights.npy":
                payload = payload[: len(payload) // 2]
            dst.writestr(item, payload)
    with pytest.raises(SolverError, match="skin_weights"):
        load_face_model(broken)


def test_wrong_shape_names_the_array(tmp_path, arrays):
    path = _write(tmp_path, arrays, identity_basis=arrays["identity_basis"][:, :100])
    with pytest.raises(SolverError, match="identity_basis"):
        load_face_model(path)


def test_missing_array_is_named(tmp_path, arrays):
    path = _write(tmp_path, arrays, skin_weights=None)
    with pytest.raises(SolverError, match="skin_weights"):
        load_face_model(path)


def test_non_finite_values_are_refused(tmp_path, arrays):
    bad = arrays["neutral"].copy()
    bad[10, 1] = np.nan
    with pytest.raises(SolverError, match="neutral"):
        load_face_model(_write(tmp_path, arrays, neutral=bad))


def test_not_an_npz(tmp_path):
    path = tmp_path / "model.npz"
    path.write_text("hello")
    with pytest.raises(SolverError, match="not a readable npz"):
        load_face_model(path)
