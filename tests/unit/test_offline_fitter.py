"""Offline fitter (solver/offline.py): the Schur blocks against the dense reference, the
acceptance cases of the issue on seeded synthetic data, and bad input.

Sizes are cut for speed: the face model keeps its first IDENTITY_MODES identity modes (the
ground truth is drawn from the same modes), 478 random dense landmarks.

Identity error (`identity_error_mm`): median distance over the face-region vertices between
the fitted and the true neutral shape after removing the mean offset and the best global
scale. Images are exactly invariant to scaling the whole scene (face, head translation,
camera translations), so the overall size of the face is set by the identity prior alone;
the scale-free error measures the shape the images determine.
"""

from dataclasses import replace

import numpy as np
import pytest

from densecap.solver.camera import Camera
from densecap.solver.colliders import build_colliders
from densecap.solver.conventions import MODEL_TO_OPENCV, THETA_TRANSLATION
from densecap.solver.energies import FitSettings, IdentityPrior
from densecap.solver.errors import SolverError
from densecap.solver.landmark_sets import random_embedding
from densecap.solver.model import rodrigues, shape
from densecap.solver.offline import (IdentityContext, OfflineSettings, _axis_angle, _camera_vectors,
                                     _energies, _view_data, fit_offline, fit_shared,
                                     head_transform, move_pose, offline_energy)
from densecap.solver import offline_kernel
from densecap.solver.problem import FitProblem, Observation, landmark_points
from densecap.solver.realtime import RealtimeTracker
from densecap.solver.regions import face_region_vertices
from densecap.solver.synthetic import CAMERA, DEPTH, random_face

IDENTITY_MODES = 30
NOISE = 1.5


@pytest.fixture(scope="module")
def small_model(face_model):
    b = IDENTITY_MODES
    return replace(face_model, identity_basis=face_model.identity_basis[:b],
                   joint_identity=face_model.joint_identity[:b])


@pytest.fixture(scope="module")
def dense(small_model):
    return random_embedding(small_model, 478, seed=0)


@pytest.fixture(scope="module")
def region(small_model):
    return face_region_vertices(small_model)


def identity_error_mm(model, region, beta, truth, scale_free=True):
    zero = np.zeros(model.num_expressions)
    fitted = shape(model, beta, zero, region)
    true = shape(model, truth, zero, region)
    fitted, true = fitted - fitted.mean(0), true - true.mean(0)
    scale = (fitted * true).sum() / (fitted * fitted).sum() if scale_free else 1.0
    return 10.0 * float(np.median(np.linalg.norm(scale * fitted - true, axis=1)))


def side_camera(yaw_deg, focal):
    """A camera yaw_deg around the head (at DEPTH in front of camera 0), same distance."""
    rot = rodrigues(np.array([0.0, np.radians(yaw_deg), 0.0])) @ MODEL_TO_OPENCV
    centre = np.array([0.0, 0.0, -DEPTH])
    return Camera(focal, 640, 480, rotation=rot,
                  translation=np.array([0.0, 0.0, DEPTH]) - rot @ centre)


def observe_views(model, emb, beta, psis, thetas, cameras, seed):
    rng = np.random.default_rng(seed)
    mu = np.zeros((len(psis), len(cameras), len(emb), 2))
    for t, (psi, theta) in enumerate(zip(psis, thetas)):
        points = landmark_points(model, emb, beta, psi, theta)
        for c, cam in enumerate(cameras):
            mu[t, c] = cam.project(points) + rng.normal(scale=NOISE, size=(len(emb), 2))
    return mu, np.full(mu.shape[:3], NOISE)


def random_frames(model, count, seed):
    """Varied expression and pose (independent draws), one identity."""
    beta = random_face(model, seed)[0]
    draws = [random_face(model, 1000 * seed + t) for t in range(count)]
    return beta, [d[1] for d in draws], [d[2] for d in draws]


