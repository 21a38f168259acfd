"""Simple shapes standing in for the eyeballs and the teeth (E_intersect).

- Eyeballs: spheres centred on the eye joints J(beta)[eye_L/eye_R]; radius = the smaller of
  the 5th percentile of eyeball-vertex distances to the joint and 95 % of the nearest face
  skin vertex on the neutral (so the neutral face does not intersect).
- Teeth: one axis-aligned ellipsoid around the *upper* teeth (the M_Teeth vertices that no
  expression moves); its centre follows identity (mean of those vertices), its semi-axes are
  those of their bounding box on the neutral. Lower teeth, which follow the jaw expressions,
  are not modelled: an approximation.
- Checked skin: M_Face vertices near each shape on the neutral (within EYE_CHECK_MARGIN of a
  sphere, inside TEETH_CHECK_SCALE times the ellipsoid), at most MAX_CHECKED per shape.

All checked vertices and both shapes are rigid to the head joint (the face model's skinning,
asserted at build), so penetration is evaluated exactly in the unposed (bind) space, where it
is linear in beta and psi and independent of the pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conventions import JOINT_NAMES
from .errors import SolverError
from .face_model import FaceModel
from .model import joints, shape
from .regions import material_vertices

EYE_CHECK_MARGIN = 0.5      # cm
TEETH_CHECK_SCALE = 1.3
MAX_CHECKED = 128
HEAD = JOINT_NAMES.index("head")


@dataclass(frozen=True)
class Colliders:
    """Shapes and the skin vertices checked against them (n checked vertices, B modes).

    vertex_ids : (n,) checked skin vertices; centre_rest : (n, 3) centre of each vertex's
    shape on the neutral; centre_identity : (B, n, 3) its change per identity mode;
    inverse_axes : (n, 3) 1 / semi-axes (cm^-1); scale : (n,) cm per unit of normalised depth.
    """

    vertex_ids: np.ndarray
    centre_rest: np.ndarray
    centre_identity: np.ndarray
    inverse_axes: np.ndarray
    scale: np.ndarray

    def centres(self, beta: np.ndarray) -> np.ndarray:
        """Shape centre per checked vertex (n, 3) for identity beta."""
        return self.centre_rest + np.tensordot(beta, self.centre_identity, axes=1)


def _near(candidates: np.ndarray, distance: np.ndarray, limit: float) -> np.ndarray:
    chosen = candidates[distance < limit]
    stride = max(1, int(np.ceil(len(chosen) / MAX_CHECKED)))
    return chosen[::stride]


def build_colliders(model: FaceModel) -> Colliders:
    """The eyeball spheres, the upper-teeth ellipsoid and their checked skin vertices."""
    skin = material_vertices(model, "M_Face")
    neutral = model.neutral.astype(np.float64)
    ids, centres, centre_id, inv_axes, scales = [], [], [], [], []
    for eye in ("eye_L", "eye_R"):
        k = JOINT_NAMES.index(eye)
        centre = model.joint_template[k]
        ball = np.linalg.norm(neutral[model.skin_weights[:, k] == 1.0] - centre, axis=1)
        gap = np.linalg.norm(neutral[skin] - centre, axis=1)
        radius = min(np.percentile(ball, 5), 0.95 * gap.min())
        chosen = _near(skin, gap, radius + EYE_CHECK_MARGIN)
        ids.append(chosen)
        centres.append(np.broadcast_to(centre, (len(chosen), 3)))
        centre_id.append(np.broadcast_to(model.joint_identity[:, k, None, :],
                                         (model.num_identity, len(chosen), 3)))
        inv_axes.append(np.full((len(chosen), 3), 1.0 / radius))
        scales.append(np.full(len(chosen), radius))
    teeth = material_vertices(model, "M_Teeth")
    upper = teeth[np.abs(model.expression_basis[:, teeth]).max(axis=(0, 2)) == 0]
    low, high = neutral[upper].min(0), neutral[upper].max(0)
    centre, axes = neutral[upper].mean(0), (high - low) / 2
    depth = np.linalg.norm((neutral[skin] - centre) / axes, axis=1)
    chosen = _near(skin, depth, TEETH_CHECK_SCALE)
    ids.append(chosen)
    centres.append(np.broadcast_to(centre, (len(chosen), 3)))
    teeth_identity = model.identity_basis[:, upper].astype(np.float64).mean(1)   # (B, 3)
    centre_id.append(np.broadcast_to(teeth_identity[:, None, :],
                                     (model.num_identity, len(chosen), 3)))
    inv_axes.append(np.broadcast_to(1.0 / axes, (len(chosen), 3)))
    scales.append(np.full(len(chosen), np.cbrt(np.prod(axes))))
    vertex_ids = np.concatenate(ids).astype(np.int32)
    rigid = np.concatenate([vertex_ids, upper])
    if not np.all(model.skin_weights[rigid, HEAD] == 1.0):
        raise SolverError("E_intersect needs the checked skin and the teeth rigid to the head")
    return Colliders(vertex_ids, np.concatenate(centres), np.concatenate(centre_id, axis=1),
                     np.concatenate(inv_axes), np.concatenate(scales))


def relative_positions(model: FaceModel, colliders: Colliders, beta: np.ndarray,
                       psi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked vertices in their shape's normalised frame, q = (v - c) * inverse_axes.

    |q| < 1 means inside. Returns q (n, 3), dq/dbeta (n, 3, B), dq/dpsi (n, 3, E).
    """
    ids = colliders.vertex_ids
    q = (shape(model, beta, psi, ids) - colliders.centres(beta)) * colliders.inverse_axes
    d_beta = ((model.identity_basis[:, ids] - colliders.centre_identity)
              * colliders.inverse_axes).transpose(1, 2, 0)
    d_psi = (model.expression_basis[:, ids] * colliders.inverse_axes).transpose(1, 2, 0)
    return q, d_beta.astype(np.float64), d_psi.astype(np.float64)
