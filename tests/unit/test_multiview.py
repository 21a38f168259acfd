"""Several cameras (tracking/multiview.py): a second "camera" made from real footage by a
known image transform, and bad input."""

import cv2
import numpy as np
import pytest

from densecap.tracking.errors import TrackingError
from densecap.tracking.multiview import track_multiview
from test_tracking_real import _write_clip as write_clip

FRAMES = 10
ROLL_DEG = 12.0


@pytest.fixture(scope="module")
def two_views(tmp_path_factory, shared_dir):
    """talking_2 frames 0..FRAMES-1, and the same frames rotated ROLL_DEG about the image
    centre: a second camera rolled about its optical axis (same centre, focal, position).
    The rolled clip starts 2 frames later (offset 2)."""
    folder = tmp_path_factory.mktemp("multiview")
    capture = cv2.VideoCapture(str(shared_dir / "footage" / "talking_2.mp4"))
    frames = [capture.read()[1] for _ in range(FRAMES)]
    capture.release()
    height, width = frames[0].shape[:2]
    warp = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), ROLL_DEG, 1.0)
    rolled = [cv2.warpAffine(f, warp, (width, height)) for f in frames[2:]]
    write_clip(folder / "front.mp4", frames)
    write_clip(folder / "short.mp4", frames[:3])
    write_clip(folder / "rolled.mp4", rolled)
    return folder


def test_a_rolled_copy_of_a_clip_is_found_as_a_rolled_camera(two_views):
    reports = []
    run = track_multiview([str(two_views / "front.mp4"), str(two_views / "rolled.mp4")],
                          offsets=[0, 2], progress=lambda *a: reports.append(a))
    assert run.error is None and not run.cancelled and reports
    performance = run.performance
    assert performance.mode == "offline" and performance.valid.all()
    np.testing.assert_array_equal(performance.frame_indices, np.arange(FRAMES))
    assert np.isfinite(performance.psi).all() and np.isfinite(performance.theta).all()
    assert np.nanmean(performance.landmark_error) < 1.0
    first, second = run.cameras
    np.testing.assert_array_equal(first.rotation, np.eye(3))
    angle = np.degrees(np.arccos(np.clip((np.trace(second.rotation) - 1) / 2, -1, 1)))
    axis = np.array([second.rotation[2, 1] - second.rotation[1, 2],
                     second.rotation[0, 2] - second.rotation[2, 0],
                     second.rotation[1, 0] - second.rotation[0, 1]])
    axis /= np.linalg.norm(axis)
    print(f"relative rotation {angle:.2f} deg about {np.round(axis, 3)}, translation "
          f"{np.round(second.translation, 2)} cm, focal {first.camera.focal_length:.0f} / "
          f"{second.camera.focal_length:.0f}")
    assert angle == pytest.approx(ROLL_DEG, abs=1.5)
    assert abs(axis[2]) > 0.97          # about the optical axis
    # the same position: no sideways translation (depth trades against focal length)
    assert np.linalg.norm(second.translation[:2]) < 1.0


def test_bad_input_gives_clear_errors(tmp_path, two_views):
    front = str(two_views / "front.mp4")
    with pytest.raises(TrackingError, match="at least one source"):
        track_multiview([])
    with pytest.raises(TrackingError, match="offsets"):
        track_multiview([front], offsets=[0, 1])
    missing = tmp_path / "missing.mp4"
    with pytest.raises(TrackingError, match="camera 1"):
        track_multiview([front, str(missing)])
    with pytest.raises(TrackingError, match="do not overlap"):
        track_multiview([front, front], offsets=[0, 100])
    blank = tmp_path / "blank.mp4"
    write_clip(blank, [np.full((240, 320, 3), 90, np.uint8)] * 3)
    with pytest.raises(TrackingError, match="never sees the face"):
        track_multiview([str(two_views / "short.mp4"), str(blank)])
