"""Single-thread latency of the converted MediaPipe networks under onnxruntime; prints JSON.

Times ``session.run`` only (no pre/post-processing) on a fixed real input tensor, after warm-up,
with ``intra_op_num_threads`` = ``--threads`` (default 1). Reports median and 10th/90th
percentiles in milliseconds per model, with the CPU name and the onnxruntime version. The last
entry is what the front end runs per frame for the irises: the pruned iris model
(``iris_landmark_iris_only.onnx``) on both eyes in one call (batch 2).

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
    results, missing = {}, []
    # name, file stem, input size, low end of the input range, batch
    for name, stem, size, low, batch in (
            ("face_detection_short_range", "face_detection_short_range",
             om.DETECTORS["short"].size, -1.0, 1),
            ("face_detection_full_range", "face_detection_full_range",
             om.DETECTORS["full"].size, -1.0, 1),
            ("face_landmark", "face_landmark", om.FACE_MESH_SIZE, 0.0, 1),
            ("iris_landmark", "iris_landmark", om.IRIS_SIZE, 0.0, 1),
            # what the 478-landmark front end runs per frame: both eyes, iris output only
            ("iris_landmark_iris_only_both_eyes", Path(om.IRIS_ONLY_FILE).stem, om.IRIS_SIZE,
             0.0, 2)):
        path = models / f"{stem}.onnx"
        if not path.is_file():      # the pruned iris model: from `make models` of this build
            missing.append(str(path))
            continue
        session = om.load_session(path, threads)
        tensor = rng.uniform(low, 1.0, (batch, size, size, 3)).astype(np.float32)
        results[name] = time_session(session, tensor, repeats)
    return {"onnxruntime": ort.__version__, "intra_op_num_threads": threads,
            "repeats": repeats, "models": results, "missing_models": missing}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path, default=om.MODELS_DIR)
    args = parser.parse_args(argv)
    print(write_json(measure(args.models, args.threads, args.repeats), None))


if __name__ == "__main__":
    main()
