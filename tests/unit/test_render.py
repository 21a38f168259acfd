"""Known answers and geometric consistency of the CPU rasteriser and the ICT head render."""

import numpy as np
import pytest

from densecap.solver import mesh
from densecap.solver.conventions import THETA_SIZE, THETA_TRANSLATION, theta_rotation
from densecap.solver.model import landmark_vertex_ids
from densecap.tools.build_assets import PARTS
from densecap.training.render import (BROW_POLYLINES, HeadScene, PinholeCamera,
                                      SkinLighting, ambient_occlusion, band_weight, ibug_vertices,
                                      light_visibility, model_to_camera, polyline_distance,
                                      rasterize, render_head)

# One triangle covering the upper-left half of a 4x4 image at depth 2 (focal 1, principal
# point at the image corner, so pixel coordinates are x/z, y/z): corners at pixels
# (0, 0), (4, 0), (0, 4). Seen from the camera its right-hand normal points away from
# it (+z): a back face.
CORNER_CAMERA = PinholeCamera(1.0, (0.0, 0.0), 4, 4)
HALF = np.array([[0.0, 0.0, 2.0], [8.0, 0.0, 2.0], [0.0, 8.0, 2.0], [8.0, 8.0, 2.0]])


def test_single_triangle_known_pixels_ids_barycentrics_and_depth():
    out = rasterize(HALF, np.array([[0, 1, 2]]), CORNER_CAMERA)
    rows, cols = np.mgrid[0:4, 0:4]
    # Pixel centres with x + y < 4 are inside; those on the hypotenuse (x + y = 4) lie on
    # a right/bottom edge, which the top-left rule leaves to the neighbour.
    inside = rows + cols <= 2
    np.testing.assert_array_equal(out.triangle_id, np.where(inside, 0, -1))
    x, y = cols + 0.5, rows + 0.5
    expected = np.stack([1 - x / 4 - y / 4, x / 4, y / 4], -1)
    np.testing.assert_allclose(out.barycentric[inside], expected[inside], atol=1e-7)
    assert np.all(out.barycentric[~inside] == 0)
    np.testing.assert_allclose(out.depth[inside], 2.0)
    assert np.all(np.isinf(out.depth[~inside]))


def test_quad_covers_every_pixel_once_with_the_shared_edge_to_one_triangle():
    out = rasterize(HALF, np.array([[0, 1, 2], [1, 3, 2]]), CORNER_CAMERA)
    rows, cols = np.mgrid[0:4, 0:4]
    np.testing.assert_array_equal(out.triangle_id, np.where(rows + cols <= 2, 0, 1))
    second = out.triangle_id == 1
    x, y = cols[second] + 0.5, rows[second] + 0.5   # corners 1 (8,0), 3 (8,8), 2 (0,8) -> px
    expected = np.stack([1 - y / 4, (x + y) / 4 - 1, 1 - x / 4], -1)
    np.testing.assert_allclose(out.barycentric[second], expected, atol=1e-7)


def test_back_face_culling_and_two_sided_drawing():
    triangle = np.array([[0, 1, 2]])
    culled = rasterize(HALF, triangle, CORNER_CAMERA, cull_back=np.array([True]))
    assert np.all(culled.triangle_id == -1)
    flipped = rasterize(HALF, triangle[:, ::-1].copy(), CORNER_CAMERA, cull_back=np.array([True]))
    two_sided = rasterize(HALF, triangle, CORNER_CAMERA)
    np.testing.assert_array_equal(flipped.triangle_id, two_sided.triangle_id)
    # Barycentrics follow the given corner order either way.
    np.testing.assert_allclose(flipped.barycentric, two_sided.barycentric[..., ::-1], atol=1e-7)


def test_z_buffer_keeps_the_nearest_triangle_whatever_the_drawing_order():
    far = HALF[[0, 1, 2]] * 3.0 / 2.0            # same screen triangle at depth 3
    points = np.vstack([HALF[[0, 1, 2]], far])
    for order in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
        out = rasterize(points, np.array(order), CORNER_CAMERA)
        near_index = order.index([0, 1, 2])
        assert set(np.unique(out.triangle_id)) == {-1, near_index}
        np.testing.assert_allclose(out.depth[out.mask], 2.0)


