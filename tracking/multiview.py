"""Several cameras filming one performance: each clip tracked in real time, then one offline
fit of all frames and cameras (solver.offline.fit_offline): one identity, one animation in
camera 0's frame, each other camera's pose and focal length estimated.

>>> run = track_multiview(["front.mp4", "left.mp4"], offsets=[0, -3])   # doctest: +SKIP
>>> run.cameras[1].rotation, run.performance.theta                       # doctest: +SKIP

Timeline: clip c's source frame i is timeline frame i + offsets[c]; the Performance covers
the timeline frames any clip has, a frame a clip lacks is masked for that camera.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..landmarks.errors import LandmarkError
from ..landmarks.footage import open_footage
from ..solver.errors import SolverError
from ..solver.offline import fit_offline, project_landmarks, OfflineCancelled
from .errors import TrackingError
from .performance import Camera, Performance, PerformanceBuilder
from .offline import OFFLINE_SETTINGS, OfflineInputs
from .pipeline import FrameResult, track_footage
from .progress import CancelToken, ProgressCallback


@dataclass(frozen=True)
class CameraPose:
    """One source's camera. rotation (3, 3), translation (3,) cm, OpenCV axes:
    x_cam = rotation @ x_ref + translation, the reference being camera 0 (identity, zeros)."""

    camera: Camera
    rotation: np.ndarray
    translation: np.ndarray
    source: str
    offset: int


@dataclass(frozen=True)
class MultiviewRun:
    """performance : one identity and animation in camera 0's frame, frame_indices on the
    timeline (None when nothing was tracked); cameras : one per source, same order;
    frames_done : frames tracked over all clips; cancelled; error : why a clip stopped early;
    seconds : wall-clock time."""

    performance: Performance | None
    cameras: tuple[CameraPose, ...]
    frames_done: int
    cancelled: bool
    error: str | None
    seconds: float


class RecordingTracker:
    """A FrameTracker that forwards to a LandmarkFitTracker and records every frame's
    landmarks and real-time fit (`inputs`, what the offline solve needs)."""

    def __init__(self, tracker):
        self.tracker = tracker
        self.inputs = OfflineInputs()
        self.expression_names = tracker.expression_names
        self.energy_names = tracker.energy_names
        self.preview_edges = tracker.preview_edges
        self.model, self.embedding = tracker.model, tracker.embedding

    @property
    def solver_camera(self):
        return self.tracker.solver_camera

    def track(self, frame_index: int, image: np.ndarray) -> FrameResult:
        result = self.tracker.track(frame_index, image)
        self.inputs.add(frame_index, result)
        return result

    @property
    def identity(self) -> np.ndarray:
        return self.tracker.identity

    @property
    def camera(self) -> Camera:
        return self.tracker.camera


def track_multiview(sources: Sequence[str], offsets: Sequence[int] | None = None, *,
                    face_index: int | None = None, progress: ProgressCallback | None = None,
                    cancel: CancelToken | None = None) -> MultiviewRun:
    """Track every source, then fit them together (module docstring).

    Raises TrackingError for no source, mismatched offsets, an unreadable clip, clips that do
    not overlap on the timeline, or a camera that never sees the face."""
    from ..solver.face_model import load_face_model
    from .landmark_tracker import LandmarkFitTracker, Networks
    sources = [str(s) for s in sources]
    if not sources:
        raise TrackingError("track_multiview needs at least one source")
    offsets = [0] * len(sources) if offsets is None else [int(o) for o in offsets]
    if len(offsets) != len(sources):
        raise TrackingError(f"{len(offsets)} offsets for {len(sources)} sources")
    started = time.monotonic()
    with ExitStack() as stack:
        footages = []
        for c, source in enumerate(sources):
            try:
                footages.append(stack.enter_context(open_footage(source)))
            except (LandmarkError, OSError) as exc:
                raise TrackingError(f"camera {c}: {exc}") from exc
        counts = [f.num_frames for f in footages]
        if all(counts):
            _check_overlap([(o, o + n - 1) for o, n in zip(offsets, counts)])
        model = load_face_model()
        networks = Networks()
        recorders = []
        done, cancelled, error = 0, False, None
        for c, footage in enumerate(footages):
            recorder = RecordingTracker(LandmarkFitTracker(model, footage.width, footage.height,
                                                    face_index=face_index, networks=networks))

            def report(frames_done, total, fps, base=done):
                if progress is not None:
                    progress(base + frames_done, None, fps)

            run = track_footage(footage, recorder, progress=report, cancel=cancel)
            done += run.frames_done
            recorders.append(recorder)
            if run.cancelled or run.error:
                cancelled, error = run.cancelled, run.error
                break
            if not any(r.found for r in recorder.inputs.results):
                raise TrackingError(f"camera {c} ({sources[c]}) never sees the face: its pose "
                                    "is unknown")
        fps = footages[0].fps
    poses = tuple(_pose(r.tracker.solver_camera, None, s, o)
                  for r, s, o in zip(recorders, sources, offsets))
    if cancelled or error or len(recorders) < len(sources):
        return MultiviewRun(None, poses, done, cancelled, error, time.monotonic() - started)
    timeline, mu, sigma = _timeline(recorders, offsets, len(recorders[0].tracker.embedding))
    embedding = recorders[0].tracker.embedding
    cameras = [r.tracker.solver_camera for r in recorders]
    try:
        fit = fit_offline(model, embedding, cameras, mu, sigma, OFFLINE_SETTINGS,
                          cancel=None if cancel is None else (lambda: cancel.cancelled))
    except OfflineCancelled:
        return MultiviewRun(None, poses, done, True, None, time.monotonic() - started)
    except SolverError as exc:
        raise TrackingError(f"the cameras could not be fitted together: {exc}") from exc
    unseen = [c for c, seen in enumerate(fit.camera_seen) if not seen]
    if unseen:
        raise TrackingError(f"camera(s) {unseen} never see the face: their pose is unknown")
    reference = fit.cameras[0]
    poses = tuple(_pose(cam, reference, s, o) for cam, s, o in zip(fit.cameras, sources, offsets))
    performance = _performance(recorders[0].tracker, fit, timeline, mu, sigma, fps, sources[0],
                               model, embedding)
    return MultiviewRun(performance, poses, done, False, None, time.monotonic() - started)


def _timeline(recorders, offsets, count):
    """Timeline frames (T,) and the landmarks mu (T, C, L, 2), sigma (T, C, L) on it."""
    ranges = []
    for recorder, offset in zip(recorders, offsets):
        frames = np.asarray(recorder.inputs.frame_indices) + offset
        if len(frames) == 0:
            raise TrackingError("a clip has no frames")
        ranges.append((frames.min(), frames.max()))
    _check_overlap(ranges)
    first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
    timeline = np.arange(first, last + 1)
    mu = np.full((len(timeline), len(recorders), count, 2), np.nan)
    sigma = np.zeros((len(timeline), len(recorders), count))
    for c, (recorder, offset) in enumerate(zip(recorders, offsets)):
        inputs = recorder.inputs
        for index, m, s, result in zip(inputs.frame_indices, inputs.mu, inputs.sigma,
                                       inputs.results):
            if m is not None and result.found:
                mu[index + offset - first, c], sigma[index + offset - first, c] = m, s
    return timeline, mu, sigma


def _check_overlap(ranges) -> None:
    """ranges: (first, last) timeline frame of each clip."""
    if max(r[0] for r in ranges) > min(r[1] for r in ranges):
        raise TrackingError("the clips do not overlap on the timeline (check the offsets)")


def _pose(camera, reference, source: str, offset: int) -> CameraPose:
    """CameraPose of a solver camera relative to the reference solver camera (None: itself)."""
    intrinsics = Camera.intrinsics_of(camera)
    if reference is None:
        return CameraPose(intrinsics, np.eye(3), np.zeros(3), source, offset)
    rotation = camera.rotation @ reference.rotation.T
    translation = camera.translation - rotation @ reference.translation
    return CameraPose(intrinsics, rotation, translation, source, offset)


def _performance(tracker, fit, timeline, mu, sigma, fps, source, model, embedding) -> Performance:
    """The fitted animation on the timeline; landmark error in camera 0."""
    camera = fit.cameras[0]
    pixels = project_landmarks(model, embedding, fit.beta, camera, fit.psi, fit.theta)
    builder = PerformanceBuilder(tracker.expression_names, tracker.energy_names)
    for t, frame in enumerate(timeline):
        if not fit.valid[t]:
            builder.add(int(frame))
            continue
        usable = np.isfinite(mu[t, 0]).all(1) & (sigma[t, 0] > 0)
        error = (float((np.linalg.norm(pixels[t] - mu[t, 0], axis=1)[usable]
                        / sigma[t, 0][usable]).mean()) if usable.any() else float("nan"))
        builder.add(int(frame), fit.psi[t], fit.theta[t], error, fit.energies[t])
    return builder.build(fit.beta, Camera.intrinsics_of(camera), fps, source, "offline",
                         complete=True)
