"""Smoke test of the dense landmark training stack: synthetic labels against the model,
a few training steps with the loss falling, resume, and an ONNX round trip."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from densecap.solver.model import (joints, landmark_vertex_ids, lbs, shape,  # noqa: E402
                                   vertices2landmarks)
from densecap.training.export import export_onnx, parity  # noqa: E402
from densecap.landmarks.dense_network import (CROP_LAYOUT, LEFT_EYE_IDS,  # noqa: E402
                                              RIGHT_EYE_IDS, decode, to_normalised)
from densecap.training.network import DenseLandmarkNet, gnll_loss, l2_loss, widen  # noqa: E402
from densecap.training.render import (PinholeCamera, model_to_camera,  # noqa: E402
                                      nearest_on_polyline, render_head)
from densecap.tools.build_assets import PARTS  # noqa: E402
from densecap.training.import_onnx import import_onnx  # noqa: E402
from densecap.training.synthetic import (RENDER_STYLES, CaptureConditions,  # noqa: E402
                                         SyntheticConfig, SyntheticRenderer, _rigid_transform,
                                         render_style, skin_coordinates, torso_outline)
from densecap.training.train import (TrainConfig, batch_indices, build_network,  # noqa: E402
                                     label_mask, nearest_landmarks, resample_spatial_head,
                                     run_config, start_from_run, train)

LANDMARK_SET = "dense320"


@pytest.fixture(scope="module")
def renderer(face_model):
    return SyntheticRenderer(face_model, LANDMARK_SET, SyntheticConfig(size=384))


@pytest.fixture(scope="module")
def small(renderer):
    return renderer.with_config(SyntheticConfig(size=64))


@pytest.fixture(scope="module")
def samples(renderer):
    return [renderer.sample(7, k) for k in range(4)]


def test_deterministic(renderer, samples):
    again = renderer.sample(7, 1)
    np.testing.assert_array_equal(again.image, samples[1].image)
    np.testing.assert_array_equal(again.landmarks, samples[1].landmarks)
    assert not np.array_equal(samples[0].image, samples[1].image)


@pytest.mark.parametrize("zoom", [1.0, 1.1])
def test_crop_places_the_eyes_like_the_front_end(renderer, zoom):
    """Without jitter, the eye centres (iBUG means) land on CROP_LAYOUT's targets, zoomed
    by the config's crop_zoom."""
    config = SyntheticConfig(size=96, jitter_rotation=0.0, jitter_scale=0.0, jitter_shift=0.0,
                             align_with_mouth_prob=0.0, crop_zoom=zoom)
    sample = renderer.with_config(config).sample(5, 0)
    eyes = [sample.landmarks[list(ids)].mean(0) for ids in (RIGHT_EYE_IDS, LEFT_EYE_IDS)]
    np.testing.assert_allclose(eyes, CROP_LAYOUT.zoomed(zoom).targets(96)[:2], atol=1e-3)


def test_labels_are_projections_of_the_embedded_points(face_model, renderer, samples):
    embedding = face_model.landmark_embedding(LANDMARK_SET)
    corner_ids = landmark_vertex_ids(face_model, embedding)
    assert any(sample.scene.warp.any() for sample in samples)
    for sample in samples:
        scene = sample.scene
        # The solver's own shape and skinning (float64 reference), not the renderer's, with
        # the sample's ShapeWarp displacement added to the shaped vertices.
        rest = (shape(face_model, scene.beta, scene.psi)
                + renderer.warp.displacement(scene.warp))
        posed = lbs(rest, scene.theta, joints(face_model, scene.beta), face_model.joint_parents,
                    face_model.skin_weights.astype(np.float64))
        points = vertices2landmarks(posed, corner_ids, embedding.barycentric)
        camera_points = points @ scene.rotation.T + scene.translation
        expected = (scene.camera.focal * camera_points[:, :2] / camera_points[:, 2:]
                    + np.asarray(scene.camera.principal_point))
        np.testing.assert_allclose(sample.landmarks, expected, atol=2e-3)


