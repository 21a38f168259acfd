"""The command line: ``densecap track VIDEO [options]``.

Bad input (a missing or unreadable file, a bad range, an output folder that does not exist)
prints one ``densecap: error: ...`` line and exits with status 2, no traceback. Ctrl-C stops
the run and keeps (writes) the frames tracked so far, exit status 130.

The per-frame work is plugged in through `main(tracker_factory=...)`: a callable
``factory(footage, mode, face_index) -> FrameTracker`` (called with
``landmark_model=...`` too when ``--landmarks`` is given). Writing a .blend goes through
``blend_writer(performance, path)``, which needs bpy and the rig (the Blender layer).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..landmarks.errors import LandmarkError
from ..landmarks.footage import Footage, open_footage
from .errors import USER_ERRORS, TrackingError
from .performance import MODES, Performance
from .pipeline import FrameTracker, TrackingRun, track_footage
from .preview import PreviewWriter
from .progress import CancelToken, TerminalProgress

TrackerFactory = Callable[[Footage, str, "int | None"], FrameTracker]
BlendWriter = Callable[[Performance, Path], None]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The landmark front ends a run can choose (`--landmarks`, the Blender preference), the
#: default first: our own dense networks (`landmarks/dense_network.py`; their ONNX files are
#: build outputs of training/) or MediaPipe's face mesh + iris (converted at build time).
LANDMARK_MODELS = ("dense320", "mediapipe478", "dense703")
#: The default: the one that measures better on the dev set (bench/dense_landmarks.py:
#: dense320 reading each crop and its mirror, fitted 7.30 % against MediaPipe's 7.34 %).
DEFAULT_LANDMARK_MODEL = "dense320"


def make_tracker(footage: Footage, mode: str, face_index: int | None, *, threads: int = 1,
                 landmark_model: str = DEFAULT_LANDMARK_MODEL) -> FrameTracker:
    """The landmark network + real-time fitter (offline mode refines its frames afterwards,
    see pipeline.track_footage; a dense network reads each crop with its mirror image in
    real time, `REALTIME_VIEWS`, and that pair at three zooms offline, `OFFLINE_VIEWS`);
    `threads` onnxruntime intra-op threads, `landmark_model` one of LANDMARK_MODELS (the
    Blender add-on's preferences set both). A dense model whose ONNX file is missing or
    unusable: TrackingError saying the command that makes it."""
    if mode not in MODES:
        raise TrackingError(f"unknown mode {mode!r} (use one of {', '.join(MODES)})")
    if landmark_model not in LANDMARK_MODELS:
        raise TrackingError(f"unknown landmark model {landmark_model!r} (use one of "
                            f"{', '.join(LANDMARK_MODELS)})")
    from ..solver.face_model import load_face_model
    from .landmark_tracker import LANDMARK_SET, LandmarkFitTracker, Networks
    if landmark_model == LANDMARK_SET:
        return LandmarkFitTracker(load_face_model(), footage.width, footage.height,
                                  face_index=face_index, networks=Networks(threads=threads))
    from ..landmarks.dense_network import (OFFLINE_VIEWS, REALTIME_VIEWS, DenseLandmarks,
                                           model_path)
    from .dense_tracker import DenseFitTracker
    try:
        network = DenseLandmarks(model_path(landmark_model), threads, landmark_model)
    except LandmarkError as exc:
        raise TrackingError(f"landmark model {landmark_model!r}: {exc}") from None
    return DenseFitTracker(load_face_model(), footage.width, footage.height, network,
                           face_index=face_index,
                           networks=Networks(threads=threads, face_mesh=False),
                           views=OFFLINE_VIEWS if mode == "offline" else REALTIME_VIEWS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="densecap",
                                     description="Facial performance capture with dense landmarks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    track = commands.add_parser("track", help="track a face in a video, image sequence or still",
                                description="Track the face in VIDEO and write a Performance.")
    track.add_argument("video", metavar="VIDEO",
                       help="video file, image, directory of images, printf pattern "
                            "(frames/%%04d.png) or webcam index")
    track.add_argument("--mode", choices=MODES, default="realtime",
                       help="per-frame real-time fit, or all frames at once (default: realtime)")
    track.add_argument("--out", type=Path, metavar="PERF.npz",
                       help="Performance file to write (default: VIDEO's name + .npz in the "
                            "current folder)")
    track.add_argument("--blend", type=Path, metavar="OUT.blend",
                       help="also write the generated rig animated with the result (needs bpy)")
    track.add_argument("--preview", type=Path, metavar="PREVIEW.mp4",
                       help="also write a video with the fitted mesh and landmarks drawn over")
    track.add_argument("--start", type=int, default=0, metavar="N", help="first frame (default 0)")
    track.add_argument("--end", type=int, metavar="M", help="stop before frame M (default: end)")
    track.add_argument("--face", type=int, metavar="K",
                       help="track the K-th face from the left (default: the largest)")
    track.add_argument("--landmarks", choices=LANDMARK_MODELS, metavar="MODEL",
                       help=f"landmark network: {', '.join(LANDMARK_MODELS)} (default: "
                            f"{DEFAULT_LANDMARK_MODEL}; dense320 and dense703 are our own, "
                            f"copied from training/models/ by `make models`: "
                            f"training/README.md)")
    track.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def default_blend_writer() -> BlendWriter:
    """The Blender layer's .blend writer; TrackingError when bpy is not importable."""
    try:
        from ..densecap_addon.performance_scene import write_performance_blend
    except ImportError as exc:
        raise TrackingError(f"--blend needs Blender's Python module (bpy): {exc}; write the "
                            f".npz and load it in Blender instead") from None
    return write_performance_blend


def main(argv: Sequence[str] | None = None, tracker_factory: TrackerFactory = make_tracker,
         blend_writer: BlendWriter | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _track(args, tracker_factory, blend_writer)
    except USER_ERRORS as exc:   # errors a user can cause: one line, no traceback
        print(f"densecap: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _track(args: argparse.Namespace, tracker_factory: TrackerFactory,
           blend_writer: BlendWriter | None) -> int:
    if args.face is not None and args.face < 0:
        raise TrackingError(f"--face must be >= 0, got {args.face}")
    out = args.out or Path(f"{_stem(args.video)}.npz")
    for option, path in (("--out", out), ("--preview", args.preview), ("--blend", args.blend)):
        if path is not None and not path.resolve().parent.is_dir():
            raise TrackingError(f"{option} {path}: folder {path.resolve().parent} does not exist")
    if args.blend is not None and blend_writer is None:
        blend_writer = default_blend_writer()
    with open_footage(args.video, start=args.start, end=args.end) as footage:
        options = {} if args.landmarks is None else {"landmark_model": args.landmarks}
        tracker = tracker_factory(footage, args.mode, args.face, **options)
        preview = (PreviewWriter(args.preview, footage.fps, footage.width, footage.height)
                   if args.preview else None)
        bar = None if args.quiet else TerminalProgress()
        cancel = CancelToken()
        try:
            with _cancel_on_interrupt(cancel):
                run = track_footage(footage, tracker, mode=args.mode, progress=bar, cancel=cancel,
                                    preview=preview)
        finally:
            if preview is not None:
                preview.close()
            if bar is not None:
                bar.close()
    return _finish(run, args, out, blend_writer)


def _finish(run: TrackingRun, args: argparse.Namespace, out: Path,
            blend_writer: BlendWriter | None) -> int:
    performance = run.performance
    if performance is None:
        print("densecap: no frame was tracked", file=sys.stderr)
        return EXIT_INTERRUPTED if run.cancelled else EXIT_FAILED
    print(summary(run))
    if not performance.valid.any():
        print(f"densecap: error: no face found in {args.video}; nothing written", file=sys.stderr)
        return EXIT_FAILED
    performance.save(out)
    print(f"wrote {out}")
    if args.preview:
        print(f"wrote {args.preview}")
    if args.blend is not None:
        blend_writer(performance, args.blend)
        print(f"wrote {args.blend}")
    if run.error:
        print(f"densecap: stopped early, kept the frames before: {run.error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_INTERRUPTED if run.cancelled else EXIT_OK


def summary(run: TrackingRun) -> str:
    """Human-readable lines: frames, frames without a face, speed."""
    performance = run.performance
    first, last = performance.frame_indices[0], performance.frame_indices[-1]
    state = " (cancelled: kept the frames done)" if run.cancelled else ""
    lines = [f"tracked {run.frames_done} frames ({first}-{last}) of {performance.source} in "
             f"{run.seconds:.1f} s, {run.fps:.1f} fps, {performance.mode} mode{state}",
             f"frames without a face: {run.frames_without_face}"
             + (f" ({_ranges(performance.invalid_frames)})" if run.frames_without_face else "")]
    valid_error = performance.landmark_error[performance.valid]
    if valid_error.size:
        lines.append(f"mean landmark error (sigma-normalised): {np.mean(valid_error):.3f}")
    return "\n".join(lines)


def _ranges(indices: np.ndarray, limit: int = 8) -> str:
    """[3, 4, 5, 9] -> "3-5, 9" (at most `limit` ranges, then "...")."""
    runs = []
    for index in indices.tolist():
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    text = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:limit]]
    return ", ".join(text + (["..."] if len(runs) > limit else []))


def _stem(video: str) -> str:
    """A name for the default output: the file's stem, a sequence's folder, or webcamN."""
    if video.isdigit():
        return f"webcam{video}"
    path = Path(video)
    if "%" in path.name or path.is_dir():
        path = path.resolve().parent if "%" in path.name else path.resolve()
        return path.name or "performance"
    return path.stem or "performance"


class _cancel_on_interrupt:
    """While active (main thread only), the first Ctrl-C sets `cancel`; a second one aborts."""

    def __init__(self, cancel: CancelToken):
        self.cancel = cancel
        self.previous = None

    def _handler(self, signum, frame):
        if self.cancel.cancelled:
            raise KeyboardInterrupt
        print("\ndensecap: stopping after this frame (Ctrl-C again to abort)", file=sys.stderr)
        self.cancel.cancel()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
