"""Offline mode end to end on real footage (`track_footage(mode="offline")`, what
`densecap track --mode offline` runs) against the real-time fits of the same landmarks."""

from types import SimpleNamespace

import numpy as np
import pytest

from densecap.solver import load_face_model
from densecap.solver.camera import Camera
from densecap.solver.offline import project_landmarks
from densecap.landmarks.footage import open_footage
from densecap.tracking import cli
from densecap.tracking.multiview import RecordingTracker
from densecap.tracking.pipeline import track_footage
from densecap.tracking.progress import CancelToken
from densecap.tracking.performance import load_performance

FRAMES = 14


@pytest.fixture(scope="module")
def tracked(shared_dir):
    """One pass over the clip in offline mode; the real-time results of the same landmarks
    are recorded on the way (the real-time mode's output)."""
    with open_footage(shared_dir / "footage" / "talking_2.mp4", end=FRAMES) as footage:
        recorder = RecordingTracker(cli.make_tracker(footage, "offline", None))
        run = track_footage(footage, recorder, mode="offline")
    realtime = recorder.inputs.results
    return {"offline": run.performance, "realtime": SimpleNamespace(
        psi=np.array([r.psi for r in realtime]), theta=np.array([r.theta for r in realtime]),
        landmark_error=np.array([r.landmark_error for r in realtime]),
        beta=recorder.identity, camera=recorder.camera, mode="realtime")}


def jitter_px(performance) -> float:
    """Mean |x_{t+1} - 2 x_t + x_{t-1}| of the fitted landmarks' projections, pixels."""
    model = load_face_model()
    cam = performance.camera
    camera = Camera.monocular(cam.focal_length, cam.width, cam.height)
    pixels = project_landmarks(model, model.landmark_embedding("mediapipe478"), performance.beta,
                               camera, performance.psi, performance.theta)
    return float(np.linalg.norm(pixels[2:] - 2 * pixels[1:-1] + pixels[:-2], axis=-1).mean())


def test_offline_mode_is_valid_fits_as_well_and_jitters_less(tracked):
    realtime, offline = tracked["realtime"], tracked["offline"]
    assert offline.mode == "offline" and realtime.mode == "realtime"
    assert offline.num_frames == FRAMES and offline.valid.all()
    assert np.isfinite(offline.psi).all() and np.isfinite(offline.theta).all()
    assert np.isfinite(offline.energies).all()
    assert (offline.psi >= 0).all() and (offline.psi <= 1).all()
    rt_error, off_error = np.nanmean(realtime.landmark_error), np.nanmean(offline.landmark_error)
    rt_jitter, off_jitter = jitter_px(realtime), jitter_px(offline)
    print(f"landmark error realtime {rt_error:.4f} offline {off_error:.4f}; "
          f"jitter realtime {rt_jitter:.4f} px offline {off_jitter:.4f} px")
    assert off_error <= rt_error
    assert off_jitter < rt_jitter


def test_cancel_during_the_offline_solve_returns_the_realtime_frames(shared_dir):
    token = CancelToken()
    reports = []

    def progress(done, total, fps):   # the report after the frame loop: cancel the solve
        reports.append(done)
        if done == total:
            token.cancel()

    with open_footage(shared_dir / "footage" / "talking_2.mp4", end=4) as footage:
        tracker = cli.make_tracker(footage, "offline", None)
        run = track_footage(footage, tracker, mode="offline", progress=progress, cancel=token,
                            progress_interval=1e9)   # no report during the frame loop
    assert run.cancelled and run.frames_done == 4 and reports[-1] == 4
    assert run.performance.mode == "realtime" and run.performance.complete
    assert run.performance.num_frames == 4 and run.performance.valid.all()
