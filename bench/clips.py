"""Temporal stability on real clips: jitter of the raw landmarks, the real-time fit, the
offline fit and the peer (MediaPipe's face mesh), and the frames each loses.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.clips \\
        [--clips DIR ...] [--clip VIDEO ...] [--frames 150] [--peer-dir bench/results/peer] \\
        [--samples-dir bench/results/samples] [--out bench/results/clips.json]

Without --clip/--clips it runs on the videos of ../shared/footage. Each clip's first
--frames frames (0: all) go through the tracker `densecap track` uses (tracking.cli
make_tracker + tracking.pipeline.track_footage), once in real-time and once in offline mode
(recorded as unavailable while the build has no offline mode). Jitter (bench.metrics.jitter):
mean frame-to-frame acceleration of landmarks over the clip's median inter-ocular distance
of our raw landmarks (iBUG points 36/45 through the landmarks -> 68 mapping of
bench.landmarks_devset), so all methods share one normaliser: raw, the default front end's
own landmarks (dense320: 320 over the whole head, the neck's among them); the fits, the
model's `FIT_POINTS` (MediaPipe's 478 points on the ICT surface) of the tracked Performance,
projected, whichever front end tracked; the peer, its 478 face-mesh points. So the fits and
the peer compare on one point set; the raw landmarks only within a front end. A few frames per
clip are saved with the fitted mesh and landmarks drawn (--samples-dir) for the report.
"""

from __future__ import annotations

from .machine import single_thread_env

single_thread_env()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .machine import peak_rss_mb, write_json  # noqa: E402
from .metrics import OUTER_EYE_CORNERS, jitter  # noqa: E402
from .peer_mediapipe import load_peer, peer_key  # noqa: E402

DEFAULT_CLIPS_DIR = Path(__file__).resolve().parents[2] / "shared" / "footage"
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
SAMPLES_PER_CLIP = 3


def find_clips(paths: list[Path]) -> list[Path]:
    """The video files among `paths`: files as given, folders' videos (sorted by name)."""
    clips = []
    for path in paths:
        if path.is_dir():
            clips += sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.is_file():
            clips.append(path)
        else:
            raise SystemExit(f"error: no such clip or folder: {path}")
    return clips


class RecordingTracker:
    """A `FrameTracker` that forwards to `tracker` and keeps, per frame, the raw landmarks
    mu (L, 2) (None where the network found no face) and the seconds `track` took; frames in
    `samples` {frame index: png path} are written with the fit drawn over them."""

    def __init__(self, tracker, samples: dict[int, Path]):
        self.tracker = tracker
        self.expression_names = tracker.expression_names
        self.energy_names = tracker.energy_names
        self.preview_edges = tracker.preview_edges
        self.samples = samples
        self.mu: list[np.ndarray | None] = []
        self.seconds: list[float] = []

    @property
    def identity(self):
        return self.tracker.identity

    @property
    def camera(self):
        return self.tracker.camera

    def track(self, frame_index: int, image: np.ndarray):
        from densecap.tracking.pipeline import draw_preview
        start = time.perf_counter()
        result = self.tracker.track(frame_index, image)
        self.seconds.append(time.perf_counter() - start)
        self.mu.append(None if result.mu is None else np.array(result.mu, np.float64))
        if frame_index in self.samples:
            status = f"frame {frame_index}" + ("" if result.found else "  no face")
            cv2.imwrite(str(self.samples[frame_index]),
                        draw_preview(image, result, self.preview_edges, status))
        return result


#: The fits' jitter is measured on these model points (the peer's point set on the ICT face).
FIT_POINTS = "mediapipe478"


def projected_landmarks(model, embedding, performance) -> np.ndarray:
    """(F, L, 2) the embedding's points on the Performance's face (its one identity, each
    frame's psi and theta), projected with its camera."""
    from densecap.solver.camera import Camera
    from densecap.solver.problem import landmark_points
    cam = performance.camera
    camera = Camera(cam.focal_length, cam.width, cam.height, np.array(cam.principal_point))
    return np.stack([camera.project(landmark_points(model, embedding, performance.beta, psi,
                                                    theta))
                     for psi, theta in zip(performance.psi.astype(np.float64),
                                           performance.theta)])


def stability(points: np.ndarray, valid: np.ndarray, scale: float) -> dict:
    """Jitter and frames lost of one method on one clip."""
    value = jitter(points, valid, scale)
    return {"available": True, "jitter": None if not np.isfinite(value) else round(value, 6),
            "frames_lost": int((~valid).sum()), "frames": int(len(valid))}


