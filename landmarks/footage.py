"""Streamed frame sources: a video file, an image sequence, a still image or a webcam.

Frames are decoded one at a time (never the whole clip in memory) and come out as
``(frame_index, image)`` with ``image : (H, W, 3) uint8`` in OpenCV's BGR order.
``frame_index`` counts from 0 at the first frame of the source (not of the ``start`` range),
so a range ``start=10, end=20`` yields indices 10..19.

>>> with open_footage("clip.mp4", start=10, end=20) as footage:   # doctest: +SKIP
...     for frame_index, image in footage:
...         ...

Every problem a user can cause (missing, empty, corrupt or undecodable file, a directory with
no images, a camera that does not open) raises `LandmarkError` with a message that says which.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import LandmarkError

#: File suffixes read as still images (everything else is tried as a video first).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp",
                            ".jp2", ".pgm", ".ppm", ".pbm"})

_PRINTF_FIELD = re.compile(r"%(0?)(\d*)d")
_DIGITS = re.compile(r"(\d+)")


def open_footage(source: str | os.PathLike | int, start: int = 0, end: int | None = None,
                 fps: float | None = None) -> "Footage":
    """Open `source` for streaming.

    Parameters
    ----------
    source : path or int
        A video file; an image file (a one-frame clip); a directory of images (sorted by the
        numbers in their names); a printf pattern such as ``frames/%04d.png``; or a webcam
        index (an int, or a string of digits that is not an existing path).
    start, end : int
        Frame range ``[start, end)`` in source frame indices; ``end=None`` runs to the end
        (for a webcam: until the camera stops or the caller stops iterating).
    fps : float, optional
        Frame rate to report for sources that have none (image sequences, stills; default 30),
        or to override a file's own rate.
    """
    if start < 0:
        raise LandmarkError(f"start frame must be >= 0, got {start}")
    if end is not None and end <= start:
        raise LandmarkError(f"end frame ({end}) must be greater than start frame ({start})")
    if fps is not None and not fps > 0:
        raise LandmarkError(f"fps must be positive, got {fps}")
    if isinstance(source, (int, np.integer)) or (isinstance(source, str) and source.isdigit()
                                                 and not os.path.exists(source)):
        return _WebcamFootage(int(source), start, end, fps)
    path = str(source)
    if _PRINTF_FIELD.search(os.path.basename(path)) and not os.path.exists(path):
        return _ImageSequenceFootage(path, _pattern_files(path), start, end, fps)
    if os.path.isdir(path):
        return _ImageSequenceFootage(path, _directory_files(path), start, end, fps)
    if not os.path.exists(path):
        raise LandmarkError(f"footage file not found: {path}")
    if not os.path.isfile(path):
        raise LandmarkError(f"footage path is not a regular file: {path}")
    if os.path.getsize(path) == 0:
        raise LandmarkError(f"footage file is empty (0 bytes): {path}")
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return _ImageSequenceFootage(path, [path], start, end, fps)
    try:
        return _VideoFootage(path, start, end, fps)
    except LandmarkError:
        if cv2.haveImageReader(path):   # an image with an unusual suffix: a one-frame clip
            return _ImageSequenceFootage(path, [path], start, end, fps)
        raise


class Footage:
    """A streamed frame source; iterate it for ``(frame_index, image (H, W, 3) uint8 BGR)``.

    Attributes
    ----------
    source : str
        What was opened (path, pattern, or ``"webcam:<index>"``).
    kind : str
        ``"video"``, ``"images"`` or ``"webcam"``.
    fps : float
        Frames per second (the file's, the caller's, or 30 for stills without one).
    frame_count : int or None
        Frames in the whole source when known (a video's count is the container's figure).
    width, height : int
        Frame size in pixels.
    start, end : int, int or None
        The frame range ``[start, end)`` asked for; `num_frames` is what it will yield when
        known. A video is read until its decoder stops (the container's count is a hint).
    """

    kind = ""

    def __init__(self, source: str, width: int, height: int, fps: float,
                 frame_count: int | None, start: int, end: int | None):
        self.source = source
        self.width = int(width)
        self.height = int(height)
        self.fps = float(fps)
        self.frame_count = frame_count
        self.start = start
        self.end = end
        if frame_count is not None and start >= frame_count:
            self.close()
            raise LandmarkError(f"start frame {start} is past the end of {source} "
                                f"({frame_count} frames)")

    @property
    def num_frames(self) -> int | None:
        """Frames this range will yield, when known (a video's is the container's estimate)."""
        stop = self.end if self.end is not None else self.frame_count
        if stop is None:
            return None
        if self.frame_count is not None:
            stop = min(stop, self.frame_count)
        return stop - self.start

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder or camera (iteration after close yields nothing)."""

    def __enter__(self) -> "Footage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.source!r}, {self.width}x{self.height}, "
                f"fps={self.fps:g}, frames={self.frame_count}, range=[{self.start}, {self.end}))")