def test_shape_warp_moves_chin_jaw_and_brows_only(face_model, renderer):
    """Each ShapeWarp component moves its own part of the face: the chin down by s times
    its distance below the mouth line, the lower jaw outwards, the brows up by b cm; the
    eyes, eyeballs, the neck's base and (for the brows) the mouth stay."""
    embedding = face_model.landmark_embedding("ibug68")
    corners = landmark_vertex_ids(face_model, embedding)                   # (68, 3)

    def ibug(vertices):                                                    # (N, 3) -> (68, 3)
        return vertices2landmarks(vertices, corners, embedding.barycentric)

    neutral = ibug(face_model.neutral.astype(np.float64))
    stretch, widen, lift = (renderer.warp.displacement(amounts) for amounts in
                            ([0.2, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.3]))
    mouth_y = neutral[48:60, 1].mean()
    assert ibug(stretch)[8, 1] == pytest.approx(-0.2 * (mouth_y - neutral[8, 1]), abs=1e-3)
    np.testing.assert_allclose(ibug(widen)[[4, 12], 0], 0.1 * neutral[[4, 12], 0], rtol=0.1)
    np.testing.assert_allclose(ibug(lift)[17:27, 1], 0.3, atol=0.05)
    still = np.concatenate([corners[36:48].ravel(), np.arange(*PARTS["eyeball_L"]),
                            np.arange(*PARTS["eyeball_R"]),
                            np.nonzero(face_model.neutral[:, 1] < -12.0)[0]])
    for field in (stretch, widen, lift):
        assert np.abs(field[still]).max() < 1e-9
    assert np.abs(lift[corners[48:68].ravel()]).max() < 1e-9


def test_visible_landmarks_land_on_their_triangle(face_model, samples):
    """At 384 px a face triangle covers a few pixels: the pixel under a visible landmark
    shows its own triangle (or, for a point embedded at a vertex, one around it), else a
    neighbour at the pixel's resolution (tiny ear/lip triangles, slanted skin)."""
    embedding = face_model.landmark_embedding(LANDMARK_SET)
    corners = face_model.triangles[embedding.triangles]                    # (L, 3)
    own = near = checked = 0
    for sample in samples:
        for index in np.nonzero(sample.visible)[0]:
            col, row = np.floor(sample.landmarks[index]).astype(int)
            shown = face_model.triangles[sample.triangle_id[row, col]]
            bary = embedding.barycentric[index]
            if bary.max() > 0.99:   # embedded at a vertex: any triangle around it
                own += corners[index, np.argmax(bary)] in shown
            else:
                own += sample.triangle_id[row, col] == embedding.triangles[index]
            near += np.isin(shown, corners[index]).any()
            checked += 1
        assert sample.visible.sum() > 0.25 * len(embedding)   # 0.3 at 42 degrees of yaw
    assert own >= 0.8 * checked, f"{own} of {checked} visible landmarks on their triangle"
    assert near >= 0.93 * checked, f"{near} of {checked} visible landmarks by their triangle"


def test_scalp_hair_stays_off_the_face_and_clothing_below_the_chin(face_model, renderer):
    neutral = face_model.neutral
    embedding = face_model.landmark_embedding("ibug68")
    ibug = landmark_vertex_ids(face_model, embedding)[np.arange(68), embedding.barycentric.argmax(1)]
    front = (neutral[:, 2] > 5.0) & (np.abs(neutral[:, 0]) < 5.0)     # not the temples
    crown = np.argmax(np.where(renderer.albedo.skin > 0.5, neutral[:, 1], -np.inf))
    for seed in range(5):
        appearance = renderer.albedo(np.random.default_rng(seed), hair_prob=1.0)
        assert appearance.hair[front & (neutral[:, 1] < neutral[ibug[19], 1])].max() == 0.0
        assert appearance.hair[crown] > 0.9
        assert renderer.albedo(np.random.default_rng(seed)).hair.max() == 0.0   # bald
        assert torso_outline(np.random.default_rng(seed))[:, 1].max() < neutral[ibug[8], 1] - 3
    # The torso follows the neck's base: Kabsch recovers a rigid motion.
    rng = np.random.default_rng(1)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotation *= np.linalg.det(rotation)
    points = rng.normal(size=(20, 3))
    found, shift = _rigid_transform(points, points @ rotation.T + [1.0, 2.0, 3.0])
    np.testing.assert_allclose(found, rotation, atol=1e-9)
    np.testing.assert_allclose(shift, [1.0, 2.0, 3.0], atol=1e-9)


