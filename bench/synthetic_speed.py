"""Throughput of the synthetic training-data generator (training/synthetic.py): prints JSON.

    python -m bench.synthetic_speed [--size 192] [--workers 2] [--images 200] [--set dense320]

Each worker process builds its own `SyntheticRenderer` (footage backgrounds included),
renders one warm-up image, then the workers render `--images` samples together; the rate
is images over the wall time of that part. NUMBA/OMP threads are 1 per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from densecap.bench.machine import cpu_name, single_thread_env

single_thread_env()

import multiprocessing  # noqa: E402

from densecap.solver import load_face_model  # noqa: E402
from densecap.training.synthetic import (SyntheticConfig, SyntheticRenderer,  # noqa: E402
                                         load_footage_frames)

_RENDERER = None


def _start(size: int, landmark_set: str) -> None:
    global _RENDERER
    _RENDERER = SyntheticRenderer(load_face_model(), landmark_set, SyntheticConfig(size=size),
                                  load_footage_frames())
    _RENDERER.sample(0, 0)


def _render(index: int) -> float:
    start = time.perf_counter()
    _RENDERER.sample(1, index)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--set", default="dense320")
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("fork")
    with context.Pool(args.workers, _start, (args.size, args.set)) as pool:
        pool.map(_render, range(args.workers), chunksize=1)       # every worker started
        start = time.perf_counter()
        seconds = pool.map(_render, range(args.images), chunksize=4)
        wall = time.perf_counter() - start
    print(json.dumps({
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "size_px": args.size,
        "landmark_set": args.set,
        "workers": args.workers,
        "images": args.images,
        "images_per_s": round(args.images / wall, 2),
        "ms_per_image_per_worker": round(1000 * sum(seconds) / len(seconds), 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