def test_perspective_correct_barycentrics_on_a_slanted_triangle():
    camera = PinholeCamera(50.0, (32.0, 32.0), 64, 64)
    points = np.array([[-3.0, -2.0, 5.0], [4.0, -1.0, 12.0], [-1.0, 3.0, 7.0]])
    out = rasterize(points, np.array([[0, 1, 2]]), camera)
    assert out.mask.sum() > 200
    hit = np.einsum("pk,kc->pc", out.barycentric[out.mask].astype(np.float64), points)
    rows, cols = np.nonzero(out.mask)
    np.testing.assert_allclose(camera.project(hit), np.c_[cols + 0.5, rows + 0.5], atol=1e-3)
    np.testing.assert_allclose(out.depth[out.mask], hit[:, 2], rtol=1e-6)


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="points must be"):
        rasterize(np.zeros((3, 2)), np.array([[0, 1, 2]]), CORNER_CAMERA)
    with pytest.raises(ValueError, match="index outside"):
        rasterize(HALF, np.array([[0, 1, 7]]), CORNER_CAMERA)
    with pytest.raises(ValueError, match="non-finite"):
        rasterize(HALF * np.nan, np.array([[0, 1, 2]]), CORNER_CAMERA)
    with pytest.raises(ValueError, match="focal"):
        PinholeCamera(0.0, (0.0, 0.0), 4, 4)


# ----------------------------------------------------------------------------- ICT head

@pytest.fixture(scope="module")
def scene(face_model):
    return HeadScene.from_model(face_model)


def posed_points(model, yaw=0.0, jaw_open=0.0):
    psi = np.zeros(model.num_expressions)
    psi[model.expression_names.index("jawOpen")] = jaw_open
    theta = np.zeros(THETA_SIZE)
    theta[theta_rotation(0)] = [0.05, yaw, 0.03]
    theta[THETA_TRANSLATION] = [0.0, -3.0, -60.0]
    beta = np.random.default_rng(3).normal(size=model.num_identity)
    return model_to_camera(mesh(model, beta, psi, theta))


@pytest.mark.parametrize("landmark", [8, 30, 36, 39, 42, 45, 48, 54])
def test_the_triangle_under_a_visible_landmark_vertex_is_incident_to_it(face_model, scene, landmark):
    points = posed_points(face_model)
    embedding = face_model.landmark_embedding("ibug68")
    corners = landmark_vertex_ids(face_model, embedding)[landmark]
    vertex = corners[np.argmax(embedding.barycentric[landmark])]
    # A close-up 16x16 window around the vertex's projection (triangles span many pixels).
    focal = 20000.0
    u, v = PinholeCamera(focal, (0.0, 0.0), 1, 1).project(points[vertex])
    camera = PinholeCamera(focal, (8.0 - np.floor(u), 8.0 - np.floor(v)), 16, 16)
    hit = render_head(scene, points, camera).buffers
    row, col = 8, 8                                  # the pixel holding the projection
    triangle = hit.triangle_id[row, col]
    assert vertex in face_model.triangles[triangle]
    # Its surface point is within a pixel of the vertex's projection.
    surface = hit.barycentric[row, col] @ points[face_model.triangles[triangle]]
    assert np.linalg.norm(camera.project(surface) - camera.project(points[vertex])) < 1.0


def test_barycentric_points_project_back_to_their_pixel_centres(face_model, scene):
    points = posed_points(face_model, yaw=0.4, jaw_open=0.6)
    camera = PinholeCamera.centred(192 * 60 / 24.0, 192)
    out = render_head(scene, points, camera)
    buffers = out.buffers
    assert 0.3 < buffers.mask.mean() < 0.95
    rows, cols = np.nonzero(buffers.mask)
    corners = points[face_model.triangles[buffers.triangle_id[rows, cols]]]     # (P, 3, 3)
    surface = np.einsum("pk,pkc->pc", buffers.barycentric[rows, cols].astype(np.float64), corners)
    error = np.linalg.norm(camera.project(surface) - np.c_[cols + 0.5, rows + 0.5], axis=1)
    assert error.max() < 0.01
    np.testing.assert_allclose(buffers.depth[rows, cols], surface[:, 2], rtol=1e-5)
    # Deterministic.
    again = render_head(scene, points, camera)
    np.testing.assert_array_equal(again.image, out.image)
    np.testing.assert_array_equal(again.buffers.triangle_id, buffers.triangle_id)


def test_one_sided_parts_are_closed_so_culling_changes_no_visible_pixel(face_model, scene):
    points = posed_points(face_model, yaw=-0.5, jaw_open=0.8)
    camera = PinholeCamera.centred(256 * 60 / 26.0, 256)
    one_sided = rasterize(points, scene.corners, camera, cull_back=scene.cull_back)
    two_sided = rasterize(points, scene.corners, camera)
    # Culling opens no hole to the background ...
    np.testing.assert_array_equal(one_sided.mask, two_sided.mask)
    # ... and changes next to no pixel: besides the (two-sided) lash cards, only where a
    # part pokes through another (here the inside of an eyeball through the lid skin of
    # this random identity, which culling hides correctly).
    differ = one_sided.triangle_id != two_sided.triangle_id
    not_lash = scene.cull_back[two_sided.triangle_id[differ]]
    assert not_lash.sum() <= 1e-3 * two_sided.mask.sum()


