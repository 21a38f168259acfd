"""Known answers and derivatives of the face model M(beta, psi, theta)."""

import numpy as np
import pytest

from densecap.solver import mesh, mesh_jacobian, shape, joints
from densecap.solver.conventions import theta_rotation, THETA_SIZE, THETA_TRANSLATION, JOINT_NAMES
from densecap.solver.model import rodrigues

HEAD, EYE_L, EYE_R = (JOINT_NAMES.index(n) for n in ("head", "eye_L", "eye_R"))


def random_params(model, seed):
    rng = np.random.default_rng(seed)
    beta = rng.normal(size=model.num_identity)
    psi = rng.uniform(0, 1, model.num_expressions)
    theta = rng.normal(scale=0.3, size=THETA_SIZE)
    theta[THETA_TRANSLATION] = rng.normal(scale=5.0, size=3)
    return beta, psi, theta


def test_zero_pose_is_the_unposed_shape(face_model):
    beta, psi, _ = random_params(face_model, 0)
    np.testing.assert_allclose(mesh(face_model, beta, psi, np.zeros(THETA_SIZE)),
                               shape(face_model, beta, psi), atol=1e-9)


def test_head_rotation_is_rigid_about_the_head_joint_and_keeps_the_lower_neck(face_model):
    beta, psi, _ = random_params(face_model, 1)
    theta = np.zeros(THETA_SIZE)
    theta[theta_rotation(HEAD)] = [0.4, -0.3, 0.2]
    rest, posed = shape(face_model, beta, psi), mesh(face_model, beta, psi, theta)
    head_joint = joints(face_model, beta)[HEAD]
    rigid = face_model.skin_weights[:, HEAD] == 1.0
    expected = (rest[rigid] - head_joint) @ rodrigues(theta[theta_rotation(HEAD)]).T + head_joint
    np.testing.assert_allclose(posed[rigid], expected, atol=1e-9)
    lower_neck = face_model.skin_weights[:, 0] == 1.0
    assert lower_neck.sum() > 100
    np.testing.assert_allclose(posed[lower_neck], rest[lower_neck], atol=1e-9)
    moved = np.linalg.norm(posed - rest, axis=1) > 1e-6
    assert moved.sum() > 20000


@pytest.mark.parametrize("eye", [EYE_L, EYE_R])
def test_eye_rotation_moves_only_its_eyeball(face_model, eye):
    beta, psi, _ = random_params(face_model, 2)
    theta = np.zeros(THETA_SIZE)
    theta[theta_rotation(eye)] = [0.2, 0.3, 0.0]
    moved = np.linalg.norm(mesh(face_model, beta, psi, theta) - shape(face_model, beta, psi),
                           axis=1) > 1e-9
    eyeball = face_model.skin_weights[:, eye] > 0
    assert moved.any()
    assert not (moved & ~eyeball).any()
    # The eyeball turns about its centre: distances to the eye joint are kept.
    centre = joints(face_model, beta)[eye]
    rest = shape(face_model, beta, psi)[eyeball]
    posed = mesh(face_model, beta, psi, theta)[eyeball]
    np.testing.assert_allclose(np.linalg.norm(posed - centre, axis=1),
                               np.linalg.norm(rest - centre, axis=1), atol=1e-9)


def test_eye_joints_sit_at_the_eyeball_centres(face_model):
    beta, _, _ = random_params(face_model, 3)
    verts = shape(face_model, beta, np.zeros(face_model.num_expressions))
    for eye in (EYE_L, EYE_R):
        ball = verts[face_model.skin_weights[:, eye] > 0]
        centre = joints(face_model, beta)[eye]
        radii = np.linalg.norm(ball - centre, axis=1)
        assert radii.std() < 0.12  # cm: a sphere up to the corneal bulge
        assert np.linalg.norm(centre - ball.mean(0)) < 0.6


def _central_differences(f, x, step=1e-6):
    columns = []
    for i in range(len(x)):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        columns.append((f(up) - f(down)) / (2 * step))
    return np.stack(columns, -1)


@pytest.mark.parametrize("seed", [4, 5])
def test_analytic_derivatives_match_finite_differences(face_model, seed):
    beta, psi, theta = random_params(face_model, seed)
    ids = np.random.default_rng(seed).choice(face_model.num_vertices, 40, replace=False)
    d_beta, d_psi, d_theta = mesh_jacobian(face_model, beta, psi, theta, ids)
    numeric = [
        _central_differences(lambda b: mesh(face_model, b, psi, theta, ids), beta),
        _central_differences(lambda p: mesh(face_model, beta, p, theta, ids), psi),
        _central_differences(lambda t: mesh(face_model, beta, psi, t, ids), theta),
    ]
    for analytic, fd in zip((d_beta, d_psi, d_theta), numeric):
        rel = np.abs(analytic - fd).max() / np.abs(fd).max()
        assert rel < 1e-4


def test_derivatives_at_zero_rotation(face_model):
    beta, psi, _ = random_params(face_model, 6)
    theta = np.zeros(THETA_SIZE)
    ids = np.arange(0, face_model.num_vertices, 997)
    _, _, d_theta = mesh_jacobian(face_model, beta, psi, theta, ids)
    fd = _central_differences(lambda t: mesh(face_model, beta, psi, t, ids), theta)
    assert np.abs(d_theta - fd).max() / np.abs(fd).max() < 1e-4


def test_skin_weights_are_a_partition_of_unity(face_model):
    w = face_model.skin_weights
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
