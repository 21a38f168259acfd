"""The bootstrap networks (MediaPipe face detector, face mesh, iris) run with onnxruntime.

The ONNX files are made at build time by ``tools/mediapipe_models.py`` (``make models``) into
``assets/models/``. Every class here takes 8-bit BGR images (OpenCV's convention) and does the
per-network colour conversion and normalisation itself. Image coordinates are pixels with the
origin at the top-left pixel's corner, x right, y down (the project's convention).

- :class:`FaceDetector`: whole image -> faces (:class:`roi.Detection`), BlazeFace short range
  (128x128 letterboxed input in [-1, 1], 896 SSD anchors) or full range (192x192, 2304
  anchors), weighted non-maximum suppression.
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
from .roi import Detection, RoiTransform, crop

MODELS_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"

FACE_MESH_SIZE = 192
IRIS_SIZE = 64
NUM_FACE_MESH_LANDMARKS = 468
NUM_EYE_CONTOUR_LANDMARKS = 71
NUM_IRIS_LANDMARKS = 5
IRIS_FILE = "iris_landmark.onnx"
#: The iris network pruned to its iris output (`tools/mediapipe_models.py`): what the
#: 478-landmark front end runs (it does not use the eye contour).
IRIS_ONLY_FILE = "iris_landmark_iris_only.onnx"
CONTOUR_OUTPUT, IRIS_OUTPUT = "output_eyes_contours_and_brows", "output_iris"
#: Order of :attr:`roi.Detection.keypoints` (the subject's right/left, as in MediaPipe).
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
    """(H, W, 3) uint8 BGR -> (1, H, W, 3) float32 RGB scaled to [low, high].

    Bit-identical to ``rgb.astype(np.float32) * ((high - low) / 255) + low``, ten times
    faster: cv2 swaps the channels of the contiguous uint8 image, one numpy pass converts
    and scales (a reversed-channel view would take numpy's slow strided path).
    """
    rgb = cv2.cvtColor(np.ascontiguousarray(image_bgr), cv2.COLOR_BGR2RGB)
    tensor = np.multiply(rgb, np.float32((high - low) / 255.0), dtype=np.float32)
    if low:
        tensor += np.float32(low)
    return tensor[None]


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
    return crop(image_bgr, RoiTransform(matrix, int(size))), matrix


@dataclass(frozen=True)
class DetectorConfig:
    """One MediaPipe BlazeFace variant: ONNX file, input size, SSD anchor grid, threshold.

    ``layers`` lists (stride, anchors per cell); with MediaPipe's fixed anchor size all anchors
    of a cell share the cell centre and have unit size, so only their count matters.
    """

    file: str
    size: int
    layers: tuple
    score_threshold: float


#: Short range (faces within about 2 m; 896 anchors) and full range (small faces, up to
#: about 5 m; 2304 anchors), with MediaPipe's settings.
DETECTORS = {
    "short": DetectorConfig("face_detection_short_range.onnx", 128, ((8, 2), (16, 6)), 0.5),
    "full": DetectorConfig("face_detection_full_range.onnx", 192, ((4, 1),), 0.6),
}


def ssd_anchors(size, layers) -> np.ndarray:
    """Anchor centres, (A, 2) float32 in [0, 1] (x, y), in the order of the network outputs.

    MediaPipe's SsdAnchorsCalculator with fixed anchor size: row-major cells per stride, each
    cell repeated once per anchor (short range: 16x16x2 at stride 8, then 8x8x6 at stride 16).
    """
    centres = []
    for stride, per_cell in layers:
        cells = size // stride
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(xy, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


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
    """MediaPipe's BlazeFace face detector.

    Parameters
    ----------
    variant : ``"short"`` (faces within about 2 m, 128x128 input) or ``"full"`` (also small
        and distant faces, 192x192 input), see ``DETECTORS``
    model_path : the ONNX file (default: ``assets/models/`` + the variant's file)
    threads : onnxruntime intra-op threads
    score_threshold : minimum confidence of a returned face (default: MediaPipe's, 0.5 / 0.6)
    iou_threshold : overlap above which detections are merged (MediaPipe: 0.3)
    """

    def __init__(self, variant="short", model_path=None, threads=1, score_threshold=None,
                 iou_threshold=0.3):
        if variant not in DETECTORS:
            raise LandmarkError(f"unknown detector variant {variant!r}: use one of "
                                f"{sorted(DETECTORS)}")
        self.config = DETECTORS[variant]
        self.size = self.config.size
        self.session = load_session(model_path or MODELS_DIR / self.config.file, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.anchors = ssd_anchors(self.size, self.config.layers)
        self.score_threshold = float(self.config.score_threshold if score_threshold is None
                                     else score_threshold)
        self.iou_threshold = float(iou_threshold)

    def letterbox(self, image_bgr):
        """Scale ``image_bgr`` to fit the network's square input (area averaging), centred on
        black.

        Returns the (size, size, 3) uint8 image, ``scale`` (2,) and ``offset`` (2,) float64 such
        that detector pixel = image pixel * scale + offset (x, y; corner origin).
        """
        height, width = image_bgr.shape[:2]
        fit = self.size / max(height, width)
        size = np.array([max(1, round(width * fit)), max(1, round(height * fit))])
        resized = cv2.resize(image_bgr, tuple(int(v) for v in size),
                             interpolation=cv2.INTER_AREA if fit < 1 else cv2.INTER_LINEAR)
        offset = (self.size - size) // 2
        boxed = np.zeros((self.size, self.size, 3), np.uint8)
        boxed[offset[1]:offset[1] + size[1], offset[0]:offset[0] + size[0]] = resized
        return boxed, size / np.array([width, height], float), offset.astype(float)

    def raw(self, tensor):
        """Network outputs for a (1, size, size, 3) float32 RGB tensor in [-1, 1].

        Returns regressors (A, 16) and logits (A,), in detector input pixels.
        """
        regressors, logits = self.session.run(None, {self.input_name: tensor})
        return regressors[0], logits[0, :, 0]

    def detect(self, image_bgr) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 BGR image, most confident first."""
        image_bgr = _check_bgr(image_bgr)
        boxed, scale, offset = self.letterbox(image_bgr)
        regressors, logits = self.raw(rgb_tensor(boxed, -1.0, 1.0))
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        regressors, scores = regressors[keep], scores[keep]
        centres = self.anchors[keep] * self.size  # detector pixels
        box_centre = centres + regressors[:, 0:2]
        half = regressors[:, 2:4] / 2
        boxes = np.concatenate([box_centre - half, box_centre + half], axis=1)
        keypoints = centres[:, None, :] + regressors[:, 4:16].reshape(-1, 6, 2)
        faces = []
        for box, points, score in weighted_nms(boxes, keypoints, scores, self.iou_threshold):
            box = ((box.reshape(2, 2) - offset) / scale).ravel().astype(np.float32)
            faces.append(Detection(box, ((points - offset) / scale).astype(np.float32),
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

    @staticmethod
    def tensor(crop_bgr):
        """The network input of a (192, 192, 3) uint8 BGR crop: (1, 192, 192, 3) float32 RGB
        in [0, 1]."""
        return rgb_tensor(_check_bgr(crop_bgr, FACE_MESH_SIZE), 0.0, 1.0)

    def raw(self, tensor):
        """(1, 192, 192, 3) float32 RGB in [0, 1] -> (landmarks (468, 3), presence logit)."""
        landmarks, logit = self.session.run(None, {self.input_name: tensor})
        return landmarks.reshape(NUM_FACE_MESH_LANDMARKS, 3), float(logit.ravel()[0])

    @staticmethod
    def presence(logit: float) -> float:
        """The face-presence probability of the network's logit."""
        return float(1.0 / (1.0 + np.exp(-logit)))

    def __call__(self, crop_bgr):
        """Landmarks on a (192, 192, 3) uint8 BGR crop.

        Returns
        -------
        landmarks : (468, 3) float32 -- x, y in crop pixels (corner origin); z in the same
            pixel scale, relative depth (smaller = nearer the camera), not metric
        presence : float -- probability that the crop contains a face
        """
        landmarks, logit = self.raw(self.tensor(crop_bgr))
        return landmarks, self.presence(logit)


class IrisLandmarks:
    """MediaPipe's iris/eye-contour network on a 64x64 eye crop (trained on left eyes).

    MediaPipe crops each eye as a square of 2.3x the eye-corner distance, centred between the
    corners and rotated with the face (face-mesh landmarks 33/133: subject's right eye,
    362/263: subject's left eye). Its 478-point refined mesh appends the 5 iris points of the
    subject's right eye (468-472) and then of the left eye (473-477), going by the iris
    connections in MediaPipe's ``face_mesh_connections`` (not checked against the refined
    model here).
    """

    def __init__(self, model_path=None, threads=1):
        self.session = load_session(model_path or MODELS_DIR / IRIS_FILE, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.batch_of_one = self.session.get_inputs()[0].shape[0] == 1
        #: False for the pruned model (`IRIS_ONLY_FILE`): iris points only, no eye contour
        self.has_contour = CONTOUR_OUTPUT in {o.name for o in self.session.get_outputs()}

    @staticmethod
    def tensor(crop_bgr, is_right_eye: bool):
        """The network input of a (64, 64, 3) uint8 BGR eye crop: (1, 64, 64, 3) float32 RGB
        in [0, 1], mirrored for the subject's right eye."""
        crop_bgr = _check_bgr(crop_bgr, IRIS_SIZE)
        return rgb_tensor(cv2.flip(crop_bgr, 1) if is_right_eye else crop_bgr, 0.0, 1.0)

    @staticmethod
    def unflip(points, is_right_eye: bool):
        """Points (N, 3) the network found in a `tensor` -> points in the eye crop (in place)."""
        if is_right_eye:
            points[:, 0] = IRIS_SIZE - points[:, 0]
        return points

    def raw(self, tensor):
        """(1, 64, 64, 3) float32 RGB in [0, 1] -> (contour (71, 3), iris (5, 3))."""
        contour, iris = self.raw_eyes(tensor)
        return contour[0], iris[0]

    def raw_eyes(self, tensors):
        """(N, 64, 64, 3) float32 RGB in [0, 1], N eyes in one call (cheaper than N calls) ->
        (contour (N, 71, 3), iris (N, 5, 3))."""
        if not self.has_contour:
            raise LandmarkError("this iris model has no eye-contour output (the pruned "
                                f"{IRIS_ONLY_FILE}): use raw_iris")
        contour, iris = self._run(tensors, [CONTOUR_OUTPUT, IRIS_OUTPUT])
        return (contour.reshape(-1, NUM_EYE_CONTOUR_LANDMARKS, 3),
                iris.reshape(-1, NUM_IRIS_LANDMARKS, 3))

    def raw_iris(self, tensors):
        """(N, 64, 64, 3) float32 RGB in [0, 1] -> iris (N, 5, 3) only: with the pruned model
        (`IRIS_ONLY_FILE`) the network skips its eye-contour head (12 % less time)."""
        return self._run(tensors, [IRIS_OUTPUT])[0].reshape(-1, NUM_IRIS_LANDMARKS, 3)

    def _run(self, tensors, names):
        """The outputs `names` for a batch of eyes; a model built before the batch dimension
        was made symbolic (input batch fixed at 1) runs them one by one."""
        if self.batch_of_one and len(tensors) != 1:
            outputs = [self.session.run(names, {self.input_name: tensors[i:i + 1]})
                       for i in range(len(tensors))]
            return [np.concatenate(column) for column in zip(*outputs)]
        return self.session.run(names, {self.input_name: tensors})

    def __call__(self, crop_bgr, is_right_eye: bool):
        """Eye landmarks on a (64, 64, 3) uint8 BGR eye crop.

        ``is_right_eye`` is the subject's right eye (image left in a non-mirrored frame); the
        crop is flipped for the network and the points flipped back.

        Returns
        -------
        contour : (71, 3) float32 -- eye contour and brow, x, y in crop pixels, z relative
        iris : (5, 3) float32 -- iris centre then 4 boundary points, same frame
        """
        contour, iris = self.raw(self.tensor(crop_bgr, is_right_eye))
        return self.unflip(contour, is_right_eye), self.unflip(iris, is_right_eye)
