"""Numba kernels of the offline fitter, parallel over frames (prange).

The per-frame work reuses the real-time kernel (`realtime_kernel`): the landmark evaluation,
the per-landmark Jacobian rows, the J^T J accumulation, the prior terms and the LM loop
(`realtime_kernel.solve`, over several views). What is added here:

- `schur_blocks`: per frame f, besides the frame block U_f = J_f^T J_f and g_f = J_f^T r
  (from `evaluate_views`), the coupling to the shared parameters s = [beta (B), then per
  camera: rotation increment (3), translation (3), focal (1)]: W_f = J_f^T J_s (P, S),
  V_f = J_s^T J_s (S, S) and g_s = J_s^T r (S,), E_intersect's beta rows included
  (`_intersect_identity`).
- `schur_reduce`: eliminates each frame's block (A_f = U_f + damping): the reduced
  V_f - W_f^T A_f^-1 W_f and g_s - W_f^T A_f^-1 g_f; `frame_steps` then takes each frame's
  step given the shared step. Bounds as in lm.bounded_step, in block form: expression weights
  on a bound with the gradient pointing out are held, a step that leaves the box pins the
  variable on the bound and the caller solves again (`offline.fit_shared`), so the shared
  step always accounts for the frames' clipped variables.
- `frame_energies`: per-term energies and projections of every frame (no Jacobian).
- `smoothing_sweep`: one half (even or odd frames) of a red-black block Gauss-Seidel sweep
  over frames with E_temporal: each frame's (psi, theta) is refitted by the LM of the
  real-time kernel with its neighbours' projections fixed (w |x - a|^2 + w |x - b|^2 =
  2 w |x - (a + b) / 2|^2 + const), so every update lowers the total energy.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .lm import DIAGONAL_FLOOR, FAST_MATH, cholesky_factor, cholesky_substitute
from .realtime_kernel import (ENERGIES, JTJ_DTYPE, NORMAL_EQUATIONS, _landmark_point,
                              blend_shapes, evaluate_views, forward_kinematics,
                              intersect_residual, landmark_rows, point_projection,
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


@njit(cache=True, fastmath=FAST_MATH)
def _intersect_identity(psi, intersect_weight, check_rest, check_basis, check_scale,
                        check_identity, w, v, g_shared):
    """E_intersect's beta rows of one frame: r_i = sqrt(weight) scale_i (1 - |q_i|) for the
    checked vertices inside their shape, q_i = check_rest_i + sum_e psi_e check_basis_ei
    (+ beta through check_identity), added to w (P, S) (expression columns), v (S, S) (upper
    triangle) and g_shared (S,) over the beta block (the expression block is the real-time
    kernel's)."""
    num_expr = psi.shape[0]
    num_beta = check_identity.shape[1]
    root_w = np.sqrt(intersect_weight)
    d_psi, d_beta = np.zeros(num_expr), np.zeros(num_beta)
    q = np.empty_like(check_rest)
    blend_shapes(psi, check_rest, check_basis, q)
    for i in range(q.shape[0]):
        r, c = intersect_residual(q, i, root_w, check_scale, check_basis, d_psi)
        if r == 0.0:
            continue
        for b in range(num_beta):
            d_beta[b] = c * (q[i, 0] * check_identity[i, b, 0] + q[i, 1] * check_identity[i, b, 1]
                             + q[i, 2] * check_identity[i, b, 2])
        for a in range(num_beta):
            g_shared[a] += d_beta[a] * r
            for b in range(a, num_beta):
                v[a, b] += d_beta[a] * d_beta[b]
        for e in range(num_expr):
            if d_psi[e] != 0.0:
                for b in range(num_beta):
                    w[e, b] += d_psi[e] * d_beta[b]


@njit(cache=True, parallel=True, fastmath=FAST_MATH)
def schur_blocks(x, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint, lk_weight, lk_rest,
                 ex_basis, ex_ptr, ex_index, ex_vec, col_ptr, col_index, theta_col, lk_identity,
                 joint_identity, check_identity, cameras, mu, lmk_scale2, expression_weight,
                 joint_weight, intersect_weight, check_rest, check_basis, check_scale, u, g_frame,
                 w, v, g_shared, energies):
    """Normal-equation blocks of F frames (see module docstring), no E_temporal.

    x (F, P); lk_identity (M, B, 3) d lk_rest / d beta; joint_identity (B, K, 3);
    check_identity (n, B, 3) d check_rest / d beta (E_intersect's checked vertices);
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
            lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr, col_index, theta_col,
            cameras, mu[t], lmk_scale2[t], np.zeros_like(pixels), np.zeros(num_views),
            expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
            check_scale, u[t], g_frame[t], pixels, np.empty((num_views, 2, col_index.size)),
            view_jtj, view_jtr)
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
        rest = np.empty((lk_rest.shape[0], 3))
        blend_shapes(psi, lk_rest, ex_basis, rest)
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
                _landmark_point(l, theta, g_rot, offsets, bary_sum, lk_ptr, lk_joint,
                                lk_weight, rest, point)
                project_point(point, f, cx, cy, r_cam, t_cam, cam)
                inv_z = 1.0 / cam[2]
                nx, ny = cam[0] * inv_z, cam[1] * inv_z
                g0 = h * (f * nx + cx - mu[t, c, l, 0])
                g1 = h * (f * ny + cy - mu[t, c, l, 1])
                point_projection(f, r_cam, cam, inv_z, proj)
                landmark_rows(l, num_expr, proj, g_rot, d_rot, d_off, bary_sum, lk_ptr,
                              lk_joint, lk_weight, ex_ptr, ex_index, ex_vec, theta_col, rest,
                              pr, jrow0, jrow1)
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
        if intersect_weight > 0.0:
            _intersect_identity(psi, intersect_weight, check_rest, check_basis, check_scale,
                                check_identity, w[t], v[t], g_shared[t])


@njit(cache=True)
def _free_factor(u, held, damping):
    """The free variables of one frame block (those not held) and the lower Cholesky factor of
    their damped block A = U_FF + damping * max(diag, floor) + floor (as lm.bounded_step).
    Returns (free (n,), low (n, n), ok)."""
    size = u.shape[0]
    floor = 0.0
    for i in range(size):
        floor = max(floor, u[i, i])
    floor = max(floor * DIAGONAL_FLOOR, 1e-12)
    count = 0
    free = np.empty(size, dtype=np.int64)
    for i in range(size):
        if not held[i]:
            free[count] = i
            count += 1
    free = free[:count]
    a = np.empty((count, count))
    for p in range(count):
        for q in range(count):
            a[p, q] = u[free[p], free[q]]
        a[p, p] += damping * max(a[p, p], floor) + floor
    low, ok = cholesky_factor(a)
    return free, low, ok


@njit(cache=True)
def _free_rhs(u, g, w, held, fixed, shared_step, free):
    """g_F + U_FH fixed_H + W_F shared_step (n,): the gradient of the free variables with the
    held ones moved by fixed and the shared parameters by shared_step (zeros: none)."""
    size = u.shape[0]
    rhs = np.empty(free.shape[0])
    for p in range(free.shape[0]):
        i = free[p]
        total = g[i]
        for j in range(size):
            if held[j] and fixed[j] != 0.0:
                total += u[i, j] * fixed[j]
        for s in range(shared_step.shape[0]):
            total += w[i, s] * shared_step[s]
        rhs[p] = total
    return rhs


@njit(cache=True, parallel=True, fastmath=FAST_MATH)
def schur_reduce(u, g_frame, w, held, fixed, damping, reduced, reduced_g):
    """Eliminate each frame block, the block form of lm.bounded_step: held (F, P) variables
    are moved by fixed (F, P) (0: stay on their bound), the free ones F solve with
    A_f = U_FF + damping (`_free_factor`). With Z = L^-1 W_F (A_f = L L^T) and
    z = L^-1 (g_F + U_FH fixed_H), outputs reduced Z^T Z = W_F^T A_f^-1 W_F (F, S, S) and
    reduced_g Z^T z - W_H^T fixed_H (F, S), so the shared step solves
    (V - sum reduced) s = -(g_s - sum reduced_g). Returns ok (F,) (A_f positive definite)."""
    frames, size = g_frame.shape
    shared = w.shape[2]
    ok = np.ones(frames, dtype=np.bool_)
    for t in prange(frames):
        reduced[t, :, :] = 0.0
        reduced_g[t, :] = 0.0
        free, low, good = _free_factor(u[t], held[t], damping)
        if not good:
            ok[t] = False
            continue
        count = free.shape[0]
        z_vec = _free_rhs(u[t], g_frame[t], w[t], held[t], fixed[t], np.zeros(0), free)
        z_mat = np.empty((count, shared))
        for p in range(count):          # forward substitution, all columns at once
            row = z_mat[p]
            row[:] = w[t, free[p]]
            total = z_vec[p]
            for k in range(p):
                lpk = low[p, k]
                above = z_mat[k]
                for a in range(shared):
                    row[a] -= lpk * above[a]
                total -= lpk * z_vec[k]
            inverse = 1.0 / low[p, p]
            for a in range(shared):
                row[a] *= inverse
            z_vec[p] = total * inverse
        out, out_g = reduced[t], reduced_g[t]
        for p in range(count):          # Z^T Z: upper triangle by rows of Z
            row = z_mat[p]
            zp = z_vec[p]
            for a in range(shared):
                za = row[a]
                out_g[a] += za * zp
                if za != 0.0:
                    target = out[a]
                    for b in range(a, shared):
                        target[b] += za * row[b]
        for a in range(shared):
            for b in range(a):
                out[a, b] = out[b, a]
        for i in range(size):
            if held[t, i] and fixed[t, i] != 0.0:
                for a in range(shared):
                    out_g[a] -= w[t, i, a] * fixed[t, i]
    return ok


@njit(cache=True, parallel=True)
def frame_steps(u, g_frame, w, shared_step, x, lower, upper, held, fixed, damping, out):
    """Each frame's step given the shared step (one pass of the block lm.bounded_step):
    A_f d_F = -(g_F + U_FH fixed_H + W_F shared_step), held variables moved by fixed, and
    out[f] = x[f] + d inside the bounds. A free variable whose step leaves the box is pinned
    there for the next pass (held set, fixed = bound - x). Returns pinned (F,), the number
    of variables pinned, -1 where A_f is not positive definite (out = x)."""
    frames, size = x.shape
    pinned = np.zeros(frames, dtype=np.int64)
    for t in prange(frames):
        free, low, good = _free_factor(u[t], held[t], damping)
        if not good:
            out[t] = x[t]
            pinned[t] = -1
            continue
        delta = cholesky_substitute(low, -_free_rhs(u[t], g_frame[t], w[t], held[t], fixed[t],
                                                    shared_step, free))
        for i in range(size):
            out[t, i] = x[t, i] + fixed[t, i]
        for p in range(free.shape[0]):
            i = free[p]
            target = x[t, i] + delta[p]
            if target < lower[i] or target > upper[i]:
                bound = lower[i] if target < lower[i] else upper[i]
                held[t, i] = True
                fixed[t, i] = bound - x[t, i]
                pinned[t] += 1
            out[t, i] = min(max(target, lower[i]), upper[i])
    return pinned


@njit(cache=True, parallel=True)
def frame_energies(x, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint, lk_weight,
                   lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr, col_index, theta_col,
                   cameras, mu, lmk_scale2, expression_weight, joint_weight, intersect_weight,
                   check_rest, check_basis, check_scale, pixels, energies):
    """Per-term energies (F, 6) without E_temporal and projections pixels (F, C, L, 2)."""
    frames, size = x.shape
    num_views = cameras.shape[0]
    for t in prange(frames):
        scratch = np.zeros((1, 1))
        energies[t] = evaluate_views(
            x[t], ENERGIES, num_expr, joint_pos, parents, bary_sum, lk_ptr, lk_joint,
            lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec, col_ptr, col_index, theta_col,
            cameras, mu[t], lmk_scale2[t], np.zeros_like(pixels[t]), np.zeros(num_views),
            expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
            check_scale, scratch, np.zeros(1), pixels[t], np.empty((num_views, 2, 0)), scratch,
            np.zeros(1))


@njit(cache=True, parallel=True)
def smoothing_sweep(parity, x, lower, upper, max_iterations, tolerance, num_expr, joint_pos,
                    parents, bary_sum, lk_ptr, lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr,
                    ex_index, ex_vec, col_ptr, col_index, theta_col, cameras, mu, lmk_scale2,
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
        x_new, _, its, status, _ = solve(
            x[t], lower, upper, max_iterations, tolerance, num_expr, joint_pos, parents,
            bary_sum, lk_ptr, lk_joint, lk_weight, lk_rest, ex_basis, ex_ptr, ex_index, ex_vec,
            col_ptr, col_index, theta_col, cameras, mu[t], lmk_scale2[t], previous, weights,
            expression_weight, joint_weight, intersect_weight, check_rest, check_basis,
            check_scale, out, np.zeros((x.shape[1], x.shape[1]), JTJ_DTYPE),
            np.empty((num_views, 2, col_index.size)), False)
        iterations[t] = its
        if status != 3:
            x[t] = x_new
            pixels[t] = out
    return iterations
