"""Seeded synthetic fitting problems (tests and bench/realtime_fit.py): a face drawn from
the priors, seen by a camera that makes it about 256 px wide."""

from __future__ import annotations

import numpy as np

from .camera import Camera
from .conventions import THETA_SIZE, THETA_TRANSLATION
from .problem import landmark_points

#: 640x480 image, f = 1000 px, head 57.5 cm away: the face (iBUG jaw width ~14.7 cm) spans
#: about 256 px.
CAMERA = Camera.monocular(1000.0, 640, 480)
DEPTH = 57.5


def random_face(model, seed: int, expression_rate: float = 0.25):
    """beta ~ N(0, 1); each expression active with probability expression_rate, weight U(0, 1);
    root rotation N(0, 0.1) rad, neck/head N(0, 0.05), eyes 0; head DEPTH cm from the camera."""
    rng = np.random.default_rng(seed)
    beta = rng.normal(size=model.num_identity)
    psi = rng.uniform(0, 1, model.num_expressions) * (rng.uniform(size=model.num_expressions)
                                                     < expression_rate)
    theta = np.zeros(THETA_SIZE)
    theta[0:3] = rng.normal(scale=0.1, size=3)
    theta[3:9] = rng.normal(scale=0.05, size=6)
    theta[THETA_TRANSLATION] = [rng.normal(scale=1.0), rng.normal(scale=1.0), -DEPTH]
    return beta, psi, theta


def observe(model, embedding, beta, psi, theta, noise_px: float, seed: int, camera=CAMERA):
    """mu (L, 2) = projection + N(0, noise_px^2) per coordinate."""
    rng = np.random.default_rng(seed)
    mu = camera.project(landmark_points(model, embedding, beta, psi, theta))
    return mu + rng.normal(scale=noise_px, size=mu.shape) if noise_px > 0 else mu
