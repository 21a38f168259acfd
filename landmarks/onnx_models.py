"""The bootstrap networks (MediaPipe face detector, face mesh, iris) run with onnxruntime.

The ONNX files are made at build time by ``tools/mediapipe_models.py`` (``make models``) into
``assets/models/``. Every class here takes 8-bit BGR images (OpenCV's convention) and does the
per-network colour conversion and normalisation itself. Image coordinates are pixels with the
origin at the top-left pixel's corner, x right, y down (the project's convention).

- :class:`FaceDetector`: whole image -> faces (:class:`FaceDetection`), short-range BlazeFace:
  128x128 letterboxed input in [-1, 1], 896 SSD anchors, weighted non-maximum suppression.
- :class:`FaceMesh`: an aligned 192x192 face crop -> 468 landmarks (x, y, z) in crop pixels and
  a face-presence probability.
- :class:`IrisLandmarks`: a 64x64 eye crop -> 71 eye-contour/brow points and 5 iris points
  (centre, then 4 on the iris boundary) in crop pixels; right eyes are flipped internally.

Inference is single-threaded by default (``threads=1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from .errors import LandmarkError

MODELS_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"

DETECTOR_SIZE = 128
FACE_MESH_SIZE = 192
IRIS_SIZE = 64
NUM_FACE_MESH_LANDMARKS = 468
NUM_EYE_CONTOUR_LANDMARKS = 71
NUM_IRIS_LANDMARKS = 5
#: Order of :attr:`FaceDetection.keypoints` (the subject's right/left, as in MediaPipe).
DETECTION_KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center",
                            "right_ear_tragion", "left_ear_tragion")


def load_session(path: Path | str, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session with ``threads`` intra-op threads (1 = single-threaded)."""
    path = Path(path)
    if not path.is_file():
        raise LandmarkError(f"network file {path} not found: run `make models`")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _check_bgr(image, size=None) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise LandmarkError(f"expected an (H, W, 3) uint8 BGR image, got {image.dtype} "
                            f"{image.shape}")
    if size is not None and image.shape[:2] != (size, size):
        raise LandmarkError(f"expected a {size}x{size} crop, got {image.shape[1]}x"
                            f"{image.shape[0]}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise LandmarkError("empty image")
    return image


def rgb_tensor(image_bgr, low, high) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (1, H, W, 3) float32 RGB scaled to [low, high]."""
    rgb = image_bgr[:, :, ::-1].astype(np.float32)
    return (rgb * ((high - low) / 255.0) + low)[None]


def warp_square(image_bgr, centre, side, size, angle=0.0):
    """Crop a square of ``side`` image pixels around ``centre``, rotated by ``angle``, to size x size.

    Parameters
    ----------
    image_bgr : (H, W, 3) uint8
    centre : (2,) float -- x, y in image pixels (corner origin)
    side : float -- crop side in image pixels
    size : int -- output side in pixels (e.g. ``FACE_MESH_SIZE``)
    angle : float -- radians; the crop's x axis is the image x axis rotated by ``angle``
        (counter-clockwise on screen is negative, as y points down)

    Returns
    -------
    crop : (size, size, 3) uint8 -- outside the image is replicated border (as MediaPipe)
    matrix : (2, 3) float64 -- crop pixel = matrix @ (image x, image y, 1), corner origin
    """
    scale = size / float(side)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.array([[cos, sin], [-sin, cos]])
    matrix = np.hstack([linear, (size / 2.0 - linear @ np.asarray(centre, float))[:, None]])
    # cv2 maps pixel centres: shift into and out of the centre convention.
    shift = matrix.copy()
    shift[:, 2] += linear @ np.array([0.5, 0.5]) - 0.5
    crop = cv2.warpAffine(image_bgr, shift, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix


def ssd_anchors() -> np.ndarray:
    """Anchor centres of the short-range detector, (896, 2) float32 in [0, 1] (x, y).

    MediaPipe's SsdAnchorsCalculator with strides (8, 16, 16, 16), fixed anchor size and two
    anchors per layer: 16x16x2 anchors at stride 8 then 8x8x6 at stride 16.
    """
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = DETECTOR_SIZE // stride
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(xy, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class FaceDetection:
    """One detected face, in image pixels.

    box : (4,) float32 -- x_min, y_min, x_max, y_max
    keypoints : (6, 2) float32 -- see ``DETECTION_KEYPOINT_NAMES``
    score : float -- detector confidence in [0, 1]
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def _iou(box, boxes):
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(boxes, keypoints, scores, iou_threshold):
    """MediaPipe's weighted non-maximum suppression.

    Parameters
    ----------
    boxes : (D, 4) float32, keypoints : (D, K, 2) float32, scores : (D,) float32

    Returns
    -------
    list of (box (4,), keypoints (K, 2), score): each is the score-weighted mean of the
    detections overlapping the best remaining one by more than ``iou_threshold``, with the
    best one's score; best first.
    """
    remaining = np.argsort(-scores, kind="stable")
    kept = []
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining]) > iou_threshold
        group = remaining[overlap]
        weights = scores[group] / scores[group].sum()
        kept.append((weights @ boxes[group],
                     np.tensordot(weights, keypoints[group], axes=1),
                     float(scores[best])))
        remaining = remaining[~overlap]
    return kept


