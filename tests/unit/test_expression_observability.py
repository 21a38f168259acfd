"""bench.expression_observability: the Laplace posterior of the expression weights."""

import numpy as np
import pytest

from densecap.bench.expression_observability import posterior_std
from densecap.solver.colliders import build_colliders
from densecap.solver.synthetic import random_face


@pytest.fixture(scope="module")
def ibug_posterior(face_model):
    beta, psi, theta = random_face(face_model, 0)
    embedding = face_model.landmark_embedding("ibug68")
    colliders = build_colliders(face_model)
    return {noise: posterior_std(face_model, embedding, colliders, beta, psi, theta, noise)
            for noise in (0.75, 1.5)}


def test_unseen_channel_keeps_the_prior(face_model, ibug_posterior):
    """No iBUG landmark moves with pupil dilation: its posterior is E_expression's
    N(0, 1/2) prior, std 1/sqrt(2), whatever the noise."""
    pupil = face_model.expression_names.index("PupilDilate_L")
    for std in ibug_posterior.values():
        assert std[pupil] == pytest.approx(np.sqrt(0.5), rel=1e-6)


def test_seen_channel_narrows_with_less_noise(face_model, ibug_posterior):
    """jawOpen moves the chin landmarks: halving the noise shrinks its posterior std by a
    factor between 1/2 (landmarks alone: precision a / sigma^2) and 1 (prior alone), as
    precision = a / sigma^2 + prior."""
    jaw = face_model.expression_names.index("jawOpen")
    ratio = ibug_posterior[0.75][jaw] / ibug_posterior[1.5][jaw]
    assert ibug_posterior[1.5][jaw] < 0.2
    assert 0.5 < ratio < 0.8
