"""Our own dense landmark networks (paper, section 3.1) at run time, through onnxruntime.

A network trained by `training/` (MobileNetV2, synthetic renders of the ICT head, GNLL
loss) sees an upright face crop and predicts, per landmark of a dense set (`dense320`,
`dense703`; embeddings in `data/`), a 2D Gaussian: x, y normalised from [0, S] to [-1, 1]
over the S px crop, and log sigma in the same normalised units. This module owns what
training and run time must agree on, and nothing of torch:

- the crop geometry: `CROP_LAYOUT` (where the eye and mouth centres sit in the crop; a run
  may train with the face zoomed from it, and the export stores the layout, which the front
  end then crops at: `DenseLandmarks.layout`) and the iBUG indices whose means are those
  centres (`RIGHT_EYE_IDS`, `LEFT_EYE_IDS`, `MOUTH_IDS`; the first 68 landmarks of every
  dense set are iBUG-68). `training/synthetic.py` places its renders with these, the
  tracker places its crops with them (`crop_transform`);
- the output coding: `to_normalised` (labels, training) and `decode` (outputs, both);
- `DenseLandmarks`: an ONNX file -> mu (L, 2) and sigma (L,) in image pixels for the face a
  `roi.RoiTransform` frames. sigma is the network's own, exp(log sigma) scaled to pixels,
  with no hand-made model on top (compare `sigma.py`, used for MediaPipe).

The ONNX files are build outputs, not code: `training/export.py` writes them (metadata
`landmark_set`, `input_size`, `crop_layout`); the trained networks are committed as
`training/models/<set>.onnx` (fp16 weights), and `make models` builds their int8 versions
into `assets/models/<set>.onnx`, where the front end looks (`tools/quantize_network.py`:
the crop and its mirror in 0.7 instead of 1.1 ms; any float export there runs as well).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LandmarkError
from .roi import (CropLayout, RoiTransform, crop, landmarks_to_image,
                  transform_from_landmarks)

#: The dense landmark sets a network can predict (landmarks/data/<set>_embedding.npz).
LANDMARK_SETS = ("dense320", "dense703")
#: Where the dense networks see the face: more of the head than MediaPipe's crop, since the
#: dense sets cover the ears, neck and back of the head.
CROP_LAYOUT = CropLayout(eye_distance=0.25, eye_y=0.42, mouth_y=0.71)
#: iBUG indices (the first 68 landmarks of every dense set) whose means are the subject's
#: right eye, left eye and mouth centres that place a crop.
RIGHT_EYE_IDS = tuple(range(36, 42))
LEFT_EYE_IDS = tuple(range(42, 48))
MOUTH_IDS = tuple(range(48, 60))
NUM_IBUG = 68


def models_dir() -> Path:
    """The folder the build puts networks in (`assets/models`)."""
    return Path(__file__).resolve().parents[1] / "assets" / "models"


def model_path(landmark_set: str) -> Path:
    """Default ONNX file of `landmark_set`'s network: assets/models/<set>.onnx."""
    _check_set(landmark_set)
    return models_dir() / f"{landmark_set}.onnx"


def make_command(landmark_set: str) -> str:
    """How `landmark_set`'s network gets to its default path: `make models` (the committed
    network, quantized), or the commands that train and export one (dev-only: training
    needs PyTorch, see training/README.md)."""
    _check_set(landmark_set)
    run = f"build/training/{landmark_set}"
    return (f"`make models`, or train one: `python -m densecap.training.train --run {run} "
            f"--landmark-set {landmark_set} && python -m densecap.training.export --run {run} "
            f"--out assets/models/{landmark_set}.onnx`")


def _check_set(landmark_set: str) -> None:
    if landmark_set not in LANDMARK_SETS:
        raise LandmarkError(f"unknown dense landmark set {landmark_set!r} (use one of "
                            f"{', '.join(LANDMARK_SETS)})")


def crop_transform(points: np.ndarray, size: int, use_mouth: bool = True,
                   layout: CropLayout = CROP_LAYOUT) -> RoiTransform:
    """The crop a dense network sees of the face whose iBUG-68 points are `points`.

    points : (L >= 68, 2) image pixels, iBUG-68 first (a dense set's landmarks, or labels);
    size : crop side in px; use_mouth : place the mouth centre too (least squares with the
    eyes), else the eyes exactly; layout : the network's (`DenseLandmarks.layout`; training:
    `CROP_LAYOUT` zoomed by the run's `crop_zoom`). Training renders its crops with this, the
    tracker follows the face with it (`roi.RoiTracker` with the same ids and layout).
    """
    return transform_from_landmarks(points, RIGHT_EYE_IDS, LEFT_EYE_IDS, size,
                                    MOUTH_IDS if use_mouth else None, layout)


