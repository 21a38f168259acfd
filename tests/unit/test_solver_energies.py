"""Energy terms, camera and the specialised landmark kernel against finite differences and
against the face model."""

import numpy as np
import pytest

from densecap.solver import mesh, vertices2landmarks
from densecap.solver.camera import Camera
from densecap.solver.colliders import build_colliders
from densecap.solver.energies import FitSettings, IdentityPrior, identity_residuals
from densecap.solver.landmark_sets import random_embedding
from densecap.solver.lm import bounded_step
from densecap.solver.model import landmark_vertex_ids, rodrigues
from densecap.solver.problem import FitProblem, Observation
from densecap.solver.realtime import RealtimeFitter, build_landmark_table
from densecap.solver import realtime_kernel
from densecap.solver.synthetic import CAMERA, observe, random_face


@pytest.fixture(scope="module")
def colliders(face_model):
    return build_colliders(face_model)


def finite_difference(fun, x, step=1e-6):
    columns = []
    for i in range(len(x)):
        dx = np.zeros_like(x)
        dx[i] = step
        columns.append((fun(x + dx) - fun(x - dx)) / (2 * step))
    return np.stack(columns, -1)


def test_camera_projection_and_jacobian():
    camera = Camera(focal=800.0, width=640, height=480, rotation=rodrigues(np.array([0.1, -0.2, 0.05])),
                    translation=np.array([1.0, -2.0, 60.0]))
    points = np.random.default_rng(0).normal(scale=5.0, size=(7, 3))
    pixels, d_points, d_focal = camera.project_with_jacobian(points)
    cam = points @ camera.rotation.T + camera.translation
    np.testing.assert_allclose(pixels, 800.0 * cam[:, :2] / cam[:, 2:] + [320, 240])
    for i in range(7):
        fd = finite_difference(lambda p: camera.project(p[None])[0], points[i])
        np.testing.assert_allclose(d_points[i], fd, rtol=1e-6, atol=1e-6)
    fd_focal = (camera.with_focal(800.001).project(points) - camera.with_focal(799.999).project(points)) / 0.002
    np.testing.assert_allclose(d_focal, fd_focal, rtol=1e-6)
    # the monocular camera sees the model's front upright: +Y up in the model is up in the image
    mono = Camera.monocular(1000.0, 640, 480)
    top, bottom = mono.project(np.array([[0.0, 5.0, -60.0], [0.0, -5.0, -60.0]]))
    assert top[1] < bottom[1] and top[0] == pytest.approx(320.0)


def test_every_term_jacobian_matches_finite_differences(face_model, colliders):
    model = face_model
    emb = random_embedding(model, 40, seed=3)
    rng = np.random.default_rng(5)
    frames, psis, thetas = [], [], []
    for seed in (11, 12):
        beta, psi, theta = random_face(model, seed, expression_rate=0.6)
        mu = observe(model, emb, beta, psi, theta, 2.0, seed)
        sigma = rng.uniform(0.5, 3.0, len(emb))
        previous = mu + rng.normal(size=mu.shape)
        sigma[0], mu[1] = 0.0, np.nan      # unusable landmarks get weight 0
        frames.append(Observation(mu, sigma, previous))
        psis.append(np.clip(psi + 0.3 * (psi > 0), 0, 1))
        thetas.append(theta + rng.normal(scale=0.02, size=18))
    settings = FitSettings(temporal=0.3, joints=2.0, expression=0.5, identity=0.7, intersect=50.0)
    problem = FitProblem(model, emb, CAMERA, frames, settings, beta, colliders,
                         free_identity=True, free_focal=True)
    x = problem.pack(0.5 * beta, 1100.0, psis, thetas)
    terms = problem.terms(x)
    assert terms["intersect"][0].any(), "the test point must exercise E_intersect"
    assert np.isfinite(np.concatenate([t[0] for t in terms.values()])).all()
    fd = finite_difference(lambda v: problem.residuals_and_jacobian(v)[0], x)
    _, jac = problem.residuals_and_jacobian(x)
    scale = np.abs(fd).max(axis=0) + 1e-3
    np.testing.assert_allclose(jac / scale, fd / scale, atol=2e-5)


def test_identity_prior_mixture_uses_the_most_responsible_component():
    prior = IdentityPrior(means=np.array([[0.0, 0.0], [5.0, 5.0]]),
                          precision_factors=np.stack([np.eye(2), 2.0 * np.eye(2)]),
                          log_weights=np.log([0.5, 0.5]))
    r, jac = identity_residuals(np.array([4.5, 5.5]), prior, weight=2.0)
    np.testing.assert_allclose(r, 2.0 * np.array([-0.5, 0.5]))
    np.testing.assert_allclose(jac, 2.0 * np.eye(2))


