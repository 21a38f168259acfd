"""Single-thread latency of the converted MediaPipe networks under onnxruntime; prints JSON.

Times ``session.run`` only (no pre/post-processing) on a fixed real input tensor, after warm-up,
with ``intra_op_num_threads`` = ``--threads`` (default 1). Reports median and 10th/90th
percentiles in milliseconds per model, with the CPU name and the onnxruntime version.

Usage: ``python -m bench.landmark_models [--repeats 200] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from densecap.landmarks import onnx_models as om

from .machine import write_json


def time_session(session, tensor, repeats, warmup=20) -> dict:
    feed = {session.get_inputs()[0].name: tensor}
    for _ in range(warmup):
        session.run(None, feed)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times[i] = time.perf_counter() - start
    ms = times * 1e3
    return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90))}


def measure(models: Path, threads: int, repeats: int) -> dict:
    """Latency of each network with `threads` onnxruntime intra-op threads."""
    rng = np.random.default_rng(0)
    results = {}
    for stem, size, low in (("face_detection_short_range", om.DETECTORS["short"].size, -1.0),
                            ("face_detection_full_range", om.DETECTORS["full"].size, -1.0),
                            ("face_landmark", om.FACE_MESH_SIZE, 0.0),
                            ("iris_landmark", om.IRIS_SIZE, 0.0)):
        session = om.load_session(models / f"{stem}.onnx", threads)
        tensor = rng.uniform(low, 1.0, (1, size, size, 3)).astype(np.float32)
        results[stem] = time_session(session, tensor, repeats)
    return {"onnxruntime": ort.__version__, "intra_op_num_threads": threads,
            "repeats": repeats, "models": results}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path, default=om.MODELS_DIR)
    args = parser.parse_args(argv)
    print(write_json(measure(args.models, args.threads, args.repeats), None))


if __name__ == "__main__":
    main()
