"""Z-buffered triangle rasterisation on the CPU (numba): triangle-id, barycentric and
depth buffers of a mesh seen by a pinhole camera.

Conventions (solver/conventions.py): camera space is OpenCV (x right, y down, z forward,
same length unit as the mesh); image coordinates are pixels with the origin at the
top-left corner of the top-left pixel, so pixel (row i, column j) is sampled at its centre
(j + 0.5, i + 0.5). Coverage follows the top-left fill rule, so a pixel centre on an edge
shared by two triangles belongs to exactly one of them. Barycentrics are perspective
correct: sum_k b_k P_k of the hit triangle's camera-space corners P_k lies on the ray
through the pixel centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

#: Triangles with a corner nearer than this (camera z, mesh units) are not drawn.
DEFAULT_NEAR = 1e-3


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera without distortion.

    focal : float, focal length in pixels (square pixels)
    principal_point : (2,) float, (cx, cy) in pixels
    width, height : int, image size in pixels
    """

    focal: float
    principal_point: tuple[float, float]
    width: int
    height: int

    def __post_init__(self):
        if not (np.isfinite(self.focal) and self.focal > 0):
            raise ValueError(f"focal length must be positive and finite, got {self.focal}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def centred(cls, focal: float, size: int) -> "PinholeCamera":
        """A square `size` x `size` image with the principal point at its centre."""
        return cls(float(focal), (size / 2.0, size / 2.0), int(size), int(size))

    def project(self, points: np.ndarray) -> np.ndarray:
        """Camera-space points (..., 3) -> pixel coordinates (..., 2) float64."""
        points = np.asarray(points, dtype=np.float64)
        cx, cy = self.principal_point
        return np.stack([self.focal * points[..., 0] / points[..., 2] + cx,
                         self.focal * points[..., 1] / points[..., 2] + cy], -1)


@dataclass(frozen=True)
class RasterBuffers:
    """What each pixel sees.

    triangle_id : (H, W) int32, index into the rasterised triangles, -1 for background
    barycentric : (H, W, 3) float32, perspective-correct weights of the triangle's corners
        (zeros on background)
    depth : (H, W) float32, camera z of the visible surface, +inf on background
    """

    triangle_id: np.ndarray
    barycentric: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where a triangle is visible."""
        return self.triangle_id >= 0


def rasterize(points: np.ndarray, triangles: np.ndarray, camera: PinholeCamera,
              cull_back: np.ndarray | None = None, near: float = DEFAULT_NEAR) -> RasterBuffers:
    """Rasterise triangles with a z-buffer.

    Parameters
    ----------
    points : (N, 3) float, camera-space vertex positions (OpenCV axes)
    triangles : (T, 3) int, vertex indices; a triangle is front facing when its
        right-hand normal (P1 - P0) x (P2 - P0) points towards the camera
    camera : PinholeCamera
    cull_back : (T,) bool or None, per triangle: skip it when it faces away from the camera.
        Use it for closed parts (eyeballs); None draws every triangle two-sided. The
        z-buffer hides whatever lies behind the nearest surface either way.
    near : float, triangles with any corner at z < near are skipped

    Returns
    -------
    RasterBuffers
    """
    points = np.asarray(points, dtype=np.float64)
    triangles = np.asarray(triangles)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {points.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.dtype.kind not in "iu":
        raise ValueError(f"triangles must be (T, 3) integers, got {triangles.shape} {triangles.dtype}")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(points)):
        raise ValueError("triangles index outside the points")
    if not np.all(np.isfinite(points)):
        raise ValueError("points hold non-finite values")
    if cull_back is None:
        cull_back = np.zeros(len(triangles), dtype=np.bool_)
    cull_back = np.asarray(cull_back, dtype=np.bool_)
    if cull_back.shape != (len(triangles),):
        raise ValueError(f"cull_back must be ({len(triangles)},), got {cull_back.shape}")
    cx, cy = camera.principal_point
    triangle_id = np.full((camera.height, camera.width), -1, dtype=np.int32)
    barycentric = np.zeros((camera.height, camera.width, 3), dtype=np.float32)
    depth = np.full((camera.height, camera.width), np.inf, dtype=np.float32)
    _rasterize_kernel(points, triangles.astype(np.int32, copy=False), cull_back,
                      float(camera.focal), float(cx), float(cy), float(near),
                      triangle_id, barycentric, depth)
    return RasterBuffers(triangle_id, barycentric, depth)


@numba.njit(cache=True, inline="always")
def _covers(w: float, ex: float, ey: float) -> bool:
    """Top-left fill rule for an edge function value `w` of an edge with direction
    (ex, ey) in a triangle wound so that inside is w > 0 (image y down)."""
    if w > 0.0:
        return True
    if w < 0.0:
        return False
    # On the edge: keep top edges (horizontal, interior below) and left edges.
    return (ey == 0.0 and ex > 0.0) or ey < 0.0


@numba.njit(cache=True, nogil=True)
def _rasterize_kernel(points, triangles, cull_back, focal, cx, cy, near,
                      triangle_id, barycentric, depth):
    height, width = triangle_id.shape
    inv_depth = np.zeros((height, width), dtype=np.float64)  # 1/z of the nearest hit
    n = points.shape[0]
    screen = np.empty((n, 2))
    for v in range(n):
        z = points[v, 2]
        if z > 0.0:
            screen[v, 0] = focal * points[v, 0] / z + cx
            screen[v, 1] = focal * points[v, 1] / z + cy
        else:
            screen[v, 0] = 0.0
            screen[v, 1] = 0.0
    for t in range(triangles.shape[0]):
        i0, i1, i2 = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        z0, z1, z2 = points[i0, 2], points[i1, 2], points[i2, 2]
        if z0 < near or z1 < near or z2 < near:
            continue
        x0, y0 = screen[i0, 0], screen[i0, 1]
        x1, y1 = screen[i1, 0], screen[i1, 1]
        x2, y2 = screen[i2, 0], screen[i2, 1]
        # Twice the signed screen area: > 0 when the right-hand normal
        # (P1 - P0) x (P2 - P0) points away from the camera (a back face).
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or (area > 0.0 and cull_back[t]):
            continue
        if area < 0.0:
            # Swap two corners so the edge functions are positive inside.
            i1, i2 = i2, i1
            z1, z2 = z2, z1
            x1, y1, x2, y2 = x2, y2, x1, y1
            area = -area
            swapped = True
        else:
            swapped = False
        # Pixels whose centres (col + 0.5, row + 0.5) lie in the bounding box.
        # (Clamped as floats first: corners near the camera plane project far away.)
        col0 = int(np.ceil(max(min(x0, x1, x2) - 0.5, 0.0)))
        col1 = int(np.floor(min(max(x0, x1, x2) - 0.5, width - 1.0)))
        row0 = int(np.ceil(max(min(y0, y1, y2) - 0.5, 0.0)))
        row1 = int(np.floor(min(max(y0, y1, y2) - 0.5, height - 1.0)))
        if col0 > col1 or row0 > row1:
            continue
        inv_area = 1.0 / area
        iz0, iz1, iz2 = 1.0 / z0, 1.0 / z1, 1.0 / z2
        # Edge k is opposite corner k; its function is > 0 inside.
        e0x, e0y = x2 - x1, y2 - y1
        e1x, e1y = x0 - x2, y0 - y2
        e2x, e2y = x1 - x0, y1 - y0
        for row in range(row0, row1 + 1):
            py = row + 0.5
            for col in range(col0, col1 + 1):
                px = col + 0.5
                w0 = e0x * (py - y1) - e0y * (px - x1)
                w1 = e1x * (py - y2) - e1y * (px - x2)
                w2 = e2x * (py - y0) - e2y * (px - x0)
                if not (_covers(w0, e0x, e0y) and _covers(w1, e1x, e1y)
                        and _covers(w2, e2x, e2y)):
                    continue
                l0, l1, l2 = w0 * inv_area, w1 * inv_area, w2 * inv_area
                iz = l0 * iz0 + l1 * iz1 + l2 * iz2
                if iz <= inv_depth[row, col]:
                    continue
                inv_depth[row, col] = iz
                b0, b1, b2 = l0 * iz0 / iz, l1 * iz1 / iz, l2 * iz2 / iz
                triangle_id[row, col] = t
                barycentric[row, col, 0] = b0
                if swapped:
                    barycentric[row, col, 1] = b2
                    barycentric[row, col, 2] = b1
                else:
                    barycentric[row, col, 1] = b1
                    barycentric[row, col, 2] = b2
                depth[row, col] = 1.0 / iz
