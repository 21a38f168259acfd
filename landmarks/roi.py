"""Face regions of interest: similarity transforms to upright, fixed-scale face crops.

The paper's real-time strategy: the network sees a crop in which the face is upright with
the eyes a fixed distance apart at a fixed place. A crop is described by `RoiTransform`, a
2D similarity ``crop = s R image + t`` (no shear, no reflection) and the crop's side length.
Both image and crop points follow the project convention: pixels, origin at the top-left
corner of the top-left pixel, x right, y down.

Where the eye centres come from:

* a face detector (`Detection`: box and keypoints, BlazeFace keypoint order) on the first
  frame and whenever the track is lost: `transform_from_detection`;
* the previous frame's landmarks otherwise: `transform_from_landmarks`.

Both go through `align_face`, so the two crops frame a face the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

from .errors import LandmarkError

#: BlazeFace keypoint order (subject's right eye first: it is on the image's left).
KEYPOINT_RIGHT_EYE, KEYPOINT_LEFT_EYE, KEYPOINT_NOSE, KEYPOINT_MOUTH = 0, 1, 2, 3


@dataclass(frozen=True)
class CropLayout:
    """Where the face sits in a crop, as fractions of the crop's side length.

    eye_distance : distance between the two eye centres.
    eye_y : height of the eye line (from the top).
    mouth_y : height of the mouth centre (used when a mouth point is given).
    The defaults put the mouth about 1.15 inter-ocular distances below the eye line, an
    average human proportion, so eyes-only and eyes+mouth alignments agree on a frontal face.
    """

    eye_distance: float = 0.32
    eye_y: float = 0.40
    mouth_y: float = 0.77

    def targets(self, size: int) -> np.ndarray:
        """(3, 2) float64 crop positions of right eye, left eye and mouth for side `size`."""
        half = 0.5 * self.eye_distance
        return size * np.array([[0.5 - half, self.eye_y],
                                [0.5 + half, self.eye_y],
                                [0.5, self.mouth_y]])

    def zoomed(self, zoom: float) -> "CropLayout":
        """This layout with the face `zoom` times larger about the crop's centre."""
        if zoom <= 0.0:
            raise LandmarkError(f"a crop zoom must be positive, got {zoom}")
        return CropLayout(self.eye_distance * zoom, 0.5 + (self.eye_y - 0.5) * zoom,
                          0.5 + (self.mouth_y - 0.5) * zoom)


