"""Validate and build the installable extension zips with Blender's own `blender_ext.py`.

    python -m tools.build_extension [--platform linux-x64 ...] [--out-dir dist]

One zip per platform (linux-x64, windows-x64, macos-arm64, macos-x64), each with the
run-time wheels of that platform for Blender's Python 3.11 and 3.13 (`tools/fetch_wheels.py`,
cached in `wheels/`). The source tree is staged in `build/extension/` with a manifest that
lists the platforms and wheels (the committed manifest lists none: wheels are build output),
then `blender_ext.py build --split-platforms` writes `densecap-<version>-<platform>.zip`.
`blender_ext.py` ships inside the `bpy` package (scripts/addons_core/bl_pkg/cli/); the
manifest's `[build] paths_exclude_pattern` decides what goes into the zip. Each zip is then
checked (face model, networks and licences in; dev-only folders out; the platform's
wheels in) and validated.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

from .fetch_wheels import PLATFORM_TAGS, WheelFetchError, fetch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ROOT / "dist"
STAGE_DIR = ROOT / "build" / "extension"

#: Files the zip must hold, and top-level folders it must not.
REQUIRED_FILES = ("blender_manifest.toml", "__init__.py", "assets/face_model.npz",
                  "assets/licenses/ict-facekit/LICENSE", "assets/models/face_landmark.onnx",
                  "assets/models/face_detection_short_range.onnx",
                  "assets/models/iris_landmark.onnx", "assets/licenses/mediapipe/LICENSE")
FORBIDDEN_PREFIXES = ("tests/", "bench/", "tools/", "training/", ".venv", ".git", "out/",
                      "dist/", "build/")
#: Top-level entries never staged (dev-only or build output; the manifest excludes the rest).
NOT_STAGED = {".git", "build", "dist", "out", "wheels", "tests", "training", "bench", "tools",
              "__pycache__"}


class ExtensionBuildError(RuntimeError):
    """The extension failed validation or its zip is incomplete."""


def blender_ext_path() -> Path:
    """The `blender_ext.py` of the installed `bpy` package (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionBuildError("the `bpy` package is not installed in this Python")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise ExtensionBuildError("no blender_ext.py inside the installed bpy package")


def run_blender_ext(*args: str) -> str:
    """Run `blender_ext.py` with this Python; its output, or ExtensionBuildError on failure."""
    result = subprocess.run([sys.executable, str(blender_ext_path()), *args],
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0 or "FATAL_ERROR" in output or "ERROR:" in output:
        raise ExtensionBuildError(f"blender_ext.py {' '.join(args)} failed:\n{output}")
    return output


def validate(source: Path = ROOT) -> str:
    """Blender's extension validator on a source folder or a built zip."""
    return run_blender_ext("validate", str(source))


def check_zip(zip_path: Path, wheel_names: list[str] = ()) -> None:
    """ExtensionBuildError if a required file or wheel is missing or a dev-only path is shipped."""
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
    missing = [name for name in (*REQUIRED_FILES, *(f"wheels/{w}" for w in wheel_names))
               if name not in names]
    shipped = [name for name in names if name.startswith(FORBIDDEN_PREFIXES)]
    if missing or shipped:
        raise ExtensionBuildError(f"{zip_path.name}: missing {missing}, must not ship {shipped[:10]}")


def stage(wheels: list[Path], platforms: list[str], stage_dir: Path = STAGE_DIR) -> Path:
    """A copy of the source tree whose manifest lists `platforms` and `wheels` (hard links
    where possible: the wheels are hundreds of MB)."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name in NOT_STAGED or entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, stage_dir / entry.name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(entry, stage_dir / entry.name)
    (stage_dir / "wheels").mkdir()
    for wheel in wheels:
        try:
            os.link(wheel, stage_dir / "wheels" / wheel.name)
        except OSError:
            shutil.copy2(wheel, stage_dir / "wheels" / wheel.name)
    manifest = (ROOT / "blender_manifest.toml").read_text()
    # JSON arrays of plain strings are valid TOML.
    extra = (f"platforms = {json.dumps(platforms)}\n"
             f"wheels = {json.dumps([f'./wheels/{wheel.name}' for wheel in wheels], indent=2)}\n")
    (stage_dir / "blender_manifest.toml").write_text(
        manifest.replace("\n[permissions]", "\n" + extra + "\n[permissions]", 1))
    return stage_dir


def build(out_dir: Path = DEFAULT_OUT_DIR, platforms: list[str] | None = None) -> list[Path]:
    """Validate the source, build one zip per platform into `out_dir`, check and validate each."""
    platforms = list(platforms or PLATFORM_TAGS)
    for required in REQUIRED_FILES[2:]:
        if not (ROOT / required).is_file():
            raise ExtensionBuildError(f"{required} is missing: run `make assets models` first")
    validate(ROOT)
    try:
        wheels = {platform: fetch(platform) for platform in platforms}
    except WheelFetchError as exc:
        raise ExtensionBuildError(str(exc)) from None
    source = stage(sorted({w for ws in wheels.values() for w in ws}), platforms)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    output = run_blender_ext("build", "--source-dir", str(source), "--output-dir", str(out_dir),
                             "--split-platforms")
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    zips = []
    for platform in platforms:
        zip_path = out_dir / f"{manifest['id']}-{manifest['version']}-{platform.replace('-', '_')}.zip"
        if not zip_path.is_file() or zip_path.stat().st_mtime < started:
            raise ExtensionBuildError(f"blender_ext.py build made no {zip_path.name}:\n"
                                      f"{output[-2000:]}")
        check_zip(zip_path, [w.name for w in wheels[platform]])
        validate(zip_path)
        zips.append(zip_path)
    return zips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORM_TAGS),
                        help="platform(s) to build (default: all)")
    args = parser.parse_args(argv)
    try:
        zips = build(args.out_dir, args.platform)
    except ExtensionBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    for zip_path in zips:
        print(f"built and validated {zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
