"""Speed and memory of tracking: ms per frame per stage on a real clip, network latency,
the real-time fitter alone, offline seconds per 1,800 frames, bake seconds, peak RSS.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.speed \\
        [--clip ../shared/footage/talking_1.mp4] [--frames 150] [--bake-frames 1800] \\
        [--out bench/results/speed_1thread.json]

The thread count is NUMBA_NUM_THREADS (default 1; OMP_NUM_THREADS should match); onnxruntime
gets the same number of intra-op threads. Stages per frame: decode (open_footage), face
detection (when the ROI tracker asks for it), landmarks (crops, face mesh and iris networks,
mapping back), fit (sigma, real-time fit, identity/focal keyframes, posing for the preview):
the tracker's time minus the two network stages. Medians are steady-state frames, means
include the keyframe refinements. Offline seconds are extrapolated linearly from the clip
(while the build has no offline mode they are recorded as unavailable); bake = rig
generation + writing 1,800 frames of keyframes with bpy (bench.rig_bench, its own process).
"""

from __future__ import annotations

from .machine import single_thread_env

single_thread_env()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .machine import peak_rss_mb, threads_in_use, write_json  # noqa: E402

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "footage" / "talking_1.mp4"
OFFLINE_REFERENCE_FRAMES = 1800
#: synthetic frames for the fitter-alone timing (steady state after the first)
FITTER_FRAMES = 60


def timed_networks(threads: int):
    """A tracking.landmark_tracker.Networks whose detector and landmark calls add their
    seconds to `.seconds["detect"]` / `.seconds["landmarks"]`."""
    from densecap.tracking.landmark_tracker import Networks

    class TimedNetworks(Networks):
        def __init__(self):
            super().__init__(threads=threads)
            self.seconds = {"detect": 0.0, "landmarks": 0.0}
            self._landmarks = self.landmarks
            self.landmarks = self._timed_landmarks

        def detect(self, image):
            start = time.perf_counter()
            try:
                return super().detect(image)
            finally:
                self.seconds["detect"] += time.perf_counter() - start

        def _timed_landmarks(self, image, roi):
            start = time.perf_counter()
            try:
                return self._landmarks(image, roi)
            finally:
                self.seconds["landmarks"] += time.perf_counter() - start

        def take(self) -> dict[str, float]:
            seconds, self.seconds = self.seconds, {"detect": 0.0, "landmarks": 0.0}
            return seconds

    return TimedNetworks()


def stage_times(clip: Path, frames: int, threads: int) -> dict:
    """ms per frame per stage over the clip's first `frames` frames."""
    from densecap.landmarks.footage import open_footage
    from densecap.solver import load_face_model
    from densecap.tracking.landmark_tracker import LandmarkFitTracker
    model = load_face_model()
    networks = timed_networks(threads)
    rows = []
    with open_footage(str(clip), end=frames) as footage:
        tracker = LandmarkFitTracker(model, footage.width, footage.height, networks=networks)
        stream = iter(footage)
        while True:
            start = time.perf_counter()
            try:
                index, image = next(stream)
            except StopIteration:
                break
            decoded = time.perf_counter()
            tracker.track(index, image)
            done = time.perf_counter()
            nets = networks.take()
            rows.append((decoded - start, nets["detect"], nets["landmarks"],
                         done - decoded - nets["detect"] - nets["landmarks"], done - start))
    ms = 1e3 * np.array(rows[1:])           # the first frame loads and compiles
    names = ("decode", "detect", "landmarks", "fit", "total")
    return {"clip": str(clip), "frames": len(rows),
            "ms_per_frame_median": {n: round(float(v), 3)
                                    for n, v in zip(names, np.median(ms, axis=0))},
            "ms_per_frame_mean": {n: round(float(v), 3) for n, v in zip(names, ms.mean(axis=0))}}


def fitter_only(frames: int) -> dict:
    """The real-time fitter alone at 478 landmarks (bench.realtime_fit, synthetic)."""
    from densecap.solver import load_face_model
    from densecap.solver.energies import FitSettings
    from densecap.solver.regions import face_region_vertices
    from .realtime_fit import compile_probe, run_size
    model = load_face_model()
    compile_probe()
    return run_size(model, face_region_vertices(model), 478, frames, FitSettings().tolerance)


def offline_seconds(clip: Path, frames: int) -> dict:
    """Offline mode on the clip, extrapolated to OFFLINE_REFERENCE_FRAMES (or why not)."""
    from densecap.landmarks.footage import open_footage
    from densecap.tracking.cli import make_tracker
    from densecap.tracking.errors import TrackingError
    from densecap.tracking.pipeline import track_footage
    with open_footage(str(clip), end=frames) as footage:
        try:
            run = track_footage(footage, make_tracker(footage, "offline", None), mode="offline")
        except TrackingError as exc:
            return {"available": False, "reason": str(exc)}
    if run.performance is None or run.performance.mode != "offline":
        return {"available": False, "reason": "the tracker produced no offline performance"}
    return {"available": True, "frames": run.frames_done, "seconds": round(run.seconds, 2),
            "seconds_per_1800_frames": round(run.seconds * OFFLINE_REFERENCE_FRAMES
                                             / run.frames_done, 1),
            "note": f"extrapolated linearly from {run.frames_done} frames"}


def bake_seconds(frames: int) -> dict:
    """bench.rig_bench in its own process (bpy): rig generation + keyframes for `frames`."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "bench.rig_bench", "--frames", str(frames),
                           "--repeats", "1"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        return {"available": False, "reason": done.stderr.strip().splitlines()[-1:]}
    rig = json.loads(done.stdout)
    return {"available": True, "frames": frames, "bpy": rig["bpy"],
            "seconds": round(rig["create_rig_seconds"] + rig["write_keyframes_seconds"], 3),
            "create_rig_seconds": round(rig["create_rig_seconds"], 3),
            "write_keyframes_seconds": round(rig["write_keyframes_seconds"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--bake-frames", type=int, default=OFFLINE_REFERENCE_FRAMES,
                        help="frames of keyframes to bake (0: skip the bake)")
    parser.add_argument("--network-repeats", type=int, default=100)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    from densecap.landmarks import onnx_models
    from .landmark_models import measure
    threads = threads_in_use()
    report = {"threads": threads,
              "tracking": stage_times(args.clip, args.frames, threads),
              "peak_rss_mb_tracking": peak_rss_mb(),
              "networks": measure(onnx_models.MODELS_DIR, threads, args.network_repeats),
              "fitter_only_478": fitter_only(FITTER_FRAMES),
              "offline": offline_seconds(args.clip, args.frames)}
    if args.bake_frames:
        report["bake"] = bake_seconds(args.bake_frames)
    report["peak_rss_mb"] = peak_rss_mb()
    print(write_json(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
