"""Numba kernels of the real-time fitter: landmark evaluation specialised from the face model
data (`LandmarkTable`), J^T J / J^T r accumulated per landmark without forming J, and the LM
loop over x = [psi (E), theta (18)]. Single-threaded (no prange)."""

from __future__ import annotations

import numpy as np

from .lm import (FAST_MATH, INITIAL_DAMPING, MAX_DAMPING, bounded_step, jit_kernel,
                 predicted_decrease)

NUM_JOINTS = 5
NUM_ROT = 3 * NUM_JOINTS
MIN_DEPTH = 1.0  # cm: a landmark nearer to (or behind) the camera makes the energy infinite

# Order of the per-term energies returned by the kernels (= energies.TERM_NAMES).
T_LANDMARKS, T_IDENTITY, T_EXPRESSION, T_JOINTS, T_TEMPORAL, T_INTERSECT = range(6)
# What `evaluate` computes besides the energies: nothing, or the normal equations J^T J and
# J^T r (and the landmarks' Jacobian rows, from which `landmark_gradient` gives J^T r at the
# same point for other observations).
ENERGIES, NORMAL_EQUATIONS = 0, 1
#: J^T J of the LM is accumulated and kept in float32: the 73 x 73 matrix then fits the L1
#: cache with the landmark loop's data (float64 does not: ~10 % slower per pass). It is the
#: LM's curvature model only: J^T r, the energies and hence the solution stay float64, the
#: damped matrix is factorised in float64 (lm.bounded_step).
JTJ_DTYPE = np.float32


@jit_kernel(inline="always")
def _mm_into(a, b, out):
    """out = a @ b for 3x3 without BLAS (numba's @ needs SciPy's BLAS and is slow on tiny
    arrays); out must not alias a or b."""
    for i in range(3):
        for j in range(3):
            out[i, j] = a[i, 0] * b[0, j] + a[i, 1] * b[1, j] + a[i, 2] * b[2, j]


@jit_kernel(inline="always")
def _skew_into(x, y, z, out):
    """out (3, 3) = the cross-product matrix of (x, y, z)."""
    out[0, 0], out[0, 1], out[0, 2] = 0.0, -z, y
    out[1, 0], out[1, 1], out[1, 2] = z, 0.0, -x
    out[2, 0], out[2, 1], out[2, 2] = -y, x, 0.0


@jit_kernel()
def _rodrigues(v, out_rot, out_d, scratch):
    """Rotation (3, 3) of axis-angle v and its derivatives (3, 3, 3) (as model.py):
    R = I + a K + b K^2 with K = [v]x and K^2 = v v^T - |v|^2 I; dR/dv_i =
    [v_i v + v x (I - R) e_i]x R / |v|^2 ([e_i]x at v = 0). scratch : (3, 3)."""
    x, y, z = v[0], v[1], v[2]
    angle2 = x * x + y * y + z * z
    angle = np.sqrt(angle2)
    if angle < 1e-8:
        a, b = 1.0, 0.5
    else:
        a, b = np.sin(angle) / angle, (1.0 - np.cos(angle)) / angle2
    _skew_into(x, y, z, scratch)
    for i in range(3):
        for j in range(3):
            diagonal = 1.0 if i == j else 0.0
            out_rot[i, j] = a * scratch[i, j] + b * (v[i] * v[j] - angle2 * diagonal) + diagonal
    for i in range(3):
        e0, e1, e2 = 1.0 if i == 0 else 0.0, 1.0 if i == 1 else 0.0, 1.0 if i == 2 else 0.0
        if angle2 < 1e-16:
            _skew_into(e0, e1, e2, out_d[i])
            continue
        w0, w1, w2 = e0 - out_rot[0, i], e1 - out_rot[1, i], e2 - out_rot[2, i]
        vi = v[i]
        _skew_into(vi * x + y * w2 - z * w1, vi * y + z * w0 - x * w2,
                   vi * z + x * w1 - y * w0, scratch)
        for r in range(3):
            for c in range(3):
                out_d[i, r, c] = (scratch[r, 0] * out_rot[0, c] + scratch[r, 1] * out_rot[1, c]
                                  + scratch[r, 2] * out_rot[2, c]) / angle2