def one_frame_blocks(ctx, beta, x, mu, scale2):
    """offline_kernel.schur_blocks of one frame x (1, P), one camera (CAMERA): u, g_f, w, v,
    g_s, energies."""
    p, s = x.shape[1], ctx.model.num_identity + offline_kernel.CAMERA_PARAMS
    u, g_f, w, v = np.zeros((1, p, p)), np.zeros((1, p)), np.zeros((1, p, s)), np.zeros((1, s, s))
    g_s, energies = np.zeros((1, s)), np.zeros((1, 6))
    offline_kernel.schur_blocks(x, ctx.model.num_expressions, *ctx.table(beta).kernel_args(),
                                ctx.lk_identity, ctx.joint_identity, ctx.check_identity,
                                _camera_vectors([CAMERA]), mu, scale2, *ctx.priors(beta), u, g_f,
                                w, v, g_s, energies)
    return u, g_f, w, v, g_s, energies


def test_schur_blocks_equal_the_dense_reference(small_model):
    model = small_model
    emb = random_embedding(model, 40, seed=3)
    beta, psi, theta = random_face(model, 3)
    mu, sigma = observe_views(model, emb, beta, [psi], [theta], [CAMERA], 5)
    settings = OfflineSettings(fit=FitSettings(temporal=0.0, intersect=0.0,
                                               sparsity_threshold=0.0))
    colliders = build_colliders(model)
    ctx = IdentityContext(model, emb, settings.fit, IdentityPrior.standard(model.num_identity),
                          colliders)
    b0 = beta + 0.1
    x = np.r_[np.clip(psi + 0.1, 0, 1), theta + 0.01][None]
    clean, scale2, _ = _view_data(mu, sigma, [CAMERA], 1.0)
    p, b = x.shape[1], model.num_identity
    u, g_f, w, v, g_s, energies = one_frame_blocks(ctx, b0, x, clean, scale2)
    problem = FitProblem(model, emb, CAMERA, [Observation(mu[0, 0], sigma[0, 0])], settings.fit,
                         b0, colliders, free_identity=True, free_focal=True)
    r, jac = problem.residuals_and_jacobian(problem.pack(b0, CAMERA.focal, x[:, :-18],
                                                         x[:, -18:]))
    landmarks = slice(0, 2 * len(emb))   # the landmark rows (the priors are added elsewhere)
    jl, rl = jac[landmarks], r[landmarks]
    frame, focal = slice(b + 1, b + 1 + p), b
    reference_u = jac[:, frame].T @ jac[:, frame]
    np.testing.assert_allclose(u[0], reference_u, atol=1e-9 * np.abs(reference_u).max())
    np.testing.assert_allclose(w[0][:, :b], jl[:, frame].T @ jl[:, :b],
                               atol=1e-9 * np.abs(w).max())
    np.testing.assert_allclose(w[0][:, -1], jl[:, frame].T @ jl[:, focal], atol=1e-6)
    upper = np.triu(v[0])
    full = upper + upper.T - np.diag(np.diag(upper))
    np.testing.assert_allclose(full[:b, :b], jl[:, :b].T @ jl[:, :b],
                               atol=1e-9 * np.abs(full).max())
    np.testing.assert_allclose(g_s[0, :b], jl[:, :b].T @ rl, atol=1e-9 * np.abs(g_s).max())
    assert g_s[0, -1] == pytest.approx(jl[:, focal] @ rl, rel=1e-8)

    def energy(step):   # rotation increment, translation, focal of the camera
        cam = CAMERA
        cam = replace(cam, rotation=rodrigues(step[:3]) @ cam.rotation,
                      translation=cam.translation + step[3:6], focal=cam.focal + step[6])
        return _energies(ctx, b0, [cam], x, clean, scale2)[0].sum()

    for i in range(6):
        step = np.zeros(7)
        step[i] = 1e-6
        numeric = (energy(step) - energy(-step)) / 2e-6 / 2.0   # E = |r|^2: dE = 2 J^T r
        assert g_s[0, b + i] == pytest.approx(numeric, rel=1e-4, abs=1e-3)