def to_normalised(points, size: int):
    """Crop pixels (..., 2) -> [-1, 1] (corner origin: 0 -> -1, size -> 1); numpy or torch."""
    return points * (2.0 / size) - 1.0


def decode(output: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Network output (..., L, 3) -> mu (..., L, 2) crop pixels, sigma (..., L) crop pixels."""
    output = np.asarray(output, dtype=np.float64)
    return (output[..., :2] + 1.0) * (size / 2.0), np.exp(output[..., 2]) * (size / 2.0)


def read_metadata(metadata: dict[str, str]) -> tuple[str, int, CropLayout]:
    """(landmark set, crop size, crop layout) from an exported network's metadata map
    (`training/export.py`); LandmarkError when an entry is missing or malformed."""
    try:
        return (metadata["landmark_set"], int(metadata["input_size"]),
                CropLayout(*json.loads(metadata["crop_layout"])))
    except (KeyError, ValueError, TypeError) as exc:
        raise LandmarkError(f"not a dense landmark network export (metadata landmark_set, "
                            f"input_size, crop_layout): {exc}") from None


def layout_metadata(layout: CropLayout = CROP_LAYOUT) -> str:
    """The `crop_layout` metadata entry of an exported network (JSON list of 3 floats)."""
    return json.dumps([layout.eye_distance, layout.eye_y, layout.mouth_y])


class DenseLandmarks:
    """A dense landmark network (ONNX) on aligned face crops.

    Parameters
    ----------
    path : the ONNX file (made by training/export.py). Missing: LandmarkError with the
        command that makes it.
    threads : onnxruntime intra-op threads (1: single-threaded)
    landmark_set : expected set (None: whatever the file says it predicts)

    Attributes: `landmark_set`, `size` (crop side in px), `num_landmarks`, `layout` (the
    `CropLayout` it was trained on: where its crops must put the face).
    """

    def __init__(self, path: Path | str, threads: int = 1, landmark_set: str | None = None):
        from .onnx_models import load_session   # onnxruntime, loaded only when used
        path = Path(path)
        expected = landmark_set or path.stem
        if not path.is_file():
            hint = (f"make it with {make_command(expected)}" if expected in LANDMARK_SETS
                    else "make it with `python -m densecap.training.export`")
            raise LandmarkError(f"dense landmark network {path} not found (a build output, "
                                f"not shipped): {hint}")
        self.path = path
        self._session = load_session(path, threads)
        try:
            self.landmark_set, self.size, layout = read_metadata(
                self._session.get_modelmeta().custom_metadata_map)
        except LandmarkError as exc:
            raise LandmarkError(f"{path}: {exc}") from None
        if landmark_set is not None and self.landmark_set != landmark_set:
            raise LandmarkError(f"{path} predicts {self.landmark_set!r}, not {landmark_set!r}")
        _check_set(self.landmark_set)
        if not (0.0 < layout.eye_distance < 1.0 and 0.0 < layout.eye_y < layout.mouth_y < 1.0):
            raise LandmarkError(f"{path} has a crop layout with the face off its crop: {layout}")
        self.layout = layout
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        self._input = inputs[0].name
        self.num_landmarks = int(outputs[0].shape[1])
        if list(inputs[0].shape[1:]) != [3, self.size, self.size] or outputs[0].shape[2] != 3:
            raise LandmarkError(f"{path}: input {inputs[0].shape} / output {outputs[0].shape} "
                                f"do not match a {self.size} px dense landmark network")

    def raw(self, crops_bgr: np.ndarray, mirrored: bool = False) -> np.ndarray:
        """Crops (n, S, S, 3) uint8 BGR -> raw outputs (n, L, 3) float32 (x, y in [-1, 1],
        log sigma); mirrored: then (2n, L, 3), the crops flipped left to right after them
        (one network call)."""
        crops_bgr = np.asarray(crops_bgr)
        if crops_bgr.dtype != np.uint8 or crops_bgr.shape[1:] != (self.size, self.size, 3):
            raise LandmarkError(f"expected (n, {self.size}, {self.size}, 3) uint8 BGR crops, "
                                f"got {crops_bgr.dtype} {crops_bgr.shape}")
        count = len(crops_bgr)
        tensor = np.empty((2 * count if mirrored else count, 3, self.size, self.size),
                          np.float32)
        tensor[:count] = crops_bgr.transpose(0, 3, 1, 2)
        if mirrored:
            tensor[count:] = tensor[:count, :, :, ::-1]
        return self._session.run(None, {self._input: tensor})[0]

    def in_crop(self, crop_bgr: np.ndarray, mirror: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """One crop (S, S, 3) uint8 -> mu (L, 2), sigma (L,) float64 in crop pixels.

        mirror : (L,) int, each landmark's mirror image across the face's plane of symmetry
        (-1: none), or None. Given, the network also sees the crop flipped left to right (one
        batch of two) and each landmark is the mean of its own prediction and its mirror's
        prediction in the flipped crop, flipped back (test-time augmentation: about twice
        the network time; landmarks without a mirror keep the first prediction). Sigma is
        the mean of the two: the two predictions are far from independent, so averaging
        them does not shrink the uncertainty by sqrt(2).
        """
        mu, sigma = self.in_crops(np.asarray(crop_bgr)[None], mirror)
        return mu[0], sigma[0]

    def in_crops(self, crops_bgr: np.ndarray, mirror: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """`in_crop` for n crops (n, S, S, 3) uint8 in one network call (2n with `mirror`)
        -> mu (n, L, 2), sigma (n, L) float64 in crop pixels."""
        crops_bgr = np.asarray(crops_bgr)
        if mirror is None:
            return decode(self.raw(crops_bgr), self.size)
        mirror = np.asarray(mirror)
        if mirror.shape != (self.num_landmarks,):
            raise LandmarkError(f"mirror must be ({self.num_landmarks},) landmark indices, "
                                f"got shape {mirror.shape}")
        count = len(crops_bgr)
        mu, sigma = decode(self.raw(crops_bgr, mirrored=True), self.size)
        mu, mu_flipped, sigma, sigma_flipped = mu[:count], mu[count:], sigma[:count], sigma[count:]
        paired = mirror >= 0
        back = mu_flipped[:, mirror[paired]]
        back[..., 0] = self.size - back[..., 0]        # corner origin: x -> S - x
        mu[:, paired] = 0.5 * (mu[:, paired] + back)
        sigma[:, paired] = 0.5 * (sigma[:, paired] + sigma_flipped[:, mirror[paired]])
        return mu, sigma

    def __call__(self, image_bgr: np.ndarray, roi: RoiTransform,
                 mirror: np.ndarray | None = None, zooms: tuple[float, ...] = (1.0,)
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks of the face `roi` frames (an image -> `size` px crop at `layout`);
        mirror : as `in_crop`; zooms : the network reads one crop per zoom, `roi` scaled
        about the crop centre by that factor (> 1: the face larger in the crop), and mu and
        sigma are the means over the crops in image pixels (test-time augmentation: offline
        mode's `OFFLINE_VIEWS`; all crops in one network call).

        image_bgr : (H, W, 3) uint8. Returns mu (L, 2) and sigma (L,) float64, image pixels.
        """
        image_bgr = np.asarray(image_bgr)
        if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 \
                or 0 in image_bgr.shape:
            raise LandmarkError(f"expected an (H, W, 3) uint8 BGR image, got {image_bgr.dtype} "
                                f"{image_bgr.shape}")
        if roi.size != self.size:
            raise LandmarkError(f"the ROI crops {roi.size} px, the network takes {self.size} px")
        if not zooms or min(zooms) <= 0.0:
            raise LandmarkError(f"zooms must be positive factors, got {zooms}")
        views = [zoomed(roi, zoom) for zoom in zooms]
        mu, sigma = self.in_crops(np.stack([crop(image_bgr, view) for view in views]), mirror)
        if len(views) == 1:          # real time: one crop, nothing to average
            return landmarks_to_image(mu[0], sigma[0], views[0])
        mu, sigma = zip(*(landmarks_to_image(m, s, view) for m, s, view in zip(mu, sigma, views)))
        return np.mean(mu, axis=0), np.mean(sigma, axis=0)


@dataclass(frozen=True)
class CropViews:
    """How the front end reads a face (`DenseLandmarks.__call__`): `mirror`, each crop also
    flipped left to right; `zooms`, one crop per factor about the crop centre; all crops in
    one network call (2 x len(zooms) with the mirror), their landmarks averaged."""
    mirror: bool = False
    zooms: tuple[float, ...] = (1.0,)


#: One crop: the paper's real-time front end (and the detector frames' first look).
SINGLE_VIEW = CropViews()
#: Real time: the crop and its mirror image (a batch of two; measured on the devset in
#: training/README.md, "Mirrored crops in real time").
REALTIME_VIEWS = CropViews(mirror=True)
#: Offline mode: mirrored, at three zooms (six crops; training/README.md, run 25).
OFFLINE_VIEWS = CropViews(mirror=True, zooms=(0.93, 1.0, 1.07))


def zoomed(roi: RoiTransform, zoom: float) -> RoiTransform:
    """`roi` scaled by `zoom` about the crop's centre (the same crop side)."""
    if zoom == 1.0:
        return roi
    centre = roi.size / 2.0
    matrix = roi.matrix * zoom
    matrix[:, 2] += centre * (1.0 - zoom)
    return RoiTransform(matrix, roi.size)