def test_wrinkles_darken_the_face_skin_only(face_model, renderer):
    """Age lines lie on the face (between the chin and the forehead) and darken face-skin
    pixels only, at any camera distance."""
    wrinkles = renderer.wrinkles
    lines = np.concatenate([line for line, _, _ in wrinkles.lines(np.random.default_rng(3))])
    assert wrinkles.ibug[8, 1] < lines[:, 1].min() and lines[:, 1].max() < wrinkles.brow_y + 6
    neutral = face_model.neutral.astype(np.float64)
    for distance in (40.0, 80.0):
        camera = PinholeCamera.centred(1000.0, 256)
        render = render_head(renderer.scene,
                             model_to_camera(neutral, translation=[0, -2, distance]), camera)
        skin = renderer.part[render.buffers.triangle_id] == renderer.face_part
        image = render.image.copy()
        wrinkles.paint(np.random.default_rng(3), image, render.buffers, skin, camera.focal)
        changed = (image != render.image).any(2)
        assert changed.sum() > 50 and not changed[~skin].any()
        assert (image.astype(int) <= render.image).all()


def test_brow_hair_darkens_the_face_skin_around_the_brows_only(face_model, renderer):
    """Brows drawn as hair darken face-skin pixels within a brow's width of the brow
    polylines (none under the eyes or up the forehead), the head of a brow wider than its
    tail."""
    brows = renderer.brow_hair
    neutral = face_model.neutral.astype(np.float64)
    camera = PinholeCamera.centred(1000.0, 256)
    render = render_head(renderer.scene, model_to_camera(neutral, translation=[0, 3, 60.0]),
                         camera)
    skin = renderer.part[render.buffers.triangle_id] == renderer.face_part
    image = render.image.copy()
    brows.paint(np.random.default_rng(5), image, render.buffers, skin, camera.focal,
                np.array([0.2, 0.2, 0.2]))
    changed = (image != render.image).any(2)
    assert changed.sum() > 100 and not changed[~skin].any()
    assert (image.astype(int) <= render.image).all()
    rows, cols, points, _ = skin_coordinates(render.buffers, changed, brows.neutral_xy,
                                             brows.triangles, camera.focal)
    distance = np.min([nearest_on_polyline(points, line)[0] for line in brows.polylines], 0)
    assert distance.max() < 0.5 + 0.2 + 0.05          # the widest head plus the feather
    dark = (render.image.astype(int) - image).sum(2)
    for line in brows.polylines:                     # the head (inner end) is the wider
        head, tail = (np.linalg.norm(points - line[end], axis=1) < 0.4 for end in (0, -1))
        assert dark[rows[head], cols[head]].mean() > dark[rows[tail], cols[tail]].mean()


def test_brow_hair_replaces_the_painted_brows_and_leaves_other_styles_as_they_were(
        face_model, renderer):
    """With brow_hair_prob 1 the albedo's brows are skin and the image differs around the
    brows; with 0 (every style before capture-brows) the draws are the same as ever."""
    streams = np.random.default_rng(2), np.random.default_rng(2)
    painted = renderer.albedo(streams[0])
    bare = renderer.albedo(streams[1], painted_brows=False)
    assert streams[0].uniform() == streams[1].uniform()       # the same draws either way
    distance = renderer.albedo.brow_distance
    brow, off_face = np.abs(distance) < 0.2, ~np.isfinite(distance)
    assert np.abs(painted.albedo[brow] - bare.albedo[brow]).max() > 0.05
    np.testing.assert_array_equal(painted.albedo[off_face], bare.albedo[off_face])
    style = render_style("capture-brows", 64)
    assert style.brow_hair_prob > 0 and render_style("capture-close", 64).brow_hair_prob == 0
    with_hair = renderer.with_config(replace(style, brow_hair_prob=1.0))
    without = renderer.with_config(replace(style, brow_hair_prob=0.0))
    a, b = with_hair.sample(0, 0), without.sample(0, 0)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert (a.image != b.image).any()


