"""Offline mode of the pipeline: what the real-time pass leaves for the offline solve
(`OfflineInputs`) and the solve of all frames at once (`refine_offline`, solver.offline).
Imported only when the offline mode runs (the solver loads numba)."""

from __future__ import annotations

import numpy as np

from ..landmarks.footage import Footage
from ..solver.conventions import THETA_SIZE
from ..solver.energies import FitSettings
from ..solver.offline import (OfflineCancelled, OfflineSettings, OfflineStart, fit_offline,
                              project_landmarks)
from .errors import TrackingError
from .performance import Camera, Performance, PerformanceBuilder
from .pipeline import FrameResult, FrameTracker
from .progress import CancelToken

__all__ = ["OFFLINE_SETTINGS", "OfflineCancelled", "OfflineInputs", "refine_offline",
           "require_offline_support"]

#: E_temporal weight on real footage. On talking_1.mp4 frames 0-59 (median sigma 2.05 px)
#: the mean sigma-normalised landmark error / mean frame-to-frame root translation change
#: were: real-time 0.364 / 0.258 cm; offline with weight 0: 0.341 / 0.215, 0.002: 0.342 /
#: 0.197, 0.005: 0.348 / 0.183, 0.01: 0.365 / 0.175, 0.05: 0.513 / 0.152 (over-smoothed).
OFFLINE_SETTINGS = OfflineSettings(fit=FitSettings(temporal=0.005))

class OfflineInputs:
    """What the per-frame pass leaves for the offline solve: per frame its index, the
    landmarks mu (L, 2) and sigma (L,) (NaN / 0 when none), and the real-time fit."""

    def __init__(self):
        self.frame_indices: list[int] = []
        self.mu: list[np.ndarray | None] = []
        self.sigma: list[np.ndarray | None] = []
        self.results: list[FrameResult] = []

    def add(self, frame_index: int, result: FrameResult) -> None:
        self.frame_indices.append(frame_index)
        self.mu.append(None if result.mu is None else result.mu.astype(np.float32))
        self.sigma.append(None if result.sigma is None else result.sigma.astype(np.float32))
        self.results.append(FrameResult(psi=result.psi, theta=result.theta,
                                        landmark_error=result.landmark_error,
                                        energies=result.energies))


def require_offline_support(tracker: FrameTracker) -> None:
    """Offline mode needs the tracker's model, landmark embedding and solver camera."""
    missing = [name for name in ("model", "embedding", "solver_camera")
               if not hasattr(tracker, name)]
    if missing:
        raise TrackingError(f"this tracker cannot run the offline mode (it has no "
                            f"{', '.join(missing)})")


def refine_offline(tracker: FrameTracker, inputs: OfflineInputs, footage: Footage,
                   cancel: CancelToken | None = None,
                   settings: OfflineSettings | None = None) -> Performance:
    """All frames at once (solver.offline.fit_offline) from the real-time pass: one identity,
    E_temporal, the focal length refitted. Frames without a face stay flagged invalid.
    settings default to `OFFLINE_SETTINGS`. Raises OfflineCancelled when `cancel` is set
    during the solve."""
    settings = settings or OFFLINE_SETTINGS
    model, embedding = tracker.model, tracker.embedding
    count = len(embedding)
    frames = len(inputs.frame_indices)
    mu = np.full((frames, 1, count, 2), np.nan)
    sigma = np.zeros((frames, 1, count))
    psi = np.zeros((frames, model.num_expressions))
    theta = np.zeros((frames, THETA_SIZE))
    found = np.array([r.found for r in inputs.results])
    if not found.any():
        raise TrackingError("no frame has a face: nothing to refine offline")
    first = int(np.argmax(found))
    for t, (m, s, result) in enumerate(zip(inputs.mu, inputs.sigma, inputs.results)):
        if m is not None and result.found:
            mu[t, 0], sigma[t, 0] = m, s
        source = inputs.results[t if result.found else max(first, _last_found(found, t))]
        psi[t], theta[t] = source.psi, source.theta
    camera = tracker.solver_camera
    start = OfflineStart(beta=np.asarray(tracker.identity, dtype=np.float64), psi=psi,
                         theta=theta, cameras=(camera,))
    fit = fit_offline(model, embedding, [camera], mu, sigma, settings, start=start,
                      cancel=None if cancel is None else (lambda: cancel.cancelled))
    pixels = project_landmarks(model, embedding, fit.beta, fit.cameras[0], fit.psi, fit.theta)
    builder = PerformanceBuilder(tracker.expression_names, tracker.energy_names)
    for t, frame_index in enumerate(inputs.frame_indices):
        if not found[t]:
            builder.add(frame_index)
            continue
        usable = np.isfinite(mu[t, 0]).all(1) & (sigma[t, 0] > 0)
        error = np.linalg.norm(pixels[t] - mu[t, 0], axis=1)[usable] / sigma[t, 0][usable]
        builder.add(frame_index, fit.psi[t], fit.theta[t], float(error.mean()), fit.energies[t])
    return builder.build(fit.beta, Camera.intrinsics_of(fit.cameras[0]), footage.fps,
                         footage.source, "offline", complete=True)


def _last_found(found: np.ndarray, t: int) -> int:
    """The last frame before t with a face (-1 when none)."""
    before = np.nonzero(found[:t])[0]
    return int(before[-1]) if len(before) else -1
