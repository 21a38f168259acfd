"""Progress bar, cancel token across threads, preview drawing and the preview video."""

import io
import threading

import cv2
import numpy as np
import pytest

from densecap.tracking.errors import TrackingError
from densecap.tracking.preview import (DEFAULT_SIGMA_RANGE, PreviewWriter, draw_landmarks,
                                       draw_status, draw_wireframe, face_sigma_range,
                                       mesh_edges, subsample_edges)
from densecap.tracking.progress import CancelToken, Progress, TerminalProgress


def test_progress_fraction_and_time_left():
    assert Progress(25, 100, 50.0).fraction == 0.25
    assert Progress(25, 100, 50.0).seconds_left == pytest.approx(1.5)
    assert Progress(25, None, 50.0).fraction is None
    assert Progress(25, None, 50.0).seconds_left is None


def test_terminal_progress_in_a_log_prints_plain_lines():
    stream = io.StringIO()   # not a TTY: plain lines, throttled
    bar = TerminalProgress(stream, width=10, interval_log=3600)
    for done in range(1, 101):
        bar(done, 100, 20.0)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines == ["tracking [----------]   1/100 frames  20.0 fps  ETA 5s",
                     "tracking [##########] 100/100 frames  20.0 fps  ETA 0s"]
    assert "\r" not in stream.getvalue()


def test_terminal_progress_on_a_tty_redraws_one_line():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = TerminalProgress(stream, interval_tty=0.0, label="t")
    bar(3, None, 12.5)
    bar(4, None, 12.5)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and "4 frames  12.5 fps" in text


def test_cancel_token_set_from_another_thread():
    token = CancelToken()
    worker = threading.Thread(target=token.cancel)
    worker.start()
    worker.join()
    assert token.cancelled


def test_mesh_edges_and_subsampling():
    triangles = np.array([[0, 1, 2], [2, 1, 3]])
    assert mesh_edges(triangles).tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    edges = mesh_edges(np.random.default_rng(0).integers(0, 500, (2000, 3)))
    subset = subsample_edges(edges, 100)
    assert len(subset) == 100 and np.array_equal(subset, subsample_edges(edges, 100))
    assert np.array_equal(subsample_edges(edges[:50], 100), edges[:50])


def test_drawing_marks_the_right_pixels():
    image = np.zeros((100, 120, 3), np.uint8)
    draw_wireframe(image, np.array([[10.5, 50.5], [110.5, 50.5], [np.nan, 0]]),
                   np.array([[0, 1], [1, 2]]))
    assert image[50, 60].any() and not image[20, 60].any()   # the line, and only it
    spot = np.zeros((100, 120, 3), np.uint8)
    draw_landmarks(spot, np.array([[30.5, 30.5], [90.5, 70.5]]), np.array([0.5, 20.0]))
    assert spot[30, 30, 1] > 100 and spot[30, 30, 2] < 50     # small sigma: green
    assert spot[70, 90, 2] > 100 and spot[70, 90, 1] < 50     # large sigma: red
    assert spot[70, 98].any() and not spot[70, 110].any()      # its circle, capped at 8 px
    assert face_sigma_range(np.array([[0.0, 0.0], [400.0, 100.0], [np.nan, 1.0]])) == \
        pytest.approx((1.0, 8.0))                              # 0.5 % .. 4 % of 200 px
    assert face_sigma_range(np.full((3, 2), np.nan)) == DEFAULT_SIGMA_RANGE
    text = np.zeros((100, 120, 3), np.uint8)
    draw_status(text, "frame 3\nno face")
    assert text[:30].any() and not text[60:].any()


def test_preview_writer_round_trip(tmp_path):
    path = tmp_path / "preview.mp4"
    with PreviewWriter(path, 24.0, 96, 64) as writer:
        for i in range(9):
            frame = np.zeros((64, 96, 3), np.uint8)
            draw_status(frame, f"frame {i}")
            frame[40:, : 10 * i + 5] = 255
            writer.write(frame)
        with pytest.raises(TrackingError, match="expected"):
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert writer.frames_written == 9 and writer.codec in PreviewWriter.CODECS
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(24.0)
    decoded = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame)
    assert len(decoded) == 9 and decoded[0].shape == (64, 96, 3)
    assert [int((f[52, :, 0] > 128).sum()) for f in decoded] == pytest.approx(
        [10 * i + 5 for i in range(9)], abs=2)


def test_preview_writer_bad_folder(tmp_path):
    with pytest.raises(TrackingError, match="does not exist"):
        PreviewWriter(tmp_path / "missing" / "p.mp4", 30, 64, 64)
