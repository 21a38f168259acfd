"""Speed and memory of tracking: ms per frame per stage on a real clip, network latency,
the real-time fitter alone, offline seconds per 1,800 frames, bake seconds, peak RSS.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.speed \\
        [--clip ../shared/footage/talking_1.mp4] [--frames 150] [--bake-frames 1800] \\
        [--landmarks dense320|mediapipe478|dense703] [--out bench/results/speed_1thread.json]

The thread count is NUMBA_NUM_THREADS (default 1; OMP_NUM_THREADS should match); onnxruntime
gets the same number of intra-op threads. The tracking loop is `track_footage` (as `densecap
track` runs it; `--preview FILE` also draws and writes the preview) with each frame's
wall-clock time split into stages that add up to it: decode (open_footage), detect (the
face detectors, first frame and lost tracks) or roi (the crop from the last landmarks),
face_crop (crop + input tensor), face_net, eye_crops (mesh to image, both eye crops +
tensors), iris_net (both eyes), iris_map (back to the image) with MediaPipe, or landmark_net
(crop, network, decode; two passes after a detection) with `--landmarks dense320` / `dense703`,
sigma (MediaPipe's sigma model), fit (the real-time fit,
identity/focal keyframes included), pose (error, the landmark triangles posed for their
facing, the result), pipeline (the loop around the tracker: results, progress, the preview
with the posing of its wireframe). Steady state: no detection, no keyframe, not the first
frame; its medians and means, and means over all frames (means add up to the total, medians
need not); the steady state's median of each frame's time less its decode, the figure
the real-time target (`TARGET_MS_EXCLUDING_DECODE`) is about. Offline seconds are
extrapolated linearly from the clip (while the build has no offline mode they are recorded
as unavailable); bake = rig
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

from densecap.tracking.cli import DEFAULT_LANDMARK_MODEL, LANDMARK_MODELS  # noqa: E402

from .machine import peak_rss_mb, threads_in_use, write_json  # noqa: E402

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "footage" / "talking_1.mp4"
OFFLINE_REFERENCE_FRAMES = 1800
#: The real-time path's target per steady-state frame, video decode excluded (400 fps).
TARGET_MS_EXCLUDING_DECODE = 2.5
#: synthetic frames for the fitter-alone timing (steady state after the first)
FITTER_FRAMES = 60


class _StagedFootage:
    """`footage` whose frames split each frame's wall-clock time into stages on `watch`:
    "decode" (fetching the frame), the tracker's own stages (`LandmarkFitTracker.laps`), and
    "pipeline" (the loop's work after the tracker: results, progress, the preview when one is
    written), so a frame's stages add up to its time. `rows` gets each frame's
    {stage: seconds}."""

    def __init__(self, footage, watch):
        self._footage, self.watch = footage, watch
        self.rows: list[dict[str, float]] = []

    def __getattr__(self, name):
        return getattr(self._footage, name)

    def __iter__(self):
        self.watch.take()
        self.watch.start()
        for item in self._footage:
            self.watch.lap("decode")
            yield item
            self.watch.lap("pipeline")          # resumed: the loop is done with the frame
            self.rows.append(self.watch.take())


class _KeyframeFlags:
    """`tracker` that records, per frame, whether it refined identity / focal length."""

    def __init__(self, tracker):
        self._tracker = tracker
        self.keyframes: list[bool] = []

    def __getattr__(self, name):
        return getattr(self._tracker, name)

    def track(self, frame_index, image):
        before = self._tracker.keyframes
        result = self._tracker.track(frame_index, image)
        self.keyframes.append(self._tracker.keyframes != before)
        return result


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
#: The coarse stages of the report (bench/report.py) as sums of the fine ones.
STAGE_GROUPS = {"decode": ("decode",), "detect": ("detect",),
                "landmarks": ("face_crop", "face_net", "eye_crops", "iris_net", "iris_map",
                              "landmark_net"),
                "fit": ("roi", "sigma", "fit", "pose", "pipeline")}


def summarise(rows: list[dict[str, float]], keyframes: list[bool]) -> dict:
    """Per-stage ms per frame over the steady state (no detection, no keyframe refinement,
    not the first frame): medians and means, and means over all frames. Means add up to the
    mean total; medians need not. ``ms_per_frame_median`` / ``_mean``: the coarse
    `STAGE_GROUPS` over all frames but the first (medians, and means with the keyframes)."""
    stages = list(dict.fromkeys(stage for row in rows for stage in row))
    ms = 1e3 * np.array([[row.get(stage, 0.0) for stage in stages] for row in rows])
    total = ms.sum(axis=1)
    decode = ms[:, stages.index("decode")] if "decode" in stages else np.zeros(len(rows))
    steady = np.array([i > 0 and not keyframe and "detect" not in row
                       for i, (row, keyframe) in enumerate(zip(rows, keyframes))])
    groups = np.array([[sum(row.get(stage, 0.0) for stage in members) for members in
                        STAGE_GROUPS.values()] for row in rows[1:]]) * 1e3

    def table(names, values, total_value):
        return {**{name: round(float(v), 3) for name, v in zip(names, values)},
                "total": round(float(total_value), 3)}
    return {"frames": len(rows), "steady_frames": int(steady.sum()),
            "keyframe_frames": int(np.sum(keyframes)),
            "detect_frames": int(sum("detect" in row for row in rows)),
            "steady_median_ms": table(stages, np.median(ms[steady], axis=0),
                                      np.median(total[steady])),
            "steady_mean_ms": table(stages, ms[steady].mean(axis=0), total[steady].mean()),
            "steady_median_ms_excluding_decode": round(float(np.median(
                total[steady] - decode[steady])), 3),
            "target_ms_excluding_decode": TARGET_MS_EXCLUDING_DECODE,
            "all_frames_mean_ms": table(stages, ms.mean(axis=0), total.mean()),
            "ms_per_frame_median": table(STAGE_GROUPS, np.median(groups, axis=0),
                                         np.median(groups.sum(axis=1))),
            "ms_per_frame_mean": table(STAGE_GROUPS, groups.mean(axis=0),
                                       groups.sum(axis=1).mean())}


def stage_times(clip: Path, frames: int, threads: int, preview: Path | None = None,
                clock: str = "wall", landmarks: str = DEFAULT_LANDMARK_MODEL) -> dict:
    """ms per frame per stage over the clip's first `frames` frames (see the module text);
    clock "wall" (perf_counter) or "cpu" (this thread's CPU time); landmarks: the front
    end's landmark model (tracking.cli.LANDMARK_MODELS)."""
    import cv2
    from densecap.landmarks.footage import open_footage
    from densecap.landmarks.stopwatch import Stopwatch
    from densecap.tracking.cli import make_tracker
    from densecap.tracking.pipeline import track_footage
    from densecap.tracking.preview import PreviewWriter
    cv2.setNumThreads(threads)
    watch = Stopwatch(CLOCKS[clock])
    with open_footage(str(clip), end=frames) as footage:
        tracker = make_tracker(footage, "realtime", None, threads=threads,
                               landmark_model=landmarks)
        tracker.laps = watch
        staged, flagged = _StagedFootage(footage, watch), _KeyframeFlags(tracker)
        writer = (PreviewWriter(preview, footage.fps, footage.width, footage.height)
                  if preview else None)
        try:
            track_footage(staged, flagged, preview=writer)
        finally:
            if writer is not None:
                writer.close()
    return {"clip": str(clip), "landmarks": landmarks, "preview": preview is not None,
            "clock": clock, **summarise(staged.rows, flagged.keyframes)}


def fitter_only(frames: int) -> dict:
    """The real-time fitter alone at 478 landmarks (bench.realtime_fit, synthetic, with
    its tracker's work between the fits)."""
    from densecap.solver import load_face_model
    from densecap.solver.energies import FitSettings
    from densecap.solver.regions import face_region_vertices
    from .realtime_fit import TrackerWork, compile_probe, run_size
    model = load_face_model()
    compile_probe()
    return run_size(model, face_region_vertices(model), 478, frames, FitSettings().tolerance,
                    TrackerWork())


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
    parser.add_argument("--preview", type=Path, metavar="FILE.mp4",
                        help="also draw and write the preview video while tracking")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="stage times as wall-clock time (default) or this thread's CPU "
                             "time (steadier on a busy machine)")
    parser.add_argument("--tracking-only", action="store_true",
                        help="only the per-stage tracking times (no network, fitter, offline "
                             "or bake timings)")
    parser.add_argument("--landmarks", choices=LANDMARK_MODELS, default=DEFAULT_LANDMARK_MODEL,
                        help="the front end's landmark model (a dense one needs its ONNX "
                             "file: training/README.md)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    from densecap.landmarks import onnx_models
    from .landmark_models import measure
    threads = threads_in_use()
    report = {"threads": threads,
              "tracking": stage_times(args.clip, args.frames, threads, args.preview,
                                      args.clock, args.landmarks),
              "peak_rss_mb_tracking": peak_rss_mb()}
    if args.tracking_only:
        print(write_json(report, args.out))
        return 0
    report = {**report,
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