@jit_kernel(inline="always")
def _offset_into(rot, point, base, sign, out):
    """out (3,) = base (3,) + sign * rot (3, 3) @ point (3,)."""
    for i in range(3):
        out[i] = base[i] + sign * (rot[i, 0] * point[0] + rot[i, 1] * point[1]
                                   + rot[i, 2] * point[2])


@jit_kernel()
def forward_kinematics(theta, joint_pos, parents):
    """Global rotations (K,3,3), skinning offsets (K,3) and their derivatives w.r.t. the
    15 rotation entries of theta: (K,15,3,3) and (K,15,3). Same maths as model.py; parents
    come before their children. A rotation entry of joint j moves only j and its
    descendants: the other derivatives stay zero and are not computed."""
    rot = np.empty((NUM_JOINTS, 3, 3))
    d_local = np.empty((NUM_JOINTS, 3, 3, 3))
    scratch = np.empty((3, 3))
    for j in range(NUM_JOINTS):
        _rodrigues(theta[3 * j:3 * j + 3], rot[j], d_local[j], scratch)
    g_rot = np.empty((NUM_JOINTS, 3, 3))
    posed = np.empty((NUM_JOINTS, 3))
    offsets = np.empty((NUM_JOINTS, 3))
    bone = np.empty((NUM_JOINTS, 3))          # joint_pos[k] - joint_pos[parent]
    for k in range(NUM_JOINTS):
        p = parents[k]
        if p < 0:
            g_rot[k] = rot[k]
            posed[k] = joint_pos[k]
        else:
            _mm_into(g_rot[p], rot[k], g_rot[k])
            for i in range(3):
                bone[k, i] = joint_pos[k, i] - joint_pos[p, i]
            _offset_into(g_rot[p], bone[k], posed[p], 1.0, posed[k])
        _offset_into(g_rot[k], joint_pos[k], posed[k], -1.0, offsets[k])
    d_rot = np.zeros((NUM_JOINTS, NUM_ROT, 3, 3))
    d_off = np.zeros((NUM_JOINTS, NUM_ROT, 3))
    d_posed = np.zeros((NUM_JOINTS, 3))
    moved = np.zeros(NUM_JOINTS, dtype=np.bool_)
    for j in range(NUM_JOINTS):
        for c in range(3):
            col = 3 * j + c
            for k in range(NUM_JOINTS):
                p = parents[k]
                if k == j:      # its own rotation: d(g_rot[p] R_k); its position does not move
                    if p >= 0:
                        _mm_into(g_rot[p], d_local[j, c], d_rot[k, col])
                    else:
                        d_rot[k, col] = d_local[j, c]
                    d_posed[k] = 0.0
                elif p >= 0 and moved[p]:
                    _mm_into(d_rot[p, col], rot[k], d_rot[k, col])
                    _offset_into(d_rot[p, col], bone[k], d_posed[p], 1.0, d_posed[k])
                else:
                    moved[k] = False
                    continue
                moved[k] = True
                _offset_into(d_rot[k, col], joint_pos[k], d_posed[k], -1.0, d_off[k, col])
    return g_rot, offsets, d_rot, d_off


@jit_kernel(fastmath=FAST_MATH)
def blend_shapes(psi, base, basis, out):
    """out (n, 3) = base (n, 3) + sum_e psi[e] basis[e] (E, n, 3): dense over the n points,
    only the expressions that are on are read. The landmark entries' unposed points (rest
    from lk_rest, ex_basis) and E_intersect's checked vertices (from check_rest,
    check_basis)."""
    flat = out.reshape(-1)
    flat[:] = base.reshape(-1)
    for e in range(psi.shape[0]):
        w = psi[e]
        if w != 0.0:
            column = basis[e].reshape(-1)
            for i in range(flat.shape[0]):
                flat[i] += w * column[i]


@jit_kernel(inline="always")
def _landmark_point(l, theta, g_rot, offsets, bary_sum, lk_ptr, lk_joint, lk_weight, rest,
                    point):
    """Model-space position of landmark l into point (3,) from its entries' unposed points
    rest (M, 3) (`blend_shapes`)."""
    for i in range(3):
        point[i] = bary_sum[l] * theta[NUM_ROT + i]
    for m in range(lk_ptr[l], lk_ptr[l + 1]):
        a0, a1, a2 = rest[m, 0], rest[m, 1], rest[m, 2]
        k = lk_joint[m]
        s = lk_weight[m]
        for i in range(3):
            point[i] += (g_rot[k, i, 0] * a0 + g_rot[k, i, 1] * a1 + g_rot[k, i, 2] * a2
                         + s * offsets[k, i])


