"""Clip -> Performance: the loop over streamed footage that calls a per-frame tracker.

The per-frame work (find the face, run the landmark network, fit the model) lives behind the
`FrameTracker` protocol; this module owns everything around it: streaming the frames (one in
memory at a time), collecting results (`PerformanceBuilder`), progress, cancellation that
keeps the finished frames, a footage read error that keeps them too, and the preview video.

>>> run = track_footage(footage, tracker, progress=TerminalProgress())   # doctest: +SKIP
>>> run.performance.save("perf.npz")                                     # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from ..landmarks.errors import LandmarkError
from ..landmarks.footage import Footage
from .performance import Camera, Performance, PerformanceBuilder
from .preview import (PreviewWriter, draw_landmarks, draw_status, draw_wireframe,
                      face_sigma_range)
from .progress import CancelToken, ProgressCallback


@dataclass(frozen=True)
class FrameResult:
    """What a tracker found in one frame (all positions in image pixels).

    psi : (E,) expression weights in [0, 1], or None when no face was found
    theta : (18,) pose, or None when no face was found
    landmark_error : mean sigma-normalised landmark residual of the fit
    energies : (T,) final energy per term, in the tracker's `energy_names` order
    mu : (L, 2) landmarks, optional (drawn in the preview)
    sigma : (L,) landmark standard deviations, optional (drawn in the preview)
    vertices_2d : (V, 2) projected mesh vertices, optional (drawn with `preview_edges`)
    project_vertices : instead of `vertices_2d`, a function that computes them, optional:
        a tracker defers posing the preview mesh to when a preview is drawn (`mesh_2d`)
    """

    psi: np.ndarray | None = None
    theta: np.ndarray | None = None
    landmark_error: float = float("nan")
    energies: np.ndarray | None = None
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    vertices_2d: np.ndarray | None = None
    project_vertices: Callable[[], np.ndarray] | None = field(default=None, repr=False,
                                                              compare=False)

    @property
    def found(self) -> bool:
        return self.psi is not None

    def mesh_2d(self) -> np.ndarray | None:
        """(V, 2) projected mesh vertices: `vertices_2d`, else `project_vertices()`, else
        None."""
        if self.vertices_2d is not None or self.project_vertices is None:
            return self.vertices_2d
        return self.project_vertices()


class FrameTracker(Protocol):
    """Per-frame face tracking: landmarks + fit, with state carried from frame to frame.

    A tracker is made for one footage (it knows the image size) and is called once per frame,
    in order. It must not keep a reference to `image` after `track` returns.
    """

    #: (E,) names of the psi entries, (T,) names of the energy terms.
    expression_names: Sequence[str]
    energy_names: Sequence[str]
    #: (D, 2) int vertex index pairs into `FrameResult.mesh_2d()`, for the preview wireframe.
    preview_edges: np.ndarray

    def track(self, frame_index: int, image: np.ndarray) -> FrameResult:
        """Track `image` (H, W, 3) uint8 BGR, source frame `frame_index`."""

    @property
    def identity(self) -> np.ndarray:
        """(B,) current identity estimate beta."""

    @property
    def camera(self) -> Camera:
        """Current camera estimate."""


@dataclass(frozen=True)
class TrackingRun:
    """The outcome of `track_footage`.

    performance : the frames done (None when none was); ``performance.complete`` is False
        when the run stopped early
    frames_done : frames tracked
    frames_without_face : frames where the tracker found no face
    cancelled : the cancel token stopped the run
    error : why the footage stopped early (a frame could not be read), else None
    seconds : wall-clock time of the loop; fps : frames_done / seconds
    """

    performance: Performance | None
    frames_done: int
    frames_without_face: int
    cancelled: bool
    error: str | None
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames_done / self.seconds if self.seconds > 0 else 0.0


def track_footage(footage: Footage, tracker: FrameTracker, *, mode: str = "realtime",
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                  preview: PreviewWriter | None = None,
                  progress_interval: float = 0.1) -> TrackingRun:
    """Run `tracker` over every frame of `footage` and collect a Performance.

    Parameters
    ----------
    footage : an open `Footage` (the caller closes it)
    tracker : the per-frame `FrameTracker`
    mode : "realtime", or "offline": the real-time pass, then all frames refined at once
        (`refine_offline`; the tracker must expose model, embedding, solver_camera). A run
        stopped during the per-frame pass keeps the real-time frames done (complete False);
        one cancelled during the offline solve returns the real-time result of all frames
    progress : called as ``progress(frames_done, frames_total, fps)`` at most every
        `progress_interval` seconds, and once at the end
    cancel : checked before each frame; when set, the run stops and keeps the frames done
    preview : when given, each frame is drawn (wireframe, landmarks, status) and written
    """
    if mode == "offline":   # imported here: the offline solver loads numba
        from .offline import (OfflineCancelled, OfflineInputs, refine_offline,
                              require_offline_support)
        require_offline_support(tracker)
    builder = PerformanceBuilder(tracker.expression_names, tracker.energy_names)
    collected = OfflineInputs() if mode == "offline" else None
    total = footage.num_frames
    without_face = 0
    cancelled, error = False, None
    started = last_report = time.monotonic()
    frames = iter(footage)
    while True:
        if cancel is not None and cancel.cancelled:
            cancelled = True
            break
        try:
            frame_index, image = next(frames)
        except StopIteration:
            break
        except LandmarkError as exc:
            error = str(exc)
            break
        result = tracker.track(frame_index, image)
        if collected is not None:
            collected.add(frame_index, result)
        if result.found:
            builder.add(frame_index, result.psi, result.theta, result.landmark_error,
                        result.energies)
        else:
            builder.add(frame_index)
            without_face += 1
        if preview is not None:
            status = (f"frame {frame_index}  landmark error {result.landmark_error:.2f}"
                      if result.found else f"frame {frame_index}  no face")
            preview.write(draw_preview(image, result, tracker.preview_edges, status))
        del image
        now = time.monotonic()
        if progress is not None and now - last_report >= progress_interval:
            progress(len(builder), total, len(builder) / max(now - started, 1e-9))
            last_report = now
    if progress is not None:
        progress(len(builder), total,
                 len(builder) / max(time.monotonic() - started, 1e-9))
    performance = None
    if len(builder):
        complete = not (cancelled or error)
        performance = builder.build(tracker.identity, tracker.camera, footage.fps, footage.source,
                                    "realtime" if mode == "offline" else mode, complete=complete)
        if collected is not None and complete:
            try:
                performance = refine_offline(tracker, collected, footage, cancel)
            except OfflineCancelled:
                cancelled = True
            if progress is not None:   # the offline solve is done
                progress(len(builder), total,
                         len(builder) / max(time.monotonic() - started, 1e-9))
    seconds = time.monotonic() - started
    return TrackingRun(performance, len(builder), without_face, cancelled, error, seconds)


def draw_preview(image: np.ndarray, result: FrameResult, edges: np.ndarray | None,
                 status: str) -> np.ndarray:
    """A copy of `image` with the result's wireframe, landmarks and `status` drawn on it."""
    canvas = image.copy()
    vertices = result.mesh_2d() if edges is not None else None
    if vertices is not None:
        draw_wireframe(canvas, vertices, edges)
    if result.mu is not None:
        draw_landmarks(canvas, result.mu, result.sigma, face_sigma_range(result.mu))
    draw_status(canvas, status)
    return canvas
