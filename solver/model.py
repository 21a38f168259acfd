"""The mesh-generating function M(beta, psi, theta) as small pure functions (numpy).

    M(beta, psi, theta) = lbs(shape(beta, psi), theta, joints(beta), W)      (paper, sec. 3.2)

Every function takes an optional `vertex_ids` (n,) so callers that need a few
vertices (landmarks, the fitter) never pay for the whole mesh. Shapes use
N/n vertices, B identity modes, E expressions, K joints; theta is (18,) as laid
out in `conventions` (five axis-angle rotations, then the root translation).
"""

from __future__ import annotations

import numpy as np

from .conventions import THETA_SIZE, THETA_TRANSLATION, NUM_JOINTS
from .face_model import FaceModel, LandmarkEmbedding


def _rows(array: np.ndarray, vertex_ids: np.ndarray | None) -> np.ndarray:
    return array if vertex_ids is None else array[..., vertex_ids, :]


def shape(model: FaceModel, beta: np.ndarray, psi: np.ndarray,
          vertex_ids: np.ndarray | None = None) -> np.ndarray:
    """Unposed mesh T(beta, psi): neutral + identity + expression offsets.

    beta : (B,), psi : (E,) -> (N, 3) or (n, 3) float64, cm.
    """
    beta = np.asarray(beta, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    return (_rows(model.neutral, vertex_ids).astype(np.float64)
            + np.tensordot(beta, _rows(model.identity_basis, vertex_ids), axes=1)
            + np.tensordot(psi, _rows(model.expression_basis, vertex_ids), axes=1))


def joints(model: FaceModel, beta: np.ndarray) -> np.ndarray:
    """Joint rest positions J(beta): (K, 3) float64, cm."""
    return model.joint_template + np.tensordot(np.asarray(beta, dtype=np.float64),
                                               model.joint_identity, axes=1)


def _skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices of (..., 3) vectors: (..., 3, 3)."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = np.zeros_like(x)
    return np.stack([np.stack([zero, -z, y], -1),
                     np.stack([z, zero, -x], -1),
                     np.stack([-y, x, zero], -1)], -2)


def rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of axis-angle vectors (..., 3)."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(axis_angle, axis=-1)[..., None, None]
    k = _skew(axis_angle)
    small = angle < 1e-8
    safe = np.where(small, 1.0, angle)
    a = np.where(small, 1.0, np.sin(safe) / safe)
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe ** 2)
    return np.eye(3) + a * k + b * (k @ k)


def rodrigues_derivative(axis_angle: np.ndarray) -> np.ndarray:
    """dR/dv_i for one axis-angle vector v (3,): (3, 3, 3), index i first.

    Gallego & Yezzi (2015), eq. 9; tends to [e_i]x as v -> 0.
    """
    v = np.asarray(axis_angle, dtype=np.float64)
    norm2 = float(v @ v)
    eye = np.eye(3)
    if norm2 < 1e-16:
        return _skew(eye)
    rot = rodrigues(v)
    return np.stack([
        (v[i] * _skew(v) + _skew(np.cross(v, (eye - rot)[:, i]))) / norm2 @ rot
        for i in range(3)])