@jit_kernel(inline="always")
def project_point(point, f, cx, cy, r_cam, t_cam, cam):
    """cam (3,) = r_cam @ point + t_cam; False when it is not MIN_DEPTH in front."""
    for i in range(3):
        cam[i] = (r_cam[i, 0] * point[0] + r_cam[i, 1] * point[1] + r_cam[i, 2] * point[2]
                  + t_cam[i])
    return cam[2] > MIN_DEPTH


@jit_kernel(inline="always")
def point_projection(f, r_cam, cam, inv_z, proj):
    """proj (2, 3) = d pixels / d model point at camera-space point cam."""
    for i in range(3):
        proj[0, i] = f * inv_z * (r_cam[0, i] - cam[0] * inv_z * r_cam[2, i])
        proj[1, i] = f * inv_z * (r_cam[1, i] - cam[1] * inv_z * r_cam[2, i])


@jit_kernel(inline="always")
def landmark_rows(l, num_expr, proj, g_rot, d_rot, d_off, bary_sum, lk_ptr, lk_joint, lk_weight,
                  ex_ptr, ex_index, ex_vec, theta_col, rest, pr, jrow0, jrow1):
    """Add landmark l's two pixel Jacobian rows d(u, v)/d[psi, theta] (its column pattern)
    into jrow0, jrow1 (P,), given proj = d pixels / d point and rest (`blend_shapes`)."""
    for m in range(lk_ptr[l], lk_ptr[l + 1]):
        k = lk_joint[m]
        for r in range(2):
            for i in range(3):
                pr[r, i] = (proj[r, 0] * g_rot[k, 0, i] + proj[r, 1] * g_rot[k, 1, i]
                            + proj[r, 2] * g_rot[k, 2, i])
        for q in range(ex_ptr[m], ex_ptr[m + 1]):
            e = ex_index[q]
            e0, e1, e2 = ex_vec[q, 0], ex_vec[q, 1], ex_vec[q, 2]
            jrow0[e] += pr[0, 0] * e0 + pr[0, 1] * e1 + pr[0, 2] * e2
            jrow1[e] += pr[1, 0] * e0 + pr[1, 1] * e1 + pr[1, 2] * e2
        a0, a1, a2 = rest[m, 0], rest[m, 1], rest[m, 2]
        s = lk_weight[m]
        for j in range(NUM_ROT):
            if theta_col[l, j] >= 0:
                dp0 = (d_rot[k, j, 0, 0] * a0 + d_rot[k, j, 0, 1] * a1
                       + d_rot[k, j, 0, 2] * a2 + s * d_off[k, j, 0])
                dp1 = (d_rot[k, j, 1, 0] * a0 + d_rot[k, j, 1, 1] * a1
                       + d_rot[k, j, 1, 2] * a2 + s * d_off[k, j, 1])
                dp2 = (d_rot[k, j, 2, 0] * a0 + d_rot[k, j, 2, 1] * a1
                       + d_rot[k, j, 2, 2] * a2 + s * d_off[k, j, 2])
                jrow0[num_expr + j] += proj[0, 0] * dp0 + proj[0, 1] * dp1 + proj[0, 2] * dp2
                jrow1[num_expr + j] += proj[1, 0] * dp0 + proj[1, 1] * dp1 + proj[1, 2] * dp2
    for i in range(3):
        jrow0[num_expr + NUM_ROT + i] = bary_sum[l] * proj[0, i]
        jrow1[num_expr + NUM_ROT + i] = bary_sum[l] * proj[1, i]