def test_nearest_on_polyline_gives_the_arc_length_of_the_foot():
    line = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 3.0]])
    distance, foot, along = nearest_on_polyline(np.array([[1.0, 0.5], [3.0, 2.0], [-1.0, 0.0]]),
                                                line)
    np.testing.assert_allclose(distance, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(foot, [[1.0, 0.0], [2.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(along, [1.0, 4.0, 0.0])


def test_gnll_optimum_and_l2():
    error = torch.tensor([[[0.3, 0.4]]])                  # |d| = 0.5
    target = torch.zeros(1, 1, 2)
    weights = torch.ones(1)
    log_sigmas = torch.linspace(-4, 1, 501)
    losses = [float(gnll_loss(torch.cat([error, s.view(1, 1, 1)], -1), target, weights))
              for s in log_sigmas]
    best = float(log_sigmas[int(np.argmin(losses))])
    assert best == pytest.approx(np.log(0.5 / np.sqrt(2)), abs=0.02)     # sigma^2 = |d|^2 / 2
    output = torch.cat([error, torch.zeros(1, 1, 1)], -1)
    assert float(gnll_loss(output, target, weights)) == pytest.approx(0.125)
    assert float(l2_loss(output, target, weights)) == pytest.approx(0.25)


def test_coordinates_round_trip():
    points = np.array([[0.0, 0.0], [64.0, 32.0], [128.0, 128.0]])
    normalised = to_normalised(points, 128)
    np.testing.assert_allclose(normalised, [[-1, -1], [0, -0.5], [1, 1]])
    mu, sigma = decode(np.c_[normalised, np.log([0.5, 1.0, 2.0])], 128)
    np.testing.assert_allclose(mu, points)
    np.testing.assert_allclose(sigma, [32.0, 64.0, 128.0])


def test_batches_cover_each_epoch():
    config = TrainConfig(images=10, shard=10, steps=10, batch=4)
    first_epoch = np.concatenate([batch_indices(config, 10, k) for k in range(2)])
    assert len(np.unique(first_epoch)) == 8
    np.testing.assert_array_equal(batch_indices(config, 10, 3), batch_indices(config, 10, 3))


def test_training_steps_reduce_the_loss_resume_and_export(small, tmp_path):
    size = small.config.size
    images, landmarks, _ = small.batch(3, 0, 8)
    config = TrainConfig(landmark_set=LANDMARK_SET, size=size, width=0.25, images=8, shard=8,
                         steps=20, batch=8, lr=3e-3, seed=0)
    torch.set_num_threads(1)
    network, result = train(config, tmp_path / "run", images, landmarks)
    assert result.finished and result.step == 20
    losses = [loss for _, loss in result.losses]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0
    # Same command again: resumes from the checkpoint at the end, no more steps.
    _, resumed = train(config, tmp_path / "run", images, landmarks)
    assert resumed.step == 20 and resumed.losses == []
    with pytest.raises(ValueError):
        train(TrainConfig(**{**config.__dict__, "lr": 1e-3}), tmp_path / "run", images, landmarks)
    # A warm restart starts from the trained weights: its first loss is the trained level.
    restart = TrainConfig(**{**config.__dict__, "steps": 3, "init_from": str(tmp_path / "run")})
    _, warm = train(restart, tmp_path / "warm", images, landmarks)
    assert warm.losses[0][1] < losses[0] - 1.0
    with pytest.raises(ValueError, match="width"):
        train(TrainConfig(**{**restart.__dict__, "width": 0.5}), tmp_path / "wide", images,
              landmarks)
    # ONNX round trip (float32 exact, float16 weights close).
    path = export_onnx(network, size, tmp_path / "net.onnx", LANDMARK_SET)
    assert parity(network, path, images[:2])["max_abs_position_px"] < 1e-3
    half = export_onnx(network, size, tmp_path / "net16.onnx", LANDMARK_SET, fp16=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    assert parity(network, half, images[:2])["max_abs_position_px"] < 0.1


def test_gradient_clipping_touches_only_gradients_above_its_norm(small, tmp_path):
    images, landmarks, _ = small.batch(3, 0, 8)
    config = TrainConfig(landmark_set=LANDMARK_SET, size=small.config.size, width=0.25,
                         images=8, shard=8, steps=4, batch=8, lr=3e-3, seed=0)
    torch.set_num_threads(1)
    losses = {}
    for clip in (0.0, 1e9, 1e-3):
        _, result = train(TrainConfig(**{**config.__dict__, "clip_grad": clip}),
                          tmp_path / f"clip{clip}", images, landmarks)
        losses[clip] = [loss for _, loss in result.losses]
    assert losses[1e9] == losses[0.0]                      # never reached: the same run
    assert losses[1e-3][0] == losses[0.0][0] and losses[1e-3][1:] != losses[0.0][1:]
    with pytest.raises(ValueError, match="clip_grad"):
        TrainConfig(clip_grad=-1.0)


def test_a_dense703_run_starts_from_a_dense320_backbone(small, tmp_path):
    """The shared landmarks predict exactly what the source predicts; the others start at
    their nearest source landmark's prediction moved by the difference of the mean labels."""
    images, landmarks, _ = small.batch(5, 0, 4)
    source = TrainConfig(landmark_set=LANDMARK_SET, size=64, width=0.25, images=4, shard=4,
                         steps=2, batch=4)
    trained, _ = train(source, tmp_path / "src", images, landmarks)
    target = TrainConfig(**{**source.__dict__, "landmark_set": "dense703",
                            "init_from": str(tmp_path / "src")})
    nearest, back = nearest_landmarks("dense703", LANDMARK_SET)
    mean = np.random.default_rng(0).uniform(-0.5, 0.5, (len(nearest), 2)).astype(np.float32)
    network = build_network(target, len(nearest))
    start_from_run(network, target, tmp_path / "src", mean)
    network.eval()
    with torch.no_grad():
        x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float()
        before, after = trained(x).numpy(), network(x).numpy()
    expected = before[:, nearest].copy()
    expected[..., :2] += mean - mean[back[nearest]]
    np.testing.assert_allclose(after, expected, atol=1e-5)
    shared = np.flatnonzero(back[nearest] == np.arange(len(nearest)))
    assert len(shared) == 320
    np.testing.assert_allclose(after[:, shared], before[:, nearest[shared]], atol=1e-5)


def test_a_widened_network_computes_what_the_narrow_one_did(small, tmp_path):
    """`widen` keeps the function (batch norm in eval and in training mode) while the copies
    of a channel get different shares, so training can tell them apart; a wider run starts
    from a narrower run's checkpoint at its predictions, and a narrower one is refused."""
    torch.manual_seed(0)
    narrow = DenseLandmarkNet(12, 0.5, "spatial", 64)
    with torch.no_grad():                       # batch-norm statistics that are not 0 / 1
        narrow(torch.rand(8, 3, 64, 64) * 255)
    wide = DenseLandmarkNet(12, 1.0, "spatial", 64)
    widen(narrow, wide, seed=3)
    x = torch.rand(4, 3, 64, 64) * 255
    for mode in (False, True):
        narrow.train(mode), wide.train(mode)
        with torch.no_grad():
            torch.testing.assert_close(wide(x), narrow(x), atol=1e-4, rtol=1e-4)
    first = wide.features[1].block[-1][0].weight          # stage 1's projection (16, 32, 1, 1)
    assert first.shape[1] > narrow.features[1].block[-1][0].weight.shape[1]
    assert len(torch.unique(first.abs().sum((0, 2, 3)))) == first.shape[1]
    with pytest.raises(ValueError, match="residual"):
        widen(DenseLandmarkNet(12, 0.25, "spatial", 64), wide)
    images, landmarks, _ = small.batch(5, 0, 4)
    source = TrainConfig(landmark_set=LANDMARK_SET, size=64, width=0.5, images=4, shard=4,
                         steps=2, batch=4)
    trained, _ = train(source, tmp_path / "src", images, landmarks)
    target = TrainConfig(**{**source.__dict__, "width": 0.75, "init_from": str(tmp_path / "src")})
    network = build_network(target, landmarks.shape[1])
    start_from_run(network, target, tmp_path / "src", np.zeros((landmarks.shape[1], 2)))
    network.eval()
    with torch.no_grad():
        x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float()
        torch.testing.assert_close(network(x), trained(x), atol=1e-4, rtol=1e-4)
    narrower = TrainConfig(**{**target.__dict__, "width": 0.25})
    with pytest.raises(ValueError, match="widened, not narrowed"):
        start_from_run(build_network(narrower, landmarks.shape[1]), narrower,
                       tmp_path / "src", np.zeros((landmarks.shape[1], 2)))


def test_a_spatial_head_is_resampled_to_another_input_size(small, tmp_path):
    """Equal cells give the same output on either grid; the same grid is left as it is;
    a 96 px run started from a 64 px one trains on from the 64 px network's level."""
    weight = torch.randn(6, 4 * 2 * 2)
    same = resample_spatial_head(weight, 2, 2)
    torch.testing.assert_close(same, weight)
    wider = resample_spatial_head(weight, 2, 3)
    assert wider.shape == (6, 4 * 3 * 3)
    channel_values = torch.randn(4)
    flat = lambda cells: channel_values.repeat_interleave(cells * cells)
    torch.testing.assert_close(wider @ flat(3), weight @ flat(2))
    images, landmarks, _ = small.batch(5, 0, 4)
    source = TrainConfig(landmark_set=LANDMARK_SET, size=small.config.size, width=0.25,
                         images=4, shard=4, steps=15, batch=4, lr=3e-3)
    _, trained = train(source, tmp_path / "src", images, landmarks)
    larger = np.stack([cv2.resize(image, (96, 96)) for image in images])
    scale = 96 / small.config.size
    restart = TrainConfig(**{**source.__dict__, "size": 96, "steps": 1,
                             "init_from": str(tmp_path / "src")})
    _, warm = train(restart, tmp_path / "warm", larger, landmarks * scale)
    _, cold = train(TrainConfig(**{**restart.__dict__, "init_from": ""}), tmp_path / "cold",
                    larger, landmarks * scale)
    assert warm.losses[0][1] < cold.losses[0][1] - 1.0


def test_network_shape():
    network = DenseLandmarkNet(5, width=0.25).eval()
    with torch.no_grad():
        out = network(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 5, 3)
    mean = np.linspace(-0.5, 0.5, 10).reshape(5, 2)
    network.set_mean_positions(mean)
    with torch.no_grad():
        out = network(torch.full((1, 3, 64, 64), 100.0))
    np.testing.assert_allclose(out[0, :, :2].numpy(), mean, atol=0.05)


def test_spatial_head_shape():
    network = DenseLandmarkNet(5, width=0.25, head="spatial", size=72).eval()
    with torch.no_grad():
        out = network(torch.zeros(2, 3, 72, 72))          # 72 px: 3 x 3 cells (padded)
    assert out.shape == (2, 5, 3)
    with pytest.raises(ValueError):
        DenseLandmarkNet(5, head="attention")
    with pytest.raises(ValueError):
        TrainConfig(head="attention")


def test_beta_nll_keeps_the_optimum_not_the_1_over_sigma2_gradient():
    target = torch.zeros(1, 1, 2)
    weights = torch.ones(1)
    optimum = float(np.log(0.5 / np.sqrt(2)))              # sigma^2 = |d|^2 / 2, as eq. 1
    for beta in (0.5, 1.0):
        slopes = []
        for log_sigma in (optimum - 0.5, optimum, optimum + 0.5):
            output = torch.tensor([[[0.3, 0.4, log_sigma]]], requires_grad=True)
            gnll_loss(output, target, weights, beta).backward()
            slopes.append(float(output.grad[0, 0, 2]))
        assert slopes[0] < 0 and slopes[2] > 0 and slopes[1] == pytest.approx(0, abs=1e-5)
    gradients = []
    for log_sigma in (-2.0, 1.0):           # beta = 1: the mu gradient does not see sigma
        output = torch.tensor([[[0.3, 0.4, log_sigma]]], requires_grad=True)
        gnll_loss(output, target, weights, beta=1.0).backward()
        gradients.append(output.grad[0, 0, :2].numpy())
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-5)
    np.testing.assert_allclose(gradients[0], [0.3, 0.4], rtol=1e-5)


def test_label_mask_drops_far_labels_from_the_loss():
    labels = np.array([[[0.2, -0.9], [1.4, 0.0], [-3.0, 25.0]]], dtype=np.float32)
    np.testing.assert_array_equal(label_mask(labels, 1.5), [[True, True, False]])
    np.testing.assert_array_equal(label_mask(labels, 0.0), [[True, True, True]])
    output = torch.zeros(1, 3, 3)
    mask = torch.from_numpy(label_mask(labels, 1.5).astype(np.float32))
    kept = float(gnll_loss(output[:, :2], torch.from_numpy(labels[:, :2]), torch.ones(2)))
    assert float(gnll_loss(output, torch.from_numpy(labels), mask)) == pytest.approx(kept)
    with pytest.raises(ValueError):
        TrainConfig(label_range=0.5)


def test_region_breakdown_puts_an_error_in_its_region():
    from densecap.bench.dense_landmarks import IBUG_REGIONS, region_nme
    rng = np.random.default_rng(3)
    labels = {f"{k}.png": rng.uniform(100, 300, (68, 2)) for k in range(5)}
    predictions = {name: points.copy() for name, points in labels.items()}
    for name, points in predictions.items():
        points[48:68, 0] += 0.1 * np.linalg.norm(labels[name][36] - labels[name][45])
    by_region = region_nme(predictions, labels)
    assert set(by_region) == set(IBUG_REGIONS)
    assert by_region["mouth"] == pytest.approx(10.0, abs=1e-3)
    assert all(by_region[region] == 0 for region in IBUG_REGIONS if region != "mouth")


def test_capture_conditions_change_most_samples_and_keep_every_wide_one(small):
    """Samples index % wide_every == wide_every - 1 are the generic renderer's own; the rest
    are drawn from the narrowed config (the head pose's spread shrinks)."""
    capture = small.with_config(render_style("capture", 64))
    generic = [small.sample(9, k) for k in range(8)]
    drawn = [capture.sample(9, k) for k in range(8)]
    for k in range(8):
        same = np.array_equal(generic[k].image, drawn[k].image)
        assert same == (k % 4 == 3)
    conditions = CaptureConditions(wide_every=2, yaw_std=1.0, neutral_prob=0.5)
    narrowed = conditions.config_for(SyntheticConfig(), 0)
    assert (narrowed.yaw_std, narrowed.neutral_prob, narrowed.pitch_std) == (1.0, 0.5, 9.0)
    assert conditions.config_for(SyntheticConfig(), 1) == SyntheticConfig()
    assert set(RENDER_STYLES) >= {"generic", "capture", "capture-close"}
    with pytest.raises(ValueError, match="renders"):
        render_style("photoreal", 64)
    with pytest.raises(ValueError, match="renders"):
        TrainConfig(renders="photoreal")


def test_an_exported_network_imports_back_into_a_run_that_trains_on(small, tmp_path):
    """import_onnx unfolds the export's BatchNorms: eval mode reproduces the export, and
    a run starts from it with the imported network's loss."""
    images, landmarks, _ = small.batch(4, 0, 8)
    config = TrainConfig(landmark_set=LANDMARK_SET, size=64, width=0.25, images=8, shard=8,
                         steps=10, batch=8, lr=3e-3, seed=0)
    torch.set_num_threads(1)
    network, _ = train(config, tmp_path / "source", images, landmarks)
    path = export_onnx(network, 64, tmp_path / "net16.onnx", LANDMARK_SET, fp16=True,
                       layout=CROP_LAYOUT.zoomed(1.1))
    record = import_onnx(path, tmp_path / "imported", statistics_images=16)
    assert record["width"] == 0.25 and record["max_difference_to_onnxruntime"] < 1e-4
    assert run_config(tmp_path / "imported").crop_zoom == pytest.approx(1.1)
    imported = torch.load(tmp_path / "imported" / "checkpoint.pt", weights_only=True)["model"]
    fresh_network = build_network(config, landmarks.shape[1])
    for name, weight in fresh_network.state_dict().items():
        if weight.ndim == 4:        # every channel at a freshly initialised layer's RMS
            rms = imported[name].pow(2).mean((1, 2, 3)).sqrt()
            torch.testing.assert_close(rms, rms[:1].expand_as(rms))
            assert 0.5 < float(rms[0] / weight.pow(2).mean().sqrt()) < 2.0, name
    again = TrainConfig(**{**config.__dict__, "steps": 2,
                           "init_from": str(tmp_path / "imported")})
    _, restarted = train(again, tmp_path / "again", images, landmarks)
    fresh = TrainConfig(**{**config.__dict__, "steps": 2, "seed": 1})
    _, scratch = train(fresh, tmp_path / "fresh", images, landmarks)
    assert restarted.losses[0][1] < scratch.losses[0][1] - 0.5


def test_a_soup_is_the_mean_of_its_runs_and_refuses_other_networks(small, tmp_path):
    """`training.soup`: every float tensor the mean of the ingredients' (weights and
    BatchNorm statistics), integer buffers the first's, the first run's config; runs that
    differ in network shape or crops are refused."""
    from densecap.training.soup import main as soup_main
    from densecap.training.soup import make_soup
    from densecap.training.train import load_network
    images, landmarks, _ = small.batch(3, 0, 8)
    config = TrainConfig(landmark_set=LANDMARK_SET, size=small.config.size, width=0.25,
                         images=8, shard=8, steps=3, batch=8, lr=3e-3, seed=0)
    torch.set_num_threads(1)
    runs = [tmp_path / f"run{seed}" for seed in (0, 1)]
    for seed, run in zip((0, 1), runs):
        train(TrainConfig(**{**config.__dict__, "seed": seed}), run, images, landmarks)
    make_soup(tmp_path / "soup", runs)
    states = [torch.load(run / "checkpoint.pt", weights_only=True)["model"] for run in runs]
    soup = torch.load(tmp_path / "soup" / "checkpoint.pt", weights_only=True)["model"]
    floats = [key for key, value in soup.items() if value.dtype.is_floating_point]
    assert any("running_mean" in key for key in floats)
    assert any(not torch.equal(states[0][key], states[1][key]) for key in floats)
    for key in floats:
        torch.testing.assert_close(soup[key], (states[0][key] + states[1][key]) / 2)
    for key in set(soup) - set(floats):
        assert torch.equal(soup[key], states[0][key])
    assert run_config(tmp_path / "soup") == run_config(runs[0])
    loaded, network, _ = load_network(tmp_path / "soup")     # a run the bench and export read
    assert loaded.seed == 0 and not network.training
    wider = tmp_path / "wider"
    train(TrainConfig(**{**config.__dict__, "width": 0.5}), wider, images, landmarks)
    with pytest.raises(ValueError, match="width"):
        make_soup(tmp_path / "bad", [runs[0], wider])
    assert soup_main(["--run", str(tmp_path / "one"), "--from", str(runs[0])]) == 2
