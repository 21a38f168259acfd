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
    models_dir : folder with face_landmark.onnx and iris_landmark.onnx (default: assets/models)
    threads : onnxruntime intra-op threads (1: single-threaded)
    """

    def __init__(self, models_dir: Path | str | None = None, threads: int = 1):
        folder = Path(models_dir) if models_dir else onnx_models.MODELS_DIR
        self._mesh = onnx_models.FaceMesh(folder / "face_landmark.onnx", threads)
        self._iris = onnx_models.IrisLandmarks(folder / "iris_landmark.onnx", threads)

    def __call__(self, image_bgr: np.ndarray, roi: RoiTransform) -> tuple[np.ndarray, float]:
        """Landmarks of the face that `roi` frames.

        image_bgr : (H, W, 3) uint8; roi : image -> CROP_SIZE crop.
        Returns mu (478, 2) float64 in image pixels and the face-presence probability.
        """
        face, presence = self._mesh(crop(image_bgr, roi))
        points = roi.to_image(face[:, :2].astype(np.float64))
        irises = []
        for is_right_eye, corners in zip((True, False), EYE_CORNERS):
            first, second = points[list(corners)]
            eye, matrix = onnx_models.warp_square(
                image_bgr, (first + second) / 2.0,
                max(EYE_CROP_SCALE * float(np.linalg.norm(second - first)), 1.0),
                onnx_models.IRIS_SIZE,
                angle=float(np.arctan2(second[1] - first[1], second[0] - first[0])))
            _, iris = self._iris(eye, is_right_eye=is_right_eye)
            if is_right_eye:
                # The iris network sees the right eye mirrored; MediaPipe's 478 model numbers
                # its rim points as seen in the image (measured against it: without this swap
                # 469 and 471 are 8 px apart, with it < 2.5 px).
                iris = iris[[0, 3, 2, 1, 4]]
            irises.append(RoiTransform(matrix, onnx_models.IRIS_SIZE).to_image(iris[:, :2]))
        return np.vstack([points, *irises]), presence
