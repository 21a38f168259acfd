"""Viewport drawing of Live Preview: the camera image and its landmarks in a corner of every
3D viewport (a `gpu` draw handler). Nothing is drawn or registered in background mode."""

from __future__ import annotations

import bpy
import cv2
import numpy as np

#: Width of the drawn camera image in pixels (the image is scaled down once per frame).
IMAGE_WIDTH = 320
MARGIN = 20


class LiveOverlay:
    """Holds the newest camera image (RGBA float, flipped for OpenGL) and landmarks, and
    draws them while shown."""

    def __init__(self):
        self._handle = None
        self._texture = None
        self.image: np.ndarray | None = None        # (h, w, 4) float32, bottom row first
        self.points: np.ndarray | None = None       # (L, 2) in overlay pixels

    def show(self) -> None:
        if self._handle is None and not bpy.app.background:
            self._handle = bpy.types.SpaceView3D.draw_handler_add(self._draw, (), 'WINDOW',
                                                                  'POST_PIXEL')

    def hide(self) -> None:
        if self._handle is not None:
            bpy.types.SpaceView3D.draw_handler_remove(self._handle, 'WINDOW')
            self._handle = None
        self._texture = None

    @property
    def shown(self) -> bool:
        return self._handle is not None

    def update(self, image: np.ndarray, landmarks: np.ndarray | None) -> None:
        """image (H, W, 3) uint8 BGR; landmarks (L, 2) image pixels or None."""
        scale = IMAGE_WIDTH / image.shape[1]
        small = cv2.resize(image, (IMAGE_WIDTH, max(1, int(round(image.shape[0] * scale)))),
                           interpolation=cv2.INTER_AREA)
        rgba = np.empty(small.shape[:2] + (4,), np.float32)
        rgba[..., :3] = small[::-1, :, ::-1] / 255.0
        rgba[..., 3] = 1.0
        self.image = rgba
        self._texture = None
        self.points = None
        if landmarks is not None:
            points = np.asarray(landmarks, dtype=np.float64) * scale
            points[:, 1] = rgba.shape[0] - points[:, 1]
            self.points = points[np.isfinite(points).all(axis=1)].astype(np.float32)

    def _draw(self) -> None:
        import gpu
        from gpu_extras.batch import batch_for_shader
        if self.image is None:
            return
        height, width = self.image.shape[:2]
        if self._texture is None:
            buffer = gpu.types.Buffer('FLOAT', self.image.size, self.image.ravel())
            self._texture = gpu.types.GPUTexture((width, height), format='RGBA16F', data=buffer)
        x, y = MARGIN, MARGIN
        shader = gpu.shader.from_builtin('IMAGE')
        batch = batch_for_shader(shader, 'TRI_STRIP', {       # TRI_FAN is gone in 5.x
            "pos": ((x, y), (x + width, y), (x, y + height), (x + width, y + height)),
            "texCoord": ((0, 0), (1, 0), (0, 1), (1, 1))})
        shader.bind()
        shader.uniform_sampler("image", self._texture)
        batch.draw(shader)
        if self.points is not None and len(self.points):
            points = self.points + np.array([x, y], np.float32)
            point_shader = gpu.shader.from_builtin('UNIFORM_COLOR')
            gpu.state.point_size_set(2.0)
            point_batch = batch_for_shader(point_shader, 'POINTS', {"pos": points.tolist()})
            point_shader.bind()
            point_shader.uniform_float("color", (0.2, 1.0, 0.3, 1.0))
            point_batch.draw(point_shader)
            gpu.state.point_size_set(1.0)
