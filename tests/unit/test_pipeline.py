"""The clip -> Performance loop on real decoded footage, with a test-only per-frame tracker."""

import tracemalloc

import cv2
import numpy as np
import pytest

from densecap.landmarks.footage import open_footage
from densecap.tracking.performance import load_performance
from densecap.tracking.pipeline import FrameResult, draw_preview, track_footage
from densecap.tracking.preview import PreviewWriter
from densecap.tracking.progress import CancelToken

from tracker_for_tests import StripBrightnessTracker


@pytest.fixture(scope="module")
def talking_2(shared_dir):
    return shared_dir / "footage" / "talking_2.mp4"


def test_tracks_every_frame_with_preview_and_progress(tmp_path, talking_2):
    reports = []
    with open_footage(talking_2, start=5, end=25) as footage:
        tracker = StripBrightnessTracker(footage, no_face_frames={7, 8, 20})
        with PreviewWriter(tmp_path / "preview.mp4", footage.fps, footage.width,
                           footage.height) as preview:
            run = track_footage(footage, tracker, preview=preview, progress_interval=0.0,
                                progress=lambda *report: reports.append(report))
    performance = run.performance
    assert run.frames_done == 20 and run.frames_without_face == 3
    assert not run.cancelled and run.error is None and performance.complete
    assert np.array_equal(performance.frame_indices, np.arange(5, 25))
    assert np.array_equal(performance.invalid_frames, [7, 8, 20])
    assert np.array_equal(performance.psi[2], performance.psi[1])   # frame 7 holds frame 6
    assert performance.fps == 25.0 and performance.source == str(talking_2)
    assert (performance.camera.width, performance.camera.height) == (590, 590)
    assert reports[-1][:2] == (20, 20) and [r[0] for r in reports] == sorted(r[0] for r in reports)
    with open_footage(talking_2, start=6, end=7) as footage:
        _, frame_6 = next(iter(footage))
    assert np.allclose(performance.theta[1, 15:], frame_6.reshape(-1, 3).mean(axis=0))

    with open_footage(tmp_path / "preview.mp4") as written:
        frames = [image for _, image in written]
    assert len(frames) == 20 and frames[0].shape == (590, 590, 3)
    assert not np.array_equal(frames[0], frames[5])


def test_cancel_keeps_exactly_the_frames_done(tmp_path, talking_2):
    cancel = CancelToken()
    with open_footage(talking_2) as footage:
        tracker = StripBrightnessTracker(
            footage, on_frame=lambda index: cancel.cancel() if index == 9 else None)
        run = track_footage(footage, tracker, cancel=cancel)
    assert run.cancelled and run.frames_done == 10
    assert not run.performance.complete
    assert np.array_equal(run.performance.frame_indices, np.arange(10))
    loaded = load_performance(run.performance.save(tmp_path / "partial.npz"))
    assert loaded.num_frames == 10 and not loaded.complete


def test_cancel_before_the_first_frame_gives_no_performance(talking_2):
    cancel = CancelToken()
    cancel.cancel()
    with open_footage(talking_2) as footage:
        tracker = StripBrightnessTracker(footage)
        run = track_footage(footage, tracker, cancel=cancel)
    assert run.cancelled and run.performance is None and tracker.frames_seen == []


def test_unreadable_frame_stops_and_keeps_the_frames_before(tmp_path):
    for n in range(6):
        cv2.imwrite(str(tmp_path / f"f{n}.png"), np.full((60, 50, 3), 30 * n, np.uint8))
    (tmp_path / "f4.png").write_bytes(b"not a png")
    with open_footage(tmp_path) as footage:
        run = track_footage(footage, StripBrightnessTracker(footage))
    assert run.error is not None and "f4.png" in run.error
    assert run.frames_done == 4 and not run.performance.complete


def test_memory_stays_bounded_over_a_whole_clip(talking_2):
    """60 frames of 590x590x3 are 63 MB; the loop must hold about one at a time."""
    with open_footage(talking_2, end=60) as footage:
        tracker = StripBrightnessTracker(footage)
        tracemalloc.start()
        try:
            run = track_footage(footage, tracker)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert run.frames_done == 60
    frame_bytes = 590 * 590 * 3
    assert peak < 8 * frame_bytes


def test_preview_projects_the_mesh_only_when_drawn():
    calls = []

    def project():
        calls.append(1)
        return np.array([[10.0, 10.0], [50.0, 40.0]])
    result = FrameResult(psi=np.zeros(2), theta=np.zeros(18), project_vertices=project)
    assert calls == [] and result.vertices_2d is None
    image = np.zeros((60, 80, 3), np.uint8)
    canvas = draw_preview(image, result, np.array([[0, 1]]), "frame 0")
    assert calls == [1] and canvas[25, 30].any() and not image.any()   # the edge is drawn
    eager = FrameResult(vertices_2d=np.ones((2, 2)), project_vertices=project)
    assert eager.mesh_2d() is eager.vertices_2d and calls == [1]
