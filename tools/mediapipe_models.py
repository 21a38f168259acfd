"""Build step: MediaPipe face networks (Apache-2.0) -> ONNX models in assets/models/.

Downloads the ``mediapipe==0.10.21`` wheel (CPython 3.11, manylinux x86_64) with pip into a
cache folder, extracts the TFLite networks and the licence, and converts each network with
:mod:`tools.tflite_to_onnx` (no TensorFlow). The extracted ``.tflite`` files are kept in the
cache so the parity test can run the reference TFLite interpreter on the very same networks.

Usage: ``python -m tools.mediapipe_models --cache build/mediapipe --out assets/models``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import onnx
import onnx.utils

from .tflite_to_onnx import convert_tflite

MEDIAPIPE_VERSION = "0.10.21"
WHEEL_NAME = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"

#: ONNX file stem -> path of the TFLite network inside the wheel.
NETWORKS = {
    "face_detection_short_range": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_detection_full_range": "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark": "mediapipe/modules/face_landmark/face_landmark.tflite",
    "iris_landmark": "mediapipe/modules/iris_landmark/iris_landmark.tflite",
}
#: ONNX file stem -> (the converted network it is cut from, the outputs it keeps): the
#: 478-landmark front end uses the iris points only; without the eye-contour head the iris
#: network takes 12 % less time.
PRUNED = {"iris_landmark_iris_only": ("iris_landmark", ["output_iris"])}
LICENSE_PATH = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"


def download_wheel(cache: Path) -> Path:
    """The cached wheel, downloaded with pip on first use."""
    wheel = cache / WHEEL_NAME
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}",
             "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
             "--platform", "manylinux_2_28_x86_64", "-d", str(cache)],
            check=True)
    if not wheel.exists():
        raise FileNotFoundError(f"pip did not produce {wheel}")
    return wheel


def build(cache: Path, out: Path) -> list[Path]:
    """Extract, convert and write the ONNX models into ``out`` and MediaPipe's licence into
    ``out/../licenses/mediapipe/``; returns the paths written."""
    wheel = download_wheel(cache)
    out.mkdir(parents=True, exist_ok=True)
    tflite_dir = cache / "tflite"
    tflite_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for stem, member in NETWORKS.items():
            data = archive.read(member)
            (tflite_dir / f"{stem}.tflite").write_bytes(data)
            model = convert_tflite(data, graph_name=stem)
            path = out / f"{stem}.onnx"
            onnx.save(model, str(path))
            written.append(path)
        for stem, (source, outputs) in PRUNED.items():
            model = onnx.load(str(out / f"{source}.onnx"))
            pruned = onnx.utils.Extractor(model).extract_model(
                [i.name for i in model.graph.input], outputs)
            path = out / f"{stem}.onnx"
            onnx.save(pruned, str(path))
            written.append(path)
        licence_dir = out.parent / "licenses" / "mediapipe"
        licence_dir.mkdir(parents=True, exist_ok=True)
        (licence_dir / "LICENSE").write_bytes(archive.read(LICENSE_PATH))
        files = ", ".join(f"{stem}.onnx" for stem in [*NETWORKS, *PRUNED])
        (licence_dir / "CREDITS.md").write_text(
            f"The networks in `assets/models/` ({files}) were\n"
            f"converted to ONNX from the TFLite models in the `mediapipe=={MEDIAPIPE_VERSION}`\n"
            f"wheel (https://github.com/google-ai-edge/mediapipe), Copyright Google LLC,\n"
            f"licensed under the Apache License 2.0 (`LICENSE` beside this file). Changes:\n"
            f"format conversion (TFLite -> ONNX), fp16 and sparse weights stored as dense\n"
            f"float32, PReLU rewritten as equivalent depthwise convolutions, channel padding as\n"
            f"a 1x1 convolution, a symbolic batch dimension; iris_landmark_iris_only.onnx keeps\n"
            f"the iris output only.\n")
        written += [licence_dir / "LICENSE", licence_dir / "CREDITS.md"]
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("build/mediapipe"))
    parser.add_argument("--out", type=Path, default=Path("assets/models"))
    args = parser.parse_args(argv)
    for path in build(args.cache, args.out):
        print(path)


if __name__ == "__main__":
    main()
