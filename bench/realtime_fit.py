"""Real-time fitter benchmark: ms per frame, iterations and mesh error at 68/320/478/703
landmarks, single thread; JIT compile time cold (fresh NUMBA_CACHE_DIR) and cached.

    .venv/bin/python bench/realtime_fit.py [--frames 200] [--no-compile-times]
        [--out bench/results/realtime_fit.json]        (or: python -m bench.realtime_fit)

Synthetic sequences (solver.synthetic): a face drawn from the priors turning its head and
changing expression, landmarks with 1.5 px noise on a ~256 px face, identity known and
frozen (the per-frame path), E_temporal on. The landmarks are the sets the trackers use:
68 iBUG, 320 and 703 of our dense networks, 478 of the MediaPipe front end (LANDMARK_SETS).

Each sequence is fitted three times, with the same results: with a tracker's own work
between the fits (`TrackerWork`: the next frame of a clip decoded and MediaPipe's networks
run on its face, as `densecap track` does; the headline), with heavier work between
(`mesh` over the face region: ~30 MB of model data through the caches, a worst case that
sends the fitter's data back to memory), and back to back (caches warm). Needs the built
assets (`make assets`) and `../shared/footage`.
"""

import os

# Absolute imports: this file also runs as a script (bench/ on sys.path).
from densecap.bench.machine import thread_env, write_json

os.environ.update(thread_env(1))

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

#: landmark count -> the face model's embedding of that size.
LANDMARK_SETS = {68: "ibug68", 320: "dense320", 478: "mediapipe478", 703: "dense703"}
NOISE_PX = 1.5
WORK_CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "footage" / "talking_1.mp4"


def compile_probe() -> float:
    """Seconds for the first fit in this process (JIT compile or cache load included)."""
    from densecap.solver import load_face_model
    from densecap.solver.realtime import RealtimeTracker
    from densecap.solver.synthetic import CAMERA, observe, random_face
    model = load_face_model()
    emb = model.landmark_embedding("ibug68")
    beta, psi, theta = random_face(model, 0)
    mu = observe(model, emb, beta, psi, theta, NOISE_PX, 0)
    tracker = RealtimeTracker(model, emb, CAMERA, beta=beta, refine_identity=False)
    start = time.perf_counter()
    tracker.track(mu, np.full(len(emb), NOISE_PX))
    return time.perf_counter() - start


def compile_times() -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        probe = [sys.executable, "-m", "bench.realtime_fit", "--compile-probe"]
        root = Path(__file__).resolve().parents[1]
        cold, cached = (float(subprocess.run(probe, env=env, cwd=root, capture_output=True,
                                             text=True, check=True).stdout.split()[-1])
                        for _ in range(2))
    return {"jit_first_fit_cold_s": round(cold, 2), "jit_first_fit_cached_s": round(cached, 3)}


def sequence(model, count: int, seed: int):
    """beta, per-frame psi (F, E) and theta (F, 18): head turning, expressions ramping."""
    from densecap.solver.synthetic import random_face
    beta, psi, theta = random_face(model, seed)
    t = np.linspace(0.0, 1.0, count)[:, None]
    psis = np.clip(psi * (0.5 + 0.5 * np.sin(2 * np.pi * t)), 0.0, 1.0)
    thetas = np.repeat(theta[None], count, axis=0)
    thetas[:, 1] += 0.3 * np.sin(2 * np.pi * t[:, 0])        # yaw +-17 degrees
    thetas[:, 6] += 0.1 * np.sin(4 * np.pi * t[:, 0])        # head pitch
    return beta, psis, thetas


class TrackerWork:
    """What `densecap track` does between two fits: decode the next frame of `clip`
    (looping) and run MediaPipe's networks on its face (face crop, face mesh, eye crops,
    iris; one thread), the crop following the network's landmarks."""

    def __init__(self, clip: Path = WORK_CLIP):
        import cv2
        from densecap.landmarks.mediapipe478 import (CROP_LAYOUT, CROP_SIZE, LEFT_EYE_IDS,
                                                     MOUTH_IDS, RIGHT_EYE_IDS)
        from densecap.landmarks.roi import RoiTracker
        from densecap.tracking.landmark_tracker import Networks
        self.video = cv2.VideoCapture(str(clip))
        if not self.video.isOpened():
            raise SystemExit(f"cannot read {clip} (the work between fits)")
        self.networks = Networks(threads=1)
        self.roi = RoiTracker(self.networks.detect, CROP_SIZE, RIGHT_EYE_IDS, LEFT_EYE_IDS,
                              MOUTH_IDS, None, CROP_LAYOUT)

    def __call__(self) -> None:
        import cv2
        ok, frame = self.video.read()
        if not ok:
            self.video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.video.read()
        roi = self.roi.locate(frame)
        mu = self.networks.landmarks(frame, roi)[0] if roi is not None else None
        self.roi.update(mu, mu is not None)