@jit_kernel(inline="always")
def add_landmark_normal_equations(c0, c1, col_index, jrow0, jrow1, weight, g0, g1, jtj, jtr,
                                  rows, scratch):
    """Upper triangle of jtj += weight * J^T J and jtr += J^T (g0, g1) over the landmark's
    columns col_index[c0:c1]; moves the rows' pattern into rows[:, c0:c1] (2, N) and clears
    it in jrow0, jrow1. scratch: (2, P) of jtj's dtype."""
    first, last = col_index[c0], col_index[c1 - 1] + 1
    for i in range(first, last):    # the rows in jtj's precision: no conversions below
        scratch[0, i] = jrow0[i]
        scratch[1, i] = jrow1[i]
    w = jtj.dtype.type(weight)
    for a in range(c0, c1):
        ga = col_index[a]
        jtr[ga] += jrow0[ga] * g0 + jrow1[ga] * g1
        # row ga gets a contiguous (vectorisable) update from ga to the last column;
        # entries outside the pattern are zero in jrow.
        wa0, wa1 = scratch[0, ga] * w, scratch[1, ga] * w
        row, x0, x1 = jtj[ga, ga:last], scratch[0, ga:last], scratch[1, ga:last]
        for i in range(last - ga):     # non-negative range index: LLVM vectorises
            row[i] += wa0 * x0[i] + wa1 * x1[i]
    for a in range(c0, c1):
        ga = col_index[a]
        rows[0, a], rows[1, a] = jrow0[ga], jrow1[ga]
        jrow0[ga] = 0.0
        jrow1[ga] = 0.0


@jit_kernel(inline="always")
def _landmark_residual(l, u, v, mu, lmk_scale2, previous, temporal_weight, energies):
    """Add landmark l's E_landmarks and E_temporal at projection (u, v) to energies (6,).
    Returns (g0, g1, weight): the residual's gradient factor per pixel coordinate
    (J^T r = J_u^T g0 + J_v^T g1) and its Gauss-Newton weight (J^T J = weight J^T J_l)."""
    h_l = lmk_scale2[l]
    du, dv = u - mu[l, 0], v - mu[l, 1]
    pu, pv = u - previous[l, 0], v - previous[l, 1]
    if h_l > 0.0:
        energies[T_LANDMARKS] += h_l * (du * du + dv * dv)
    else:
        du, dv = 0.0, 0.0
    energies[T_TEMPORAL] += temporal_weight * (pu * pu + pv * pv)
    return (h_l * du + temporal_weight * pu, h_l * dv + temporal_weight * pv,
            h_l + temporal_weight)


@jit_kernel(fastmath=FAST_MATH)
def landmark_gradient(pixels, rows, col_ptr, col_index, mu, lmk_scale2, previous,
                      temporal_weight, energies, jtr):
    """E_landmarks and E_temporal into energies (6,) and their J^T r into jtr (P,) at the point
    whose projections pixels (L, 2) and Jacobian rows rows (2, N) a NORMAL_EQUATIONS
    evaluation gave: J does not depend on mu (L, 2), lmk_scale2 (L,) or previous (L, 2)."""
    for l in range(pixels.shape[0]):
        g0, g1, _ = _landmark_residual(l, pixels[l, 0], pixels[l, 1], mu, lmk_scale2, previous,
                                       temporal_weight, energies)
        for a in range(col_ptr[l], col_ptr[l + 1]):
            jtr[col_index[a]] += rows[0, a] * g0 + rows[1, a] * g1


@jit_kernel()
def frame_weights(mu, sigma, width, height, outside_limit, weight, clean_mu, scale2):
    """Which landmarks of one view are usable: (L,) bool for finite mu (L, 2) less than
    outside_limit image sizes outside the width x height image and finite sigma (L,) > 0.
    Fills clean_mu (L, 2) (mu, 0 where unusable) and scale2 (L,), the landmark weight
    weight / (2 sigma^2) (0 where unusable)."""
    usable = np.zeros(mu.shape[0], dtype=np.bool_)
    for l in range(mu.shape[0]):
        u, v, s = mu[l, 0], mu[l, 1], sigma[l]
        # comparisons with NaN are False: a NaN coordinate or sigma is unusable
        usable[l] = (u > -outside_limit * width and u < (1.0 + outside_limit) * width
                     and v > -outside_limit * height and v < (1.0 + outside_limit) * height
                     and s > 0.0 and s < np.inf)
        clean_mu[l, 0] = u if usable[l] else 0.0
        clean_mu[l, 1] = v if usable[l] else 0.0
        scale2[l] = weight / (2.0 * s * s) if usable[l] else 0.0
    return usable


