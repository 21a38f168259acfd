"""Blender-side speed: rig generation and bulk keyframe writing. Prints JSON.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m bench.rig_bench [--frames 3000] [--repeats 3]

Times are the best of `--repeats` runs, in seconds, single-threaded numpy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .machine import single_thread_env, write_json

single_thread_env()

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


def measure(num_frames: int, repeats: int) -> dict:
    """Seconds (best of `repeats`) to build the rig and write `num_frames` of animation."""
    model = load_face_model()
    beta = np.zeros(model.num_identity)
    rng = np.random.default_rng(0)
    psi = rng.uniform(0.0, 1.0, size=(num_frames, model.num_expressions))
    theta = rng.uniform(-0.3, 0.3, size=(num_frames, 18))
    frames = np.arange(1, num_frames + 1)

    def keyframes() -> float:
        return _timed(write_rig_animation, create_rig(model, beta), frames, psi, theta)

    def pose() -> float:
        return _timed(pose_rig, create_rig(model, beta), psi[0], theta[0])

    return {
        "bpy": bpy.app.version_string,
        "rig_data_seconds": _best(lambda: _timed(build_mesh_data, model, beta), repeats),
        "create_rig_seconds": _best(lambda: _timed(create_rig, model, beta), repeats),
        "write_keyframes_seconds": _best(keyframes, repeats),
        "keyframed_frames": num_frames,
        "keyframed_curves": model.num_expressions + 5 * 4 + 3,
        "pose_rig_seconds": _best(pose, repeats),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    print(write_json(measure(args.frames, args.repeats), args.out))


if __name__ == "__main__":
    main()