def test_schur_blocks_intersect_identity_rows_equal_the_dense_reference(small_model):
    """E_intersect's beta rows (no landmark weight, so V, W and g_s hold only them) against
    the dense reference's E_intersect term, at a face whose skin enters the eyes / teeth."""
    model = small_model
    emb = random_embedding(model, 20, seed=3)
    beta, psi, theta = random_face(model, 3)
    beta = 2.0 * beta
    settings = FitSettings(temporal=0.0, sparsity_threshold=0.0)
    colliders = build_colliders(model)
    ctx = IdentityContext(model, emb, settings, IdentityPrior.standard(model.num_identity),
                          colliders)
    x = np.r_[psi, theta][None]
    mu = np.zeros((1, 1, len(emb), 2))
    b = model.num_identity
    _, _, w, v, g_s, energies = one_frame_blocks(ctx, beta, x, mu, np.zeros((1, 1, len(emb))))
    problem = FitProblem(model, emb, CAMERA, [Observation(mu[0, 0], np.ones(len(emb)))],
                         settings, beta, colliders, free_identity=True)
    r, jac = problem.terms(problem.pack(beta, CAMERA.focal, x[:, :-18], x[:, -18:]))["intersect"]
    assert np.count_nonzero(r) > 5                       # vertices inside their shapes
    assert energies[0, 5] == pytest.approx(r @ r, rel=1e-9)
    upper = np.triu(v[0])
    full = upper + upper.T - np.diag(np.diag(upper))
    scale = np.abs(jac[:, :b]).max() ** 2
    np.testing.assert_allclose(full[:b, :b], jac[:, :b].T @ jac[:, :b], atol=1e-9 * scale)
    np.testing.assert_allclose(w[0][:, :b], jac[:, b:].T @ jac[:, :b], atol=1e-9 * scale)
    np.testing.assert_allclose(g_s[0, :b], jac[:, :b].T @ r, atol=1e-9 * scale)


def test_fit_shared_keeps_a_start_that_does_not_project_and_checks_shapes(small_model, dense):
    model = small_model
    beta, psis, thetas = random_frames(model, 2, seed=41)
    mu, sigma = observe_views(model, dense, beta, psis, thetas, [CAMERA], 42)
    ctx = IdentityContext(model, dense, FitSettings(), IdentityPrior.standard(model.num_identity),
                          build_colliders(model))
    behind = np.array(thetas)
    behind[:, THETA_TRANSLATION.start + 2] *= -1.0       # the head behind the camera
    start = np.zeros(model.num_identity)
    result = fit_shared(ctx, [CAMERA], mu, sigma, start, np.array(psis), behind, focal=True)
    assert not result.success and result.iterations == 0 and "not finite" in result.message
    np.testing.assert_array_equal(result.beta, start)
    np.testing.assert_array_equal(result.theta, behind)
    assert result.cameras[0].focal == CAMERA.focal
    good = fit_shared(ctx, [CAMERA], mu, sigma, start, np.array(psis), np.array(thetas),
                      iterations=5)
    assert good.success and good.energy < good.start_energy and good.iterations >= 1
    with pytest.raises(SolverError):
        fit_shared(ctx, [CAMERA], mu[:1], sigma, start, np.array(psis), np.array(thetas))
    with pytest.raises(SolverError):
        fit_shared(ctx, [CAMERA], mu, sigma, start, np.array(psis), np.array(thetas),
                   focal=[True, False])


def test_identity_error_falls_as_frames_increase(small_model, dense, region):
    settings = OfflineSettings(fit=FitSettings(temporal=0.0), fit_focal=False,
                               identity_iterations=10)
    beta, psis, thetas = random_frames(small_model, 100, seed=11)
    mu, sigma = observe_views(small_model, dense, beta, psis, thetas, [CAMERA], 12)
    errors = {}
    for count in (1, 10, 100):
        result = fit_offline(small_model, dense, [CAMERA], mu[:count], sigma[:count], settings)
        assert np.all(np.isfinite(result.energies)) and result.energy <= result.start_energy
        errors[count] = identity_error_mm(small_model, region, result.beta, beta)
        if count == 100:
            with_scale = identity_error_mm(small_model, region, result.beta, beta, False)
    print("identity error (mm) by frames:", errors, "100 frames, scale kept:", with_scale)
    assert errors[1] > errors[10] > errors[100]
    assert errors[100] < 0.8 and with_scale < 0.8