@jit_kernel()
def landmark_positions(psi, theta, joint_pos, parents, bary_sum, lk_ptr, lk_joint, lk_weight,
                       lk_rest, ex_basis):
    """Model-space landmarks (L, 3) from the landmark table (= vertices2landmarks(mesh))."""
    g_rot, offsets, _, _ = forward_kinematics(theta, joint_pos, parents)
    out = np.zeros((bary_sum.shape[0], 3))
    rest = np.empty((lk_rest.shape[0], 3))
    blend_shapes(psi, lk_rest, ex_basis, rest)
    for l in range(bary_sum.shape[0]):
        _landmark_point(l, theta, g_rot, offsets, bary_sum, lk_ptr, lk_joint, lk_weight, rest,
                        out[l])
    return out


@jit_kernel(inline="always")
def intersect_residual(q, i, root_w, check_scale, check_basis, d_psi):
    """E_intersect's residual of checked vertex i at q (n, 3) (`blend_shapes`):
    r = root_w check_scale[i] (1 - |q_i|) when it is inside its shape (|q_i| < 1), else 0.
    Inside, d_psi (E,) receives dr/dpsi (none when d_psi is empty). Returns (r, c) with
    dr/dq_i = c q_i."""
    q0, q1, q2 = q[i, 0], q[i, 1], q[i, 2]
    norm = np.sqrt(q0 * q0 + q1 * q1 + q2 * q2)
    if norm >= 1.0:
        return 0.0, 0.0
    s = root_w * check_scale[i]
    c = -s / max(norm, 1e-12)
    for e in range(d_psi.shape[0]):
        d_psi[e] = c * (q0 * check_basis[e, i, 0] + q1 * check_basis[e, i, 1]
                        + q2 * check_basis[e, i, 2])
    return s * (1.0 - norm), c


@jit_kernel(fastmath=FAST_MATH)
def prior_terms(x, num_expr, order, expression_weight, joint_weight, intersect_weight,
                check_rest, check_basis, check_scale, energies, jtj, jtr):
    """E_expression, E_joints (neck, head, eyes: theta[3:15]) and E_intersect at x (P,) into
    energies (6,); order >= 1 also their J^T r into jtr (P,), order 2 also the upper triangle
    of their J^T J into jtj (P, P)."""
    psi = x[:num_expr]
    for e in range(num_expr):
        energies[T_EXPRESSION] += expression_weight * psi[e] * psi[e]
        if order >= 1:
            jtr[e] += expression_weight * psi[e]
        if order == 2:
            jtj[e, e] += expression_weight
    for j in range(3, NUM_ROT):
        t = x[num_expr + j]
        energies[T_JOINTS] += joint_weight * t * t
        if order >= 1:
            jtr[num_expr + j] += joint_weight * t
        if order == 2:
            jtj[num_expr + j, num_expr + j] += joint_weight
    # E_intersect (bind space, linear in psi; see colliders.py)
    if intersect_weight <= 0.0:
        return
    grad = np.zeros(num_expr if order >= 1 else 0)     # empty: intersect_residual skips dr/dpsi
    root_w = np.sqrt(intersect_weight)
    q = np.empty_like(check_rest)
    blend_shapes(psi, check_rest, check_basis, q)
    for i in range(q.shape[0]):
        r, _ = intersect_residual(q, i, root_w, check_scale, check_basis, grad)
        if r == 0.0:
            continue
        energies[T_INTERSECT] += r * r
        for a in range(grad.shape[0]):
            jtr[a] += grad[a] * r
            if order == 2:
                for b in range(a, num_expr):
                    jtj[a, b] += grad[a] * grad[b]


