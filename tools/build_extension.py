"""Validate and build the installable extension zip with Blender's own `blender_ext.py`.

    python -m tools.build_extension [--out-dir dist]

`blender_ext.py` ships inside the `bpy` package (scripts/addons_core/bl_pkg/cli/); the
manifest's `[build] paths_exclude_pattern` decides what goes into the zip. The build
then checks the zip: the packed face model and its licence are in, dev-only folders out.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = ROOT / "dist"

#: Files the zip must hold, and top-level folders it must not.
REQUIRED_FILES = ("blender_manifest.toml", "__init__.py", "assets/face_model.npz",
                  "assets/licenses/ict-facekit/LICENSE")
FORBIDDEN_PREFIXES = ("tests/", "bench/", "tools/", "training/", ".venv", ".git", "out/",
                      "dist/")


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


def check_zip(zip_path: Path) -> None:
    """ExtensionBuildError if a required file is missing or a dev-only path is shipped."""
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
    missing = [name for name in REQUIRED_FILES if name not in names]
    shipped = [name for name in names if name.startswith(FORBIDDEN_PREFIXES)]
    if missing or shipped:
        raise ExtensionBuildError(f"{zip_path.name}: missing {missing}, must not ship {shipped[:10]}")


def build(out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    """Validate the source, build `<id>-<version>.zip` into `out_dir`, check and validate it."""
    if not (ROOT / REQUIRED_FILES[2]).is_file():
        raise ExtensionBuildError("assets/face_model.npz is missing: run `make assets` first")
    validate(ROOT)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = run_blender_ext("build", "--source-dir", str(ROOT), "--output-dir", str(out_dir))
    created = [line.split('"')[1] for line in output.splitlines() if line.startswith("created:")]
    if not created:
        raise ExtensionBuildError(f"blender_ext.py build reported no zip:\n{output}")
    zip_path = Path(created[0])
    check_zip(zip_path)
    validate(zip_path)
    return zip_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    try:
        zip_path = build(args.out_dir)
    except ExtensionBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"built and validated {zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
