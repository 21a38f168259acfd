"""The energy terms of the paper (sec. 3.2) as small residual functions (numpy).

Every term returns residuals r and their Jacobian J with respect to whatever the caller's
derivative inputs are (the caller chains model and camera derivatives), so that
``E_term = ||r||^2`` with the term's weight folded into r. The dense reference problem,
the keyframe refinement and the offline fitter use these; the numba real-time kernel
(`realtime.py`) evaluates the same formulas and is tested against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conventions import NUM_JOINTS

#: Theta entries E_joints regularises: the neck, head and eye rotations (not the root).
JOINT_PRIOR_SLICE = slice(3, 3 * NUM_JOINTS)


@dataclass(frozen=True)
class FitSettings:
    """Term weights (each multiplies its E_term) and solver controls.

    E_landmarks = landmarks * sum ||x - mu||^2 / (2 sigma^2)         (eq. 2)
    E_identity  = identity * -log p(beta) (+ const)                  (Gaussian: ||beta||^2 / 2)
    E_expression = expression * ||psi||^2,  psi in [0, 1]
    E_joints    = joints * ||theta[neck, head, eyes]||^2 (radians)
    E_temporal  = temporal * sum ||x_t - x_{t-1}||^2                  (pixels)
    E_intersect = intersect * sum depth^2                            (cm, see colliders.py)
    """

    landmarks: float = 1.0
    identity: float = 1.0
    expression: float = 1.0
    joints: float = 10.0
    temporal: float = 0.0
    intersect: float = 100.0
    #: expressions whose displacement of a landmark's triangle corners stays at or below
    #: this (cm) are left out of that landmark's Jacobian row (real-time fitter only).
    sparsity_threshold: float = 1e-3
    max_iterations: int = 20
    #: stop when the energy decreases (or is predicted to) by less than this fraction of
    #: itself. 1 %: at the optimum the landmark energy of L noisy landmarks spreads by about
    #: sqrt(1 / L) of itself (a chi-square with 2L degrees of freedom: 4.6 % at 478), so
    #: smaller decreases are below the noise (bench/realtime_fit.py: 2 LM iterations per
    #: tracked frame instead of 5, mesh error 0.59 mm instead of 0.70 mm at 478 landmarks).
    tolerance: float = 1e-2

    def __post_init__(self):
        for name in ("landmarks", "identity", "expression", "joints", "temporal", "intersect",
                     "sparsity_threshold"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"FitSettings.{name} must be finite and >= 0, got {value}")
        if self.max_iterations < 1:
            raise ValueError("FitSettings.max_iterations must be >= 1")


TERM_NAMES = ("landmarks", "identity", "expression", "joints", "temporal", "intersect")


@dataclass(frozen=True)
class IdentityPrior:
    """p(beta) = sum_g gamma_g N(beta | mean_g, Sigma_g), Sigma_g^-1 = P_g P_g^T.

    means : (G, B); precision_factors : (G, B, B) the P_g; log_weights : (G,) log gamma_g.
    The ICT modes are N(0, 1): `IdentityPrior.standard(B)` (G = 1). For G > 1 the residual
    uses the component of highest responsibility at beta (a least-squares form of -log p).
    """

    means: np.ndarray
    precision_factors: np.ndarray
    log_weights: np.ndarray

    @classmethod
    def standard(cls, num_identity: int) -> "IdentityPrior":
        return cls(np.zeros((1, num_identity)), np.eye(num_identity)[None], np.zeros(1))


def landmark_residuals(pixels: np.ndarray, d_pixels: np.ndarray, mu: np.ndarray,
                       sigma: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """E_landmarks. pixels : (L, 2) projected landmarks; d_pixels : (L, 2, P);
    mu : (L, 2); sigma : (L,) pixels. Landmarks with non-finite mu/sigma or sigma <= 0 get
    weight 0. Returns r (2L,), J (2L, P)."""
    scale = landmark_scales(mu, sigma, weight)
    safe_mu = np.where(np.isfinite(mu), mu, 0.0)
    r = (scale[:, None] * (pixels - safe_mu)).reshape(-1)
    return r, (scale[:, None, None] * d_pixels).reshape(r.size, -1)


def landmark_scales(mu: np.ndarray, sigma: np.ndarray, weight: float) -> np.ndarray:
    """Per-landmark residual scale sqrt(weight / 2) / sigma, 0 for unusable landmarks: (L,)."""
    valid = np.isfinite(mu).all(1) & np.isfinite(sigma) & (sigma > 0)
    return np.where(valid, np.sqrt(weight / 2.0) / np.where(valid, sigma, 1.0), 0.0)


def temporal_residuals(pixels: np.ndarray, d_pixels: np.ndarray, previous: np.ndarray | None,
                       weight: float) -> tuple[np.ndarray, np.ndarray]:
    """E_temporal: projected landmark motion since the previous frame's fit.
    previous : (L, 2) or None (first frame: no residuals). Returns r (2L,), J (2L, P)."""
    if previous is None or weight == 0:
        return np.zeros(0), np.zeros((0, d_pixels.shape[-1]))
    s = np.sqrt(weight)
    return (s * (pixels - previous)).reshape(-1), (s * d_pixels).reshape(-1, d_pixels.shape[-1])


def identity_residuals(beta: np.ndarray, prior: IdentityPrior, weight: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """E_identity = weight * (-log p(beta)) up to a constant: r (B,), J (B, B)."""
    whitened = np.einsum("gba,gb->ga", prior.precision_factors, beta - prior.means)
    g = int(np.argmax(prior.log_weights - 0.5 * (whitened ** 2).sum(1)))
    s = np.sqrt(weight / 2.0)
    return s * whitened[g], s * prior.precision_factors[g].T


def expression_residuals(psi: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """E_expression: r (E,), J (E, E)."""
    s = np.sqrt(weight)
    return s * psi, s * np.eye(len(psi))


def joint_residuals(theta: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """E_joints on the neck, head and eye rotations: r (12,), J (12, 18)."""
    s = np.sqrt(weight)
    jac = np.zeros((JOINT_PRIOR_SLICE.stop - JOINT_PRIOR_SLICE.start, len(theta)))
    jac[:, JOINT_PRIOR_SLICE] = s * np.eye(jac.shape[0])
    return s * theta[JOINT_PRIOR_SLICE], jac


def intersect_residuals(relative: np.ndarray, d_relative: np.ndarray, scale: np.ndarray,
                        weight: float) -> tuple[np.ndarray, np.ndarray]:
    """E_intersect: depth of checked skin vertices inside their shape.

    relative : (n, 3) positions in the shape's normalised frame (|q| < 1 inside, see
    colliders.relative_positions); d_relative : (n, 3, P); scale : (n,) cm.
    r_i = sqrt(weight) * scale_i * max(0, 1 - |q_i|). Returns r (n,), J (n, P)."""
    norm = np.linalg.norm(relative, axis=1)
    inside = norm < 1.0
    s = np.sqrt(weight) * scale
    r = np.where(inside, s * (1.0 - norm), 0.0)
    direction = relative / np.maximum(norm, 1e-12)[:, None]
    jac = -(s * inside)[:, None] * np.einsum("ni,nip->np", direction, d_relative)
    return r, jac