def test_three_cameras_with_unknown_extrinsics_and_focal_beat_one(small_model, dense, region):
    true_cameras = [CAMERA, side_camera(35.0, 900.0), side_camera(-30.0, 1150.0)]
    beta, psis, thetas = random_frames(small_model, 12, seed=21)
    mu, sigma = observe_views(small_model, dense, beta, psis, thetas, true_cameras, 22)
    # the fitter gets focal lengths 6 % off and no extrinsics for cameras 1 and 2
    guesses = [Camera.monocular(f, 640, 480) for f in (1060.0, 850.0, 1080.0)]
    settings = OfflineSettings(fit=FitSettings(temporal=0.0), identity_iterations=10)
    three = fit_offline(small_model, dense, guesses, mu, sigma, settings)
    one = fit_offline(small_model, dense, guesses[:1], mu[:, :1], sigma[:, :1], settings)
    err3 = identity_error_mm(small_model, region, three.beta, beta)
    err1 = identity_error_mm(small_model, region, one.beta, beta)
    raw3 = identity_error_mm(small_model, region, three.beta, beta, False)
    print(f"identity error: 3 cameras {err3:.3f} mm ({raw3:.3f} mm with the scale), 1 camera "
          f"{err1:.3f} mm; focal {[round(c.focal, 1) for c in three.cameras]}")
    assert err3 < 0.6 and err3 < err1
    # the camera rotations are recovered (a camera's focal length trades against its
    # distance, which only perspective separates, so it is not asserted)
    for fitted, true in zip(three.cameras[1:], true_cameras[1:]):
        relative = fitted.rotation @ true.rotation.T
        assert np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1))) < 1.5


def sinusoid(model, frames, amplitude, seed):
    beta, psi, theta = random_face(model, seed)
    thetas = []
    for t in range(frames):
        pose = theta.copy()
        pose[1] = amplitude * np.sin(2 * np.pi * t / 24.0)
        thetas.append(pose)
    return beta, [psi] * frames, thetas


def test_offline_energy_is_not_above_realtime_and_temporal_keeps_motion(small_model, dense):
    model, frames, amplitude = small_model, 36, 0.25
    beta, psis, thetas = sinusoid(model, frames, amplitude, seed=31)
    mu, sigma = observe_views(model, dense, beta, psis, thetas, [CAMERA], 32)
    settings = OfflineSettings(identity_iterations=10)
    tracker = RealtimeTracker(model, dense, CAMERA, settings.fit)
    realtime = [tracker.track(mu[t, 0], sigma[t, 0]) for t in range(frames)]
    rt_energy, rt_identity = offline_energy(
        model, dense, [CAMERA], mu, sigma, tracker.beta, np.array([r.psi for r in realtime]),
        np.array([r.theta for r in realtime]), settings)
    smooth = fit_offline(model, dense, [CAMERA], mu, sigma, settings)
    assert smooth.energy <= rt_energy.sum() + rt_identity
    np.testing.assert_allclose(smooth.energies.sum() + smooth.identity_energy, smooth.energy)
    rough = fit_offline(model, dense, [CAMERA], mu, sigma,
                        replace(settings, fit=FitSettings(temporal=0.0)))

    def yaw(result_beta, poses):   # the head's global yaw (root, neck and head together)
        return np.array([_axis_angle(head_transform(model, result_beta, p)[0])[1]
                         for p in poses])

    truth = yaw(beta, thetas)

    def amplitude_of(angles):   # least-squares fit of the known sinusoid's amplitude
        wave = np.sin(2 * np.pi * np.arange(frames) / 24.0)
        return float(wave @ (angles - angles.mean()) / (wave @ wave))

    def jitter(angles):   # frame-to-frame error of the yaw, after the true motion
        return float(np.abs(np.diff(angles - truth)).mean())

    smooth_yaw, rough_yaw = yaw(smooth.beta, smooth.theta), yaw(rough.beta, rough.theta)
    kept = amplitude_of(smooth_yaw) / amplitude_of(truth)
    print(f"amplitude kept {kept:.3f} (without E_temporal "
          f"{amplitude_of(rough_yaw) / amplitude_of(truth):.3f}); jitter "
          f"{jitter(rough_yaw):.5f} -> {jitter(smooth_yaw):.5f} rad")
    assert kept > 0.9
    assert jitter(smooth_yaw) < jitter(rough_yaw)