def run_mode(clip: Path, frames: int | None, mode: str, samples: dict[int, Path]):
    """(TrackingRun, ms per frame (F,)) of one pass, or a string saying why the mode is not
    available (a tracking.errors.TrackingError from make_tracker or track_footage).

    The real-time pass is recorded per frame (`RecordingTracker`); the offline pass gets the
    tracker itself (it needs the tracker's model, embedding and camera) and its ms per frame
    is the whole run (per-frame pass + solve) over the frames."""
    from densecap.landmarks.footage import open_footage
    from densecap.tracking.cli import make_tracker
    from densecap.tracking.errors import TrackingError
    from densecap.tracking.pipeline import track_footage
    with open_footage(str(clip), end=frames) as footage:
        try:
            tracker = make_tracker(footage, mode, None)
            recorder = RecordingTracker(tracker, samples) if mode == "realtime" else None
            run = track_footage(footage, recorder or tracker, mode=mode)
        except TrackingError as exc:
            return str(exc)
    if recorder is not None:
        return run, recorder, 1e3 * np.array(recorder.seconds)
    return run, None, np.full(run.frames_done, 1e3 * run.seconds / max(run.frames_done, 1))


def fit_entry(model, embedding, outcome, mode: str, scale: float) -> dict:
    """Stability of a fit pass (or why it is unavailable)."""
    if isinstance(outcome, str):
        return {"available": False, "reason": outcome}
    run, _, ms = outcome
    if run.performance is None or run.performance.mode != mode:
        return {"available": False, "reason": f"the tracker produced no {mode} performance"}
    performance = run.performance
    entry = stability(projected_landmarks(model, embedding, performance), performance.valid,
                      scale)
    entry.update(seconds=round(run.seconds, 2), ms_per_frame_median=round(float(np.median(ms)), 2))
    return entry


def evaluate_clip(model, clip: Path, frames: int | None, peer_dir: Path | None,
                  samples_dir: Path | None) -> dict:
    """Jitter and frames lost of raw / real-time / offline / peer on one clip."""
    from densecap.tracking.cli import DEFAULT_LANDMARK_MODEL
    from .landmarks_devset import ibug_from_network
    raw_count = len(model.landmark_embedding(DEFAULT_LANDMARK_MODEL))   # make_tracker's default
    fit_points = model.landmark_embedding(FIT_POINTS)
    to_ibug = ibug_from_network(model, DEFAULT_LANDMARK_MODEL)
    samples = {}
    if samples_dir is not None:
        samples_dir.mkdir(parents=True, exist_ok=True)
        cap = cv2.VideoCapture(str(clip))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        last = max(min(count, frames or count) - 1, 0)
        samples = {int(i): samples_dir / f"{peer_key(clip)}_{int(i):05d}.png"
                   for i in np.linspace(0, last, SAMPLES_PER_CLIP).round()}
    realtime = run_mode(clip, frames, "realtime", samples)
    if isinstance(realtime, str):
        raise SystemExit(f"error: real-time tracking unavailable: {realtime}")
    recorder = realtime[1]
    raw_valid = np.array([m is not None and np.isfinite(m).all() for m in recorder.mu])
    raw = np.stack([m if ok else np.full((raw_count, 2), np.nan)
                    for m, ok in zip(recorder.mu, raw_valid)])
    eyes = raw[:, to_ibug[list(OUTER_EYE_CORNERS)]]                          # (F, 2, 2)
    iod = np.linalg.norm(eyes[:, 0] - eyes[:, 1], axis=1)
    scale = float(np.median(iod[raw_valid])) if raw_valid.any() else float("nan")
    entry = {"clip": str(clip), "frames": len(raw), "inter_ocular_px": round(scale, 2),
             "raw": stability(raw, raw_valid, scale),
             "realtime": fit_entry(model, fit_points, realtime, "realtime", scale),
             "offline": fit_entry(model, fit_points, run_mode(clip, frames, "offline", {}),
                                  "offline", scale),
             "samples": [str(p) for p in samples.values()]}
    peer = load_peer(peer_dir, clip)
    if peer is None:
        entry["peer"] = {"available": False, "reason": "the peer did not run on this clip "
                         "(make peer; python -m bench runs it)"}
    else:
        points = peer["points"][:len(raw)]
        entry["peer"] = stability(points, np.isfinite(points).all(axis=(1, 2)), scale)
        entry["peer"]["ms_per_frame_median"] = round(float(np.median(peer["ms"][1:])), 2)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, action="append", default=[],
                        help="a folder of videos (repeatable)")
    parser.add_argument("--clip", type=Path, action="append", default=[],
                        help="one video (repeatable)")
    parser.add_argument("--frames", type=int, default=150, help="first N frames (0: all)")
    parser.add_argument("--peer-dir", type=Path, help="bench.peer_mediapipe's --out-dir")
    parser.add_argument("--samples-dir", type=Path, help="write sample frames (PNG) here")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    from densecap.solver import load_face_model
    clips = find_clips(args.clip + args.clips or [DEFAULT_CLIPS_DIR])
    if not clips:
        print("error: no video found", file=sys.stderr)
        return 2
    model = load_face_model()
    report = {"frames_per_clip": args.frames or "all", "threads": 1,
              "clips": [evaluate_clip(model, clip, args.frames or None, args.peer_dir,
                                      args.samples_dir) for clip in clips]}
    report["peak_rss_mb"] = peak_rss_mb()
    print(write_json(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