class FaceDetector:
    """MediaPipe's short-range face detector (faces within about 2 m of the camera).

    Parameters
    ----------
    model_path : path of ``face_detection_short_range.onnx`` (default: ``assets/models``)
    threads : onnxruntime intra-op threads
    score_threshold : minimum confidence of a returned face (MediaPipe: 0.5)
    iou_threshold : overlap above which detections are merged (MediaPipe: 0.3)
    """

    def __init__(self, model_path=None, threads=1, score_threshold=0.5, iou_threshold=0.3):
        self.session = load_session(model_path or MODELS_DIR / "face_detection_short_range.onnx",
                                    threads)
        self.input_name = self.session.get_inputs()[0].name
        self.anchors = ssd_anchors()
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)

    def letterbox(self, image_bgr):
        """Scale ``image_bgr`` to fit 128x128 (area averaging), centred on black.

        Returns the (128, 128, 3) uint8 image, ``scale`` (2,) and ``offset`` (2,) float64 such
        that detector pixel = image pixel * scale + offset (x, y; corner origin).
        """
        height, width = image_bgr.shape[:2]
        fit = DETECTOR_SIZE / max(height, width)
        size = np.array([max(1, round(width * fit)), max(1, round(height * fit))])
        resized = cv2.resize(image_bgr, tuple(int(v) for v in size),
                             interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
        offset = (DETECTOR_SIZE - size) // 2
        boxed = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.uint8)
        boxed[offset[1]:offset[1] + size[1], offset[0]:offset[0] + size[0]] = resized
        return boxed, size / np.array([width, height], float), offset.astype(float)

    def raw(self, tensor):
        """Network outputs for a (1, 128, 128, 3) float32 RGB tensor in [-1, 1].

        Returns regressors (896, 16) and logits (896,), in 128-pixel detector units.
        """
        regressors, logits = self.session.run(None, {self.input_name: tensor})
        return regressors[0], logits[0, :, 0]

    def detect(self, image_bgr) -> list[FaceDetection]:
        """Faces in an (H, W, 3) uint8 BGR image, most confident first."""
        image_bgr = _check_bgr(image_bgr)
        boxed, scale, offset = self.letterbox(image_bgr)
        regressors, logits = self.raw(rgb_tensor(boxed, -1.0, 1.0))
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        regressors, scores = regressors[keep], scores[keep]
        centres = self.anchors[keep] * DETECTOR_SIZE  # detector pixels
        box_centre = centres + regressors[:, 0:2]
        half = regressors[:, 2:4] / 2
        boxes = np.concatenate([box_centre - half, box_centre + half], axis=1)
        keypoints = centres[:, None, :] + regressors[:, 4:16].reshape(-1, 6, 2)
        faces = []
        for box, points, score in weighted_nms(boxes, keypoints, scores, self.iou_threshold):
            box = ((box.reshape(2, 2) - offset) / scale).ravel().astype(np.float32)
            faces.append(FaceDetection(box, ((points - offset) / scale).astype(np.float32),
                                       score))
        return faces


class FaceMesh:
    """MediaPipe's 468-point face mesh on an aligned 192x192 face crop.

    The crop is expected as MediaPipe makes it: the face upright, the detection/landmark box
    enlarged 1.5x (about 25% margin each side) and squared.
    """

    def __init__(self, model_path=None, threads=1):
        self.session = load_session(model_path or MODELS_DIR / "face_landmark.onnx", threads)
        self.input_name = self.session.get_inputs()[0].name

    def raw(self, tensor):
        """(1, 192, 192, 3) float32 RGB in [0, 1] -> (landmarks (468, 3), presence logit)."""
        landmarks, logit = self.session.run(None, {self.input_name: tensor})
        return landmarks.reshape(NUM_FACE_MESH_LANDMARKS, 3), float(logit.ravel()[0])

    def __call__(self, crop_bgr):
        """Landmarks on a (192, 192, 3) uint8 BGR crop.

        Returns
        -------
        landmarks : (468, 3) float32 -- x, y in crop pixels (corner origin); z in the same
            pixel scale, relative depth (smaller = nearer the camera), not metric
        presence : float -- probability that the crop contains a face
        """
        crop_bgr = _check_bgr(crop_bgr, FACE_MESH_SIZE)
        landmarks, logit = self.raw(rgb_tensor(crop_bgr, 0.0, 1.0))
        return landmarks, float(1.0 / (1.0 + np.exp(-logit)))


class IrisLandmarks:
    """MediaPipe's iris/eye-contour network on a 64x64 eye crop (trained on left eyes)."""

    def __init__(self, model_path=None, threads=1):
        self.session = load_session(model_path or MODELS_DIR / "iris_landmark.onnx", threads)
        self.input_name = self.session.get_inputs()[0].name

    def raw(self, tensor):
        """(1, 64, 64, 3) float32 RGB in [0, 1] -> (contour (71, 3), iris (5, 3))."""
        contour, iris = self.session.run(None, {self.input_name: tensor})
        return (contour.reshape(NUM_EYE_CONTOUR_LANDMARKS, 3),
                iris.reshape(NUM_IRIS_LANDMARKS, 3))

    def __call__(self, crop_bgr, is_right_eye: bool):
        """Eye landmarks on a (64, 64, 3) uint8 BGR eye crop.

        ``is_right_eye`` is the subject's right eye (image left in a non-mirrored frame); the
        crop is flipped for the network and the points flipped back.

        Returns
        -------
        contour : (71, 3) float32 -- eye contour and brow, x, y in crop pixels, z relative
        iris : (5, 3) float32 -- iris centre then 4 boundary points, same frame
        """
        crop_bgr = _check_bgr(crop_bgr, IRIS_SIZE)
        if is_right_eye:
            crop_bgr = crop_bgr[:, ::-1]
        contour, iris = self.raw(rgb_tensor(crop_bgr, 0.0, 1.0))
        if is_right_eye:
            contour[:, 0] = IRIS_SIZE - contour[:, 0]
            iris[:, 0] = IRIS_SIZE - iris[:, 0]
        return contour, iris