@pytest.mark.parametrize("case", ["camera_never_sees", "frames_without_landmarks", "one_frame",
                                  "one_camera_long_windows", "first_frames_only_camera_1"])
def test_bad_input_is_handled_without_nan(small_model, case):
    model = small_model
    emb = random_embedding(model, 68, seed=5)
    frames = 1 if case == "one_frame" else 9
    beta, psis, thetas = sinusoid(model, frames, 0.1, seed=41)
    cameras = [CAMERA, side_camera(30.0, 1000.0)]
    mu, sigma = observe_views(model, emb, beta, psis, thetas, cameras, 42)
    settings = OfflineSettings(identity_iterations=3, sweeps=2)
    if case == "camera_never_sees":
        mu[:, 1] = np.nan
    elif case == "frames_without_landmarks":
        mu[3:5] = np.nan
        sigma[6, 0] = 0.0
        mu[0] = np.nan     # the first frame too: it starts from the first fitted one
    elif case == "first_frames_only_camera_1":
        mu[:2, 0] = np.nan
    elif case == "one_camera_long_windows":
        mu, sigma, cameras = mu[:, :1], sigma[:, :1], cameras[:1]
        settings = replace(settings, window=4, overlap=2)
    result = fit_offline(model, emb, cameras, mu, sigma, settings)
    for array in (result.beta, result.psi, result.theta, result.energies):
        assert np.all(np.isfinite(array))
    assert np.isfinite(result.energy) and result.message
    assert result.psi.shape == (frames, model.num_expressions)
    if case == "camera_never_sees":
        assert list(result.camera_seen) == [True, False]
        np.testing.assert_array_equal(result.cameras[1].rotation, cameras[1].rotation)
    if case == "frames_without_landmarks":
        assert list(np.nonzero(~result.valid)[0]) == [0, 3, 4]
        assert np.all(result.energies[[0, 3, 4], 0] == 0)
    if case == "first_frames_only_camera_1":   # their start came through camera 1's pose
        assert result.valid.all() and result.energy < result.start_energy
        landmark_energy = result.energies[:, 0]
        assert landmark_energy[:2].max() < 2.0 * np.median(landmark_energy[2:])


def test_move_pose_moves_the_head_rigidly(small_model):
    beta, _, theta = random_face(small_model, 8)
    rotation, translation = rodrigues(np.array([0.1, -0.3, 0.2])), np.array([2.0, -1.0, 5.0])
    moved = move_pose(small_model, beta, theta, rotation, translation)
    r0, o0 = head_transform(small_model, beta, theta)
    r1, o1 = head_transform(small_model, beta, moved)
    np.testing.assert_allclose(r1, rotation @ r0, atol=1e-12)
    np.testing.assert_allclose(o1, rotation @ o0 + translation, atol=1e-10)


def test_clear_errors(small_model):
    emb = random_embedding(small_model, 20, seed=5)
    mu = np.full((3, 1, 20, 2), np.nan)
    sigma = np.ones((3, 1, 20))
    with pytest.raises(SolverError, match="camera 0 never sees"):
        fit_offline(small_model, emb, [CAMERA], mu, sigma)
    with pytest.raises(SolverError, match="expected mu"):
        fit_offline(small_model, emb, [CAMERA], mu[:, :, :5], sigma)
    with pytest.raises(SolverError, match="at least one frame"):
        fit_offline(small_model, emb, [CAMERA], mu[:0], sigma[:0])
