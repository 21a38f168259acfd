"""Streamed footage: real decode of the shared clips and of files made here, and bad input."""

import cv2
import numpy as np
import pytest

from densecap.landmarks.errors import LandmarkError
from densecap.landmarks.footage import open_footage


def _write_video(path, num_frames, size=(64, 48), fps=24.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(num_frames):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[:, : 2 + 4 * i] = (40, 160, 250)   # a bar that grows one step per frame
        writer.write(image)
    writer.release()


def _bar_length(image):
    return int((image[image.shape[0] // 2, :, 2] > 128).sum())


@pytest.fixture(scope="module")
def talking_1(shared_dir):
    return shared_dir / "footage" / "talking_1.mp4"


def test_shared_clip_properties_and_range(talking_1):
    with open_footage(talking_1, start=10, end=15) as footage:
        assert footage.kind == "video"
        assert (footage.width, footage.height, footage.fps) == (700, 700, 30.0)
        assert footage.frame_count == 199
        assert footage.num_frames == 5
        frames = list(footage)
    assert [index for index, _ in frames] == [10, 11, 12, 13, 14]
    assert all(image.shape == (700, 700, 3) and image.dtype == np.uint8 for _, image in frames)
    with open_footage(talking_1, end=12) as footage:
        from_start = dict(footage)
    assert np.array_equal(from_start[10], frames[0][1])   # skipping to start = decoding through
    assert not np.array_equal(from_start[10], from_start[11])


def test_whole_clip_streams_every_frame(talking_1):
    with open_footage(talking_1) as footage:
        count = sum(1 for _ in footage)
    assert count == 199
    with open_footage(talking_1, start=195, end=1000) as footage:
        assert footage.num_frames == 4
        assert [index for index, _ in footage] == [195, 196, 197, 198]


def test_written_video_decodes_frame_by_frame(tmp_path):
    path = tmp_path / "bars.mp4"
    _write_video(path, 7)
    with open_footage(path) as footage:
        assert (footage.width, footage.height, footage.frame_count) == (64, 48, 7)
        assert footage.fps == pytest.approx(24.0)
        lengths = [_bar_length(image) for _, image in footage]
    assert lengths == pytest.approx([2 + 4 * i for i in range(7)], abs=2)


def test_still_image_is_a_one_frame_clip(shared_dir):
    with open_footage(shared_dir / "footage" / "still_obama.jpg") as footage:
        assert footage.kind == "images" and footage.frame_count == 1
        frames = list(footage)
    assert len(frames) == 1 and frames[0][0] == 0
    assert frames[0][1].shape == (1137, 910, 3)


def test_image_with_video_suffix_is_a_one_frame_clip(tmp_path):
    image = np.full((20, 30, 3), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    (tmp_path / "frame.png").rename(tmp_path / "frame.mp4")
    with open_footage(tmp_path / "frame.mp4") as footage:
        frames = list(footage)
    assert len(frames) == 1 and np.array_equal(frames[0][1], image)


def _write_sequence(directory, numbers, name="frame_{:04d}.png"):
    directory.mkdir(exist_ok=True)
    for n in numbers:
        image = np.full((12, 16, 3), n, np.uint8)
        cv2.imwrite(str(directory / name.format(n)), image)


def test_directory_sequence_in_numeric_order(tmp_path):
    _write_sequence(tmp_path / "seq", [1, 2, 10, 9], name="f{}.png")
    (tmp_path / "seq" / "notes.txt").write_text("not an image")
    with open_footage(tmp_path / "seq", start=1, fps=12) as footage:
        assert footage.frame_count == 4 and footage.fps == 12.0
        values = [(index, int(image[0, 0, 0])) for index, image in footage]
    assert values == [(1, 2), (2, 9), (3, 10)]


def test_printf_pattern_sequence(tmp_path):
    _write_sequence(tmp_path, [3, 4, 5, 12])
    with open_footage(str(tmp_path / "frame_%04d.png"), end=3) as footage:
        values = [int(image[0, 0, 0]) for _, image in footage]
    assert values == [3, 4, 5]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.mp4", "not found"),
    (lambda d: (d / "empty.mp4").write_bytes(b"") and None or d / "empty.mp4", "empty"),
    (lambda d: (d / "text.mp4").write_text("hello, not a video") and None or d / "text.mp4",
     "cannot decode"),
    (lambda d: (d / "empty_dir").mkdir() or d / "empty_dir", "no image files"),
    (lambda d: str(d / "nothing_%04d.png"), "no image files"),
    (lambda d: (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken") and None
     or d / "broken.png", "cannot decode image"),
])
def test_bad_input_raises_clear_error(tmp_path, make, message):
    with pytest.raises(LandmarkError, match=message):
        open_footage(make(tmp_path))


def test_truncated_video_is_rejected(tmp_path, talking_1):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(talking_1.read_bytes()[:2000])
    with pytest.raises(LandmarkError, match="cannot decode"):
        open_footage(path)


def test_unreadable_frame_in_sequence_raises_when_reached(tmp_path):
    _write_sequence(tmp_path, [0, 1, 2])
    (tmp_path / "frame_0001.png").write_bytes(b"garbage")
    with open_footage(tmp_path) as footage:
        frames = iter(footage)
        assert next(frames)[0] == 0
        with pytest.raises(LandmarkError, match="frame_0001.png"):
            next(frames)


def test_missing_webcam_raises_clear_error():
    with pytest.raises(LandmarkError, match="webcam 97 could not be opened"):
        open_footage(97)
    with pytest.raises(LandmarkError, match="webcam 98"):
        open_footage("98")


@pytest.mark.parametrize("start, end", [(-1, None), (5, 5), (7, 3)])
def test_bad_range_raises(talking_1, start, end):
    with pytest.raises(LandmarkError, match="frame"):
        open_footage(talking_1, start=start, end=end)


def test_start_past_the_end_raises(talking_1):
    with pytest.raises(LandmarkError, match="past the end"):
        open_footage(talking_1, start=500)
