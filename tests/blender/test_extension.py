"""The extension package: Blender's validator, the zip build, installing and enabling the zip."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from densecap.tools.build_extension import ROOT, ExtensionBuildError, build, validate

INSTALL_SCRIPT = Path(__file__).with_name("install_extension.py")


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    """The linux-x64 zip, with its wheels (downloaded once into wheels/)."""
    [zip_path] = build(tmp_path_factory.mktemp("dist"), ["linux-x64"])
    return zip_path


def test_source_tree_validates():
    assert "Success" in validate(ROOT)


def test_validator_rejects_a_bad_manifest(tmp_path):
    manifest = (ROOT / "blender_manifest.toml").read_text()
    assert 'blender_version_min = "4.2.0"' in manifest
    (tmp_path / "blender_manifest.toml").write_text(
        manifest.replace('blender_version_min = "4.2.0"', 'blender_version_min = "four"'))
    shutil.copy(ROOT / "__init__.py", tmp_path / "__init__.py")
    with pytest.raises(ExtensionBuildError, match="blender_version_min"):
        validate(tmp_path)


def test_zip_contents(built_zip):
    with zipfile.ZipFile(built_zip) as archive:
        names = set(archive.namelist())
    assert {"blender_manifest.toml", "__init__.py", "assets/face_model.npz",
            "assets/licenses/ict-facekit/LICENSE", "assets/licenses/mediapipe/LICENSE",
            "assets/models/face_landmark.onnx", "densecap_addon/rig.py",
            "operators/generate_rig.py", "solver/model.py"} <= names
    wheels = {name.split("/")[1].split("-")[0] for name in names if name.startswith("wheels/")}
    assert wheels == {"numba", "llvmlite", "onnxruntime", "opencv_python_headless"}
    assert not any(name.startswith("wheels/") and ("win_amd64" in name or "macosx" in name)
                   for name in names)
    for dev_only in ("tests/", "tools/", "bench/", "training/", ".venv", ".git", "out/"):
        assert not any(name.startswith(dev_only) for name in names), dev_only


def test_zip_installs_and_enables(built_zip, tmp_path):
    env = dict(os.environ)
    for variable in ("BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS", "BLENDER_USER_EXTENSIONS"):
        env[variable] = str(tmp_path / variable.lower())
    repo_dir = tmp_path / "repo"
    result = subprocess.run([sys.executable, str(INSTALL_SCRIPT), str(built_zip), str(repo_dir)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["installed"] == ["FINISHED"] and report["enabled"]
    assert Path(report["module_file"]).is_relative_to(repo_dir)
    assert report["generated"] == ["FINISHED"]
    assert report["shape_keys"] == 56
    extensions = Path(env["BLENDER_USER_EXTENSIONS"])
    assert set(report["wheel_modules"]) == {"cv2", "numba", "onnxruntime"}, report["wheel_modules"]
    for module_file in report["wheel_modules"].values():
        assert Path(module_file).is_relative_to(extensions), module_file