def test_the_open_mouth_shows_teeth_and_the_eyes_show_iris_over_eyelids(face_model, scene):
    points = posed_points(face_model, jaw_open=0.7)
    camera = PinholeCamera.centred(192 * 60 / 24.0, 192)
    visible = np.unique(render_head(scene, points, camera).buffers.triangle_id)
    tri_material = np.repeat(face_model.polygon_material, face_model.polygon_sizes - 2)
    seen = {face_model.material_names[m] for m in tri_material[visible[visible >= 0]]}
    assert {"M_Face", "M_Teeth", "M_IrisLeft", "M_IrisRight", "M_ScleraLeft"} <= seen


def test_background_colour_or_image_shows_where_no_triangle_is(face_model, scene):
    points = posed_points(face_model)
    camera = PinholeCamera.centred(64 * 60 / 30.0, 64)
    backdrop = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = render_head(scene, points, camera, background=backdrop)
    empty = ~out.buffers.mask
    assert empty.any()
    np.testing.assert_array_equal(out.image[empty], backdrop[empty])
    flat = render_head(scene, points, camera, background=(1.0, 0.0, 0.5)).image
    assert np.all(flat[empty] == [255, 0, 128])
    with pytest.raises(ValueError, match="background"):
        render_head(scene, points, camera, background=backdrop[:32])


def test_cast_shadows_fall_on_the_side_away_from_the_light(face_model, scene):
    points = posed_points(face_model)
    face = np.arange(*PARTS["face"])
    ears = {"right": face[points[face, 0].argmax()], "left": face[points[face, 0].argmin()]}
    from_right = light_visibility(scene, points, np.array([1.0, 0.0, 0.0]))   # camera +x
    assert from_right[ears["right"]] == 1.0 and from_right[ears["left"]] == 0.0
    assert set(np.unique(from_right)) <= {0.0, 1.0}
    # From the camera's side the front of the face is lit but for its folds (nostrils,
    # lip and lid creases).
    front = face[points[face, 2] < points[:, 2].mean() - 3]
    assert light_visibility(scene, points, np.array([0.0, 0.0, -1.0]))[front].mean() > 0.9


def test_a_coloured_fill_light_tints_only_the_side_it_faces(face_model, scene):
    points = posed_points(face_model)
    camera = PinholeCamera.centred(96 * 60 / 30.0, 96)
    key = dict(light_direction=(0.0, 0.0, -1.0), ambient=0.3, diffuse=0.3)
    plain = render_head(scene, points, camera, **key)
    red = render_head(scene, points, camera, **key, fill_direction=(-1.0, 0.0, 0.0),
                      fill_colour=(0.5, 0.0, 0.0))
    gain = red.image.astype(int) - plain.image.astype(int)
    head = plain.buffers.mask
    assert np.all(gain[..., 1:] == 0) and np.all(gain[..., 0] >= 0)
    columns = np.nonzero(head.any(0))[0]
    middle = (columns[0] + columns[-1]) // 2
    left, right = gain[:, :middle, 0][head[:, :middle]], gain[:, middle:, 0][head[:, middle:]]
    assert left.mean() > 10 * max(right.mean(), 0.1)   # the light is at camera -x: image left


def test_brows_are_painted_around_their_ibug_points_and_the_distance_is_signed(face_model, scene):
    """The skin just above and just below the brow polyline is brow, further up is not;
    the signed distance says which side a vertex is on."""
    distance = polyline_distance(face_model, BROW_POLYLINES)
    neutral = face_model.neutral
    middle = neutral[ibug_vertices(face_model)[19]]       # the right brow's middle point
    face = np.arange(*PARTS["face"])
    column = face[(np.abs(neutral[face, 0] - middle[0]) < 0.3)
                  & (np.abs(neutral[face, 1] - middle[1]) < 1.5) & (neutral[face, 2] > middle[2] - 1)]
    height = neutral[column, 1] - middle[1]
    above, below = column[(height > 0.1) & (height < 0.25)], column[(height < -0.1) & (height > -0.25)]
    far_above = column[height > 0.8]
    assert len(above) and len(below) and len(far_above)
    assert np.all(distance[above] > 0) and np.all(distance[below] < 0)
    brow = np.array(scene.albedo[:, 0]) == np.float32(0.30)     # Albedo().brows red
    assert brow[above].mean() > 0.5 and brow[below].mean() > 0.5 and not brow[far_above].any()
    assert band_weight(np.abs(distance[above]), 0.35).min() > 0.8


