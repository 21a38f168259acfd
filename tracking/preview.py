"""Preview drawing: the fitted mesh wireframe, landmarks with their sigma, a status line,
and `PreviewWriter`, which streams the drawn frames into an mp4.

All positions are image pixels with the project's origin (top-left pixel's corner); drawing
is anti-aliased with sub-pixel precision and happens in place on BGR uint8 images.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..landmarks.footage import quiet_opencv
from .errors import TrackingError

#: Sub-pixel bits for cv2 drawing (coordinates are multiplied by 2**_SHIFT).
_SHIFT = 4
_ONE = 1 << _SHIFT
WIREFRAME_COLOR = (255, 200, 80)
_COLOR_LEVELS = 8
#: Sigma (px) drawn green .. red by default.
DEFAULT_SIGMA_RANGE = (1.0, 8.0)
#: (16, 2) unit circle, the polygon a sigma circle is drawn as.
_UNIT_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
                         np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False))], axis=1)


def mesh_edges(triangles: np.ndarray) -> np.ndarray:
    """Unique undirected edges of a triangle mesh: (T, 3) int -> (E, 2) int64, sorted pairs."""
    triangles = np.asarray(triangles, dtype=np.int64)
    pairs = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def subsample_edges(edges: np.ndarray, max_edges: int, seed: int = 0) -> np.ndarray:
    """At most `max_edges` of `edges` (E, 2), a fixed random subset spread over the mesh
    (the same subset every frame, so the preview does not flicker)."""
    if len(edges) <= max_edges:
        return edges
    keep = np.random.default_rng(seed).choice(len(edges), size=max_edges, replace=False)
    return edges[np.sort(keep)]


def draw_wireframe(image: np.ndarray, points: np.ndarray, edges: np.ndarray,
                   color: tuple[int, int, int] = WIREFRAME_COLOR, thickness: int = 1) -> None:
    """Draw mesh edges.

    points : (V, 2) projected vertex positions in image pixels (non-finite ones are skipped)
    edges : (E, 2) int, vertex index pairs (see `mesh_edges`, `subsample_edges`)
    """
    segments = np.asarray(points, dtype=np.float64)[np.asarray(edges)]   # (E, 2, 2)
    segments = segments[np.all(np.isfinite(segments), axis=(1, 2))]
    if len(segments):
        cv2.polylines(image, _fixed_point(segments, image.shape), False, color, thickness,
                      cv2.LINE_AA, _SHIFT)


def face_sigma_range(mu: np.ndarray) -> tuple[float, float]:
    """The sigma range (px) `draw_landmarks` colours from green to red for landmarks mu (L, 2):
    0.5 % to 4 % of the landmarks' box size sqrt(w h), so a face reads the same at any size
    (the fixed default suits a face about 200 px across); the default when none is finite."""
    finite = mu[np.all(np.isfinite(mu), axis=1)]
    if len(finite) < 2:
        return DEFAULT_SIGMA_RANGE
    width, height = np.ptp(finite, axis=0)
    size = float(np.sqrt(max(width, 1.0) * max(height, 1.0)))
    return 0.005 * size, 0.04 * size


def draw_landmarks(image: np.ndarray, mu: np.ndarray, sigma: np.ndarray | None = None,
                   sigma_range: tuple[float, float] = DEFAULT_SIGMA_RANGE) -> None:
    """Draw landmarks as dots, with a circle of radius sigma coloured green (sigma at or below
    ``sigma_range[0]``) through yellow to red (at or above ``sigma_range[1]``); circles are
    drawn no larger than ``sigma_range[1]`` (a red one means "at least that"), so landmarks
    the network gives up on do not bury the face.

    mu : (L, 2) positions in image pixels (non-finite ones are skipped)
    sigma : (L,) standard deviations in image pixels, optional (then all dots are green)

    Colours are quantised to `_COLOR_LEVELS` steps so each step is one cv2 call for all of
    its landmarks (a call per landmark costs ~10 ms for 478 of them).
    """
    mu = np.asarray(mu, dtype=np.float64)
    if sigma is None:
        sigma = np.zeros(len(mu))
        level = np.zeros(len(mu), np.int64)
    else:
        sigma = np.nan_to_num(np.asarray(sigma, dtype=np.float64), nan=sigma_range[1])
        t = (sigma - sigma_range[0]) / max(sigma_range[1] - sigma_range[0], 1e-9)
        level = np.round(np.clip(t, 0.0, 1.0) * (_COLOR_LEVELS - 1)).astype(np.int64)
    finite = np.all(np.isfinite(mu), axis=1)
    radius = np.clip(sigma, 0.0, sigma_range[1])
    for step in np.unique(level[finite]):
        t = step / (_COLOR_LEVELS - 1)
        color = (0, int(255 * min(1.0, 2 - 2 * t)), int(255 * min(1.0, 2 * t)))
        chosen = finite & (level == step)
        centres = mu[chosen]
        circled = radius[chosen] >= 1.0
        if circled.any():
            rings = centres[circled, None, :] + radius[chosen][circled, None, None] * _UNIT_CIRCLE
            cv2.polylines(image, _fixed_point(rings, image.shape), True, color, 1, cv2.LINE_AA,
                          _SHIFT)
        dots = _fixed_point(np.repeat(centres[:, None, :], 2, axis=1), image.shape)
        cv2.polylines(image, dots, False, color, 3, cv2.LINE_AA, _SHIFT)


def draw_status(image: np.ndarray, text: str, scale: float = 0.5) -> None:
    """Write `text` (may have several lines) at the top-left over a dark box."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    y = 0
    for line in text.splitlines() or [""]:
        (width, height), baseline = cv2.getTextSize(line, font, scale, 1)
        cv2.rectangle(image, (0, y), (width + 8, y + height + baseline + 6), (0, 0, 0), -1)
        cv2.putText(image, line, (4, y + height + 3), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += height + baseline + 6


def _fixed_point(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Image points (pixel-corner origin) -> int32 cv2 coordinates with `_SHIFT` fraction bits,
    clamped well outside the image so far-off points cannot overflow."""
    limit = 4.0 * max(shape[0], shape[1])
    centred = np.clip(points - 0.5, -limit, limit)   # cv2 puts pixel centres on integers
    return np.round(centred * _ONE).astype(np.int32)


class PreviewWriter:
    """Streams frames into an mp4 (H.264 'avc1' when this OpenCV can encode it, else 'mp4v').

    >>> with PreviewWriter("preview.mp4", 30, 640, 480) as writer:  # doctest: +SKIP
    ...     writer.write(image)
    """

    CODECS = ("avc1", "mp4v")

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int):
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.frames_written = 0
        if not self.path.parent.is_dir():
            raise TrackingError(f"cannot write {self.path}: folder {self.path.parent} "
                                f"does not exist")
        if not (fps > 0 and self.width > 0 and self.height > 0):
            raise TrackingError(f"preview needs a positive fps and size, got {fps} fps, "
                                f"{width}x{height}")
        self._writer = None
        with quiet_opencv():   # encoders that fail the probe complain
            for codec in self.CODECS:
                writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*codec), float(fps),
                                         (self.width, self.height))
                if writer.isOpened():
                    self._writer, self.codec = writer, codec
                    break
                writer.release()
        if self._writer is None:
            raise TrackingError(f"cannot write {self.path}: no mp4 encoder available "
                                f"(tried {', '.join(self.CODECS)})")

    def write(self, image: np.ndarray) -> None:
        """Append one (height, width, 3) uint8 BGR frame."""
        if self._writer is None:
            raise TrackingError(f"preview {self.path} is already closed")
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise TrackingError(f"preview frame is {image.shape} {image.dtype}, expected "
                                f"({self.height}, {self.width}, 3) uint8")
        self._writer.write(image)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> "PreviewWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
