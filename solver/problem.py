"""Fitting problems in plain numpy with dense Jacobians.

`FitProblem` stacks the residuals of all energy terms for F frames seen by one camera,
identity (and optionally the focal length) shared, expression and pose per frame. It is the
reference (tests only) the numba kernels are checked against: the real-time fitter and the
Schur-complement blocks of `offline.fit_shared` (the offline fitter and the keyframe
identity / focal refinement).

Parameter vector x: [beta (B) if identity is free] [focal (1) if focal is free]
then per frame [psi (E), theta (18)].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import Camera
from .colliders import Colliders, relative_positions
from .conventions import THETA_SIZE
from .energies import (TERM_NAMES, FitSettings, IdentityPrior, expression_residuals,
                       identity_residuals, intersect_residuals, joint_residuals,
                       landmark_residuals, temporal_residuals)
from .errors import SolverError
from .face_model import FaceModel, LandmarkEmbedding
from .model import landmark_vertex_ids, mesh, mesh_jacobian, vertices2landmarks


@dataclass(frozen=True)
class Observation:
    """One frame's landmarks. mu : (L, 2) pixels; sigma : (L,) pixels;
    previous : (L, 2) the previous frame's fitted projection (E_temporal), or None."""

    mu: np.ndarray
    sigma: np.ndarray
    previous: np.ndarray | None = None


def landmark_points(model: FaceModel, embedding: LandmarkEmbedding, beta, psi, theta,
                    with_jacobian: bool = False):
    """Model-space landmarks (L, 3) and, if asked, d/dbeta (L,3,B), d/dpsi (L,3,E),
    d/dtheta (L,3,18), through `model.mesh` / `model.mesh_jacobian`."""
    corners = landmark_vertex_ids(model, embedding)
    unique, inverse = np.unique(corners, return_inverse=True)
    inverse = inverse.reshape(corners.shape)
    bary = embedding.barycentric.astype(np.float64)
    points = vertices2landmarks(mesh(model, beta, psi, theta, unique), inverse, bary)
    if not with_jacobian:
        return points
    derivs = [np.einsum("lc,lcip->lip", bary, d[inverse])
              for d in mesh_jacobian(model, beta, psi, theta, unique)]
    return (points, *derivs)