def test_ambient_occlusion_darkens_the_mouth_and_leaves_the_forehead_open(face_model, scene):
    points = posed_points(face_model, jaw_open=0.5)
    occlusion = ambient_occlusion(scene, points, directions=32, size=96)
    assert occlusion.min() >= 0.0 and occlusion.max() <= 1.0
    ibug = landmark_vertex_ids(face_model, face_model.landmark_embedding("ibug68"))[:, 0]
    face = np.arange(*PARTS["face"])
    forehead = face[np.linalg.norm(points[face] - points[ibug[27]] + [0, 4.0, 0], axis=1) < 2.0]
    assert occlusion[forehead].mean() > 0.8
    assert occlusion[np.arange(*PARTS["mouth_socket"])].mean() < 0.5 * occlusion[forehead].mean()
    # Full visibility reproduces the plain render; occlusion, shadow and a highlight
    # change it.
    camera = PinholeCamera.centred(96 * 60 / 30.0, 96)
    plain = render_head(scene, points, camera).image
    ones = np.ones(len(points))
    np.testing.assert_array_equal(render_head(scene, points, camera, occlusion=ones,
                                              shadow=ones).image, plain)
    shaded = render_head(scene, points, camera, occlusion=occlusion, specular=0.5).image
    assert not np.array_equal(shaded, plain)


def test_ray_cast_hits_exactly_on_the_surface_and_snaps_off_it():
    from densecap.training.render.surface import ray_cast
    triangles = np.array([[0, 1, 2]])
    out = rasterize(HALF, triangles, CORNER_CAMERA)
    pixels = np.array([[1.2, 0.7], [1.6, 1.3], [3.9, 3.9], [-5.0, 1.0]])
    tri, bary, snapped = ray_cast(out, HALF[triangles], CORNER_CAMERA, pixels)
    np.testing.assert_array_equal(snapped, [False, False, True, True])
    np.testing.assert_array_equal(tri, 0)
    # Exact for points on the surface (not the pixel centre's barycentrics) ...
    np.testing.assert_allclose(bary[:2], [[1 - 1.9 / 4, 1.2 / 4, 0.7 / 4],
                                          [1 - 2.9 / 4, 1.6 / 4, 1.3 / 4]], atol=1e-12)
    # ... and the nearest covered pixel centre for points off it: pixel (row 1, col 1)
    # for (3.9, 3.9), the clamped pixel (row 1, col 0) for (-5, 1).
    np.testing.assert_allclose(bary[2], out.barycentric[1, 1], atol=1e-7)
    np.testing.assert_allclose(bary[3], out.barycentric[1, 0], atol=1e-7)


def test_skin_lighting_wraps_light_past_the_terminator_and_lights_from_the_sky(face_model,
                                                                                scene):
    """Without wrap and with a white hemisphere it is the plain shading (to rounding); wrap
    lights the side turned away from a side light (red the most); a bright sky and dark
    ground light the upward-facing skin more than the downward-facing."""
    points = posed_points(face_model)
    camera = PinholeCamera.centred(96 * 60 / 30.0, 96)
    light = dict(light_direction=(1.0, 0.0, 0.0), ambient=0.3, diffuse=0.7)
    plain = render_head(scene, points, camera, **light)
    neutral = render_head(scene, points, camera, **light,
                          environment=SkinLighting(np.zeros(3), np.ones(3), np.ones(3)))
    assert np.abs(neutral.image.astype(int) - plain.image).max() <= 1
    wrapped = render_head(scene, points, camera, **light,
                          environment=SkinLighting(np.array([0.5, 0.3, 0.1]), np.ones(3),
                                                   np.ones(3))).image.astype(float)
    head = plain.buffers.mask
    away = head & (np.arange(96)[None, :] < 40)             # image left: away from camera +x
    gain = (wrapped[away] - plain.image[away]).mean(0)
    assert gain[0] > gain[1] > gain[2] > -0.5 and gain[0] > 5

    def top_over_bottom(environment=None):
        image = render_head(scene, points, camera, light_direction=(0.0, 0.0, -1.0),
                            ambient=0.6, diffuse=0.0, environment=environment).image
        rows = np.nonzero(head)[0]
        top = head & (np.arange(96)[:, None] < np.percentile(rows, 25))
        bottom = head & (np.arange(96)[:, None] > np.percentile(rows, 75))
        return image[top].mean() / image[bottom].mean()

    sky = SkinLighting(np.zeros(3), np.full(3, 1.5), np.full(3, 0.2))
    assert top_over_bottom(sky) > 1.2 * top_over_bottom()
