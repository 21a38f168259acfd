"""Blender-side speed: rig generation and bulk keyframe writing. Prints JSON.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m bench.rig_bench [--frames 3000] [--repeats 3]

Times are the best of `--repeats` runs, in seconds, single-threaded numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from densecap.densecap_addon.animation import write_rig_animation  # noqa: E402
from densecap.densecap_addon.rig import create_rig, pose_rig  # noqa: E402
from densecap.densecap_addon.rig_data import build_mesh_data  # noqa: E402
from densecap.solver import load_face_model  # noqa: E402


def _best(timed_run, repeats: int) -> float:
    """Fastest of `repeats` calls of `timed_run` (returns its own seconds), each in a fresh scene."""
    times = []
    for _ in range(repeats):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        times.append(timed_run())
    return min(times)


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def _cpu() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model = load_face_model()
    beta = np.zeros(model.num_identity)
    rng = np.random.default_rng(0)
    psi = rng.uniform(0.0, 1.0, size=(args.frames, model.num_expressions))
    theta = rng.uniform(-0.3, 0.3, size=(args.frames, 18))
    frames = np.arange(1, args.frames + 1)

    def keyframes() -> float:
        return _timed(write_rig_animation, create_rig(model, beta), frames, psi, theta)

    def pose() -> float:
        return _timed(pose_rig, create_rig(model, beta), psi[0], theta[0])

    print(json.dumps({
        "bpy": bpy.app.version_string,
        "cpu": _cpu(),
        "rig_data_seconds": _best(lambda: _timed(build_mesh_data, model, beta), args.repeats),
        "create_rig_seconds": _best(lambda: _timed(create_rig, model, beta), args.repeats),
        "write_keyframes_seconds": _best(keyframes, args.repeats),
        "keyframed_frames": args.frames,
        "keyframed_curves": model.num_expressions + 5 * 4 + 3,
        "pose_rig_seconds": _best(pose, args.repeats),
    }, indent=1))


if __name__ == "__main__":
    main()