class FitProblem:
    """Residuals and dense Jacobian of E over F frames (see module docstring)."""

    def __init__(self, model: FaceModel, embedding: LandmarkEmbedding, camera: Camera,
                 observations: list[Observation], settings: FitSettings, beta: np.ndarray,
                 colliders: Colliders, prior: IdentityPrior | None = None,
                 free_identity: bool = False, free_focal: bool = False):
        count = len(embedding)
        for obs in observations:
            if obs.mu.shape != (count, 2) or obs.sigma.shape != (count,):
                raise SolverError(f"observation shapes {obs.mu.shape}, {obs.sigma.shape} do not "
                                  f"match {count} landmarks")
        self.model, self.embedding, self.camera = model, embedding, camera
        self.observations, self.settings, self.colliders = observations, settings, colliders
        self.beta = np.asarray(beta, dtype=np.float64)
        self.prior = prior or IdentityPrior.standard(model.num_identity)
        self.free_identity, self.free_focal = free_identity, free_focal
        self.num_shared = model.num_identity * free_identity + free_focal
        self.frame_size = model.num_expressions + THETA_SIZE
        self.size = self.num_shared + len(observations) * self.frame_size

    # ------------------------------------------------------------------ layout
    def pack(self, beta, focal, psi, theta) -> np.ndarray:
        """x from beta (B,), focal, psi (F, E), theta (F, 18)."""
        shared = [np.asarray(beta, dtype=np.float64)] if self.free_identity else []
        shared += [np.array([focal], dtype=np.float64)] if self.free_focal else []
        frames = np.concatenate([np.asarray(psi, dtype=np.float64),
                                 np.asarray(theta, dtype=np.float64)], axis=1).reshape(-1)
        return np.concatenate(shared + [frames])

    def unpack(self, x):
        """(beta (B,), focal, psi (F, E), theta (F, 18)) from x."""
        b = self.model.num_identity
        beta = x[:b] if self.free_identity else self.beta
        focal = x[b * self.free_identity] if self.free_focal else self.camera.focal
        frames = x[self.num_shared:].reshape(len(self.observations), self.frame_size)
        e = self.model.num_expressions
        return beta, float(focal), frames[:, :e], frames[:, e:]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (P,): psi in [0, 1], focal > 1 pixel, the rest free."""
        lower, upper = np.full(self.size, -np.inf), np.full(self.size, np.inf)
        if self.free_focal:
            lower[self.num_shared - 1] = 1.0
        e = self.model.num_expressions
        for f in range(len(self.observations)):
            start = self.num_shared + f * self.frame_size
            lower[start:start + e], upper[start:start + e] = 0.0, 1.0
        return lower, upper

    # ------------------------------------------------------------------ residuals
    def terms(self, x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per term (r, J over all of x), terms named as in energies.TERM_NAMES."""
        model, s = self.model, self.settings
        beta, focal, psi, theta = self.unpack(np.asarray(x, dtype=np.float64))
        camera = self.camera.with_focal(focal)
        b, e = model.num_identity, model.num_expressions
        parts = {name: [] for name in TERM_NAMES}

        def widen(jac, frame, d_beta=None, d_focal=None):
            full = np.zeros(jac.shape[:-1] + (self.size,))
            start = self.num_shared + frame * self.frame_size
            full[..., start:start + self.frame_size] = jac
            if self.free_identity and d_beta is not None:
                full[..., :b] = d_beta
            if self.free_focal and d_focal is not None:
                full[..., self.num_shared - 1] = d_focal
            return full

        for f, obs in enumerate(self.observations):
            points, d_beta, d_psi, d_theta = landmark_points(model, self.embedding, beta, psi[f],
                                                             theta[f], with_jacobian=True)
            pixels, d_points, d_focal = camera.project_with_jacobian(points)
            frame_jac = np.einsum("lij,ljp->lip", d_points, np.concatenate([d_psi, d_theta], 2))
            d_pix = widen(frame_jac, f, np.einsum("lij,ljp->lip", d_points, d_beta), d_focal)
            parts["landmarks"].append(landmark_residuals(pixels, d_pix, obs.mu, obs.sigma,
                                                         s.landmarks))
            parts["temporal"].append(temporal_residuals(pixels, d_pix, obs.previous, s.temporal))
            r, jac = expression_residuals(psi[f], s.expression)
            parts["expression"].append((r, widen(np.pad(jac, ((0, 0), (0, THETA_SIZE))), f)))
            r, jac = joint_residuals(theta[f], s.joints)
            parts["joints"].append((r, widen(np.pad(jac, ((0, 0), (e, 0))), f)))
            q, dq_beta, dq_psi = relative_positions(model, self.colliders, beta, psi[f])
            dq = widen(np.pad(dq_psi, ((0, 0), (0, 0), (0, THETA_SIZE))), f, dq_beta)
            parts["intersect"].append(intersect_residuals(q, dq, self.colliders.scale,
                                                          s.intersect))
        r, jac = identity_residuals(beta, self.prior, s.identity)
        full = np.zeros((len(r), self.size))
        if self.free_identity:
            full[:, :b] = jac
        parts["identity"].append((r, full))
        return {name: (np.concatenate([p[0] for p in items]),
                       np.concatenate([p[1] for p in items]))
                for name, items in parts.items()}

    def residuals_and_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms = self.terms(x)
        return (np.concatenate([t[0] for t in terms.values()]),
                np.concatenate([t[1] for t in terms.values()]))

    def energies(self, x: np.ndarray) -> dict[str, float]:
        """E per term (sum of squared residuals) at x."""
        return {name: float(r @ r) for name, (r, _) in self.terms(x).items()}
