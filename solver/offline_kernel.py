"""Numba kernels of the offline fitter, parallel over frames (prange).

The per-frame work reuses the real-time kernel (`realtime_kernel`): the landmark evaluation,
the per-landmark Jacobian rows, the J^T J accumulation, the prior terms and the LM loop
(`realtime_kernel.solve`, over several views). What is added here:

- `schur_blocks`: per frame f, besides the frame block U_f = J_f^T J_f and g_f = J_f^T r
  (from `evaluate_views`), the coupling to the shared parameters s = [beta (B), then per
  camera: rotation increment (3), translation (3), focal (1)]: W_f = J_f^T J_s (P, S),
  V_f = J_s^T J_s (S, S) and g_s = J_s^T r (S,). The E_intersect derivative with respect to
  beta is left out of W and V (Gauss-Newton approximation; the energy itself is exact).
- `schur_reduce`: eliminates each frame's block (A_f = U_f + damping): the reduced
  V_f - W_f^T A_f^-1 W_f and g_s - W_f^T A_f^-1 g_f; `frame_steps` then takes each frame's
  bounded step given the shared step (lm.bounded_step).
- `frame_energies`: per-term energies and projections of every frame (no Jacobian).
- `smoothing_sweep`: one half (even or odd frames) of a red-black block Gauss-Seidel sweep
  over frames with E_temporal: each frame's (psi, theta) is refitted by the LM of the
  real-time kernel with its neighbours' projections fixed (w |x - a|^2 + w |x - b|^2 =
  2 w |x - (a + b) / 2|^2 + const), so every update lowers the total energy.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .lm import (DIAGONAL_FLOOR, FAST_MATH, bounded_step, cholesky_factor,
                 cholesky_substitute)
from .realtime_kernel import (ENERGIES, NORMAL_EQUATIONS, _landmark_point, evaluate_views,
                              forward_kinematics, landmark_rows, point_projection,
                              project_point, solve)

#: Shared parameters per camera: rotation increment (3), translation (3), focal (1).
CAMERA_PARAMS = 7


@njit(cache=True, inline="always")
def _identity_offsets(g_rot, joint_identity, parents, out):
    """d offsets_k / d beta_b (B, K, 3): the skinning offsets are linear in the joint rest
    positions, so their derivative is the offsets computed from joint_identity[b]."""
    for b in range(joint_identity.shape[0]):
        posed = np.zeros((parents.shape[0], 3))
        for k in range(parents.shape[0]):
            p = parents[k]
            if p < 0:
                posed[k] = joint_identity[b, k]
            else:
                for i in range(3):
                    posed[k, i] = posed[p, i]
                    for j in range(3):
                        posed[k, i] += g_rot[p, i, j] * (joint_identity[b, k, j]
                                                         - joint_identity[b, p, j])
            for i in range(3):
                out[b, k, i] = posed[k, i]
                for j in range(3):
                    out[b, k, i] -= g_rot[k, i, j] * joint_identity[b, k, j]


@njit(cache=True, parallel=True, fastmath=FAST_MATH)
def schur_blocks(x, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint, lk_weight, lk_rest,
                 ex_ptr, ex_index, ex_vec, ex_col, col_ptr, col_index, theta_col, lk_identity,
                 joint_identity, cameras, mu, lmk_scale2, expression_weight, joint_weight,
                 intersect_weight, check_rest, check_basis, check_scale, u, g_frame, w, v,
                 g_shared, energies):
    """Normal-equation blocks of F frames (see module docstring), no E_temporal.

    x (F, P); lk_identity (M, B, 3) d lk_rest / d beta; joint_identity (B, K, 3);
    cameras (C, 15); mu (F, C, L, 2); lmk_scale2 (F, C, L). Outputs: u (F, P, P),
    g_frame (F, P), w (F, P, S), v (F, S, S) (upper triangle), g_shared (F, S),
    energies (F, 6).
    """
    frames, size = x.shape
    num_views, num_lmk = mu.shape[1], mu.shape[2]
    num_beta = lk_identity.shape[1]
    for t in prange(frames):
        view_jtj = np.zeros((size, size))
        view_jtr = np.zeros(size)
        pixels = np.zeros((num_views, num_lmk, 2))
        energies[t] = evaluate_views(
            x[t], NORMAL_EQUATIONS, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint,
            lk_weight, lk_rest, ex_ptr, ex_index, ex_vec, ex_col, col_ptr, col_index, theta_col,
            cameras, mu[t], lmk_scale2[t], np.zeros_like(pixels), np.zeros(num_views),
            expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
            check_scale, u[t], g_frame[t], pixels, view_jtj, view_jtr)
        w[t, :, :] = 0.0
        v[t, :, :] = 0.0
        g_shared[t, :] = 0.0
        if not np.isfinite(energies[t].sum()):
            continue
        psi = x[t, :num_expr]
        theta = x[t, num_expr:]
        g_rot, offsets, d_rot, d_off = forward_kinematics(theta, joint_pos, parents)
        d_off_beta = np.zeros((num_beta, parents.shape[0], 3))
        _identity_offsets(g_rot, joint_identity, parents, d_off_beta)
        rest = np.zeros((lk_rest.shape[0], 3))
        point, cam = np.zeros(3), np.zeros(3)
        proj, pr = np.zeros((2, 3)), np.zeros((2, 3))
        jrow0, jrow1 = np.zeros(size), np.zeros(size)
        active = np.empty(num_beta + 7, dtype=np.int64)
        js0, js1 = np.zeros(num_beta + 7), np.zeros(num_beta + 7)
        for i in range(num_beta):
            active[i] = i
        for c in range(num_views):
            f, cx, cy = cameras[c, 0], cameras[c, 1], cameras[c, 2]
            r_cam = cameras[c, 3:12].reshape(3, 3)
            t_cam = cameras[c, 12:15]
            for i in range(7):
                active[num_beta + i] = num_beta + 7 * c + i
            for l in range(num_lmk):
                h = lmk_scale2[t, c, l]
                if h == 0.0:
                    continue
                _landmark_point(l, psi, theta, g_rot, offsets, bary_sum, lk_ptr, lk_joint,
                                lk_weight, lk_rest, ex_ptr, ex_index, ex_vec, rest, point)
                project_point(point, f, cx, cy, r_cam, t_cam, cam)
                inv_z = 1.0 / cam[2]
                nx, ny = cam[0] * inv_z, cam[1] * inv_z
                g0 = h * (f * nx + cx - mu[t, c, l, 0])
                g1 = h * (f * ny + cy - mu[t, c, l, 1])
                point_projection(f, r_cam, cam, inv_z, proj)
                landmark_rows(l, num_expr, proj, g_rot, d_rot, d_off, bary_sum, lk_ptr,
                              lk_joint, lk_weight, ex_ptr, ex_index, ex_vec, ex_col, theta_col,
                              rest, pr, jrow0, jrow1)
                # shared rows: beta through the rest shape and the joints
                js0[:] = 0.0
                js1[:] = 0.0
                for m in range(lk_ptr[l], lk_ptr[l + 1]):
                    k = lk_joint[m]
                    s = lk_weight[m]
                    for r in range(2):
                        for i in range(3):
                            pr[r, i] = (proj[r, 0] * g_rot[k, 0, i] + proj[r, 1] * g_rot[k, 1, i]
                                        + proj[r, 2] * g_rot[k, 2, i])
                    for b in range(num_beta):
                        q0, q1, q2 = lk_identity[m, b, 0], lk_identity[m, b, 1], lk_identity[m, b, 2]
                        o0, o1, o2 = d_off_beta[b, k, 0], d_off_beta[b, k, 1], d_off_beta[b, k, 2]
                        js0[b] += (pr[0, 0] * q0 + pr[0, 1] * q1 + pr[0, 2] * q2
                                   + s * (proj[0, 0] * o0 + proj[0, 1] * o1 + proj[0, 2] * o2))
                        js1[b] += (pr[1, 0] * q0 + pr[1, 1] * q1 + pr[1, 2] * q2
                                   + s * (proj[1, 0] * o0 + proj[1, 1] * o1 + proj[1, 2] * o2))
                # camera: d pixels / d camera point (2, 3), then rotation increment
                # (d (exp[d] a) = -[a]x with a = cam - t), translation, focal
                p00, p02 = f * inv_z, -f * nx * inv_z
                p11, p12 = f * inv_z, -f * ny * inv_z
                a0, a1, a2 = cam[0] - t_cam[0], cam[1] - t_cam[1], cam[2] - t_cam[2]
                js0[num_beta + 0] = p02 * a1
                js0[num_beta + 1] = p00 * a2 - p02 * a0
                js0[num_beta + 2] = -p00 * a1
                js1[num_beta + 0] = -p11 * a2 + p12 * a1
                js1[num_beta + 1] = -p12 * a0
                js1[num_beta + 2] = p11 * a0
                js0[num_beta + 3], js0[num_beta + 4], js0[num_beta + 5] = p00, 0.0, p02
                js1[num_beta + 3], js1[num_beta + 4], js1[num_beta + 5] = 0.0, p11, p12
                js0[num_beta + 6], js1[num_beta + 6] = nx, ny
                # upper triangle of V over [beta, this camera]: contiguous row updates
                n_act = num_beta + 7
                cam0 = num_beta + 7 * c
                cs0, cs1 = js0[num_beta:], js1[num_beta:]
                for a in range(n_act):
                    sa = active[a]
                    ha0, ha1 = h * js0[a], h * js1[a]
                    g_shared[t, sa] += js0[a] * g0 + js1[a] * g1
                    if a < num_beta:
                        row, x0, x1 = v[t, a, a:num_beta], js0[a:num_beta], js1[a:num_beta]
                        for i in range(num_beta - a):
                            row[i] += ha0 * x0[i] + ha1 * x1[i]
                        row = v[t, a, cam0:cam0 + 7]
                        for i in range(7):
                            row[i] += ha0 * cs0[i] + ha1 * cs1[i]
                    else:
                        for i in range(a - num_beta, 7):
                            v[t, sa, cam0 + i] += ha0 * cs0[i] + ha1 * cs1[i]
                for q in range(col_ptr[l], col_ptr[l + 1]):
                    ga = col_index[q]
                    ja0, ja1 = h * jrow0[ga], h * jrow1[ga]
                    row = w[t, ga, :num_beta]
                    for i in range(num_beta):
                        row[i] += ja0 * js0[i] + ja1 * js1[i]
                    row = w[t, ga, cam0:cam0 + 7]
                    for i in range(7):
                        row[i] += ja0 * cs0[i] + ja1 * cs1[i]
                    jrow0[ga] = 0.0
                    jrow1[ga] = 0.0


@njit(cache=True, parallel=True)
def schur_reduce(u, g_frame, w, x, lower, upper, damping, reduced, reduced_g):
    """Eliminate each frame block. A_f = U_f + damping * diag (as lm.bounded_step), with the
    expression weights on a bound whose gradient points out of the box held (row and column
    dropped). With Y_f = A_f^-1 W_f and y_f = A_f^-1 g_f, outputs reduced W_f^T Y_f
    (F, S, S) and W_f^T y_f (F, S). Returns ok (F,) (A_f positive definite)."""
    frames, size = g_frame.shape
    shared = w.shape[2]
    ok = np.ones(frames, dtype=np.bool_)
    for t in prange(frames):
        y_mat = np.zeros((size, shared))
        a = u[t].copy()
        floor = 0.0
        for i in range(size):
            floor = max(floor, a[i, i])
        floor = max(floor * DIAGONAL_FLOOR, 1e-12)
        held = np.zeros(size, dtype=np.bool_)
        for i in range(size):
            held[i] = ((x[t, i] <= lower[i] and g_frame[t, i] > 0.0)
                       or (x[t, i] >= upper[i] and g_frame[t, i] < 0.0))
        for i in range(size):
            a[i, i] += damping * max(a[i, i], floor) + floor
            if held[i]:
                for j in range(size):
                    a[i, j] = 0.0
                    a[j, i] = 0.0
                a[i, i] = 1.0
        low, good = cholesky_factor(a)
        if not good:
            ok[t] = False
            reduced[t, :, :] = 0.0
            reduced_g[t, :] = 0.0
            continue
        rhs = g_frame[t].copy()
        for i in range(size):
            if held[i]:
                rhs[i] = 0.0
        y_vec = cholesky_substitute(low, rhs)
        column = np.zeros(size)
        for s in range(shared):
            nonzero = False
            for i in range(size):
                column[i] = 0.0 if held[i] else w[t, i, s]
                nonzero = nonzero or column[i] != 0.0
            if nonzero:
                y_mat[:, s] = cholesky_substitute(low, column)
        for s in range(shared):
            acc_g = 0.0
            for i in range(size):
                acc_g += w[t, i, s] * y_vec[i] * (not held[i])
            reduced_g[t, s] = acc_g
            for s2 in range(s, shared):
                acc = 0.0
                for i in range(size):
                    if not held[i]:
                        acc += w[t, i, s] * y_mat[i, s2]
                reduced[t, s, s2] = acc
                reduced[t, s2, s] = acc
    return ok


@njit(cache=True, parallel=True)
def frame_steps(u, g_frame, w, shared_step, x, lower, upper, damping, out):
    """Each frame's bounded LM step given the shared step: out[f] = the new x[f] from
    (U_f + damping) d = -(g_f + W_f shared_step) with the active set of lm.bounded_step.
    Returns ok (F,)."""
    frames, size = x.shape
    ok = np.ones(frames, dtype=np.bool_)
    for t in prange(frames):
        rhs = g_frame[t].copy()
        for i in range(size):
            for s in range(shared_step.shape[0]):
                rhs[i] += w[t, i, s] * shared_step[s]
        out[t], ok[t] = bounded_step(u[t], rhs, x[t], lower, upper, damping)
    return ok


@njit(cache=True, parallel=True)
def frame_energies(x, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint, lk_weight,
                   lk_rest, ex_ptr, ex_index, ex_vec, ex_col, col_ptr, col_index, theta_col,
                   cameras, mu, lmk_scale2, expression_weight, joint_weight, intersect_weight,
                   check_rest, check_basis, check_scale, pixels, energies):
    """Per-term energies (F, 6) without E_temporal and projections pixels (F, C, L, 2)."""
    frames, size = x.shape
    num_views = cameras.shape[0]
    for t in prange(frames):
        scratch = np.zeros((1, 1))
        energies[t] = evaluate_views(
            x[t], ENERGIES, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint,
            lk_weight, lk_rest, ex_ptr, ex_index, ex_vec, ex_col, col_ptr, col_index, theta_col,
            cameras, mu[t], lmk_scale2[t], np.zeros_like(pixels[t]), np.zeros(num_views),
            expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
            check_scale, scratch, np.zeros(1), pixels[t], scratch, np.zeros(1))


@njit(cache=True, parallel=True)
def smoothing_sweep(parity, x, lower, upper, max_iterations, tolerance, num_expr, joint_pos,
                    parents, bary_sum, lk_ptr, lk_joint, lk_weight, lk_rest, ex_ptr, ex_index,
                    ex_vec, ex_col, col_ptr, col_index, theta_col, cameras, mu, lmk_scale2,
                    temporal, view_temporal, neighbours, expression_weight, joint_weight,
                    intersect_weight, check_rest, check_basis, check_scale, pixels, fixed):
    """Refit the frames of the given index parity that are not fixed (F,), each with its
    neighbours' projections held: x (F, P) and pixels (F, C, L, 2) updated in place.

    neighbours (F, 2): 1.0 where the frame before / after exists (E_temporal towards it);
    view_temporal (C,) 1.0 for the views E_temporal applies to. Returns LM iterations (F,)."""
    frames = x.shape[0]
    num_views, num_lmk = pixels.shape[1], pixels.shape[2]
    iterations = np.zeros(frames, dtype=np.int64)
    for t in prange(frames):
        if t % 2 != parity or fixed[t]:
            continue
        left = neighbours[t, 0] if t > 0 else 0.0
        right = neighbours[t, 1] if t < frames - 1 else 0.0
        count = left + right
        previous = np.zeros((num_views, num_lmk, 2))
        if left > 0.0:
            previous += pixels[t - 1]
        if right > 0.0:
            previous += pixels[t + 1]
        if count > 0.0:
            previous /= count
        weights = temporal * count * view_temporal
        out = pixels[t].copy()
        x_new, _, its, status = solve(
            x[t], lower, upper, max_iterations, tolerance, num_expr, joint_pos, parents,
            bary_sum, lk_ptr, lk_joint, lk_weight, lk_rest, ex_ptr, ex_index, ex_vec, ex_col,
            col_ptr, col_index, theta_col, cameras, mu[t], lmk_scale2[t], previous, weights,
            expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
            check_scale, out, np.zeros((x.shape[1], x.shape[1])), False)
        iterations[t] = its
        if status != 3:
            x[t] = x_new
            pixels[t] = out
    return iterations
