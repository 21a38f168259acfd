"""Real-time fitting: per frame expression + pose by the numba LM kernel, identity and focal
length refined now and then over a few keyframes, then frozen.

Keyframe schedule (`KeyframeSchedule`): a successfully fitted frame with at least
`min_valid_fraction` usable landmarks becomes a keyframe when it is the first one or its head
orientation (global rotation of the head joint) differs by `min_angle_deg` or more from every
keyframe so far. Each new keyframe triggers a joint refinement of identity (and focal length
if `refine_focal`) with every keyframe's expression and pose (`offline.fit_shared`: LM with
each keyframe's expression + pose block eliminated by a Schur complement onto identity and
focal length, `KeyframeSchedule.iterations` iterations at most), after which the frame is
fitted again. A refinement whose start has no finite energy leaves identity and focal length
as they were. After `max_keyframes` keyframes identity and focal length are frozen. With
`refine_identity=False` the given beta (default 0) is used throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import realtime_kernel as kernel
from .camera import Camera
from .colliders import Colliders, build_colliders
from .conventions import JOINT_NAMES, THETA_SIZE, THETA_TRANSLATION
from .energies import TERM_NAMES, FitSettings, IdentityPrior, identity_residuals
from .errors import SolverError
from .face_model import FaceModel, LandmarkEmbedding
from .model import forward_kinematics, joints, landmark_vertex_ids, rodrigues, shape
from .problem import landmark_points

#: Fewest usable landmarks a frame needs to be fitted.
MIN_LANDMARKS = 6
#: Landmarks further than this many image sizes outside the image are unusable.
OUTSIDE_IMAGE_LIMIT = 1.0
HEAD = JOINT_NAMES.index("head")
STATUS_MESSAGES = ("converged: relative energy decrease (actual or predicted) below tolerance",
                   "converged: no step decreases the energy",
                   "stopped at the iteration limit",
                   "the model does not project in front of the camera")


@dataclass(frozen=True)
class LandmarkTable:
    """The landmarks of one embedding for one identity, specialised for the kernel.

    Landmark l = bary_sum[l] * t + sum over its (l, k) entries m (joints k with weight
    lk_weight[m] = sum_c b_c w_ck) of R_k (lk_rest[m] + sum_e psi[e] ex_basis[e, m]) +
    lk_weight[m] offset_k (ex_basis (E, M, 3) dense, every expression, so this equals
    vertices2landmarks(mesh(...))). The Jacobian keeps the static sparsity: ex_index[q],
    ex_vec[q] for q in ex_ptr[m]:ex_ptr[m+1] are the entry's expressions above the sparsity
    threshold and their vectors, col_index[col_ptr[l]:col_ptr[l+1]] the global parameter of
    each column of landmark l's Jacobian row, theta_col (L, 18) the column of each theta entry
    (-1: not in the row).
    """

    joint_pos: np.ndarray
    bary_sum: np.ndarray
    lk_ptr: np.ndarray
    lk_joint: np.ndarray
    lk_weight: np.ndarray
    lk_rest: np.ndarray
    ex_basis: np.ndarray
    ex_ptr: np.ndarray
    ex_index: np.ndarray
    ex_vec: np.ndarray
    col_ptr: np.ndarray
    col_index: np.ndarray
    theta_col: np.ndarray

    def kernel_args(self) -> tuple:
        return (self.joint_pos, np.asarray([-1, 0, 1, 2, 2], dtype=np.int64), self.bary_sum,
                self.lk_ptr, self.lk_joint, self.lk_weight, self.lk_rest, self.ex_basis,
                self.ex_ptr, self.ex_index, self.ex_vec, self.col_ptr, self.col_index,
                self.theta_col)

    def position_args(self) -> tuple:
        """The leading kernel_args that `realtime_kernel.landmark_positions` takes."""
        return self.kernel_args()[:8]

    @property
    def mean_jacobian_expressions(self) -> float:
        """Mean number of expression columns per landmark row (the static sparsity)."""
        per_landmark = np.diff(self.col_ptr) - (self.theta_col >= 0).sum(1)
        return float(per_landmark.mean())


def build_landmark_table(model: FaceModel, embedding: LandmarkEmbedding, beta: np.ndarray,
                         sparsity_threshold: float) -> LandmarkTable:
    """Specialise `embedding` on `model` at identity `beta` (see LandmarkTable)."""
    corners = landmark_vertex_ids(model, embedding)                        # (L, 3)
    bary = embedding.barycentric.astype(np.float64)
    rest = shape(model, beta, np.zeros(model.num_expressions), corners.reshape(-1)
                 ).reshape(len(embedding), 3, 3)
    basis = model.expression_basis[:, corners].astype(np.float64)          # (E, L, 3, 3)
    moves = np.linalg.norm(basis, axis=-1).max(-1).T > sparsity_threshold  # (L, E)
    weights = model.skin_weights[corners]                                  # (L, 3, K)
    parents = model.joint_parents
    lk_ptr, lk_joint, lk_weight, lk_rest = [0], [], [], []
    ex_basis, ex_ptr, ex_index, ex_vec = [], [0], [], []
    col_ptr, col_index = [0], []
    theta_col = np.full((len(embedding), THETA_SIZE), -1, dtype=np.int32)
    num_expr = model.num_expressions
    for l in range(len(embedding)):
        jac_expr = np.nonzero(moves[l])[0]
        chain = set()
        for k in np.nonzero(bary[l] @ weights[l] > 0)[0]:
            coeff = bary[l] * weights[l, :, k]                                # (3,)
            lk_joint.append(k)
            lk_weight.append(coeff.sum())
            lk_rest.append(coeff @ rest[l])
            vecs = np.einsum("c,eci->ei", coeff, basis[:, l])                   # (E, 3)
            ex_basis.append(vecs)
            for e in jac_expr[np.any(vecs[jac_expr] != 0, axis=1)]:
                ex_index.append(e)
                ex_vec.append(vecs[e])
            ex_ptr.append(len(ex_index))
            while k >= 0:
                chain.add(k)
                k = parents[k]
        lk_ptr.append(len(lk_joint))
        thetas = sorted([3 * k + c for k in chain for c in range(3)]
                        + list(range(THETA_TRANSLATION.start, THETA_TRANSLATION.stop)))
        for i, t in enumerate(thetas):
            theta_col[l, t] = len(jac_expr) + i
        col_index.extend(list(jac_expr) + [num_expr + t for t in thetas])
        col_ptr.append(len(col_index))

    def ints(values):   # int32: the kernel reads these every pass, half the memory traffic
        return np.asarray(values, dtype=np.int32)

    return LandmarkTable(
        joint_pos=joints(model, beta), bary_sum=bary.sum(1), lk_ptr=ints(lk_ptr),
        lk_joint=ints(lk_joint), lk_weight=np.asarray(lk_weight, dtype=np.float64),
        lk_rest=np.asarray(lk_rest, dtype=np.float64).reshape(-1, 3),
        ex_basis=np.ascontiguousarray(np.stack(ex_basis, axis=1), dtype=np.float64),
        ex_ptr=ints(ex_ptr), ex_index=ints(ex_index),
        ex_vec=np.asarray(ex_vec, dtype=np.float64).reshape(-1, 3), col_ptr=ints(col_ptr),
        col_index=ints(col_index), theta_col=theta_col)


@dataclass(frozen=True)
class FrameResult:
    """One frame's fit. Never NaN: a failed frame has success False, says why in message,
    and carries the previous pose.

    psi : (E,) in [0, 1]; theta : (18,); beta : (B,); focal : pixels; pixels : (L, 2) the
    fitted landmarks' projections; energies : E per term (energies.TERM_NAMES); energy : sum;
    iterations : LM trials; converged : the LM stopped on its criterion; keyframe : identity /
    focal were refined on this frame; valid_landmarks : usable landmarks in the input.
    """

    psi: np.ndarray
    theta: np.ndarray
    beta: np.ndarray
    focal: float
    pixels: np.ndarray
    energies: dict
    energy: float
    iterations: int
    converged: bool
    success: bool
    message: str
    keyframe: bool = False
    valid_landmarks: int = 0


def frame_weights(mu: np.ndarray, sigma: np.ndarray, camera: Camera, weight: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The usable landmarks (L,) bool (finite mu and sigma, sigma > 0, mu within
    OUTSIDE_IMAGE_LIMIT image sizes of the image), mu (L, 2) with 0 where unusable, and the
    landmark weights weight / (2 sigma^2) (L,), 0 where unusable, of mu (L, 2), sigma (L,)."""
    mu = np.ascontiguousarray(mu, dtype=np.float64)
    sigma = np.ascontiguousarray(sigma, dtype=np.float64)
    clean_mu, scale2 = np.empty_like(mu), np.empty_like(sigma)
    usable = kernel.frame_weights(mu, sigma, float(camera.width), float(camera.height),
                                  OUTSIDE_IMAGE_LIMIT, float(weight), clean_mu, scale2)
    return usable, clean_mu, scale2


