"""Download the run-time wheels the extension ships, for each platform and Blender Python.

    python -m tools.fetch_wheels [--platform linux-x64 ...] [--out wheels]

Blender 4.2-5.0 bundle Python 3.11 with numpy 1.x; 5.1 and later Python 3.13 with numpy 2.x.
numpy itself comes with Blender, so only the packages below are fetched (``--no-deps``: their
other dependencies are not imported by the add-on). Wheels are cached in `--out`: a second
run downloads nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "wheels"

#: Blender's Python versions (4.2-5.0, 5.1+).
PYTHON_VERSIONS = ("3.11", "3.13")

#: Blender platform -> the pip platform tags whose wheels run there.
PLATFORM_TAGS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_14_0_arm64",),
    "macos-x64": ("macosx_13_0_x86_64",),
}

#: The run-time packages (requirements.txt, less numpy), pinned per platform where PyPI
#: differs: numba/llvmlite stopped publishing macOS x86-64 wheels after 0.62.1/0.45.1 and
#: onnxruntime after 1.23.2.
PACKAGES = ("numba==0.68.1", "llvmlite==0.50.0", "onnxruntime==1.32.0",
            "opencv-python-headless==4.11.0.86")
PLATFORM_PINS = {"macos-x64": {"numba": "numba==0.62.1", "llvmlite": "llvmlite==0.45.1",
                              "onnxruntime": "onnxruntime==1.23.2"}}


class WheelFetchError(RuntimeError):
    """pip could not provide a wheel for a platform."""


def packages_for(platform: str) -> list[str]:
    """The pinned requirement strings for a Blender platform."""
    pins = PLATFORM_PINS.get(platform, {})
    return [pins.get(requirement.split("==")[0], requirement) for requirement in PACKAGES]


def fetch(platform: str, out: Path = DEFAULT_OUT) -> list[Path]:
    """Download (or find cached) the wheels of `platform` for every Blender Python into `out`."""
    if platform not in PLATFORM_TAGS:
        raise WheelFetchError(f"unknown platform {platform!r}; one of {sorted(PLATFORM_TAGS)}")
    out.mkdir(parents=True, exist_ok=True)
    for python_version in PYTHON_VERSIONS:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--only-binary=:all:", "--python-version", python_version, "--dest", str(out)]
        for tag in PLATFORM_TAGS[platform]:
            command += ["--platform", tag]
        result = subprocess.run(command + packages_for(platform), capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
            raise WheelFetchError(f"no wheels for {platform} / Python {python_version}: "
                                  + ("; ".join(errors) or result.stderr[-500:]))
    return wheels_for(platform, out)


def wheel_platforms(filename: str) -> set[str]:
    """The Blender platforms a wheel file runs on, from its platform tag(s)."""
    found = set()
    for tag in filename.removesuffix(".whl").split("-")[-1].split("."):
        if tag.startswith("manylinux") and tag.endswith("x86_64"):
            found.add("linux-x64")
        elif tag == "win_amd64":
            found.add("windows-x64")
        elif tag.startswith("macosx") and tag.endswith(("arm64", "universal2")):
            found.add("macos-arm64")
        if tag.startswith("macosx") and tag.endswith(("x86_64", "universal2")):
            found.add("macos-x64")
    return found


def wheels_for(platform: str, directory: Path = DEFAULT_OUT) -> list[Path]:
    """The cached wheels in `directory` that `platform` ships (every Python version)."""
    names = {requirement.replace("-", "_").replace("==", "-") + "-"
             for requirement in packages_for(platform)}
    return sorted(path for path in directory.glob("*.whl")
                  if path.name.startswith(tuple(names)) and platform in wheel_platforms(path.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORM_TAGS),
                        help="platform(s) to fetch (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        for platform in args.platform or PLATFORM_TAGS:
            wheels = fetch(platform, args.out)
            print(f"{platform}: {len(wheels)} wheels, "
                  f"{sum(w.stat().st_size for w in wheels) / 1e6:.0f} MB")
    except WheelFetchError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