def run_size(model, region, size: int, frames: int, tolerance: float,
             tracker_work: TrackerWork) -> dict:
    """The sequence tracked three times (see the module docstring): with `tracker_work`
    between the fits, with the mesh over `region` between them, and back to back."""
    from densecap.solver import mesh
    from densecap.solver.energies import FitSettings
    from densecap.solver.realtime import RealtimeTracker
    from densecap.solver.synthetic import CAMERA, observe
    emb = model.landmark_embedding(LANDMARK_SETS[size])
    beta, psis, thetas = sequence(model, frames, seed=7)
    settings = FitSettings(temporal=0.05, tolerance=tolerance)
    sigma = np.full(size, NOISE_PX)
    observations = [observe(model, emb, beta, psis[i], thetas[i], NOISE_PX, 1000 + i)
                    for i in range(frames)]

    def heavy_work(result):
        mesh(model, beta, result.psi, result.theta, region)

    runs = {}
    for name, work in (("tracker", lambda result: tracker_work()), ("heavy", heavy_work),
                       ("back_to_back", None)):
        tracker = RealtimeTracker(model, emb, CAMERA, settings, beta=beta, refine_identity=False)
        times, results = [], []
        for mu in observations:
            start = time.perf_counter()
            results.append(tracker.track(mu, sigma))
            times.append(time.perf_counter() - start)
            if work is not None:
                work(results[-1])
        runs[name] = np.array(times[1:]) * 1e3  # the first frame starts from a rigid guess
    errors = [np.linalg.norm(mesh(model, beta, r.psi, r.theta, region)
                             - mesh(model, beta, psis[i], thetas[i], region), axis=1).mean() * 10
              for i, r in enumerate(results)]
    iterations = [r.iterations for r in results]
    return {
        "landmarks": size,
        "landmark_set": LANDMARK_SETS[size],
        "ms_per_frame_median": round(float(np.median(runs["tracker"])), 3),
        "ms_per_frame_p95": round(float(np.percentile(runs["tracker"], 95)), 3),
        "ms_per_frame_median_heavy_work_between": round(float(np.median(runs["heavy"])), 3),
        "ms_per_frame_median_back_to_back": round(float(np.median(runs["back_to_back"])), 3),
        "iterations_median": float(np.median(iterations[1:])),
        "iterations_p95": float(np.percentile(iterations[1:], 95)),
        "jacobian_expressions_per_landmark": round(
            tracker.fitter.table.mean_jacobian_expressions, 1),
        "mesh_error_mm_mean": round(float(np.mean(errors)), 3),
        "mesh_error_mm_median": round(float(np.median(errors)), 3),
    }


def keyframe_refinement_seconds(model, size: int) -> float:
    """Wall time of the first keyframe (identity + focal refinement, offline.fit_shared)."""
    from densecap.solver.landmark_sets import random_embedding
    from densecap.solver.realtime import RealtimeTracker
    from densecap.solver.synthetic import CAMERA, observe, random_face
    emb = random_embedding(model, size, seed=size)
    beta, psi, theta = random_face(model, 3)
    tracker = RealtimeTracker(model, emb, CAMERA, refine_focal=True)
    mu = observe(model, emb, beta, psi, theta, NOISE_PX, 3)
    start = time.perf_counter()
    tracker.track(mu, np.full(size, NOISE_PX))
    return time.perf_counter() - start


def main(argv=None) -> int:
    from densecap.solver.energies import FitSettings
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--tolerance", type=float, default=FitSettings().tolerance,
                        help="LM stop: relative energy decrease (FitSettings.tolerance)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/realtime_fit.json"))
    parser.add_argument("--no-compile-times", action="store_true",
                        help="skip the cold / cached JIT compile measurement (two processes)")
    parser.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_probe:
        print(compile_probe())
        return 0
    import numba
    from densecap.solver import load_face_model
    from densecap.solver.regions import face_region_vertices
    report = {"threads": 1, "numba": numba.__version__,
              "noise_px": NOISE_PX, "frames": args.frames, "tolerance": args.tolerance,
              **({} if args.no_compile_times else compile_times())}
    model = load_face_model()
    region = face_region_vertices(model)
    compile_probe()  # warm this process's cache
    tracker_work = TrackerWork()
    report["work_between_clip"] = WORK_CLIP.name
    report["sizes"] = [run_size(model, region, size, args.frames, args.tolerance, tracker_work)
                       for size in LANDMARK_SETS]
    report["keyframe_refinement_s_478"] = round(keyframe_refinement_seconds(model, 478), 2)
    print(write_json(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
