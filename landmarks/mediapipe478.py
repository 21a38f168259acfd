"""MediaPipe's 478 landmarks from the converted networks: the 468-point face mesh on the
aligned face crop, then the iris network on an eye crop around each eye's corners.

The order is that of MediaPipe's 478-landmark model (and of the ICT embedding
`landmarks/data/mediapipe478_embedding.npz`): 0-467 the face mesh, 468-472 the subject's
right iris (centre, then 4 rim points), 473-477 the left iris.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import onnx_models
from .roi import CropLayout, RoiTransform, crop
from .stopwatch import NO_LAPS

NUM_LANDMARKS = 478
#: Eye-corner landmarks (outer, inner) of the subject's right and left eye.
EYE_CORNERS = ((33, 133), (362, 263))
#: Side of an eye crop, in eye-corner distances (MediaPipe's iris pipeline).
EYE_CROP_SCALE = 2.3
#: Landmarks whose means are the eye and mouth centres that place the next frame's crop.
RIGHT_EYE_IDS, LEFT_EYE_IDS, MOUTH_IDS = (33, 133), (362, 263), (13, 14)
#: Where MediaPipe's face mesh expects the face in its 192 px crop (measured on renders of
#: the ICT head with MediaPipe's own landmarks-to-ROI rule: tools/build_correspondence.py).
CROP_LAYOUT = CropLayout(eye_distance=0.27, eye_y=0.38, mouth_y=0.655)
CROP_SIZE = onnx_models.FACE_MESH_SIZE


class MediaPipe478:
    """468 face-mesh + 10 iris landmarks of the face in an aligned crop.

    Parameters
    ----------
    models_dir : folder with face_landmark.onnx and iris_landmark.onnx, or its pruned
        iris_landmark_iris_only.onnx (used when present; default: assets/models)
    threads : onnxruntime intra-op threads (1: single-threaded)
    """

    def __init__(self, models_dir: Path | str | None = None, threads: int = 1):
        folder = Path(models_dir) if models_dir else onnx_models.MODELS_DIR
        self._mesh = onnx_models.FaceMesh(folder / "face_landmark.onnx", threads)
        iris_only = folder / onnx_models.IRIS_ONLY_FILE
        self._iris = onnx_models.IrisLandmarks(
            iris_only if iris_only.is_file() else folder / onnx_models.IRIS_FILE, threads)
        #: per-stage timing for the benches (`stopwatch.Stopwatch`); off by default
        self.laps = NO_LAPS

    def __call__(self, image_bgr: np.ndarray, roi: RoiTransform) -> tuple[np.ndarray, float]:
        """Landmarks of the face that `roi` frames.

        image_bgr : (H, W, 3) uint8; roi : image -> CROP_SIZE crop.
        Returns mu (478, 2) float64 in image pixels and the face-presence probability.
        Stages (`laps`): face_crop, face_net, eye_crops, iris_net (both eyes in one call),
        iris_map.
        """
        laps = self.laps
        tensor = self._mesh.tensor(crop(image_bgr, roi))
        laps.lap("face_crop")
        face, logit = self._mesh.raw(tensor)
        laps.lap("face_net")
        points = roi.to_image(face[:, :2].astype(np.float64))
        eyes = [self._eye_crop(image_bgr, points[list(corners)], is_right_eye)
                for is_right_eye, corners in zip((True, False), EYE_CORNERS)]
        laps.lap("eye_crops")
        found = self._iris.raw_iris(np.concatenate([tensor for tensor, _ in eyes]))
        laps.lap("iris_net")
        irises = []
        for is_right_eye, (_, eye_roi), iris in zip((True, False), eyes, found):
            iris = self._iris.unflip(iris, is_right_eye)
            if is_right_eye:
                # The iris network sees the right eye mirrored; MediaPipe's 478 model numbers
                # its rim points as seen in the image (measured against it: without this swap
                # 469 and 471 are 8 px apart, with it < 2.5 px).
                iris = iris[[0, 3, 2, 1, 4]]
            irises.append(eye_roi.to_image(iris[:, :2]))
        mu = np.vstack([points, *irises])
        laps.lap("iris_map")
        return mu, self._mesh.presence(logit)

    def _eye_crop(self, image_bgr: np.ndarray, corners: np.ndarray, is_right_eye: bool
                  ) -> tuple[np.ndarray, RoiTransform]:
        """The iris network's input for the eye with `corners` (2, 2) (image pixels) and the
        transform image -> eye crop (MediaPipe's: 2.3 corner distances, rotated with the
        eye line)."""
        first, second = corners
        eye, matrix = onnx_models.warp_square(
            image_bgr, (first + second) / 2.0,
            max(EYE_CROP_SCALE * float(np.linalg.norm(second - first)), 1.0),
            onnx_models.IRIS_SIZE,
            angle=float(np.arctan2(second[1] - first[1], second[0] - first[0])))
        return (self._iris.tensor(eye, is_right_eye),
                RoiTransform(matrix, onnx_models.IRIS_SIZE))
