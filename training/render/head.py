"""Shaded renders of the ICT head: which triangles are drawn, per-vertex albedo by part
and region, and Lambertian + ambient + specular shading over the rasteriser's buffers,
with per-vertex ambient occlusion and cast shadows (`ambient_occlusion`,
`light_visibility`: the head rasterised from each direction, a vertex lit when nothing
lies in front of it).

The ICT eyeball is two nested spheres: `M_Sclera*` (outer, with the corneal bulge) and
`M_Iris*` (inner, textured with the iris in ICT's renders). Without textures this module
leaves out the sclera's corneal cap, so the inner sphere shows through it, and colours
the inner sphere by the angle from the eye's optical axis: pupil, iris, then white. The
angles are approximate (chosen to look like an eye, see IRIS_DEG, PUPIL_DEG).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numba
import numpy as np

from ...solver.conventions import MODEL_TO_OPENCV
from ...solver.face_model import FaceModel
from ...solver.model import landmark_vertex_ids
from ...tools.build_assets import PARTS, RENDER_MATERIALS, sphere_centre
from .raster import PinholeCamera, RasterBuffers, rasterize

#: Angular radius (degrees from the eye's optical axis) of the iris and the pupil on the
#: inner eyeball sphere, and of the corneal cap left out of the sclera.
IRIS_DEG = 24.0
PUPIL_DEG = 9.0
CORNEA_DEG = 28.0
#: Softness (cm) of the lip and brow region borders.
REGION_FEATHER = 0.12
BROW_HALF_WIDTH = 0.35


@dataclass(frozen=True)
class Albedo:
    """Diffuse colours, RGB in [0, 1]."""

    skin: tuple = (0.80, 0.60, 0.50)
    lips: tuple = (0.70, 0.36, 0.36)
    brows: tuple = (0.30, 0.22, 0.17)
    mouth: tuple = (0.35, 0.12, 0.12)
    gums: tuple = (0.75, 0.40, 0.42)
    teeth: tuple = (0.92, 0.90, 0.82)
    sclera: tuple = (0.93, 0.91, 0.88)
    iris: tuple = (0.35, 0.45, 0.55)
    pupil: tuple = (0.03, 0.03, 0.03)
    lashes: tuple = (0.06, 0.05, 0.05)


@dataclass(frozen=True)
class HeadScene:
    """What to draw of a face model and in which colours (computed once per model).

    triangles : (R,) int32, index into FaceModel.triangles of the drawn triangles
    cull_back : (R,) bool, True for the parts drawn one-sided (all but the lash cards)
    albedo : (N, 3) float32, per-vertex diffuse colour
    """

    triangles: np.ndarray
    cull_back: np.ndarray
    albedo: np.ndarray
    corners: np.ndarray = field(repr=False)  # (R, 3) int32, model.triangles[triangles]

    @classmethod
    def from_model(cls, model: FaceModel, albedo: Albedo = Albedo()) -> "HeadScene":
        tri_material = np.repeat(model.polygon_material, model.polygon_sizes - 2)
        names = list(model.material_names)
        drawn = np.isin(tri_material, [names.index(m) for m in RENDER_MATERIALS])
        neutral = model.neutral.astype(np.float64)
        colours = np.empty((model.num_vertices, 3), dtype=np.float64)
        colours[:] = albedo.skin
        colours[_part("mouth_socket")] = albedo.mouth
        colours[_part("gums_tongue")] = albedo.gums
        colours[_part("teeth")] = albedo.teeth
        colours[_part("eyelashes")] = albedo.lashes
        eye_height = 0.0
        for side in "LR":
            sclera, inner = _eyeball_parts(side)
            centre, axis = _eye_axis(neutral, sclera)
            eye_height += centre[1] / 2.0
            angle = _angle_deg(neutral[inner] - centre, axis)
            # The inner sphere is open at the pupil: its far half shows through, as pupil.
            dark = (angle < PUPIL_DEG) | (angle > 90.0)
            colours[inner] = np.where(dark[:, None], albedo.pupil,
                                      np.where((angle < IRIS_DEG)[:, None], albedo.iris, albedo.sclera))
            colours[sclera] = albedo.sclera
            cap = np.zeros(model.num_vertices, dtype=bool)
            cap[sclera[_angle_deg(neutral[sclera] - centre, axis) < CORNEA_DEG]] = True
            drawn &= ~cap[model.triangles].all(1)
        face = _part("face")
        lips = _polygon_weight(neutral[face, :2], neutral[ibug_vertices(model)[48:60], :2],
                               REGION_FEATHER)
        # centred on the iBUG brow points: painted below them (the 300-W markup's upper brow
        # edge) moved the devset's fitted brows up, away from its labels (training/README,
        # run 13)
        brows = band_weight(np.abs(polyline_distance(model, BROW_POLYLINES)[face]),
                            BROW_HALF_WIDTH)
        colours[face] = (colours[face] * (1 - lips)[:, None] + np.multiply.outer(lips, albedo.lips))
        colours[face] = (colours[face] * (1 - brows)[:, None] + np.multiply.outer(brows, albedo.brows))
        # ICT's lash cards are alpha-textured; drawn opaque, the lower ones read as a thick
        # dark rim, so only the upper lashes (above the eye centres) are drawn.
        lash_vertex = np.zeros(model.num_vertices, dtype=bool)
        lash_vertex[_part("eyelashes")] = True
        lash = lash_vertex[model.triangles].all(1)
        lower = neutral[model.triangles, 1].mean(1) < eye_height
        drawn &= ~(lash & lower)
        triangles = np.nonzero(drawn)[0].astype(np.int32)
        # Every drawn part but the lash cards is consistently oriented outwards (skin,
        # mouth socket, teeth, gums, eyeballs): drawing it one-sided changes no visible
        # pixel (tests/unit/test_render.py) and halves the work.
        return cls(triangles=triangles, cull_back=~lash[triangles],
                   albedo=colours.astype(np.float32),
                   corners=model.triangles[triangles])

    @cached_property
    def drawn_vertices(self) -> np.ndarray:
        """(n,) the vertex ids of the drawn triangles."""
        return np.unique(self.corners)


@dataclass(frozen=True)
class HeadRender:
    """A shaded render and its buffers.

    image : (H, W, 3) uint8, RGB
    buffers : RasterBuffers whose triangle_id indexes FaceModel.triangles (-1: background)
    """

    image: np.ndarray
    buffers: RasterBuffers


@dataclass(frozen=True)
class SkinLighting:
    """Skin-like shading for `render_head` (approximate, chosen by eye): the diffuse term
    wrapped past the terminator by wrap (3,) per RGB channel (light scattered under the
    skin, red the most), and a hemisphere ambient light, sky (3,) from above and ground (3,)
    from below (a crude environment light, e.g. coloured like the background's halves)."""

    wrap: np.ndarray
    sky: np.ndarray
    ground: np.ndarray


#: The plain shading's terms in `SkinLighting`'s form (what the kernel reads without one).
_PLAIN_LIGHTING = SkinLighting(np.zeros(3), np.ones(3), np.ones(3))


def model_to_camera(vertices: np.ndarray, rotation: np.ndarray = MODEL_TO_OPENCV,
                    translation: np.ndarray = np.zeros(3)) -> np.ndarray:
    """Model-space points (N, 3) (already posed, cm) -> camera-space points (N, 3):
    x_cam = rotation @ x + translation (default: the monocular camera's extrinsics)."""
    return np.asarray(vertices, dtype=np.float64) @ np.asarray(rotation).T + translation


def render_head(scene: HeadScene, points: np.ndarray, camera: PinholeCamera,
                light_direction=(0.3, -0.4, -1.0), ambient: float = 0.35,
                diffuse: float = 0.75, background=(0.45, 0.45, 0.48),
                occlusion: np.ndarray | None = None, shadow: np.ndarray | None = None,
                specular: float = 0.0, shininess: float = 20.0,
                fill_direction=(0.0, 0.0, -1.0), fill_colour=(0.0, 0.0, 0.0),
                environment: "SkinLighting | None" = None) -> HeadRender:
    """Render the head with Lambertian + ambient (+ Blinn-Phong specular) shading, plus an
    optional coloured fill light (Lambertian, casts no shadow); with `environment`, the
    skin-like variant of `SkinLighting` instead of the plain Lambert and ambient terms.

    Parameters
    ----------
    scene : HeadScene of the model
    points : (N, 3) float, camera-space vertices (see `model_to_camera`)
    camera : PinholeCamera
    light_direction : (3,) direction towards the light, camera axes (default: from
        the camera side, above and to the right)
    ambient, diffuse : light intensities
    background : (3,) RGB in [0, 1], or an (H, W, 3) uint8 RGB image
    occlusion : (N,) float in [0, 1] or None, per-vertex ambient visibility
        (`ambient_occlusion`); scales the ambient term
    shadow : (N,) float in [0, 1] or None, per-vertex light visibility
        (`light_visibility`); scales the diffuse and specular terms
    specular, shininess : strength and exponent of a white Blinn-Phong highlight
    fill_direction : (3,) direction towards a second light, camera axes
    fill_colour : (3,) its RGB intensity (default off)
    environment : SkinLighting or None

    Returns
    -------
    HeadRender
    """
    points = np.asarray(points, dtype=np.float64)
    local = rasterize(points, scene.corners, camera, cull_back=scene.cull_back)
    light = np.asarray(light_direction, dtype=np.float64)
    light = light / np.linalg.norm(light)
    fill = np.asarray(fill_direction, dtype=np.float64)
    fill = fill / np.linalg.norm(fill)
    background = np.asarray(background)
    if background.shape == (3,):
        image = np.empty((camera.height, camera.width, 3), dtype=np.uint8)
        image[:] = np.round(255.0 * np.clip(background, 0.0, 1.0)).astype(np.uint8)
    elif background.shape == (camera.height, camera.width, 3) and background.dtype == np.uint8:
        image = background.copy()
    else:
        raise ValueError(f"background must be an RGB colour (3,) or a uint8 image "
                         f"({camera.height}, {camera.width}, 3), got {background.shape} {background.dtype}")
    ones = np.ones(len(points), dtype=np.float32)
    occlusion = ones if occlusion is None else np.asarray(occlusion, dtype=np.float32)
    shadow = ones if shadow is None else np.asarray(shadow, dtype=np.float32)
    skin = _PLAIN_LIGHTING if environment is None else environment
    _shade_kernel(points, scene.corners, local.triangle_id, local.barycentric, scene.albedo,
                  occlusion, shadow, light, float(ambient), float(diffuse), float(specular),
                  float(shininess), fill, np.asarray(fill_colour, dtype=np.float64),
                  environment is not None, np.asarray(skin.wrap, dtype=np.float64),
                  np.asarray(skin.sky, dtype=np.float64), np.asarray(skin.ground, dtype=np.float64),
                  image)
    triangle_id = np.where(local.mask, scene.triangles[np.maximum(local.triangle_id, 0)], -1)
    return HeadRender(image, RasterBuffers(triangle_id.astype(np.int32), local.barycentric,
                                           local.depth))


@numba.njit(cache=True, nogil=True)
def _vertex_normals(points, corners):
    """Area-weighted vertex normals (N, 3), not normalised."""
    normals = np.zeros_like(points)
    for t in range(corners.shape[0]):
        a, b, c = corners[t, 0], corners[t, 1], corners[t, 2]
        ux, uy, uz = points[b, 0] - points[a, 0], points[b, 1] - points[a, 1], points[b, 2] - points[a, 2]
        vx, vy, vz = points[c, 0] - points[a, 0], points[c, 1] - points[a, 1], points[c, 2] - points[a, 2]
        nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        for v in (a, b, c):
            normals[v, 0] += nx
            normals[v, 1] += ny
            normals[v, 2] += nz
    return normals


@numba.njit(cache=True, nogil=True)
def _shade_kernel(points, corners, triangle_id, barycentric, albedo, occlusion, shadow, light,
                  ambient, diffuse, specular, shininess, fill, fill_colour, skin, wrap, sky,
                  ground, image):
    """Shade the covered pixels of `image` (H, W, 3) uint8, which holds the background;
    `skin`: `SkinLighting`'s terms (wrap, sky, ground (3,)) instead of Lambert and ambient."""
    normals = _vertex_normals(points, corners)
    height, width = triangle_id.shape
    for row in range(height):
        for col in range(width):
            t = triangle_id[row, col]
            if t < 0:
                continue
            nx = ny = nz = 0.0
            facing = 0.0
            r = g = b = 0.0
            px = py = pz = 0.0
            ao = lit = 0.0
            for c in range(3):
                v = corners[t, c]
                w = barycentric[row, col, c]
                px += w * points[v, 0]
                py += w * points[v, 1]
                pz += w * points[v, 2]
                ao += w * occlusion[v]
                lit += w * shadow[v]
                nx += w * normals[v, 0]
                ny += w * normals[v, 1]
                nz += w * normals[v, 2]
                r += w * albedo[v, 0]
                g += w * albedo[v, 1]
                b += w * albedo[v, 2]
            # The view ray is the surface point (camera at the origin).
            facing = nx * px + ny * py + nz * pz
            norm = np.sqrt(nx * nx + ny * ny + nz * nz)
            if facing > 0.0:  # seen from behind: light the side facing the camera
                norm = -norm
            if skin:
                if norm != 0.0:
                    _skin_pixel(nx / norm, ny / norm, nz / norm, px, py, pz, r, g, b, ao, lit,
                                light, ambient, diffuse, specular, shininess, fill, fill_colour,
                                wrap, sky, ground, image[row, col])
                continue
            lambert = 0.0
            fill_lambert = 0.0
            highlight = 0.0
            if norm != 0.0:
                lambert = max(0.0, (nx * light[0] + ny * light[1] + nz * light[2]) / norm)
                fill_lambert = 255.0 * max(0.0, (nx * fill[0] + ny * fill[1] + nz * fill[2]) / norm)
                if specular > 0.0 and lambert > 0.0:
                    cosine = _half_vector_cosine(nx, ny, nz, norm, px, py, pz, light)
                    highlight = 255.0 * specular * lit * cosine ** shininess
            intensity = 255.0 * (ambient * ao + diffuse * lit * lambert)
            image[row, col, 0] = np.uint8(min(255.0, r * (intensity + fill_lambert * fill_colour[0])
                                              + highlight) + 0.5)
            image[row, col, 1] = np.uint8(min(255.0, g * (intensity + fill_lambert * fill_colour[1])
                                              + highlight) + 0.5)
            image[row, col, 2] = np.uint8(min(255.0, b * (intensity + fill_lambert * fill_colour[2])
                                              + highlight) + 0.5)


@numba.njit(cache=True, nogil=True)
def _half_vector_cosine(nx, ny, nz, norm, px, py, pz, light):
    """Blinn-Phong's cos(normal, half vector) >= 0 for the normal (nx, ny, nz) of length
    `norm` at camera-space point (px, py, pz), seen from the origin, lit from `light`."""
    distance = np.sqrt(px * px + py * py + pz * pz)
    hx = light[0] - px / distance
    hy = light[1] - py / distance
    hz = light[2] - pz / distance
    half = np.sqrt(hx * hx + hy * hy + hz * hz)
    if half > 0.0:
        return max(0.0, (nx * hx + ny * hy + nz * hz) / (norm * half))
    return 0.0


@numba.njit(cache=True, nogil=True)
def _skin_pixel(nx, ny, nz, px, py, pz, r, g, b, ao, lit, light, ambient, diffuse, specular,
                shininess, fill, fill_colour, wrap, sky, ground, pixel):
    """One pixel of `SkinLighting` shading: unit normal (nx, ny, nz) at camera-space point
    (px, py, pz), albedo (r, g, b), ambient occlusion ao, light visibility lit -> pixel (3,)."""
    cosine = nx * light[0] + ny * light[1] + nz * light[2]
    up = 0.5 - 0.5 * ny                                   # camera y points down
    fill_lambert = 255.0 * max(0.0, nx * fill[0] + ny * fill[1] + nz * fill[2])
    highlight = 0.0
    if specular > 0.0 and cosine > 0.0:
        highlight = 255.0 * specular * lit * _half_vector_cosine(
            nx, ny, nz, 1.0, px, py, pz, light) ** shininess
    channel = (r, g, b)
    for k in range(3):
        lambert = max(0.0, (cosine + wrap[k]) / (1.0 + wrap[k]))
        # a wrapped terminator is lit a little even in a cast shadow's penumbra
        direct = diffuse * lambert * (lit + (1.0 - lit) * 0.5 * wrap[k])
        env = ambient * ao * (sky[k] * up + ground[k] * (1.0 - up))
        value = channel[k] * (255.0 * (env + direct) + fill_lambert * fill_colour[k]) + highlight
        pixel[k] = np.uint8(min(255.0, value) + 0.5)


def light_visibility(scene: HeadScene, points: np.ndarray, direction: np.ndarray,
                     size: int = 128) -> np.ndarray:
    """(N,) float32: 1 where a directional light from `direction` (3,), towards the light,
    reaches the vertex, 0 where the drawn head lies in front of it (a cast shadow).

    The head is rasterised at `size` px by a distant camera looking along -direction; a
    vertex is lit when its depth is within two pixels' size of the farthest of the nearest
    surfaces in its 3 x 3 pixels (so that grazing surfaces do not shadow themselves).
    points : (N, 3) float, any frame (camera space of the render, or model space)."""
    points = np.asarray(points, dtype=np.float64)
    forward = -np.asarray(direction, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    helper = np.array([0.0, 1.0, 0.0]) if abs(forward[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(helper, forward)
    right /= np.linalg.norm(right)
    frame = np.stack([right, np.cross(forward, right), forward])
    drawn = scene.drawn_vertices
    centre = points[drawn].mean(0)
    local = (points - centre) @ frame.T
    extent = 1.1 * np.abs(local[drawn, :2]).max()
    distance = 100.0 * extent                              # nearly orthographic
    local[:, 2] += distance
    camera = PinholeCamera.centred(distance * size / (2.0 * extent), size)
    buffers = rasterize(local, scene.corners, camera, cull_back=scene.cull_back)
    pixel = np.floor(camera.project(local)).astype(np.int64)
    col = np.clip(pixel[:, 0], 0, size - 1)
    row = np.clip(pixel[:, 1], 0, size - 1)
    bias = 2.0 * 2.0 * extent / size
    depth = cv2.dilate(buffers.depth, np.ones((3, 3), np.uint8))
    return (local[:, 2] <= depth[row, col] + bias).astype(np.float32)


def ambient_occlusion(scene: HeadScene, points: np.ndarray, directions: int = 64,
                      size: int = 160) -> np.ndarray:
    """(N,) float32 in [0, 1]: cosine-weighted fraction of the sphere of directions from
    which each vertex is visible (`light_visibility` over `directions` Fibonacci
    directions). Vertices of undrawn triangles get 1."""
    points = np.asarray(points, dtype=np.float64)
    normals = _vertex_normals(points, scene.corners)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    k = np.arange(directions) + 0.5
    z = 1.0 - 2.0 * k / directions
    azimuth = np.pi * (1.0 + 5.0 ** 0.5) * k
    sphere = np.stack([np.sqrt(1 - z * z) * np.cos(azimuth), np.sqrt(1 - z * z) * np.sin(azimuth), z], 1)
    seen = np.zeros(len(points))
    total = np.zeros(len(points))
    for direction in sphere:
        weight = np.maximum(normals @ direction, 0.0)
        seen += weight * light_visibility(scene, points, direction, size)
        total += weight
    occlusion = np.where(total > 0, seen / np.maximum(total, 1e-12), 1.0)
    undrawn = np.ones(len(points), dtype=bool)
    undrawn[scene.drawn_vertices] = False
    occlusion[undrawn] = 1.0
    return occlusion.astype(np.float32)


def _part(name: str) -> np.ndarray:
    start, end = PARTS[name]
    return np.arange(start, end + 1)


def _eyeball_parts(side: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids of the sclera (outer) and inner (iris-textured) sphere of one eye."""
    sclera = _part(f"sclera_{side}")
    eyeball = _part(f"eyeball_{side}")
    return sclera, np.setdiff1d(eyeball, sclera)


def eye_geometry(neutral: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One eye of a mesh: centre (3,), optical axis (3,) and the vertex ids (n,) of the
    inner (iris-textured) sphere that renders show inside the corneal cap; side "L" or "R"."""
    sclera, inner = _eyeball_parts(side)
    centre, axis = _eye_axis(np.asarray(neutral, dtype=np.float64), sclera)
    return centre, axis, inner


def _eye_axis(neutral: np.ndarray, sclera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (3,) and optical axis (3,) of an eye: the least-squares sphere centre of
    the sclera's back half, and the direction to the corneal apex (the sclera vertex
    farthest from that centre)."""
    points = neutral[sclera]
    centre = sphere_centre(points)
    centre = sphere_centre(points[points[:, 2] < centre[2]])
    apex = points[np.argmax(np.linalg.norm(points - centre, axis=1))]
    axis = apex - centre
    return centre, axis / np.linalg.norm(axis)


def _angle_deg(vectors: np.ndarray, axis: np.ndarray) -> np.ndarray:
    cos = vectors @ axis / np.linalg.norm(vectors, axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _polygon_weight(points: np.ndarray, polygon: np.ndarray, feather: float) -> np.ndarray:
    """Soft inside-ness (n,) in [0, 1] of 2D points in a closed polygon (m, 2)."""
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    distance = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True)
                         for x, y in points])
    return np.clip(0.5 + distance / (2.0 * feather), 0.0, 1.0)


def ibug_vertices(model: FaceModel) -> np.ndarray:
    """(68,) the vertex nearest each iBUG-68 landmark (its largest barycentric weight)."""
    embedding = model.landmark_embedding("ibug68")
    ids = landmark_vertex_ids(model, embedding)
    return ids[np.arange(len(ids)), np.argmax(embedding.barycentric, 1)]


#: iBUG-68 polylines of the brows and of the upper lids (eye corner to eye corner).
BROW_POLYLINES = (range(17, 22), range(22, 27))
UPPER_LID_POLYLINES = (range(36, 40), range(42, 46))


def polyline_distance(model: FaceModel, polylines=BROW_POLYLINES) -> np.ndarray:
    """(N,) signed distance (cm, in the neutral face's x-y plane) of each face-part vertex to
    the nearest of the iBUG polylines (sequences of iBUG ids): positive above the nearest
    point on it (model y up), negative below; inf for the other parts."""
    neutral = model.neutral.astype(np.float64)
    face = _part("face")
    ibug = ibug_vertices(model)
    points = neutral[face, :2]
    distance, nearest, _ = map(np.stack, zip(*(
        nearest_on_polyline(points, neutral[ibug[list(ids)], :2]) for ids in polylines)))
    which = np.argmin(distance, axis=0)
    rows = np.arange(len(points))
    above = points[:, 1] >= nearest[which, rows, 1]
    signed = np.full(model.num_vertices, np.inf)
    signed[face] = np.where(above, 1.0, -1.0) * distance[which, rows]
    return signed


def band_weight(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Soft membership (n,) in [0, 1] of a band of `half_width` (cm) around a curve, from
    the distances (n,) to it, feathered over REGION_FEATHER."""
    return np.clip((half_width - distance) / REGION_FEATHER + 0.5, 0.0, 1.0)


def nearest_on_polyline(points: np.ndarray, polyline: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance (n,) of 2D points (n, 2) to an open polyline (m, 2), the nearest point on
    it (n, 2) and that point's arc length from the polyline's start (n,)."""
    a, b = polyline[:-1], polyline[1:]
    d = b - a
    t = np.clip(((points[:, None] - a) * d).sum(-1) / (d * d).sum(-1), 0.0, 1.0)
    foot = a + t[..., None] * d                                    # (n, m - 1, 2)
    distance = np.linalg.norm(points[:, None] - foot, axis=-1)
    segment = distance.argmin(1)
    rows = np.arange(len(points))
    lengths = np.linalg.norm(d, axis=1)
    start = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    along = start[segment] + t[rows, segment] * lengths[segment]
    return distance[rows, segment], foot[rows, segment], along
