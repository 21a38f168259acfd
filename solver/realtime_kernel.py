"""Numba kernels of the real-time fitter: landmark evaluation specialised from the face model
data (`LandmarkTable`), J^T J / J^T r accumulated per landmark without forming J, and the LM
loop over x = [psi (E), theta (18)]. Single-threaded (no prange)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .lm import INITIAL_DAMPING, MAX_DAMPING, bounded_step

NUM_JOINTS = 5
NUM_ROT = 3 * NUM_JOINTS
MIN_DEPTH = 1.0  # cm: a landmark nearer to (or behind) the camera makes the energy infinite

# Order of the per-term energies returned by the kernels (= energies.TERM_NAMES).
T_LANDMARKS, T_IDENTITY, T_EXPRESSION, T_JOINTS, T_TEMPORAL, T_INTERSECT = range(6)


@njit(cache=True)
def _rodrigues(v, out_rot, out_d):
    """Rotation (3, 3) of axis-angle v and its derivatives (3, 3, 3) (as model.py)."""
    angle2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
    angle = np.sqrt(angle2)
    k = np.zeros((3, 3))
    k[0, 1], k[0, 2], k[1, 0] = -v[2], v[1], v[2]
    k[1, 2], k[2, 0], k[2, 1] = -v[0], -v[1], v[0]
    if angle < 1e-8:
        a, b = 1.0, 0.5
    else:
        a, b = np.sin(angle) / angle, (1.0 - np.cos(angle)) / angle2
    kk = k @ k
    for i in range(3):
        for j in range(3):
            out_rot[i, j] = a * k[i, j] + b * kk[i, j] + (1.0 if i == j else 0.0)
    for i in range(3):
        e = np.zeros(3)
        e[i] = 1.0
        if angle2 < 1e-16:
            s = np.zeros((3, 3))
            s[0, 1], s[0, 2], s[1, 0] = -e[2], e[1], e[2]
            s[1, 2], s[2, 0], s[2, 1] = -e[0], -e[1], e[0]
            out_d[i] = s
            continue
        w = e - out_rot[:, i]  # (I - R) e_i
        c = np.array([v[1] * w[2] - v[2] * w[1], v[2] * w[0] - v[0] * w[2],
                      v[0] * w[1] - v[1] * w[0]])
        s = v[i] * k
        s[0, 1] -= c[2]
        s[0, 2] += c[1]
        s[1, 0] += c[2]
        s[1, 2] -= c[0]
        s[2, 0] -= c[1]
        s[2, 1] += c[0]
        out_d[i] = (s / angle2) @ out_rot


@njit(cache=True)
def forward_kinematics(theta, joint_pos, parents):
    """Global rotations (K,3,3), skinning offsets (K,3) and their derivatives w.r.t. the
    15 rotation entries of theta: (K,15,3,3) and (K,15,3). Same maths as model.py."""
    rot = np.zeros((NUM_JOINTS, 3, 3))
    d_local = np.zeros((NUM_JOINTS, 3, 3, 3))
    for j in range(NUM_JOINTS):
        _rodrigues(theta[3 * j:3 * j + 3], rot[j], d_local[j])
    g_rot = np.zeros((NUM_JOINTS, 3, 3))
    posed = np.zeros((NUM_JOINTS, 3))
    for k in range(NUM_JOINTS):
        p = parents[k]
        if p < 0:
            g_rot[k] = rot[k]
            posed[k] = joint_pos[k]
        else:
            g_rot[k] = g_rot[p] @ rot[k]
            posed[k] = g_rot[p] @ (joint_pos[k] - joint_pos[p]) + posed[p]
    offsets = np.zeros((NUM_JOINTS, 3))
    for k in range(NUM_JOINTS):
        offsets[k] = posed[k] - g_rot[k] @ joint_pos[k]
    d_rot = np.zeros((NUM_JOINTS, NUM_ROT, 3, 3))
    d_off = np.zeros((NUM_JOINTS, NUM_ROT, 3))
    for j in range(NUM_JOINTS):
        for c in range(3):
            col = 3 * j + c
            d_posed = np.zeros((NUM_JOINTS, 3))
            for k in range(NUM_JOINTS):
                p = parents[k]
                if p >= 0:
                    d_rot[k, col] = d_rot[p, col] @ rot[k]
                    d_posed[k] = d_rot[p, col] @ (joint_pos[k] - joint_pos[p]) + d_posed[p]
                if k == j:
                    if p >= 0:
                        d_rot[k, col] += g_rot[p] @ d_local[j, c]
                    else:
                        d_rot[k, col] += d_local[j, c]
                d_off[k, col] = d_posed[k] - d_rot[k, col] @ joint_pos[k]
    return g_rot, offsets, d_rot, d_off


@njit(cache=True)
def landmark_positions(psi, theta, joint_pos, parents, bary_sum, lk_ptr, lk_joint, lk_weight,
                       lk_rest, ex_ptr, ex_index, ex_vec):
    """Model-space landmarks (L, 3) from the landmark table (= vertices2landmarks(mesh))."""
    g_rot, offsets, _, _ = forward_kinematics(theta, joint_pos, parents)
    count = bary_sum.shape[0]
    out = np.zeros((count, 3))
    for l in range(count):
        for i in range(3):
            out[l, i] = bary_sum[l] * theta[NUM_ROT + i]
        for m in range(lk_ptr[l], lk_ptr[l + 1]):
            a = lk_rest[m].copy()
            for q in range(ex_ptr[m], ex_ptr[m + 1]):
                a += psi[ex_index[q]] * ex_vec[q]
            out[l] += g_rot[lk_joint[m]] @ a + lk_weight[m] * offsets[lk_joint[m]]
    return out


@njit(cache=True)
def evaluate(x, with_jacobian, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint,
             lk_weight, lk_rest, ex_ptr, ex_index, ex_vec, ex_col, col_ptr, col_index,
             theta_col, camera, mu, lmk_scale2, previous, temporal_weight, expression_weight,
             joint_weight, intersect_weight, check_rest, check_basis, check_scale, jtj, jtr,
             pixels):
    """Per-term energies (6,) at x = [psi, theta]; if with_jacobian, fills jtj (P,P) and
    jtr (P,) (sum over terms of J^T J, J^T r). pixels (L, 2) receives the projections.

    camera : (15,) = f, cx, cy, R (9, row-major), T (3). lmk_scale2 : (L,) weight/(2 sigma^2),
    0 for unusable landmarks; previous : (L, 2), temporal_weight 0 when there is none.
    """
    energies = np.zeros(6)
    psi = x[:num_expr]
    theta = x[num_expr:]
    g_rot, offsets, d_rot, d_off = forward_kinematics(theta, joint_pos, parents)
    f, cx, cy = camera[0], camera[1], camera[2]
    r_cam = camera[3:12].reshape(3, 3)
    t_cam = camera[12:15]
    if with_jacobian:
        jtj[:, :] = 0.0
        jtr[:] = 0.0
    max_cols = 0
    for l in range(bary_sum.shape[0]):
        max_cols = max(max_cols, col_ptr[l + 1] - col_ptr[l])
    jrow = np.zeros((2, max_cols))
    rest = np.zeros((lk_rest.shape[0], 3))
    for l in range(bary_sum.shape[0]):
        point = bary_sum[l] * theta[NUM_ROT:NUM_ROT + 3]
        for m in range(lk_ptr[l], lk_ptr[l + 1]):
            a = lk_rest[m].copy()
            for q in range(ex_ptr[m], ex_ptr[m + 1]):
                a += psi[ex_index[q]] * ex_vec[q]
            rest[m] = a
            point = point + g_rot[lk_joint[m]] @ a + lk_weight[m] * offsets[lk_joint[m]]
        cam = r_cam @ point + t_cam
        if not cam[2] > MIN_DEPTH:
            energies[T_LANDMARKS] = np.inf
            return energies
        inv_z = 1.0 / cam[2]
        u = f * cam[0] * inv_z + cx
        v = f * cam[1] * inv_z + cy
        pixels[l, 0], pixels[l, 1] = u, v
        h_l = lmk_scale2[l]
        du, dv = u - mu[l, 0], v - mu[l, 1]
        pu, pv = u - previous[l, 0], v - previous[l, 1]
        if h_l > 0.0:
            energies[T_LANDMARKS] += h_l * (du * du + dv * dv)
        else:
            du, dv = 0.0, 0.0
        energies[T_TEMPORAL] += temporal_weight * (pu * pu + pv * pv)
        weight = h_l + temporal_weight
        if not with_jacobian or weight == 0.0:
            continue
        g0 = h_l * du + temporal_weight * pu
        g1 = h_l * dv + temporal_weight * pv
        # d pixels / d point: (2, 3)
        proj = np.zeros((2, 3))
        for i in range(3):
            proj[0, i] = f * inv_z * (r_cam[0, i] - cam[0] * inv_z * r_cam[2, i])
            proj[1, i] = f * inv_z * (r_cam[1, i] - cam[1] * inv_z * r_cam[2, i])
        c0, c1 = col_ptr[l], col_ptr[l + 1]
        ncols = c1 - c0
        jrow[:, :ncols] = 0.0
        for m in range(lk_ptr[l], lk_ptr[l + 1]):
            k = lk_joint[m]
            pr = proj @ g_rot[k]
            for q in range(ex_ptr[m], ex_ptr[m + 1]):
                col = ex_col[q]
                if col >= 0:
                    e = ex_vec[q]
                    jrow[0, col] += pr[0, 0] * e[0] + pr[0, 1] * e[1] + pr[0, 2] * e[2]
                    jrow[1, col] += pr[1, 0] * e[0] + pr[1, 1] * e[1] + pr[1, 2] * e[2]
            for j in range(NUM_ROT):
                col = theta_col[l, j]
                if col >= 0:
                    dp = d_rot[k, j] @ rest[m] + lk_weight[m] * d_off[k, j]
                    jrow[0, col] += proj[0, 0] * dp[0] + proj[0, 1] * dp[1] + proj[0, 2] * dp[2]
                    jrow[1, col] += proj[1, 0] * dp[0] + proj[1, 1] * dp[1] + proj[1, 2] * dp[2]
        for i in range(3):
            col = theta_col[l, NUM_ROT + i]
            jrow[0, col] = bary_sum[l] * proj[0, i]
            jrow[1, col] = bary_sum[l] * proj[1, i]
        for a in range(ncols):
            ga = col_index[c0 + a]
            ja0, ja1 = jrow[0, a], jrow[1, a]
            jtr[ga] += ja0 * g0 + ja1 * g1
            wa0, wa1 = weight * ja0, weight * ja1
            for b in range(a, ncols):
                jtj[ga, col_index[c0 + b]] += wa0 * jrow[0, b] + wa1 * jrow[1, b]
    # E_expression and E_joints (neck, head, eyes: theta[3:15])
    for e in range(num_expr):
        energies[T_EXPRESSION] += expression_weight * psi[e] * psi[e]
        if with_jacobian:
            jtj[e, e] += expression_weight
            jtr[e] += expression_weight * psi[e]
    for j in range(3, NUM_ROT):
        energies[T_JOINTS] += joint_weight * theta[j] * theta[j]
        if with_jacobian:
            jtj[num_expr + j, num_expr + j] += joint_weight
            jtr[num_expr + j] += joint_weight * theta[j]
    # E_intersect (bind space, linear in psi; see colliders.py)
    if intersect_weight > 0.0:
        grad = np.zeros(num_expr)
        for i in range(check_rest.shape[0]):
            q = check_rest[i].copy()
            for e in range(num_expr):
                q += psi[e] * check_basis[i, e]
            norm = np.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2])
            if norm >= 1.0:
                continue
            s = np.sqrt(intersect_weight) * check_scale[i]
            r = s * (1.0 - norm)
            energies[T_INTERSECT] += r * r
            if with_jacobian:
                unit = q / max(norm, 1e-12)
                for e in range(num_expr):
                    grad[e] = -s * (unit[0] * check_basis[i, e, 0] + unit[1] * check_basis[i, e, 1]
                                    + unit[2] * check_basis[i, e, 2])
                for a in range(num_expr):
                    jtr[a] += grad[a] * r
                    for b in range(a, num_expr):
                        jtj[a, b] += grad[a] * grad[b]
    if with_jacobian:
        size = x.shape[0]
        for a in range(size):
            for b in range(a + 1, size):
                jtj[b, a] = jtj[a, b]
    return energies


@njit(cache=True)
def solve(x0, lower, upper, max_iterations, tolerance, num_expr, joint_pos, parents, bary_sum,
          lk_ptr, lk_joint, lk_weight, lk_rest, ex_ptr, ex_index, ex_vec, ex_col, col_ptr,
          col_index, theta_col, camera, mu, lmk_scale2, previous, temporal_weight,
          expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
          check_scale, pixels):
    """Projected LM from x0. Returns (x, energies (6,), iterations, status):
    status 0 converged (small decrease), 1 converged (no decreasing step), 2 iteration limit,
    3 non-finite energy at the start."""
    size = x0.shape[0]
    jtj = np.zeros((size, size))
    jtr = np.zeros(size)
    x = x0.copy()
    trial_pixels = pixels.copy()

    def energy_at(point, jac, out_pixels):
        return evaluate(point, jac, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint,
                        lk_weight, lk_rest, ex_ptr, ex_index, ex_vec, ex_col, col_ptr, col_index,
                        theta_col, camera, mu, lmk_scale2, previous, temporal_weight,
                        expression_weight, joint_weight, intersect_weight, check_rest,
                        check_basis, check_scale, jtj, jtr, out_pixels)

    energies = energy_at(x, True, pixels)
    total = energies.sum()
    if not np.isfinite(total):
        return x, energies, 0, 3
    damping = INITIAL_DAMPING
    for iteration in range(1, max_iterations + 1):
        trial, ok = bounded_step(jtj, jtr, x, lower, upper, damping)
        trial_energies = energies
        trial_total = np.inf
        if ok:
            trial_energies = energy_at(trial, False, trial_pixels)
            trial_total = trial_energies.sum()
        if np.isfinite(trial_total) and trial_total < total:
            decrease = (total - trial_total) / max(total, 1e-300)
            x = trial
            damping = max(damping * 0.1, 1e-12)
            if decrease < tolerance:
                pixels[:, :] = trial_pixels
                return x, trial_energies, iteration, 0
            energies = energy_at(x, True, pixels)
            total = energies.sum()
        else:
            damping *= 10.0
            if damping > MAX_DAMPING:
                return x, energies, iteration, 1
    return x, energies, max_iterations, 2
