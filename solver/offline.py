"""Offline fitting: all frames and all cameras at once, one identity, E_temporal, unknown
camera extrinsics and focal lengths (paper sec. 3.2, eq. 2 over frames and cameras).

Parameters: beta (B) shared; per frame psi (E) in [0, 1] and theta (18); per camera c > 0
rotation and translation (camera 0 is the reference: its extrinsics stay as given); per camera
the focal length (`OfflineSettings.fit_focal`).

Method (`fit_offline`):

1. Start (`realtime_start`): the real-time tracker on each camera's frames (mean identity:
   step 2 fits it, so the keyframe refinement is skipped); camera c's
   extrinsics from the per-view head poses of the frames both camera 0 and c fit (rotation:
   SO(3) projection of the mean, translation: median); each frame's pose from camera 0, else
   from another camera through its extrinsics.
2. Identity and cameras (`fit_shared`): LM on at most `identity_frames` frames spread over
   the clip, without E_temporal (the frames are not neighbours). Each frame's (psi, theta)
   block is eliminated by a Schur complement onto the shared block (beta, cameras), as in
   bundle adjustment: numba kernels build the blocks in parallel over frames
   (`offline_kernel.schur_blocks` / `schur_reduce`), the reduced shared system is solved by
   numpy. `fit_shared` (with an `IdentityContext`: the model data specialised once) is public:
   the real-time tracker's keyframe refinement of identity and focal length is the same solve
   over its few keyframes.
3. All frames with identity and cameras fixed (`_fit_frames`), in windows of `window` frames
   (+ `overlap` re-solved by the next window) so memory stays bounded: red-black block
   Gauss-Seidel sweeps, each frame refitted by the real-time kernel's LM with its
   neighbours' projections fixed (E_temporal is exact for the frame given its neighbours), so
   each sweep lowers the total energy; a frame that settled (it and its neighbours moved
   less than `settled_px`) is skipped by the next sweep; sweeps stop when the window's energy
   falls by less than `sweep_tolerance` (relative) or after `sweeps`.

Every term is the real-time kernel's (one implementation): the energy reported is
E = sum over frames of E_landmarks + E_expression + E_joints + E_intersect + E_temporal
(E_temporal of frame t: w * sum over cameras and landmarks |x_t - x_{t-1}|^2) + E_identity.

Masking: a landmark counts when mu and sigma are finite, sigma > 0 and mu is near the image
(`realtime.frame_weights`); a (frame, camera) view with fewer than `MIN_LANDMARKS` is
masked; a frame with no view is `valid = False` (its pose comes from its neighbours through
E_temporal, or is held from the start); a camera with no view is never moved (`camera_seen`).
Camera 0 must see the face: it defines the world.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from . import offline_kernel as okernel
from .realtime_kernel import landmark_positions
from .camera import Camera
from .colliders import Colliders, build_colliders, relative_positions
from .conventions import THETA_SIZE, THETA_TRANSLATION
from .energies import TERM_NAMES, FitSettings, IdentityPrior, identity_residuals
from .errors import SolverError
from .lm import DIAGONAL_FLOOR, MAX_PASSES
from .face_model import FaceModel, LandmarkEmbedding
from .model import forward_kinematics, joints, landmark_vertex_ids, rodrigues
from .realtime import (HEAD, MIN_LANDMARKS, LandmarkTable, RealtimeTracker, build_landmark_table,
                       camera_vector, frame_weights)

#: LM damping factors of the identity / camera solve after an accepted / rejected step.
DAMPING_DOWN, DAMPING_UP = 0.3, 4.0
T_TEMPORAL = TERM_NAMES.index("temporal")
T_IDENTITY = TERM_NAMES.index("identity")


@dataclass(frozen=True)
class OfflineSettings:
    """Weights (`fit`, its `temporal` is E_temporal's weight) and solver controls."""

    fit: FitSettings = field(default_factory=lambda: FitSettings(temporal=0.05))
    #: fit each seen camera's focal length (else it stays as given).
    fit_focal: bool = True
    #: frames (spread over the clip) that identity and cameras are fitted on.
    identity_frames: int = 60
    identity_iterations: int = 20
    #: stop the identity / camera solve when the energy falls by less than this fraction.
    identity_tolerance: float = 1e-5
    #: red-black sweeps over all frames, LM iterations per frame and sweep, and the relative
    #: decrease of a window's energy below which the sweeps stop.
    sweeps: int = 6
    frame_iterations: int = 3
    sweep_tolerance: float = 1e-4
    #: a frame whose fitted landmarks and neighbours' moved less than this (pixels) in a
    #: sweep is not refitted in the next one.
    settled_px: float = 0.02
    #: frames per window of the all-frames pass, and frames re-solved by the next window.
    window: int = 500
    overlap: int = 20

    def __post_init__(self):
        for name in ("identity_frames", "sweeps", "frame_iterations", "window"):
            if getattr(self, name) < 1:
                raise SolverError(f"OfflineSettings.{name} must be >= 1")
        if self.identity_iterations < 0 or self.overlap < 0:
            raise SolverError("OfflineSettings.identity_iterations and overlap must be >= 0")


@dataclass(frozen=True)
class OfflineStart:
    """A starting point: beta (B,), psi (F, E), theta (F, 18), one Camera per view."""

    beta: np.ndarray
    psi: np.ndarray
    theta: np.ndarray
    cameras: tuple[Camera, ...]


@dataclass(frozen=True)
class OfflineResult:
    """The fit of all frames. Never NaN.

    beta : (B,); psi : (F, E) in [0, 1]; theta : (F, 18); cameras : one per view (rotation,
    translation, focal as fitted); valid : (F,) the frame had a usable view;
    camera_seen : (C,) the camera had a usable view in some frame;
    energies : (F, 6) per term (TERM_NAMES order) per frame; the identity column is 0, the
    identity term is global: identity_energy; energy : the total; start_energy : the same
    energy at the start (real-time fits); iterations : LM iterations of the identity /
    camera solve plus sweeps of the all-frames pass; converged : both stopped on their
    tolerance; message : how it ended.
    """

    beta: np.ndarray
    psi: np.ndarray
    theta: np.ndarray
    cameras: tuple[Camera, ...]
    valid: np.ndarray
    camera_seen: np.ndarray
    energies: np.ndarray
    identity_energy: float
    energy: float
    start_energy: float
    iterations: int
    converged: bool
    message: str

    energy_names = TERM_NAMES


class IdentityContext:
    """Model data specialised once for fits in which identity is a variable: the landmark
    table and E_intersect's checked vertices at beta = 0 and their (exact, linear) beta
    derivatives, so `table(beta)` and `priors(beta)` cost a matrix product instead of
    `build_landmark_table` / `collider_tables`; the weights (`fit`), prior and colliders;
    the bounds of a frame's (psi, theta)."""

    def __init__(self, model: FaceModel, embedding: LandmarkEmbedding, fit: FitSettings,
                 prior: IdentityPrior, colliders: Colliders):
        self.model, self.embedding, self.fit = model, embedding, fit
        self.prior, self.colliders = prior, colliders
        self.table0 = build_landmark_table(model, embedding, np.zeros(model.num_identity),
                                           fit.sparsity_threshold)
        self.lk_identity = _landmark_identity_basis(model, embedding, self.table0)
        self.joint_identity = np.ascontiguousarray(model.joint_identity, dtype=np.float64)
        e = model.num_expressions
        check, d_beta, d_psi = relative_positions(model, colliders,
                                                  np.zeros(model.num_identity), np.zeros(e))
        self.check_rest0 = check                                               # (n, 3)
        self.check_identity = np.ascontiguousarray(d_beta.transpose(0, 2, 1))  # (n, B, 3)
        self.check_basis = np.ascontiguousarray(d_psi.transpose(2, 0, 1))     # (E, n, 3)
        self.lower = np.r_[np.zeros(e), np.full(THETA_SIZE, -np.inf)]
        self.upper = np.r_[np.ones(e), np.full(THETA_SIZE, np.inf)]

    def table(self, beta: np.ndarray) -> LandmarkTable:
        """The landmark table at identity beta (B,) (linear in beta)."""
        return replace(self.table0,
                       lk_rest=self.table0.lk_rest + np.einsum("b,mbi->mi", beta,
                                                               self.lk_identity),
                       joint_pos=joints(self.model, beta))

    def priors(self, beta: np.ndarray) -> tuple:
        """(expression, joints, intersect weights, check_rest, check_basis, check_scale) at
        identity beta (B,), as `realtime.collider_tables`."""
        fit = self.fit
        rest = self.check_rest0 + np.einsum("b,nbi->ni", beta, self.check_identity)
        return (fit.expression, fit.joints, fit.intersect, rest, self.check_basis,
                self.colliders.scale)

    def identity_energy(self, beta: np.ndarray) -> float:
        r, _ = identity_residuals(beta, self.prior, self.fit.identity)
        return float(r @ r)


def _landmark_identity_basis(model: FaceModel, embedding: LandmarkEmbedding,
                             table: LandmarkTable) -> np.ndarray:
    """d lk_rest[m] / d beta: (M, B, 3), the same sums as build_landmark_table."""
    corners = landmark_vertex_ids(model, embedding)                       # (L, 3)
    owner = np.repeat(np.arange(len(embedding)), np.diff(table.lk_ptr))   # (M,)
    weights = model.skin_weights[corners[owner], table.lk_joint[:, None]]  # (M, 3)
    coeff = embedding.barycentric[owner].astype(np.float64) * weights
    basis = model.identity_basis[:, corners[owner]].astype(np.float64)    # (B, M, 3, 3)
    return np.ascontiguousarray(np.einsum("mc,bmci->mbi", coeff, basis))


# ---------------------------------------------------------------------------- data
def _view_data(mu: np.ndarray, sigma: np.ndarray, cameras: Sequence[Camera],
               weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean landmarks of some frames: mu (n, C, L, 2) -> (mu with 0 where unusable,
    lmk_scale2 (n, C, L) weight / (2 sigma^2) or 0, view_ok (n, C))."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    usable = np.zeros(sigma.shape, dtype=bool)
    clean, scale2 = np.zeros_like(mu), np.zeros_like(sigma)
    for t in range(len(mu)):
        for c, cam in enumerate(cameras):
            usable[t, c], clean[t, c], scale2[t, c] = frame_weights(mu[t, c], sigma[t, c], cam,
                                                                    weight)
    view_ok = usable.sum(-1) >= MIN_LANDMARKS
    clean[~view_ok] = 0.0
    scale2[~view_ok] = 0.0
    return clean, scale2, view_ok


def _view_mask(mu: np.ndarray, sigma: np.ndarray, cameras: Sequence[Camera],
               chunk: int = 500) -> np.ndarray:
    """view_ok (F, C) in chunks (bounded memory)."""
    return np.concatenate([_view_data(mu[a:a + chunk], sigma[a:a + chunk], cameras, 1.0)[2]
                           for a in range(0, len(mu), chunk)])


def _camera_vectors(cameras: Sequence[Camera]) -> np.ndarray:
    return np.stack([camera_vector(c) for c in cameras])


# ---------------------------------------------------------------------------- start
def head_transform(model: FaceModel, beta: np.ndarray, theta: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Rigid model-to-world transform of the head joint for pose theta: (R (3, 3), o (3,)),
    x_world = R x + o for points rigid to the head."""
    rotations = rodrigues(theta[:THETA_TRANSLATION.start].reshape(-1, 3))
    global_rot, offsets = forward_kinematics(rotations, joints(model, beta), model.joint_parents)
    return global_rot[HEAD], offsets[HEAD] + theta[THETA_TRANSLATION]


def move_pose(model: FaceModel, beta: np.ndarray, theta: np.ndarray, rotation: np.ndarray,
              translation: np.ndarray) -> np.ndarray:
    """theta (18,) of the same face moved by x -> rotation x + translation (root rotation and
    translation changed)."""
    root = joints(model, beta)[0]
    out = theta.copy()
    out[0:3] = _axis_angle(rotation @ rodrigues(theta[0:3]))
    out[THETA_TRANSLATION] = rotation @ (root + theta[THETA_TRANSLATION]) + translation - root
    return out


def _axis_angle(rotation: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a rotation matrix (3, 3)."""
    cos = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                     rotation[1, 0] - rotation[0, 1]])
    if angle < 1e-8:
        return axis / 2.0
    if np.pi - angle < 1e-6:
        w, vecs = np.linalg.eigh(rotation + rotation.T)
        return angle * vecs[:, -1]
    return angle * axis / (2.0 * np.sin(angle))


def _mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """The rotation nearest to the mean of (n, 3, 3) rotations."""
    u, _, vt = np.linalg.svd(rotations.mean(0))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def realtime_start(model: FaceModel, embedding: LandmarkEmbedding, cameras: Sequence[Camera],
                   mu: np.ndarray, sigma: np.ndarray, settings: OfflineSettings | None = None,
                   prior: IdentityPrior | None = None) -> OfflineStart:
    """The real-time tracker on every camera, combined into one start (see module docstring).

    mu (F, C, L, 2), sigma (F, C, L). Raises SolverError when camera 0 never sees the face
    or a camera that does shares no fitted frame with camera 0."""
    settings = settings or OfflineSettings()
    frames, num_views = sigma.shape[:2]
    e = model.num_expressions
    seen = _view_mask(mu, sigma, cameras).any(0)
    if not seen[0]:
        raise SolverError("camera 0 never sees the face: it is the reference camera")
    psi = np.zeros((num_views, frames, e))
    theta = np.zeros((num_views, frames, THETA_SIZE))
    ok = np.zeros((num_views, frames), dtype=bool)
    betas = []
    for c in range(num_views):
        if not seen[c]:
            betas.append(None)
            continue
        tracker = RealtimeTracker(model, embedding, cameras[c], settings.fit, prior=prior,
                                  refine_identity=False)
        for t in range(frames):
            result = tracker.track(mu[t, c], sigma[t, c])
            psi[c, t], theta[c, t], ok[c, t] = result.psi, result.theta, result.success
        betas.append(tracker.beta)
    beta = betas[0]
    out_cameras = [cameras[0]]
    out_psi, out_theta = psi[0].copy(), theta[0].copy()
    taken = ok[0].copy()
    for c in range(1, num_views):
        if not seen[c]:
            out_cameras.append(cameras[c])
            continue
        both = np.nonzero(ok[0] & ok[c])[0]
        if len(both) == 0:
            raise SolverError(f"camera {c} and camera 0 never fit the face in the same frame: "
                              "their relative pose is unknown")
        given = cameras[c]
        rots, trans = [], []
        for t in both:
            r0, o0 = head_transform(model, beta, theta[0, t])
            rc, oc = head_transform(model, betas[c], theta[c, t])
            rot = given.rotation @ rc @ r0.T
            rots.append(rot)
            trans.append(given.rotation @ oc + given.translation - rot @ o0)
        rotation = _mean_rotation(np.asarray(rots))
        translation = np.median(np.asarray(trans), axis=0)
        camera = replace(given, rotation=rotation, translation=translation)
        out_cameras.append(camera)
        # frames camera 0 missed: this camera's pose, moved into the world
        to_world_r = rotation.T @ given.rotation
        to_world_t = rotation.T @ (given.translation - translation)
        for t in np.nonzero(ok[c] & ~taken)[0]:
            out_psi[t] = psi[c, t]
            out_theta[t] = move_pose(model, beta, theta[c, t], to_world_r, to_world_t)
            taken[t] = True
    # frames no camera fitted: the nearest fitted frame's pose (earlier, else later)
    fitted = np.nonzero(taken)[0]
    if len(fitted) == 0:
        raise SolverError("the real-time fitter found the face in no frame")
    nearest = fitted[np.clip(np.searchsorted(fitted, np.arange(frames), side="right") - 1, 0,
                             None)]
    nearest = np.where(nearest <= np.arange(frames), nearest, fitted[0])
    out_psi, out_theta = out_psi[nearest], out_theta[nearest]
    return OfflineStart(beta=beta, psi=out_psi, theta=out_theta, cameras=tuple(out_cameras))


# ---------------------------------------------------------------------------- energies
def _energies(ctx: IdentityContext, beta, cameras, x, mu, scale2) -> tuple[np.ndarray, np.ndarray]:
    """Per-term energies (n, 6) without E_temporal, projections (n, C, L, 2)."""
    table = ctx.table(beta)
    energies = np.zeros((len(x), len(TERM_NAMES)))
    pixels = np.zeros(mu.shape)
    okernel.frame_energies(x, ctx.model.num_expressions, *table.kernel_args(),
                           _camera_vectors(cameras), mu, scale2, *ctx.priors(beta), pixels,
                           energies)
    return energies, pixels


def offline_energy(model: FaceModel, embedding: LandmarkEmbedding, cameras: Sequence[Camera],
                   mu: np.ndarray, sigma: np.ndarray, beta: np.ndarray, psi: np.ndarray,
                   theta: np.ndarray, settings: OfflineSettings | None = None,
                   prior: IdentityPrior | None = None) -> tuple[np.ndarray, float]:
    """The offline energy of given parameters: per frame per term (F, 6) and E_identity.
    (The objective `fit_offline` minimises; compare fits with it.)"""
    settings = settings or OfflineSettings()
    ctx = IdentityContext(model, embedding, settings.fit,
                          prior or IdentityPrior.standard(model.num_identity),
                          build_colliders(model))
    clean, scale2, view_ok = _view_data(mu, sigma, cameras, settings.fit.landmarks)
    x = np.concatenate([psi, theta], axis=1)
    energies, pixels = _energies(ctx, np.asarray(beta, float), cameras, x, clean, scale2)
    energies[:, T_TEMPORAL] = _temporal_steps(pixels, np.ones(len(x), dtype=bool),
                                              settings.fit.temporal,
                                              view_ok.any(0).astype(float))
    return energies, ctx.identity_energy(np.asarray(beta, float))


def project_landmarks(model: FaceModel, embedding: LandmarkEmbedding, beta: np.ndarray,
                      camera: Camera, psi: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Projected landmarks (F, L, 2) of F frames psi (F, E), theta (F, 18)."""
    table = build_landmark_table(model, embedding, np.asarray(beta, float), 1e-3)
    args = table.position_args()
    points = np.stack([landmark_positions(p, t, *args) for p, t in zip(psi, theta)])
    return camera.project(points.reshape(-1, 3)).reshape(len(psi), -1, 2)


# ---------------------------------------------------------------------------- shared solve
def _apply_shared(beta, cameras, step, num_beta):
    """New beta and cameras after a shared step [beta, per camera (rot 3, trans 3, f)]."""
    out = []
    for c, cam in enumerate(cameras):
        d = step[num_beta + okernel.CAMERA_PARAMS * c:][:okernel.CAMERA_PARAMS]
        out.append(replace(cam, rotation=rodrigues(d[:3]) @ cam.rotation,
                           translation=cam.translation + d[3:6],
                           focal=max(cam.focal + d[6], 1.0)))
    return beta + step[:num_beta], out


@dataclass(frozen=True)
class SharedFit:
    """The result of `fit_shared`. Never NaN.

    beta : (B,); cameras : one per view; psi : (n, E) in [0, 1]; theta : (n, 18);
    energy : E of the n frames without E_temporal, plus E_identity; start_energy : the same at
    the start; iterations : LM iterations; converged : stopped on the tolerance or because no
    step lowers the energy; success : the start's energy was finite (else the start is
    returned unchanged); message : how it ended.
    """

    beta: np.ndarray
    cameras: tuple[Camera, ...]
    psi: np.ndarray
    theta: np.ndarray
    energy: float
    start_energy: float
    iterations: int
    converged: bool
    success: bool
    message: str


def _camera_mask(value, count: int, name: str) -> np.ndarray:
    """A per-camera flag (C,) bool from one bool or C of them."""
    mask = np.broadcast_to(np.asarray(value, dtype=bool), (count,)) if np.ndim(value) == 0 \
        else np.asarray(value, dtype=bool)
    if mask.shape != (count,):
        raise SolverError(f"{name} must be one bool or {count} of them, got shape {mask.shape}")
    return mask


def fit_shared(ctx: IdentityContext, cameras: Sequence[Camera], mu: np.ndarray,
               sigma: np.ndarray, beta: np.ndarray, psi: np.ndarray, theta: np.ndarray, *,
               identity: bool = True, focal=False, extrinsics=False, iterations: int = 20,
               tolerance: float = 1e-5) -> SharedFit:
    """Fit the parameters n frames share (identity, and per camera its focal length and
    extrinsics) jointly with each frame's expression and pose, from the given start, by LM
    with each frame's (psi, theta) block eliminated by a Schur complement (module docstring,
    step 2). No E_temporal (the frames need not be neighbours).

    cameras : C cameras; mu (n, C, L, 2) pixels, NaN where missing; sigma (n, C, L);
    beta (B,), psi (n, E), theta (n, 18) the start; identity : beta is free; focal,
    extrinsics : one bool or (C,) bools, the cameras whose focal length / rotation and
    translation are free (only cameras with a usable view in these frames move; camera 0's
    extrinsics define the world: freeing them with free head poses leaves the system to the
    damping). iterations : LM iterations at most; tolerance : stop when an accepted step
    lowers the energy by less than this fraction. Raises SolverError on bad shapes.
    """
    model = ctx.model
    cameras = tuple(cameras)
    mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    psi, theta = np.asarray(psi, dtype=np.float64), np.asarray(theta, dtype=np.float64)
    n, count = len(psi), len(ctx.embedding)
    if (mu.shape != (n, len(cameras), count, 2) or sigma.shape != mu.shape[:3]
            or psi.shape != (n, model.num_expressions) or theta.shape != (n, THETA_SIZE)
            or np.shape(beta) != (model.num_identity,)):
        raise SolverError(f"fit_shared: expected mu ({n}, {len(cameras)}, {count}, 2), sigma "
                          f"({n}, {len(cameras)}, {count}), psi ({n}, {model.num_expressions}),"
                          f" theta ({n}, {THETA_SIZE}), beta ({model.num_identity},); got "
                          f"{mu.shape}, {sigma.shape}, {psi.shape}, {theta.shape}, "
                          f"{np.shape(beta)}")
    if iterations < 0:
        raise SolverError("fit_shared: iterations must be >= 0")
    clean, scale2, view_ok = _view_data(mu, sigma, cameras, ctx.fit.landmarks)
    seen = view_ok.any(0)
    free = np.zeros(model.num_identity + okernel.CAMERA_PARAMS * len(cameras), dtype=bool)
    free[:model.num_identity] = identity
    for c, (f_free, e_free) in enumerate(zip(_camera_mask(focal, len(cameras), "focal") & seen,
                                             _camera_mask(extrinsics, len(cameras),
                                                          "extrinsics") & seen)):
        base = model.num_identity + okernel.CAMERA_PARAMS * c
        free[base:base + 6] = e_free
        free[base + 6] = f_free
    x = np.clip(np.concatenate([psi, theta], axis=1), ctx.lower, ctx.upper)
    return _shared_lm(ctx, np.asarray(beta, dtype=np.float64).copy(), cameras, x, clean,
                      scale2, free, iterations, tolerance)


def _shared_step(ctx: IdentityContext, u, g_frame, w, reduced, reduced_g, v_sum, g_sum,
                 shared_damping, index, x, damping):
    """One damped LM step of `_shared_lm` with the frame blocks eliminated, bounds as in
    lm.bounded_step: expression weights on a bound with the gradient pointing out are held;
    frame variables the step takes out of the box are pinned on the bound and the shared
    step is solved again (at most lm.MAX_PASSES times). v_sum (S, S), g_sum (S,): the shared
    normal equations over all frames (+ E_identity); shared_damping (S,) added to v_sum's
    diagonal; index: the free shared parameters. Returns (shared step (S,), new x (n, P)),
    or (None, None) when the reduced system is singular."""
    held = (((x <= ctx.lower) & (g_frame > 0.0)) | ((x >= ctx.upper) & (g_frame < 0.0)))
    fixed = np.zeros_like(x)
    trial_x = np.empty_like(x)
    step = np.zeros(len(g_sum))
    for _ in range(MAX_PASSES):
        okernel.schur_reduce(u, g_frame, w, held, fixed, damping, reduced, reduced_g)
        system = v_sum - reduced.sum(0)
        system[np.diag_indices(len(g_sum))] += shared_damping
        rhs = -(g_sum - reduced_g.sum(0))
        try:
            step[index] = np.linalg.solve(system[np.ix_(index, index)], rhs[index])
        except np.linalg.LinAlgError:
            return None, None
        pinned = okernel.frame_steps(u, g_frame, w, step, x, ctx.lower, ctx.upper, held, fixed,
                                     damping, trial_x)
        if not np.any(pinned > 0):
            break
    return step, trial_x


def _shared_lm(ctx: IdentityContext, beta, cameras, x, mu, scale2, free, iterations,
               tolerance) -> SharedFit:
    """The LM of `fit_shared` on (beta, cameras, x (n, P)); mu, scale2 from _view_data,
    free (S,) bool the shared parameters that may move."""
    model = ctx.model
    num_beta = model.num_identity
    n, size = x.shape
    shared = len(free)
    u, g_frame = np.zeros((n, size, size)), np.zeros((n, size))
    w, v = np.zeros((n, size, shared)), np.zeros((n, shared, shared))
    g_shared, energies = np.zeros((n, shared)), np.zeros((n, len(TERM_NAMES)))
    reduced, reduced_g = np.zeros((n, shared, shared)), np.zeros((n, shared))

    def linearise(beta, cameras, x):
        okernel.schur_blocks(x, model.num_expressions, *ctx.table(beta).kernel_args(),
                             ctx.lk_identity, ctx.joint_identity, ctx.check_identity,
                             _camera_vectors(cameras),
                             mu, scale2, *ctx.priors(beta), u, g_frame, w, v, g_shared,
                             energies)
        return energies.sum() + ctx.identity_energy(beta)

    def total(beta, cameras, x):
        e, _ = _energies(ctx, beta, cameras, x, mu, scale2)
        return e.sum() + ctx.identity_energy(beta)

    def result(iteration, converged, message, success=True):
        e = model.num_expressions
        return SharedFit(beta=beta, cameras=tuple(cameras), psi=x[:, :e].copy(),
                         theta=x[:, e:].copy(), energy=float(energy),
                         start_energy=float(start_energy), iterations=iteration,
                         converged=converged, success=success, message=message)

    energy = start_energy = linearise(beta, cameras, x)
    if not np.isfinite(energy):
        energy = start_energy = np.inf
        return result(0, False, "the start's energy is not finite: kept the start",
                      success=False)
    damping = 1e-4
    index = np.nonzero(free)[0]
    for iteration in range(1, iterations + 1):
        upper = v.sum(0)
        v_sum = upper + upper.T - np.diag(np.diag(upper))
        g_sum = g_shared.sum(0)
        r_id, j_id = identity_residuals(beta, ctx.prior, ctx.fit.identity)
        v_sum[:num_beta, :num_beta] += j_id.T @ j_id
        g_sum[:num_beta] += j_id.T @ r_id
        # each shared parameter is damped relative to its own curvature: a floor from the
        # largest (beta's, ~1e8 times the focal length's in pixels) would freeze the focal
        # length, which the images determine only weakly (it trades against depth)
        shared_damping = (damping + DIAGONAL_FLOOR) * np.diag(v_sum) + 1e-12
        step, trial_x = _shared_step(ctx, u, g_frame, w, reduced, reduced_g, v_sum, g_sum,
                                     shared_damping, index, x, damping)
        if step is None:
            damping *= 10.0
            continue
        delta = trial_x - x
        predicted = -(2.0 * (np.einsum("fp,fp->", delta, g_frame) + step @ g_sum)
                      + np.einsum("fp,fpq,fq->", delta, u, delta)
                      + 2.0 * np.einsum("fp,fps,s->", delta, w, step) + step @ v_sum @ step)
        if predicted <= tolerance * energy:
            return result(iteration, True, "converged: predicted energy decrease below "
                                           "tolerance")
        trial_beta, trial_cameras = _apply_shared(beta, cameras, step, num_beta)
        trial = total(trial_beta, trial_cameras, trial_x)
        if np.isfinite(trial) and trial < energy:
            decrease = (energy - trial) / max(energy, 1e-300)
            beta, cameras, x = trial_beta, trial_cameras, trial_x
            energy = linearise(beta, cameras, x)
            damping = max(damping * DAMPING_DOWN, 1e-12)
            if decrease < tolerance:
                return result(iteration, True, "converged: relative energy decrease below "
                                               "tolerance")
        else:
            damping *= DAMPING_UP
            if damping > 1e10:
                return result(iteration, True, "converged: no step decreases the energy")
    return result(iterations, False, "stopped at the iteration limit")


# ---------------------------------------------------------------------------- all frames
def _fit_frames(ctx: IdentityContext, settings: OfflineSettings, beta, cameras, x, mu, sigma,
                views, fixed_frames, cancel: Callable[[], bool] | None):
    """The windowed red-black pass over all frames (module docstring, step 3); x (F, P) is
    updated in place. views (C,) 1.0 for cameras E_temporal applies to; fixed_frames (F,)
    frames left as they are. Returns (energies (F, 6) without E_identity, sweeps,
    converged)."""
    fit = settings.fit
    frames = len(x)
    table, priors = ctx.table(beta), ctx.priors(beta)
    camera_data = _camera_vectors(cameras)
    energies = np.zeros((frames, len(TERM_NAMES)))
    total_sweeps, converged = 0, True
    start = 0
    while start < frames:
        stop = min(start + settings.window + settings.overlap, frames)
        commit = min(start + settings.window, frames) if stop < frames else frames
        # window slots: [left neighbour] frames start..stop-1 [right neighbour]
        slots = np.arange(start - 1, stop + 1)
        real = (slots >= 0) & (slots < frames)
        safe = np.clip(slots, 0, frames - 1)
        clean, scale2, _ = _view_data(mu[safe], sigma[safe], cameras, fit.landmarks)
        clean[~real], scale2[~real] = 0.0, 0.0
        xw = x[safe].copy()
        fixed = ~real | np.r_[True, fixed_frames[start:stop], True]
        fixed[0] = fixed[-1] = True
        neighbours = np.stack([np.r_[0.0, real[:-1]], np.r_[real[1:], 0.0]], axis=1)
        e_w, pixels = _energies(ctx, beta, cameras, xw, clean, scale2)
        smooth = fit.temporal > 0
        previous_total = np.inf
        skip = fixed.copy()
        for _ in range(settings.sweeps if smooth else 1):
            if cancel is not None and cancel():
                raise OfflineCancelled()
            before = pixels.copy()
            for parity in (1, 0):
                okernel.smoothing_sweep(
                    parity, xw, ctx.lower, ctx.upper, settings.frame_iterations,
                    fit.tolerance, ctx.model.num_expressions, *table.kernel_args(),
                    camera_data, clean, scale2, fit.temporal, views, neighbours, *priors,
                    pixels, skip)
            total_sweeps += 1
            # frames that, like both neighbours, moved less than settled_px are settled: the
            # next sweep leaves them (their block problem has not changed)
            moved = np.abs(pixels - before).reshape(len(pixels), -1).max(1) > settings.settled_px
            near = moved | np.r_[False, moved[:-1]] | np.r_[moved[1:], False]
            skip = fixed | ~near
            e_w, pixels = _energies(ctx, beta, cameras, xw, clean, scale2)
            steps = _temporal_steps(pixels, real, fit.temporal, views)
            inner = e_w[1:-1].sum() + steps[1:].sum()
            if not smooth or previous_total - inner <= settings.sweep_tolerance * inner:
                break
            previous_total = inner
        else:
            converged = False
        x[start:stop] = xw[1:-1]
        count = commit - start
        energies[start:commit] = e_w[1:1 + count]
        energies[start:commit, T_TEMPORAL] = steps[1:1 + count]
        start = commit
    return energies, total_sweeps, converged


def _temporal_steps(pixels: np.ndarray, real: np.ndarray, weight: float,
                    views: np.ndarray) -> np.ndarray:
    """E_temporal of each slot (n,) towards the slot before it (0 when either is not a real
    frame): pixels (n, C, L, 2), real (n,), views (C,)."""
    steps = np.zeros(len(pixels))
    moves = ((pixels[1:] - pixels[:-1]) ** 2).sum(-1).sum(-1) @ views
    steps[1:] = weight * moves * (real[1:] & real[:-1])
    return steps


class OfflineCancelled(Exception):
    """Raised by `fit_offline` when its cancel callback returns True."""


# ---------------------------------------------------------------------------- entry point
def fit_offline(model: FaceModel, embedding: LandmarkEmbedding, cameras: Sequence[Camera],
                mu: np.ndarray, sigma: np.ndarray, settings: OfflineSettings | None = None,
                start: OfflineStart | None = None, prior: IdentityPrior | None = None,
                colliders: Colliders | None = None,
                cancel: Callable[[], bool] | None = None) -> OfflineResult:
    """Fit identity, cameras and every frame's expression and pose (module docstring).

    cameras : C starting cameras (intrinsics; camera 0's extrinsics define the world, the
    others' are estimated); mu : (F, C, L, 2) pixels, NaN where missing; sigma : (F, C, L)
    pixels; start : a starting point (default `realtime_start`); cancel : polled between
    steps, True raises OfflineCancelled. Raises SolverError on bad shapes or when camera 0
    never sees the face.
    """
    settings = settings or OfflineSettings()
    prior = prior or IdentityPrior.standard(model.num_identity)
    cameras = tuple(cameras)
    mu, sigma = np.asarray(mu), np.asarray(sigma)
    count = len(embedding)
    if mu.ndim != 4 or mu.shape[1:] != (len(cameras), count, 2) or sigma.shape != mu.shape[:3]:
        raise SolverError(f"expected mu (F, {len(cameras)}, {count}, 2) and sigma "
                          f"(F, {len(cameras)}, {count}), got {mu.shape} and {sigma.shape}")
    if len(mu) == 0 or len(cameras) == 0:
        raise SolverError("fit_offline needs at least one frame and one camera")
    view_ok = _view_mask(mu, sigma, cameras)
    seen, valid = view_ok.any(0), view_ok.any(1)
    if not seen[0]:
        raise SolverError("camera 0 never sees the face: it is the reference camera")
    if start is None:
        start = realtime_start(model, embedding, cameras, mu, sigma, settings, prior)
    if start.psi.shape != (len(mu), model.num_expressions) or start.theta.shape != (
            len(mu), THETA_SIZE) or len(start.cameras) != len(cameras):
        raise SolverError("the start does not match the frames and cameras")
    ctx = IdentityContext(model, embedding, settings.fit, prior,
                          colliders or build_colliders(model))
    views = seen.astype(np.float64)
    beta = np.asarray(start.beta, dtype=np.float64).copy()
    cams = list(start.cameras)
    x = np.clip(np.concatenate([start.psi, start.theta], axis=1).astype(np.float64),
                ctx.lower, ctx.upper)
    fixed = ~valid if settings.fit.temporal == 0 else np.zeros(len(x), dtype=bool)

    def total_energy(beta_now, cams_now, x_now):
        """Per-frame energies (F, 6) in windows (bounded memory)."""
        energies = np.zeros((len(x_now), len(TERM_NAMES)))
        for a in range(0, len(x_now), settings.window):
            part = slice(max(a - 1, 0), a + settings.window)
            clean, scale2, _ = _view_data(mu[part], sigma[part], cams_now, settings.fit.landmarks)
            e, pixels = _energies(ctx, beta_now, cams_now, x_now[part], clean, scale2)
            steps = _temporal_steps(pixels, np.ones(len(pixels), dtype=bool),
                                    settings.fit.temporal, views)
            e[:, T_TEMPORAL] = steps
            if a > 0:
                e = e[1:]
            energies[a:a + settings.window] = e
        return energies

    x_start = x.copy()
    start_energies = total_energy(beta, cams, x)
    start_energy = float(start_energies.sum() + ctx.identity_energy(beta))
    # 2. identity and cameras on a subsample of the frames that have data
    usable_frames = np.nonzero(valid)[0]
    pick = usable_frames[np.unique(np.linspace(0, len(usable_frames) - 1,
                                               min(settings.identity_frames,
                                                   len(usable_frames))).round().astype(int))]
    e = model.num_expressions
    shared = fit_shared(ctx, cams, mu[pick], sigma[pick], beta, x[pick, :e], x[pick, e:],
                        focal=settings.fit_focal, extrinsics=np.arange(len(cams)) > 0,
                        iterations=settings.identity_iterations,
                        tolerance=settings.identity_tolerance)
    beta, cams = shared.beta, list(shared.cameras)
    x[pick] = np.concatenate([shared.psi, shared.theta], axis=1)
    if cancel is not None and cancel():
        raise OfflineCancelled()
    # 3. every frame, identity and cameras fixed
    energies, sweeps, frames_converged = _fit_frames(ctx, settings, beta, cams, x, mu, sigma,
                                                    views, fixed, cancel)
    identity_energy = ctx.identity_energy(beta)
    energy = float(energies.sum() + identity_energy)
    message = (f"identity/cameras: {shared.iterations} LM iterations on {len(pick)} frames "
               f"({shared.message}); all frames: "
               f"{sweeps} sweeps ({'converged' if frames_converged else 'sweep limit'})")
    if not (np.isfinite(energy) and energy <= start_energy):
        # never worse than the start: keep it
        return OfflineResult(
            beta=np.asarray(start.beta, float).copy(), psi=x_start[:, :model.num_expressions],
            theta=x_start[:, model.num_expressions:], cameras=tuple(start.cameras),
            valid=valid, camera_seen=seen, energies=np.nan_to_num(start_energies),
            identity_energy=float(ctx.identity_energy(start.beta)), energy=start_energy,
            start_energy=start_energy, iterations=shared.iterations + sweeps, converged=False,
            message=message + f"; the result ({energy:.6g}) was not below the start "
                              f"({start_energy:.6g}): kept the start")
    return OfflineResult(beta=beta, psi=x[:, :e].copy(), theta=x[:, e:].copy(),
                         cameras=tuple(cams), valid=valid, camera_seen=seen,
                         energies=energies, identity_energy=float(identity_energy),
                         energy=energy, start_energy=start_energy,
                         iterations=shared.iterations + sweeps,
                         converged=bool(shared.converged and frames_converged), message=message)