class _CaptureFootage(Footage):
    """Shared reading loop of the two cv2.VideoCapture sources (file and camera)."""

    def __init__(self, capture: cv2.VideoCapture, source: str, fps: float,
                 frame_count: int | None, start: int, end: int | None):
        self._capture = capture
        super().__init__(source, capture.get(cv2.CAP_PROP_FRAME_WIDTH),
                         capture.get(cv2.CAP_PROP_FRAME_HEIGHT), fps, frame_count, start, end)
        self._next_index = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        while self._capture is not None and self._next_index < self.start:
            if not self._capture.grab():
                return
            self._next_index += 1
        while self._capture is not None and (self.end is None or self._next_index < self.end):
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            index = self._next_index
            self._next_index += 1
            yield index, image

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class _VideoFootage(_CaptureFootage):
    kind = "video"

    def __init__(self, path: str, start: int, end: int | None, fps: float | None):
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise LandmarkError(f"cannot decode {path}: not a video or image file OpenCV can read "
                                f"(corrupt, truncated, or an unsupported format)")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        file_fps = capture.get(cv2.CAP_PROP_FPS)
        if capture.get(cv2.CAP_PROP_FRAME_WIDTH) <= 0:
            capture.release()
            raise LandmarkError(f"cannot decode {path}: the file has no video stream")
        super().__init__(capture, path, fps or (file_fps if file_fps > 0 else 30.0),
                         count if count > 0 else None, start, end)


class _WebcamFootage(_CaptureFootage):
    kind = "webcam"

    def __init__(self, index: int, start: int, end: int | None, fps: float | None):
        with quiet_opencv():   # the backends' probing messages; the error below says it all
            capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            capture.release()
            raise LandmarkError(f"webcam {index} could not be opened (no such camera, it is in use "
                                f"by another program, or camera access was denied)")
        camera_fps = capture.get(cv2.CAP_PROP_FPS)
        super().__init__(capture, f"webcam:{index}",
                         fps or (camera_fps if camera_fps > 0 else 30.0),
                         None, start, end)


class _ImageSequenceFootage(Footage):
    kind = "images"

    def __init__(self, source: str, files: list[str], start: int, end: int | None,
                 fps: float | None):
        if not files:
            raise LandmarkError(f"no image files found for {source}")
        first = _read_image(files[min(start, len(files) - 1)])
        self._files = files
        super().__init__(source, first.shape[1], first.shape[0], fps or 30.0, len(files),
                         start, end)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for index in range(self.start, self.start + self.num_frames):
            image = _read_image(self._files[index])
            if image.shape[:2] != (self.height, self.width):
                raise LandmarkError(f"{self._files[index]} is {image.shape[1]}x{image.shape[0]}, "
                                    f"the sequence's frames are {self.width}x{self.height}")
            yield index, image


@contextlib.contextmanager
def quiet_opencv():
    """Silence OpenCV's own log while probing (cameras, encoders); ffmpeg's messages remain.

    OpenCV 4 has ``cv2.setLogLevel``, OpenCV 5 ``cv2.utils.logging.setLogLevel``.
    """
    set_level = getattr(cv2, "setLogLevel", None) or cv2.utils.logging.setLogLevel
    previous = set_level(0)
    try:
        yield
    finally:
        set_level(previous)


def _read_image(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise LandmarkError(f"image file not found: {path}")
    if os.path.getsize(path) == 0:
        raise LandmarkError(f"image file is empty (0 bytes): {path}")
    image = cv2.imread(path, cv2.IMREAD_COLOR)   # 8-bit BGR, EXIF orientation applied
    if image is None:
        raise LandmarkError(f"cannot decode image {path} (corrupt or unsupported format)")
    return image


def _natural_key(path: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(path)]


def _directory_files(directory: str) -> list[str]:
    names = [os.path.join(directory, name) for name in os.listdir(directory)
             if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return sorted((p for p in names if os.path.isfile(p)), key=_natural_key)


def _pattern_files(pattern: str) -> list[str]:
    """Files matching a printf pattern (``frame_%04d.png``), in numeric order."""
    directory, name = os.path.split(pattern)
    field = _PRINTF_FIELD.search(name)
    prefix, suffix = name[:field.start()], name[field.end():]
    width = int(field.group(2)) if field.group(2) else 0
    digits = r"\d{%d,}" % width if field.group(1) == "0" and width else r"\d+"
    matcher = re.compile(re.escape(prefix) + f"({digits})" + re.escape(suffix) + "$")
    found = []
    for path in glob.glob(os.path.join(glob.escape(directory or "."), glob.escape(prefix) + "*")):
        match = matcher.match(os.path.basename(path))
        if match and os.path.isfile(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]