def forward_kinematics(rotations: np.ndarray, joint_positions: np.ndarray,
                       parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global joint transforms from local rotations.

    rotations : (K, 3, 3) local rotations; joint_positions : (..., K, 3) rest positions
    (a leading batch axis is allowed: the offsets are linear in the positions).
    Returns (global rotations (K, 3, 3), skinning offsets (..., K, 3)) such that a
    vertex v skinned fully to joint k moves to R_k v + offset_k.
    """
    k_count = len(parents)
    global_rot = np.empty((k_count, 3, 3))
    posed = np.empty(joint_positions.shape)
    for k, parent in enumerate(parents):
        if parent < 0:
            global_rot[k] = rotations[k]
            posed[..., k, :] = joint_positions[..., k, :]
        else:
            global_rot[k] = global_rot[parent] @ rotations[k]
            local = joint_positions[..., k, :] - joint_positions[..., parent, :]
            posed[..., k, :] = local @ global_rot[parent].T + posed[..., parent, :]
    offsets = posed - np.einsum("kij,...kj->...ki", global_rot, joint_positions)
    return global_rot, offsets


def lbs(vertices: np.ndarray, theta: np.ndarray, joint_positions: np.ndarray,
        parents: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Linear blend skinning.

    vertices : (n, 3) unposed; theta : (18,); joint_positions : (K, 3);
    parents : (K,); weights : (n, K) -> posed vertices (n, 3).
    """
    theta = np.asarray(theta, dtype=np.float64)
    rotations = rodrigues(theta[:3 * NUM_JOINTS].reshape(NUM_JOINTS, 3))
    global_rot, offsets = forward_kinematics(rotations, joint_positions, parents)
    per_joint = np.einsum("kij,nj->nki", global_rot, vertices) + offsets
    return np.einsum("nk,nki->ni", weights, per_joint) + theta[THETA_TRANSLATION]


def mesh(model: FaceModel, beta: np.ndarray, psi: np.ndarray, theta: np.ndarray,
         vertex_ids: np.ndarray | None = None) -> np.ndarray:
    """Posed mesh M(beta, psi, theta): (N, 3) or (n, 3) float64, cm, model axes."""
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (THETA_SIZE,):
        raise ValueError(f"theta must have shape ({THETA_SIZE},), got {theta.shape}")
    weights = _rows(model.skin_weights, vertex_ids).astype(np.float64)
    return lbs(shape(model, beta, psi, vertex_ids), theta, joints(model, beta),
               model.joint_parents, weights)


def mesh_jacobian(model: FaceModel, beta: np.ndarray, psi: np.ndarray, theta: np.ndarray,
                  vertex_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic derivatives of `mesh(...)[vertex_ids]`.

    Returns d/dbeta (n, 3, B), d/dpsi (n, 3, E), d/dtheta (n, 3, 18).
    """
    theta = np.asarray(theta, dtype=np.float64)
    parents = model.joint_parents
    weights = model.skin_weights[vertex_ids].astype(np.float64)          # (n, K)
    verts = shape(model, beta, psi, vertex_ids)                           # (n, 3)
    joint_pos = joints(model, beta)                                       # (K, 3)
    axis_angles = theta[:3 * NUM_JOINTS].reshape(NUM_JOINTS, 3)
    rotations = rodrigues(axis_angles)
    global_rot, _ = forward_kinematics(rotations, joint_pos, parents)
    blended_rot = np.einsum("nk,kij->nij", weights, global_rot)            # (n, 3, 3)

    # Shape bases pass through the blended rotation; joints move with beta too.
    d_beta = np.einsum("nij,bnj->nib", blended_rot, model.identity_basis[:, vertex_ids])
    _, d_offsets = forward_kinematics(rotations, model.joint_identity, parents)  # (B, K, 3)
    d_beta += np.einsum("nk,bki->nib", weights, d_offsets)
    d_psi = np.einsum("nij,enj->nie", blended_rot, model.expression_basis[:, vertex_ids])

    d_theta = np.zeros((len(vertex_ids), 3, THETA_SIZE))
    d_theta[:, :, THETA_TRANSLATION] = np.eye(3)
    for joint in range(NUM_JOINTS):
        d_local = rodrigues_derivative(axis_angles[joint])                # (3, 3, 3)
        for comp in range(3):
            d_rot, d_posed = _kinematics_derivative(rotations, global_rot, joint_pos, parents,
                                                    joint, d_local[comp])
            # d(R_k v + posed_k - R_k j_k) for every joint k, then blended.
            per_joint = (np.einsum("kij,nj->nki", d_rot, verts)
                         + d_posed - np.einsum("kij,kj->ki", d_rot, joint_pos))
            d_theta[:, :, 3 * joint + comp] = np.einsum("nk,nki->ni", weights, per_joint)
    return d_beta, d_psi, d_theta


def _kinematics_derivative(rotations, global_rot, joint_pos, parents, joint, d_local):
    """Derivative of global rotations (K, 3, 3) and posed joints (K, 3) w.r.t. one
    scalar of `joint`'s local rotation, given dR_local (3, 3)."""
    k_count = len(parents)
    d_rot = np.zeros((k_count, 3, 3))
    d_posed = np.zeros((k_count, 3))
    for k, parent in enumerate(parents):
        if parent >= 0:
            d_rot[k] = d_rot[parent] @ rotations[k]
            d_posed[k] = d_rot[parent] @ (joint_pos[k] - joint_pos[parent]) + d_posed[parent]
        if k == joint:
            d_rot[k] += (global_rot[parent] if parent >= 0 else np.eye(3)) @ d_local
    return d_rot, d_posed


def landmark_vertex_ids(model: FaceModel, embedding: LandmarkEmbedding) -> np.ndarray:
    """The corner vertices of each embedded landmark: (L, 3) int32."""
    return model.triangles[embedding.triangles]


def vertices2landmarks(vertices: np.ndarray, corner_ids: np.ndarray,
                       barycentric: np.ndarray) -> np.ndarray:
    """Landmark positions from mesh vertices (smplx style).

    vertices : (N, 3); corner_ids : (L, 3) vertex index of each triangle corner;
    barycentric : (L, 3) -> (L, 3).
    """
    return np.einsum("lc,lci->li", barycentric, vertices[corner_ids])
