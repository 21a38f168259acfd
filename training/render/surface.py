"""Points on the mesh surface: ray casts through the rasteriser's buffers and the
closest point of a triangle set (to turn 3D points into triangle + barycentric)."""

from __future__ import annotations

import numba
import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from .raster import PinholeCamera, RasterBuffers

#: Candidate triangles (nearest by centroid) tested exactly per query point.
CLOSEST_CANDIDATES = 48


def ray_cast(buffers: RasterBuffers, corners: np.ndarray, camera: PinholeCamera,
             pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The surface under image points, from a render's buffers.

    A point on a covered pixel is intersected exactly with the plane of the triangle it
    falls in, among those seen in the 3x3 pixels around it (barycentrics clamped into the
    triangle); a point off the surface or off the image snaps to the nearest covered pixel
    centre.

    Parameters
    ----------
    buffers : RasterBuffers of the render (triangle_id indexes `corners`)
    corners : (T, 3, 3) float, camera-space corner positions of the triangles
    camera : PinholeCamera of the render
    pixels : (L, 2) float, image points (x, y) in pixels

    Returns
    -------
    triangle : (L,) int32, index into `corners`
    barycentric : (L, 3) float64
    snapped : (L,) bool, True where the point was off the surface
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    if not buffers.mask.any():
        raise ValueError("the render shows no surface to cast onto")
    height, width = buffers.triangle_id.shape
    col = np.floor(pixels[:, 0]).astype(np.int64)
    row = np.floor(pixels[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    inside[inside] = buffers.mask[row[inside], col[inside]]
    snapped = ~inside
    # Nearest covered pixel of every pixel, for the points that miss.
    _, (near_row, near_col) = distance_transform_edt(~buffers.mask, return_indices=True)
    r = np.clip(row, 0, height - 1)
    c = np.clip(col, 0, width - 1)
    row = np.where(inside, row, near_row[r, c])
    col = np.where(inside, col, near_col[r, c])
    triangle = buffers.triangle_id[row, col]
    barycentric = buffers.barycentric[row, col].astype(np.float64)
    # The pixel centre's triangle need not be the point's: of the triangles seen in the
    # 3x3 pixels around it, take the one the ray meets most inside.
    best_margin = np.full(inside.sum(), -np.inf)
    for dr in (0, -1, 1):
        for dc in (0, -1, 1):
            r = np.clip(row[inside] + dr, 0, height - 1)
            c = np.clip(col[inside] + dc, 0, width - 1)
            candidate = buffers.triangle_id[r, c]
            seen = candidate >= 0
            exact = np.zeros((len(candidate), 3))
            exact[seen] = _ray_plane_barycentric(corners[candidate[seen]], camera,
                                                 pixels[inside][seen])
            margin = np.where(seen, exact.min(1), -np.inf)
            better = margin > best_margin + 1e-12
            best_margin[better] = margin[better]
            index = np.nonzero(inside)[0][better]
            triangle[index] = candidate[better]
            barycentric[index] = _clamp_to_triangle(exact[better])
    return triangle.astype(np.int32), barycentric, snapped


def _ray_plane_barycentric(corners: np.ndarray, camera: PinholeCamera,
                           pixels: np.ndarray) -> np.ndarray:
    """Barycentrics (L, 3) of where the rays through `pixels` (L, 2) meet the planes of
    triangles `corners` (L, 3, 3) (camera at the origin)."""
    cx, cy = camera.principal_point
    rays = np.c_[(pixels[:, 0] - cx) / camera.focal, (pixels[:, 1] - cy) / camera.focal,
                 np.ones(len(pixels))]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    normal = np.cross(b - a, c - a)
    t = (normal * a).sum(1) / (normal * rays).sum(1)
    hit = rays * t[:, None]
    area = (normal * normal).sum(1)
    w_a = (np.cross(c - b, hit - b) * normal).sum(1) / area
    w_b = (np.cross(a - c, hit - c) * normal).sum(1) / area
    return np.c_[w_a, w_b, 1.0 - w_a - w_b]


def _clamp_to_triangle(barycentric: np.ndarray) -> np.ndarray:
    clipped = np.clip(barycentric, 0.0, None)
    return clipped / clipped.sum(1, keepdims=True)


def closest_surface_points(vertices: np.ndarray, triangles: np.ndarray, allowed: np.ndarray,
                           points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest points of a triangle subset to query points.

    Parameters
    ----------
    vertices : (N, 3) float
    triangles : (T, 3) int
    allowed : (Ta,) int, indices into `triangles` to search
    points : (L, 3) float

    Returns
    -------
    triangle : (L,) int32, index into `triangles`
    barycentric : (L, 3) float64
    distance : (L,) float64
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    corners = vertices[triangles[allowed]]                      # (Ta, 3, 3)
    tree = cKDTree(corners.mean(1))
    k = min(CLOSEST_CANDIDATES, len(allowed))
    _, candidates = tree.query(points, k=k)
    candidates = np.asarray(candidates).reshape(len(points), k)
    best, barycentric, distance = _closest_of_candidates(corners, candidates,
                                                         np.asarray(points, dtype=np.float64))
    return allowed[best].astype(np.int32), barycentric, distance


@numba.njit(cache=True)
def _closest_of_candidates(corners, candidates, points):
    count = points.shape[0]
    best = np.empty(count, dtype=np.int64)
    best_bary = np.empty((count, 3))
    best_distance = np.full(count, np.inf)
    for i in range(count):
        for j in range(candidates.shape[1]):
            t = candidates[i, j]
            u, v, w = _closest_on_triangle(points[i], corners[t, 0], corners[t, 1], corners[t, 2])
            q = u * corners[t, 0] + v * corners[t, 1] + w * corners[t, 2]
            d = np.sqrt(((q - points[i]) ** 2).sum())
            if d < best_distance[i]:
                best_distance[i] = d
                best[i] = t
                best_bary[i, 0], best_bary[i, 1], best_bary[i, 2] = u, v, w
    return best, best_bary, best_distance


@numba.njit(cache=True)
def _closest_on_triangle(p, a, b, c):
    """Barycentrics (u, v, w) of the point of triangle abc closest to p (Ericson,
    Real-Time Collision Detection, 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(), (ac * ap).sum()
    if d1 <= 0.0 and d2 <= 0.0:
        return 1.0, 0.0, 0.0
    bp = p - b
    d3, d4 = (ab * bp).sum(), (ac * bp).sum()
    if d3 >= 0.0 and d4 <= d3:
        return 0.0, 1.0, 0.0
    vc = d1 * d4 - d3 * d2
    if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
        v = d1 / (d1 - d3)
        return 1.0 - v, v, 0.0
    cp = p - c
    d5, d6 = (ab * cp).sum(), (ac * cp).sum()
    if d6 >= 0.0 and d5 <= d6:
        return 0.0, 0.0, 1.0
    vb = d5 * d2 - d1 * d6
    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
        w = d2 / (d2 - d6)
        return 1.0 - w, 0.0, w
    va = d3 * d6 - d5 * d4
    if va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return 0.0, 1.0 - w, w
    denom = 1.0 / (va + vb + vc)
    v = vb * denom
    w = vc * denom
    return 1.0 - v - w, v, w