def test_landmark_table_equals_the_face_model(face_model):
    emb = random_embedding(face_model, 120, seed=1)
    beta, psi, theta = random_face(face_model, 2, expression_rate=0.5)
    theta[9:15] = [0.1, -0.2, 0.0, 0.05, 0.1, -0.1]
    table = build_landmark_table(face_model, emb, beta, sparsity_threshold=1e-3)
    fast = realtime_kernel.landmark_positions(psi, theta, *table.position_args())
    reference = vertices2landmarks(mesh(face_model, beta, psi, theta),
                                   landmark_vertex_ids(face_model, emb),
                                   emb.barycentric.astype(np.float64))
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-10)
    assert 0 < table.mean_jacobian_expressions < face_model.num_expressions


def test_kernel_normal_equations_equal_the_dense_reference(face_model, colliders):
    emb = random_embedding(face_model, 60, seed=4)
    beta, psi, theta = random_face(face_model, 7, expression_rate=0.6)
    mu = observe(face_model, emb, beta, psi, theta, 1.0, 7)
    sigma = np.full(len(emb), 1.5)
    sigma[:3] = -1.0
    previous = mu + 2.0
    settings = FitSettings(temporal=0.4, sparsity_threshold=0.0)
    fitter = RealtimeFitter(face_model, emb, CAMERA, settings, beta, colliders)
    x = np.r_[np.clip(psi + 0.2, 0, 1), theta + 0.01]
    jtj, jtr, pixels = np.zeros((73, 73)), np.zeros(73), np.zeros((len(emb), 2))
    rows = np.zeros((2, fitter.table.col_index.size))
    usable = sigma > 0
    scale2 = np.where(usable, 1.0 / (2 * np.where(usable, sigma, 1) ** 2), 0.0)
    energies = realtime_kernel.evaluate(
        x, realtime_kernel.NORMAL_EQUATIONS, face_model.num_expressions,
        *fitter.table.kernel_args(),
        fitter.camera_vector(), mu, scale2, previous, settings.temporal, settings.expression,
        settings.joints, settings.intersect, fitter._check_rest, fitter._check_basis,
        colliders.scale, jtj, jtr, pixels, rows)
    problem = FitProblem(face_model, emb, CAMERA, [Observation(mu, sigma, previous)], settings,
                         beta, colliders)
    r, jac = problem.residuals_and_jacobian(x)
    reference = problem.energies(x)
    assert reference["intersect"] > 0
    for i, name in enumerate(("landmarks", "expression", "joints", "temporal", "intersect")):
        assert energies[[0, 2, 3, 4, 5][i]] == pytest.approx(reference[name], rel=1e-10)
    np.testing.assert_allclose(jtj, jac.T @ jac, rtol=0, atol=1e-9 * np.abs(jac.T @ jac).max())
    np.testing.assert_allclose(jtr, jac.T @ r, rtol=0, atol=1e-9 * np.abs(jac.T @ r).max())
    # the warm start: energies and J^T r of other observations from the stored rows
    other_mu, other_previous = mu - 1.0, previous + 0.5
    other_scale2 = np.where(usable, 1.0 / (2 * np.where(usable, sigma + 0.3, 1) ** 2), 0.0)
    warm_jtr = np.zeros(73)
    warm = realtime_kernel.gradient_views(
        x, face_model.num_expressions, fitter.table.col_ptr, fitter.table.col_index,
        other_mu[None], other_scale2[None], other_previous[None], np.array([settings.temporal]),
        settings.expression, settings.joints, settings.intersect, fitter._check_rest,
        fitter._check_basis, colliders.scale, pixels[None], rows[None], warm_jtr)
    cold = realtime_kernel.evaluate(
        x, realtime_kernel.NORMAL_EQUATIONS, face_model.num_expressions,
        *fitter.table.kernel_args(), fitter.camera_vector(), other_mu, other_scale2,
        other_previous, settings.temporal, settings.expression, settings.joints,
        settings.intersect, fitter._check_rest, fitter._check_basis, colliders.scale, jtj, jtr,
        pixels, rows)
    np.testing.assert_allclose(warm, cold, rtol=1e-12)
    np.testing.assert_allclose(warm_jtr, jtr, rtol=0, atol=1e-12 * np.abs(jtr).max())


def test_bounded_step_solves_a_box_constrained_quadratic():
    # minimise |A x - b|^2 on [0, 1]^3 with the unconstrained optimum outside the box
    a = np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 1.5]])
    b = np.array([-1.0, 0.5, 3.0])
    x = np.full(3, 0.5)
    lower, upper = np.zeros(3), np.ones(3)
    for _ in range(5):
        r = a @ x - b
        x, ok = bounded_step(a.T @ a, a.T @ r, x, lower, upper, 1e-12)
        assert ok and np.all((x >= 0) & (x <= 1))
    # KKT: components strictly inside have zero gradient; at a bound the gradient points out
    grad = a.T @ (a @ x - b)
    inside = (x > 1e-9) & (x < 1 - 1e-9)
    np.testing.assert_allclose(grad[inside], 0, atol=1e-9)
    assert np.all(grad[x <= 1e-9] >= -1e-9) and np.all(grad[x >= 1 - 1e-9] <= 1e-9)
    assert x[0] == 0.0 and x[2] == 1.0