@jit_kernel(fastmath=FAST_MATH)
def evaluate(x, derivatives, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint,
             lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr, col_index,
             theta_col, camera, mu, lmk_scale2, previous, temporal_weight, expression_weight,
             joint_weight, intersect_weight, check_rest, check_basis, check_scale, jtj, jtr,
             pixels, rows):
    """Per-term energies (6,) at x = [psi, theta]; derivatives NORMAL_EQUATIONS also fills
    jtj (P, P) (J^T J), jtr (P,) (J^T r) and rows (2, N): the landmarks' Jacobian rows
    d(u, v)/dx over their column patterns (col_index[col_ptr[l]:col_ptr[l + 1]]), for
    `landmark_gradient`. pixels (L, 2) receives the projections.

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
    with_jtj = derivatives == NORMAL_EQUATIONS
    if with_jtj:
        jtr[:] = 0.0
        jtj[:, :] = 0.0
    jrow0 = np.zeros(x.shape[0])   # the landmark's two Jacobian rows, dense, zero outside
    jrow1 = np.zeros(x.shape[0])   # its column pattern
    scratch = np.zeros((2, x.shape[0]), jtj.dtype)
    rest = np.empty((lk_rest.shape[0], 3))
    blend_shapes(psi, lk_rest, ex_basis, rest)
    proj = np.zeros((2, 3))
    pr = np.zeros((2, 3))
    point = np.zeros(3)
    cam = np.zeros(3)
    for l in range(bary_sum.shape[0]):
        _landmark_point(l, theta, g_rot, offsets, bary_sum, lk_ptr, lk_joint, lk_weight, rest,
                        point)
        if not project_point(point, f, cx, cy, r_cam, t_cam, cam):
            energies[T_LANDMARKS] = np.inf
            return energies
        inv_z = 1.0 / cam[2]
        u = f * cam[0] * inv_z + cx
        v = f * cam[1] * inv_z + cy
        pixels[l, 0], pixels[l, 1] = u, v
        g0, g1, weight = _landmark_residual(l, u, v, mu, lmk_scale2, previous, temporal_weight,
                                            energies)
        if not with_jtj:
            continue
        # rows also for weight 0: landmark_gradient may reuse them with other observations
        point_projection(f, r_cam, cam, inv_z, proj)
        landmark_rows(l, num_expr, proj, g_rot, d_rot, d_off, bary_sum, lk_ptr, lk_joint,
                      lk_weight, ex_ptr, ex_index, ex_vec, theta_col, rest, pr, jrow0, jrow1)
        add_landmark_normal_equations(col_ptr[l], col_ptr[l + 1], col_index, jrow0, jrow1,
                                      weight, g0, g1, jtj, jtr, rows, scratch)
    if with_jtj:
        prior_terms(x, num_expr, 2, expression_weight, joint_weight, intersect_weight,
                    check_rest, check_basis, check_scale, energies, jtj, jtr)
        size = x.shape[0]
        for a in range(size):
            for b in range(a + 1, size):
                jtj[b, a] = jtj[a, b]
    else:
        prior_terms(x, num_expr, 0, expression_weight, joint_weight, intersect_weight,
                    check_rest, check_basis, check_scale, energies, jtj, jtr)
    return energies


@jit_kernel()
def evaluate_views(x, derivatives, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint,
                   lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr, col_index,
                   theta_col, cameras, mu, lmk_scale2, previous, temporal_weight,
                   expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
                   check_scale, jtj, jtr, pixels, rows, view_jtj, view_jtr):
    """`evaluate` summed over C views of the same frame: cameras (C, 15), mu (C, L, 2),
    lmk_scale2 (C, L), previous (C, L, 2), temporal_weight (C,), pixels (C, L, 2),
    rows (C, 2, N); the expression / joint / intersect terms are counted once. view_jtj
    (P, P), view_jtr (P,) are scratch (unused when C == 1)."""
    energies = evaluate(x, derivatives, num_expr, joint_pos, parents, bary_sum, lk_ptr,
                        lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr,
                        col_index, theta_col, cameras[0], mu[0], lmk_scale2[0], previous[0],
                        temporal_weight[0], expression_weight, joint_weight, intersect_weight,
                        check_rest, check_basis, check_scale, jtj, jtr, pixels[0], rows[0])
    for c in range(1, cameras.shape[0]):
        energies += evaluate(x, derivatives, num_expr, joint_pos, parents, bary_sum, lk_ptr,
                             lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec,
                             col_ptr, col_index, theta_col, cameras[c], mu[c], lmk_scale2[c],
                             previous[c], temporal_weight[c], 0.0, 0.0, 0.0, check_rest,
                             check_basis, check_scale, view_jtj, view_jtr, pixels[c], rows[c])
        if derivatives == NORMAL_EQUATIONS:
            jtj += view_jtj
            jtr += view_jtr
    return energies


@jit_kernel()
def gradient_views(x, num_expr, col_ptr, col_index, mu, lmk_scale2, previous, temporal_weight,
                   expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
                   check_scale, pixels, rows, jtr):
    """Per-term energies (6,) and J^T r (P,) into jtr at the x whose projections pixels
    (C, L, 2) and Jacobian rows rows (C, 2, N) a NORMAL_EQUATIONS `evaluate_views` gave, for
    observations mu (C, L, 2), lmk_scale2 (C, L), previous (C, L, 2), temporal_weight (C,)
    (the same or others: the Jacobian does not depend on them)."""
    energies = np.zeros(6)
    jtr[:] = 0.0
    for c in range(pixels.shape[0]):
        landmark_gradient(pixels[c], rows[c], col_ptr, col_index, mu[c], lmk_scale2[c],
                          previous[c], temporal_weight[c], energies, jtr)
    prior_terms(x, num_expr, 1, expression_weight, joint_weight, intersect_weight,
                check_rest, check_basis, check_scale, energies, np.empty((0, 0)), jtr)
    return energies


@jit_kernel()
def solve(x0, lower, upper, max_iterations, tolerance, num_expr, joint_pos, parents, bary_sum,
          lk_ptr, lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr,
          col_index, theta_col, cameras, mu, lmk_scale2, previous, temporal_weight,
          expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
          check_scale, pixels, jtj, rows, warm):
    """Projected LM from x0 over C views (arrays as in `evaluate_views`).

    On return jtj (P, P) (JTJ_DTYPE) holds J^T J, pixels (C, L, 2) the projections at the
    returned x.
    With warm, jtj, pixels and rows (C, 2, N) must hold J^T J, the projections and the
    Jacobian rows at x0 on entry (those of a solve that ended at x0 with the same camera
    and identity: the previous frame's when tracking): the start then needs no pass over
    the model (J^T r from the stored rows; J^T J differs only by the new landmark weights,
    and the LM needs an approximation); should that matrix fail to give a decreasing step
    it is rebuilt at x0.
    Returns (x, energies (6,), iterations, status, rows): rows (C, 2, N) the Jacobian rows at
    x (rows itself or a buffer of the same shape); status 0 converged (actual or predicted
    relative decrease below tolerance), 1 converged (no decreasing step), 2 iteration limit,
    3 non-finite energy at the start."""
    size = x0.shape[0]
    trial_jtj = np.empty_like(jtj)
    jtr, trial_jtr = np.zeros(size), np.zeros(size)
    views = size if cameras.shape[0] > 1 else 0     # scratch of evaluate_views
    view_jtj, view_jtr = np.zeros((views, views), jtj.dtype), np.zeros(views)
    x = x0.copy()
    trial_pixels = np.empty_like(pixels)
    trial_rows = np.empty_like(rows)

    def energy_at(point, derivatives, out_jtj, out_jtr, out_pixels, out_rows):
        return evaluate_views(point, derivatives, num_expr, joint_pos, parents, bary_sum,
                              lk_ptr, lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr, ex_index,
                              ex_vec, col_ptr, col_index, theta_col, cameras, mu, lmk_scale2,
                              previous, temporal_weight, expression_weight, joint_weight,
                              intersect_weight, check_rest, check_basis, check_scale, out_jtj,
                              out_jtr, out_pixels, out_rows, view_jtj, view_jtr)

    if warm:
        energies = gradient_views(x, num_expr, col_ptr, col_index, mu, lmk_scale2, previous,
                                  temporal_weight, expression_weight, joint_weight,
                                  intersect_weight, check_rest, check_basis, check_scale, pixels,
                                  rows, jtr)
    else:
        energies = energy_at(x, NORMAL_EQUATIONS, jtj, jtr, pixels, rows)
    total = energies.sum()
    if not np.isfinite(total):
        return x, energies, 0, 3, rows
    fresh = not warm     # jtj was accumulated for this problem (not carried over)
    damping = INITIAL_DAMPING
    for iteration in range(1, max_iterations + 1):
        trial, ok = bounded_step(jtj, jtr, x, lower, upper, damping)
        if ok and predicted_decrease(jtj, jtr, x, trial) <= tolerance * total:
            return x, energies, iteration, 0, rows
        trial_energies = energies
        trial_total = np.inf
        if ok:
            # the trial point is evaluated with its normal equations: most steps are accepted
            trial_energies = energy_at(trial, NORMAL_EQUATIONS, trial_jtj, trial_jtr,
                                       trial_pixels, trial_rows)
            trial_total = trial_energies.sum()
        if np.isfinite(trial_total) and trial_total < total:
            decrease = (total - trial_total) / max(total, 1e-300)
            x, energies, total = trial, trial_energies, trial_total
            jtj[:, :] = trial_jtj
            jtr, trial_jtr = trial_jtr, jtr
            rows, trial_rows = trial_rows, rows
            pixels[:, :, :] = trial_pixels
            fresh = True
            damping = max(damping * 0.1, 1e-12)
            if decrease < tolerance:
                return x, energies, iteration, 0, rows
        elif not fresh:     # the carried-over J^T J gave no decrease: rebuild it at x
            energy_at(x, NORMAL_EQUATIONS, jtj, jtr, pixels, rows)
            fresh = True
        else:
            damping *= 10.0
            if damping > MAX_DAMPING:
                return x, energies, iteration, 1, rows
    return x, energies, max_iterations, 2, rows


@jit_kernel()
def fit_frame(mu, sigma, width, height, outside_limit, landmark_weight, min_landmarks, psi0,
              theta0, lower, upper, max_iterations, tolerance, num_expr, joint_pos, parents,
              bary_sum, lk_ptr, lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr, ex_index,
              ex_vec, col_ptr, col_index, theta_col, camera, previous, temporal_weight,
              expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
              check_scale, jtj, kept_x, kept_camera, kept_pixels, kept_rows):
    """One frame of one view in one call (the real-time fitter's per-frame path): the
    usable landmarks and their weights (`frame_weights`), the start x0 = [clip(psi0, 0, 1),
    theta0] and the LM (`solve`).

    mu (L, 2), sigma (L,) px as observed; camera (15,); previous (L, 2) the last frame's
    projections, used when temporal_weight > 0. The solve is warm when kept_x equals x0 and
    kept_camera the camera: then jtj (P, P), kept_pixels (L, 2) and kept_rows (1, 2, N) hold
    the J^T J, projections and Jacobian rows at kept_x (see `solve`); jtj is updated in place
    and kept_rows is the solve's rows buffer either way.
    With fewer than min_landmarks usable landmarks nothing is fitted: the energies at x0
    with no landmark term (status 4).
    Returns (x, energies (6,), iterations, status, pixels (L, 2), rows (1, 2, N), usable):
    statuses of `solve`, 3 also when x or the energies end non-finite, 4 too few landmarks.
    """
    count = mu.shape[0]
    clean_mu = np.empty((1, count, 2))
    scale2 = np.empty((1, count))
    usable = frame_weights(mu, sigma, width, height, outside_limit, landmark_weight,
                           clean_mu[0], scale2[0]).sum()
    x0 = np.empty(lower.shape[0])
    x0[:num_expr] = np.minimum(np.maximum(psi0, 0.0), 1.0)
    x0[num_expr:] = theta0
    too_few = usable < min_landmarks
    if too_few:
        scale2[:] = 0.0
        temporal_weight = 0.0
        max_iterations = 0
    warm = (not too_few and kept_x.shape[0] == x0.shape[0]
            and np.all(kept_x == x0) and np.all(kept_camera == camera))
    pixels = np.zeros((1, count, 2))
    if warm:
        pixels[0] = kept_pixels
    x, energies, iterations, status, rows = solve(
        x0, lower, upper, max_iterations, tolerance, num_expr, joint_pos, parents, bary_sum,
        lk_ptr, lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr,
        col_index, theta_col, camera.reshape(1, -1), clean_mu, scale2,
        previous.reshape(1, count, 2), np.array([temporal_weight]), expression_weight,
        joint_weight, intersect_weight, check_rest, check_basis, check_scale, pixels, jtj,
        kept_rows, warm)
    if too_few:
        status = 4
    elif not (np.all(np.isfinite(x)) and np.all(np.isfinite(energies))):
        status = 3
    return x, energies, iterations, status, pixels[0], rows, usable
