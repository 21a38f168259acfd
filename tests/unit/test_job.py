"""TrackingJob: the pipeline in a worker thread, events drained from this thread."""

import time

import pytest

from densecap.landmarks.footage import open_footage
from densecap.tracking.job import JobFailed, JobFinished, TrackingJob
from densecap.tracking.progress import Progress

from tracker_for_tests import StripBrightnessTracker


def _drain(job, timeout=30.0):
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        events.extend(job.events())
        if events and isinstance(events[-1], (JobFinished, JobFailed)):
            return events
        time.sleep(0.01)
    raise AssertionError("the job did not finish")


@pytest.fixture(scope="module")
def clip(shared_dir):
    return shared_dir / "footage" / "talking_2.mp4"


def test_job_reports_progress_then_the_run(clip):
    job = TrackingJob(lambda: open_footage(clip, end=20), StripBrightnessTracker,
                      progress_interval=0.0).start()
    events = _drain(job)
    job.join()
    assert all(isinstance(e, Progress) for e in events[:-1]) and len(events) > 2
    assert events[-2].frames_done == 20 and events[-2].frames_total == 20
    assert events[-1].run.frames_done == 20 and events[-1].run.performance.complete


def test_cancel_from_this_thread_keeps_the_frames_done(clip):
    gate = []

    def tracker(footage):
        return StripBrightnessTracker(footage, on_frame=lambda index: gate.append(index)
                                      or time.sleep(0.01))

    job = TrackingJob(lambda: open_footage(clip), tracker).start()
    while len(gate) < 5:
        time.sleep(0.005)
    job.cancel()
    run = _drain(job)[-1].run
    assert run.cancelled and 5 <= run.frames_done < 125
    assert run.frames_done == len(gate) == run.performance.num_frames
    assert not run.performance.complete


def test_bad_input_arrives_as_a_user_error_event(tmp_path):
    job = TrackingJob(lambda: open_footage(tmp_path / "missing.mp4"), StripBrightnessTracker)
    failed = _drain(job.start())[-1]
    assert isinstance(failed, JobFailed) and failed.user_error
    assert "not found" in failed.message


def test_a_bug_in_the_tracker_arrives_as_a_failure_not_a_lost_thread(clip):
    def broken(footage):
        raise ZeroDivisionError("oops")

    failed = _drain(TrackingJob(lambda: open_footage(clip), broken).start())[-1]
    assert isinstance(failed, JobFailed) and not failed.user_error
    assert failed.message == "ZeroDivisionError: oops"