def usable_landmarks(mu: np.ndarray, sigma: np.ndarray, camera: Camera) -> np.ndarray:
    """(L,) bool: finite mu and sigma, sigma > 0, mu within OUTSIDE_IMAGE_LIMIT image sizes
    of the image (see frame_weights)."""
    return frame_weights(mu, sigma, camera, 1.0)[0]


def initial_pose(model: FaceModel, embedding: LandmarkEmbedding, camera: Camera,
                 beta: np.ndarray, mu: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """theta (18,) with zero rotations and the root translation that puts the neutral
    landmarks' centroid on the observed centroid at the depth matching their spread."""
    theta = np.zeros(THETA_SIZE)
    points = landmark_points(model, embedding, beta, np.zeros(model.num_expressions), theta)
    points, observed = points[usable], mu[usable]
    centroid = points.mean(0)
    model_spread = np.sqrt(((points[:, :2] - centroid[:2]) ** 2).sum(1).mean())
    image_spread = np.sqrt(((observed - observed.mean(0)) ** 2).sum(1).mean())
    depth = camera.focal * model_spread / max(image_spread, 1e-6)
    ray = np.r_[(observed.mean(0) - camera.principal_point) / camera.focal, 1.0]
    target = camera.rotation.T @ (depth * ray - camera.translation)
    theta[THETA_TRANSLATION] = target - centroid
    return theta


def camera_vector(camera: Camera) -> np.ndarray:
    """The kernel's camera layout (15,): f, cx, cy, R (row-major), T."""
    return np.r_[camera.focal, camera.principal_point, camera.rotation.reshape(-1),
                 camera.translation]


def collider_tables(model: FaceModel, colliders: Colliders, beta: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's E_intersect data at identity beta: checked vertices in their shape's
    normalised frame at psi = 0 (n, 3) and their change per expression (E, n, 3)."""
    ids = colliders.vertex_ids
    rest = ((shape(model, beta, np.zeros(model.num_expressions), ids) - colliders.centres(beta))
            * colliders.inverse_axes)
    basis = np.ascontiguousarray(model.expression_basis[:, ids] * colliders.inverse_axes,
                                 dtype=np.float64)
    return rest, basis


class RealtimeFitter:
    """Expression + pose of one frame for a fixed identity and camera (numba kernel)."""

    def __init__(self, model: FaceModel, embedding: LandmarkEmbedding, camera: Camera,
                 settings: FitSettings | None = None, beta: np.ndarray | None = None,
                 colliders: Colliders | None = None, prior: IdentityPrior | None = None,
                 table: LandmarkTable | None = None):
        self.model, self.embedding = model, embedding
        self.settings = settings or FitSettings()
        self.prior = prior or IdentityPrior.standard(model.num_identity)
        self.colliders = colliders if colliders is not None else build_colliders(model)
        self.camera = camera
        self.set_identity(np.zeros(model.num_identity) if beta is None else beta, table)
        e = model.num_expressions
        self.lower = np.r_[np.zeros(e), np.full(THETA_SIZE, -np.inf)]
        self.upper = np.r_[np.ones(e), np.full(THETA_SIZE, np.inf)]

    def set_identity(self, beta: np.ndarray, table: LandmarkTable | None = None) -> None:
        """Rebuild the landmark table and collider data for identity beta (B,). table : the
        landmark table at beta when the caller has it (`offline.IdentityContext.table`, with
        this fitter's sparsity threshold), else it is built."""
        model = self.model
        self.beta = np.asarray(beta, dtype=np.float64).copy()
        r, _ = identity_residuals(self.beta, self.prior, self.settings.identity)
        self._identity_energy = float(r @ r)
        self.table = table if table is not None else build_landmark_table(
            model, self.embedding, self.beta, self.settings.sparsity_threshold)
        self._check_rest, self._check_basis = collider_tables(model, self.colliders, self.beta)
        self._kept = self._nothing_kept(len(self.embedding))
        self._jtj = np.zeros((model.num_expressions + THETA_SIZE,) * 2, kernel.JTJ_DTYPE)
        self._rows = np.empty((1, 2, self.table.col_index.size))
        self._no_previous = np.zeros((len(self.embedding), 2))

    @staticmethod
    def _nothing_kept(count: int) -> tuple:
        """The kernel's kept point, camera and projections when there is no kept solve."""
        return np.empty(0), np.empty(15), np.zeros((count, 2))

    @property
    def camera(self) -> Camera:
        return self._camera

    @camera.setter
    def camera(self, camera: Camera) -> None:
        self._camera = camera
        self._camera_vector = camera_vector(camera)

    def camera_vector(self) -> np.ndarray:
        """The kernel's camera layout (15,): f, cx, cy, R (row-major), T (read only)."""
        return self._camera_vector

    def _run(self, mu, sigma, psi0, theta0, previous, max_iterations, landmark_weight=None):
        """The kernel's frame fit (`realtime_kernel.fit_frame`) from x0 = [clip(psi0), theta0].

        The solution's J^T J, projections and Jacobian rows are kept (with its point and
        camera) and reused when the next solve starts there: tracking warm-starts each frame
        from the last one, so the start needs no pass over the model (J^T r from the kept
        rows is exact; J^T J differs only by the new frame's landmark weights, and the LM
        needs an approximation). Returns (x, energies, iterations, status, pixels, usable)."""
        s = self.settings
        count = len(self.embedding)
        if previous is None:
            previous, temporal = self._no_previous, 0.0
        else:
            previous, temporal = np.asarray(previous, np.float64), s.temporal
        kept_x, kept_camera, kept_pixels = self._kept
        camera = self.camera_vector()
        x, energies, iterations, status, pixels, self._rows, usable = kernel.fit_frame(
            mu, sigma, float(self.camera.width), float(self.camera.height), OUTSIDE_IMAGE_LIMIT,
            s.landmarks if landmark_weight is None else landmark_weight, MIN_LANDMARKS,
            psi0, theta0, self.lower, self.upper, max_iterations, s.tolerance,
            self.model.num_expressions, *self.table.kernel_args(), camera, previous, temporal,
            s.expression, s.joints, s.intersect, self._check_rest, self._check_basis,
            self.colliders.scale, self._jtj, kept_x, kept_camera, kept_pixels, self._rows)
        self._kept = ((x, camera, pixels) if max_iterations > 0 and status < 3
                      else self._nothing_kept(count))
        return x, energies, iterations, status, pixels, int(usable)

    def fit(self, mu: np.ndarray, sigma: np.ndarray, psi0: np.ndarray, theta0: np.ndarray,
            previous: np.ndarray | None = None) -> FrameResult:
        """Fit psi and theta to mu : (L, 2), sigma : (L,) pixels from (psi0, theta0).

        previous : (L, 2) the last frame's fitted projections for E_temporal, or None.
        """
        count = len(self.embedding)
        mu = np.ascontiguousarray(mu, dtype=np.float64)
        sigma = np.ascontiguousarray(sigma, dtype=np.float64)
        if mu.shape != (count, 2) or sigma.shape != (count,):
            raise SolverError(f"expected mu ({count}, 2) and sigma ({count},), "
                              f"got {mu.shape} and {sigma.shape}")
        psi0 = np.asarray(psi0, dtype=np.float64)
        theta0 = np.asarray(theta0, dtype=np.float64)
        x, energies, iterations, status, pixels, usable = self._run(
            mu, sigma, psi0, theta0, previous, self.settings.max_iterations)
        if status == 4:
            if not np.all(np.isfinite(energies)):   # no pose yet (first frame): nothing projects
                energies, pixels = np.zeros_like(energies), pixels * 0
            return self._result(x, energies, pixels, 0, False, False,
                                f"only {usable} usable landmarks (need {MIN_LANDMARKS}): "
                                "kept the previous pose", usable)
        if status == 3:   # the start does not project: restart from a fresh rigid guess
            start = initial_pose(self.model, self.embedding, self.camera, self.beta, mu,
                                 usable_landmarks(mu, sigma, self.camera))
            x, energies, iterations, status, pixels, _ = self._run(
                mu, sigma, np.zeros(self.model.num_expressions), start, None,
                self.settings.max_iterations)
        if status == 3:
            x, energies, _, _, pixels, _ = self._run(mu, sigma, psi0, theta0, None, 0,
                                                     landmark_weight=0.0)
            return self._result(x, np.nan_to_num(energies), np.nan_to_num(pixels), iterations,
                                False, False, STATUS_MESSAGES[3] + ": kept the previous pose",
                                usable)
        return self._result(x, energies, pixels, iterations, status < 2, True,
                            STATUS_MESSAGES[status], usable)

    def _result(self, x, energies, pixels, iterations, converged, success, message, valid):
        e = self.model.num_expressions
        terms = dict(zip(TERM_NAMES, energies.tolist()))
        terms["identity"] = self._identity_energy   # constant here: beta is not a variable
        return FrameResult(psi=x[:e].copy(), theta=x[e:].copy(), beta=self.beta.copy(),
                           focal=self.camera.focal, pixels=pixels, energies=terms,
                           energy=float(sum(terms.values())), iterations=int(iterations),
                           converged=bool(converged), success=bool(success), message=message,
                           valid_landmarks=valid)


@dataclass(frozen=True)
class KeyframeSchedule:
    """When identity / focal are refined (see the module docstring)."""

    max_keyframes: int = 5
    min_angle_deg: float = 7.5
    min_valid_fraction: float = 0.9
    iterations: int = 15


def head_rotation(model: FaceModel, theta: np.ndarray) -> np.ndarray:
    """Global rotation (3, 3) of the head joint for pose theta (18,)."""
    rotations = rodrigues(theta[:THETA_TRANSLATION.start].reshape(-1, 3))
    global_rot, _ = forward_kinematics(rotations, model.joint_template, model.joint_parents)
    return global_rot[HEAD]


@dataclass(frozen=True)
class Keyframe:
    """A keyframe's observation, mu (L, 2) and sigma (L,) pixels, and its latest fit, psi (E,)
    and theta (18,)."""

    mu: np.ndarray
    sigma: np.ndarray
    psi: np.ndarray
    theta: np.ndarray


class RealtimeTracker:
    """Frame-by-frame tracking: warm-started expression + pose per frame, identity and focal
    refined on keyframes then frozen. `track(mu, sigma) -> FrameResult`."""

    def __init__(self, model: FaceModel, embedding: LandmarkEmbedding, camera: Camera,
                 settings: FitSettings | None = None, beta: np.ndarray | None = None,
                 refine_identity: bool = True, refine_focal: bool = False,
                 schedule: KeyframeSchedule | None = None,
                 prior: IdentityPrior | None = None):
        self.model, self.embedding = model, embedding
        self.refine_identity, self.refine_focal = refine_identity, refine_focal
        self.schedule = schedule or KeyframeSchedule()
        self.prior = prior or IdentityPrior.standard(model.num_identity)
        self.keyframes: list[Keyframe] = []
        self._keyframe_heads: np.ndarray | None = None
        self.frozen = not (refine_identity or refine_focal)
        settings = settings or FitSettings()
        beta = np.zeros(model.num_identity) if beta is None else np.asarray(beta, np.float64)
        colliders = build_colliders(model)
        # the refinement's model data (None once frozen); offline.py builds on this module
        # (its start is this tracker), hence the import here
        self._context = None
        if not self.frozen:
            from .offline import IdentityContext
            self._context = IdentityContext(model, embedding, settings, self.prior, colliders)
        self.fitter = RealtimeFitter(model, embedding, camera, settings, beta, colliders,
                                     self.prior, self._table(beta))
        self._last: FrameResult | None = None

    @property
    def beta(self) -> np.ndarray:
        return self.fitter.beta

    @property
    def camera(self) -> Camera:
        return self.fitter.camera

    def _table(self, beta: np.ndarray) -> LandmarkTable | None:
        return None if self._context is None else self._context.table(beta)

    def track(self, mu: np.ndarray, sigma: np.ndarray) -> FrameResult:
        """Fit one frame: mu (L, 2), sigma (L,) pixels."""
        last = self._last
        if last is None:
            usable = usable_landmarks(np.asarray(mu, float), np.asarray(sigma, float), self.camera)
            psi0 = np.zeros(self.model.num_expressions)
            theta0 = (initial_pose(self.model, self.embedding, self.camera, self.beta,
                                   np.asarray(mu, float), usable)
                      if usable.sum() >= MIN_LANDMARKS else np.zeros(THETA_SIZE))
            previous = None
        else:
            psi0, theta0 = last.psi, last.theta
            previous = last.pixels if last.success else None
        result = self.fitter.fit(mu, sigma, psi0, theta0, previous)
        if result.success and self._wants_keyframe(result):
            result = self._refine(mu, sigma, result, previous)
        if result.success or last is None:
            self._last = result if result.success else None
        else:
            self._last = FrameResult(**{**last.__dict__, "success": False})
        return result

    def lose_track(self) -> None:
        """The face has left the view: the next frame starts like the first (its pose from
        its own landmarks, no E_temporal against the last fit), since a face may re-enter
        anywhere (a cut, another shot); identity, focal length and keyframes are kept."""
        self._last = None

    def _wants_keyframe(self, result: FrameResult) -> bool:
        if self.frozen or result.valid_landmarks < (self.schedule.min_valid_fraction
                                                    * len(self.embedding)):
            return False
        if self._keyframe_heads is None:     # (K, 3, 3), rebuilt when the keyframes change
            self._keyframe_heads = np.array([head_rotation(self.model, key.theta)
                                             for key in self.keyframes]).reshape(-1, 3, 3)
        rot = head_rotation(self.model, result.theta)
        cos = (np.einsum("kij,ij->k", self._keyframe_heads, rot) - 1.0) / 2.0   # trace(K^T R)
        return bool(np.all(np.arccos(np.clip(cos, -1.0, 1.0))
                           >= np.radians(self.schedule.min_angle_deg)))

    def _refine(self, mu, sigma, result, previous) -> FrameResult:
        """Add this frame as a keyframe, refine identity / focal over all keyframes
        (`offline.fit_shared`), freeze after max_keyframes, and fit the frame again."""
        from .offline import fit_shared
        fitter = self.fitter
        self.keyframes.append(Keyframe(np.asarray(mu, np.float64), np.asarray(sigma, np.float64),
                                       result.psi, result.theta))
        keys = self.keyframes
        shared = fit_shared(
            self._context, [self.camera], np.stack([k.mu for k in keys])[:, None],
            np.stack([k.sigma for k in keys])[:, None], self.beta,
            np.stack([k.psi for k in keys]), np.stack([k.theta for k in keys]),
            identity=self.refine_identity, focal=self.refine_focal,
            iterations=self.schedule.iterations, tolerance=fitter.settings.tolerance)
        if shared.success:
            fitter.camera = shared.cameras[0]
            fitter.set_identity(shared.beta, self._table(shared.beta))
            self.keyframes = [replace(k, psi=p, theta=t)
                              for k, p, t in zip(keys, shared.psi, shared.theta)]
        if len(self.keyframes) >= self.schedule.max_keyframes:
            self.frozen = True
            self._context = None
        self._keyframe_heads = None
        key = self.keyframes[-1]
        refitted = fitter.fit(mu, sigma, key.psi, key.theta, previous)
        return FrameResult(**{**refitted.__dict__, "keyframe": True})
