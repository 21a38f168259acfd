"""LiveCapture: the newest frame tracked in worker threads, slow trackers drop frames, errors
surface, stop releases; BackgroundJob runs any work (no bpy)."""

import time

import numpy as np

from densecap.landmarks.footage import open_footage
from densecap.tracking.errors import TrackingError
from densecap.tracking.job import BackgroundJob, JobFailed, JobFinished
from densecap.tracking.live import LiveCapture, subtract_neutral

from tracker_for_tests import StripBrightnessTracker


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_fast_tracker_sees_every_frame_unpaced(shared_dir):
    made = []

    def make(footage):
        made.append(StripBrightnessTracker(footage))
        return made[0]

    capture = LiveCapture(open_footage(shared_dir / "footage" / "talking_2.mp4", end=10), make,
                          paced=False).start()
    _wait(lambda: not capture.running)
    assert capture.error is None and capture.tracker is made[0]
    latest = capture.latest()
    assert latest.result.found and latest.frame_index == made[0].frames_seen[-1]
    assert made[0].frames_seen == list(range(10))      # unpaced: every frame, in order
    drained = capture.drain()
    assert [frame.frame_index for frame in drained] == list(range(10))
    assert drained[-1] is latest and [f.image is None for f in drained] == [True] * 9 + [False]
    assert capture.drain() == []


def test_a_slow_tracker_drops_frames_of_a_paced_source(shared_dir):
    def slow(footage):
        return StripBrightnessTracker(footage, on_frame=lambda index: time.sleep(0.2))

    footage = open_footage(shared_dir / "footage" / "talking_2.mp4", end=25)   # 1 s at 25 fps
    capture = LiveCapture(footage, slow).start()
    _wait(lambda: not capture.running)
    seen = capture.tracker.frames_seen
    assert 2 <= len(seen) < 25 and seen == sorted(seen)
    assert np.diff(seen).max() > 1                       # frames were skipped, not queued


def test_tracker_errors_surface_and_stop_releases(shared_dir):
    def broken(footage):
        raise TrackingError("no model")

    capture = LiveCapture(open_footage(shared_dir / "footage" / "talking_2.mp4"), broken).start()
    _wait(lambda: not capture.running)
    assert capture.error == "no model" and capture.latest() is None
    capture.stop()
    running = LiveCapture(open_footage(shared_dir / "footage" / "talking_2.mp4"),
                          StripBrightnessTracker).start()
    _wait(lambda: running.latest() is not None)
    running.stop()
    assert not running.running


def test_subtract_neutral():
    np.testing.assert_allclose(subtract_neutral([0.5, 0.1, 1.0], np.array([0.2, 0.3, 0.0])),
                               [0.3, 0.0, 1.0])
    np.testing.assert_allclose(subtract_neutral([0.5], None), [0.5])


def test_background_job_runs_any_work():
    def work(progress, cancel):
        progress(1, 2, 5.0)
        return "result"

    job = BackgroundJob(work).start()
    job.join(10)
    events = list(job.events())
    assert events[-1] == JobFinished("result") and events[0].frames_done == 1

    def failing(progress, cancel):
        raise TrackingError("bad input")

    job = BackgroundJob(failing).start()
    job.join(10)
    failed = list(job.events())[-1]
    assert isinstance(failed, JobFailed) and failed.user_error and failed.message == "bad input"