@dataclass(frozen=True)
class RoiTransform:
    """Similarity transform image -> crop, and the crop's side length in pixels.

    matrix : (2, 3) float64, ``crop_xy = matrix[:, :2] @ image_xy + matrix[:, 2]``
    size : int, the crop is ``size x size`` pixels
    """

    matrix: np.ndarray
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return float(np.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def rotation(self) -> float:
        """Angle (radians) by which image content is rotated to land in the crop."""
        return float(np.arctan2(self.matrix[1, 0], self.matrix[0, 0]))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image points (..., 2) -> crop points (..., 2), float64."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Crop points (..., 2) -> image points (..., 2), float64."""
        points = np.asarray(points, dtype=np.float64)
        inverse = cv2.invertAffineTransform(self.matrix)   # 10x cheaper than np.linalg.inv
        return points @ inverse[:, :2].T + inverse[:, 2]


def landmarks_to_image(mu: np.ndarray, sigma: np.ndarray,
                       transform: RoiTransform) -> tuple[np.ndarray, np.ndarray]:
    """A network's output on a crop -> image pixels.

    Parameters
    ----------
    mu : (..., L, 2) landmark positions in crop pixels.
    sigma : (..., L) isotropic standard deviations in crop pixels.

    Returns
    -------
    mu : (..., L, 2) float64 image pixels; sigma : (..., L) float64 image pixels
    (divided by the transform's scale: a similarity keeps circles circles).
    """
    return transform.to_image(mu), np.asarray(sigma, dtype=np.float64) / transform.scale


@dataclass(frozen=True)
class Detection:
    """One face found by a detector, in image pixels.

    box : (4,) float64, x0, y0, x1, y1
    keypoints : (K, 2) float64, BlazeFace order (right eye, left eye, nose, mouth, ...), K >= 2
    score : detector confidence in [0, 1]
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def area(self) -> float:
        width, height = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(max(width, 0.0) * max(height, 0.0))


def similarity_from_points(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares 2D similarity (rotation, uniform scale, translation; no reflection).

    Parameters
    ----------
    source, target : (K, 2) corresponding points, K >= 2 and the source points not all equal.

    Returns
    -------
    (2, 3) float64 matrix M with ``target ~= source @ M[:, :2].T + M[:, 2]`` (Umeyama 1991).
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 \
            or source.shape[0] < 2:
        raise LandmarkError(f"need matching (K>=2, 2) point arrays, got {source.shape} and "
                            f"{target.shape}")
    if not (np.all(np.isfinite(source)) and np.all(np.isfinite(target))):
        raise LandmarkError("face alignment points are not finite")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    variance = np.sum(src * src)
    if variance < 1e-12:
        raise LandmarkError("face alignment points coincide: cannot derive a scale")
    # The optimal rotation+scale as a complex number a + ib = sum(conj(src) * dst) / |src|^2.
    a = np.sum(src[:, 0] * dst[:, 0] + src[:, 1] * dst[:, 1]) / variance
    b = np.sum(src[:, 0] * dst[:, 1] - src[:, 1] * dst[:, 0]) / variance
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (target_mean - linear @ source_mean)[:, None]])


def align_face(right_eye: np.ndarray, left_eye: np.ndarray, size: int,
               mouth: np.ndarray | None = None, layout: CropLayout = CropLayout()) -> RoiTransform:
    """The crop transform that puts the face upright at `layout`'s eye (and mouth) positions.

    Parameters
    ----------
    right_eye, left_eye : (2,) image pixels of the subject's right and left eye centres
        (for a frontal, unmirrored face the right eye is on the image's left).
    size : side length of the crop in pixels.
    mouth : (2,), optional mouth centre. Without it the eyes land exactly on their targets;
        with it the three points are fitted in the least-squares sense, which keeps the scale
        steady when the head turns (the eye distance alone shrinks with yaw).
    """
    if size <= 0:
        raise LandmarkError(f"crop size must be positive, got {size}")
    points = [right_eye, left_eye] + ([] if mouth is None else [mouth])
    targets = layout.targets(size)[:len(points)]
    return RoiTransform(similarity_from_points(np.asarray(points, dtype=np.float64), targets),
                        int(size))


def transform_from_detection(detection: Detection, size: int,
                             layout: CropLayout = CropLayout()) -> RoiTransform:
    """Crop transform from a detector's eye (and mouth, when present) keypoints."""
    keypoints = np.asarray(detection.keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[0] < 2 or keypoints.shape[1] != 2:
        raise LandmarkError(f"a detection needs at least the two eye keypoints, got shape "
                            f"{keypoints.shape}")
    mouth = keypoints[KEYPOINT_MOUTH] if keypoints.shape[0] > KEYPOINT_MOUTH else None
    return align_face(keypoints[KEYPOINT_RIGHT_EYE], keypoints[KEYPOINT_LEFT_EYE], size,
                      mouth, layout)


def transform_from_landmarks(points: np.ndarray, right_eye_ids: Sequence[int],
                             left_eye_ids: Sequence[int], size: int,
                             mouth_ids: Sequence[int] | None = None,
                             layout: CropLayout = CropLayout()) -> RoiTransform:
    """Crop transform from the previous frame's landmarks.

    Parameters
    ----------
    points : (L, 2) landmark positions in image pixels.
    right_eye_ids, left_eye_ids, mouth_ids : indices into `points` whose mean is the subject's
        right eye centre, left eye centre and mouth centre (e.g. the eye-contour landmarks).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise LandmarkError(f"landmarks must be (L, 2), got {points.shape}")

    def centre(ids: Sequence[int]) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0 or ids.min() < -len(points) or ids.max() >= len(points):
            raise LandmarkError(f"landmark indices {ids.tolist()} out of range for "
                                f"{len(points)} landmarks")
        return points[ids].mean(axis=0)

    mouth = None if mouth_ids is None else centre(mouth_ids)
    return align_face(centre(right_eye_ids), centre(left_eye_ids), size, mouth, layout)


def select_face(detections: Sequence[Detection], face_index: int | None = None) -> Detection | None:
    """The face to track: the largest box, or the `face_index`-th face counted from the left.

    Returns None when there are no detections (a frame without a face is not an error);
    raises LandmarkError when `face_index` asks for a face that is not there.
    """
    if not detections:
        return None
    if face_index is None:
        return max(detections, key=lambda detection: detection.area)
    if face_index < 0:
        raise LandmarkError(f"face index must be >= 0, got {face_index}")
    if face_index >= len(detections):
        raise LandmarkError(f"face {face_index} was requested but only {len(detections)} "
                            f"face(s) were found")
    left_to_right = sorted(detections, key=lambda detection: detection.box[0] + detection.box[2])
    return left_to_right[face_index]


def crop(image: np.ndarray, transform: RoiTransform, border: str = "replicate",
         border_value: int = 0) -> np.ndarray:
    """Resample the face region: (H, W, C) or (H, W) image -> (size, size, C) crop, same dtype.

    border : "replicate" (repeat edge pixels) or "constant" (fill with `border_value`).
    """
    modes = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}
    if border not in modes:
        raise LandmarkError(f"border must be one of {sorted(modes)}, got {border!r}")
    # cv2 puts pixel centres at integer coordinates; the project's origin is the pixel corner,
    # so shift by half a pixel on both sides: crop_cv = M (image_cv + 0.5) - 0.5.
    linear = transform.matrix[:, :2]
    offset = transform.matrix[:, 2] + linear @ np.full(2, 0.5) - 0.5
    matrix = np.hstack([linear, offset[:, None]])
    return cv2.warpAffine(image, matrix, (transform.size, transform.size), flags=cv2.INTER_LINEAR,
                          borderMode=modes[border], borderValue=border_value)


class RoiTracker:
    """The real-time ROI strategy: detect on the first frame and whenever the track is lost,
    otherwise crop from the previous frame's landmarks.

    Parameters
    ----------
    detect : callable ``detect(image) -> Sequence[Detection]`` (the face detector)
    size : crop side length in pixels
    right_eye_ids, left_eye_ids, mouth_ids : landmark indices (see `transform_from_landmarks`)
    face_index : which face to pick when detecting (`select_face`); None: the largest
    layout : `CropLayout` of the crops

    Per frame: ``roi = tracker.locate(image)`` (None: no face, the frame has no landmarks);
    run the landmark network on ``crop(image, roi)``; then ``tracker.update(mu, found)`` with
    the landmarks in image pixels and whether they are trustworthy (e.g. the network's face
    confidence or the fit's residual passed a threshold). ``update(None, False)`` or
    `reset()` forces a detection on the next frame.
    """

    def __init__(self, detect: Callable[[np.ndarray], Sequence[Detection]], size: int,
                 right_eye_ids: Sequence[int], left_eye_ids: Sequence[int],
                 mouth_ids: Sequence[int] | None = None, face_index: int | None = None,
                 layout: CropLayout = CropLayout()):
        self.detect = detect
        self.size = size
        self.right_eye_ids, self.left_eye_ids = right_eye_ids, left_eye_ids
        self.mouth_ids = mouth_ids
        self.face_index = face_index
        self.layout = layout
        self._previous: np.ndarray | None = None
        #: True when the last `locate` ran the detector (for statistics and tests).
        self.detected = False

    def locate(self, image: np.ndarray) -> RoiTransform | None:
        """The crop transform for this frame; None when no face (or not the asked one) is found."""
        if self._previous is not None:
            self.detected = False
            return transform_from_landmarks(self._previous, self.right_eye_ids, self.left_eye_ids,
                                            self.size, self.mouth_ids, self.layout)
        self.detected = True
        detections = list(self.detect(image))
        if self.face_index is not None and self.face_index >= len(detections):
            return None   # the asked-for face is not in this frame: no face, not an error
        detection = select_face(detections, self.face_index)
        if detection is None:
            return None
        return transform_from_detection(detection, self.size, self.layout)

    def update(self, mu: np.ndarray | None, found: bool) -> None:
        """Record this frame's landmarks (L, 2) in image pixels; `found=False` loses the track."""
        self._previous = np.array(mu, dtype=np.float64) if found and mu is not None else None

    def reset(self) -> None:
        """Forget the track: the next `locate` runs the detector."""
        self._previous = None
