"""Pinhole cameras in OpenCV axes (x right, y down, z forward), pixels, top-left corner origin.

A camera maps model-space points X (cm) to camera space ``R X + T`` and then to pixels
``(f x / z + cx, f y / z + cy)``. The monocular default (`Camera.monocular`) keeps the world
equal to model space and looks at the face from the front: ``R = MODEL_TO_OPENCV``, ``T = 0``;
the root translation of theta then places the head (model z negative = away from the camera).
The multi-camera offline fitter keeps (R, T) per camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .conventions import MODEL_TO_OPENCV
from .errors import SolverError


@dataclass(frozen=True)
class Camera:
    """Pinhole camera.

    focal : focal length in pixels; width, height : image size in pixels;
    principal_point : (2,) pixels, the image centre unless given;
    rotation : (3, 3) world (model) to camera; translation : (3,) cm.
    """

    focal: float
    width: int
    height: int
    principal_point: np.ndarray | None = None
    rotation: np.ndarray = field(default_factory=lambda: MODEL_TO_OPENCV.copy())
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self):
        if not (np.isfinite(self.focal) and self.focal > 0):
            raise SolverError(f"camera focal length must be finite and positive, got {self.focal}")
        if self.width <= 0 or self.height <= 0:
            raise SolverError(f"camera image size must be positive, got {self.width}x{self.height}")
        rotation = np.asarray(self.rotation, dtype=np.float64)
        if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6):
            raise SolverError("camera rotation must be a (3, 3) rotation matrix")
        centre = (np.array([self.width, self.height], dtype=np.float64) / 2.0
                  if self.principal_point is None
                  else np.asarray(self.principal_point, dtype=np.float64).reshape(2))
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation",
                           np.asarray(self.translation, dtype=np.float64).reshape(3))
        object.__setattr__(self, "principal_point", centre)
        object.__setattr__(self, "focal", float(self.focal))

    @classmethod
    def monocular(cls, focal: float, width: int, height: int) -> "Camera":
        """The single-camera set-up: world = model space, the camera faces the model's front."""
        return cls(focal=focal, width=width, height=height)

    def with_focal(self, focal: float) -> "Camera":
        return replace(self, focal=float(focal))

    def project(self, points: np.ndarray) -> np.ndarray:
        """points : (n, 3) model space, cm -> (n, 2) pixels."""
        return self.project_with_jacobian(points)[0]

    def project_with_jacobian(self, points: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixels (n, 2), d pixels / d points (n, 2, 3) and d pixels / d focal (n, 2)."""
        cam = np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation
        z = cam[:, 2:3]
        normalised = cam[:, :2] / z
        pixels = self.focal * normalised + self.principal_point
        d_cam = np.zeros((len(cam), 2, 3))
        d_cam[:, 0, 0] = d_cam[:, 1, 1] = self.focal / z[:, 0]
        d_cam[:, :, 2] = -self.focal * normalised / z
        return pixels, d_cam @ self.rotation, normalised
