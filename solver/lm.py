"""Bounded Levenberg-Marquardt: the damped step (numba) of the real-time kernel, whose active
set the offline kernel's Schur-complement step follows in block form.

Step: solve (J^T J + lambda diag(J^T J)) delta = -J^T r by Cholesky over the free
variables; a variable sitting on a bound whose gradient points out of the box is held
(active set), and the new point is projected onto the box.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Relative floor of the damping diagonal, so parameters the data does not see stay solvable.
DIAGONAL_FLOOR = 1e-9
INITIAL_DAMPING = 1e-4
MAX_DAMPING = 1e10
#: Re-solves of one bounded step after moving crossing variables onto their bounds.
MAX_PASSES = 8
#: numba fastmath flags for the kernels: reassociation and contraction (vectorised sums and
#: dot products) while keeping IEEE NaN / inf semantics, so the finiteness checks still hold.
FAST_MATH = {"nsz", "arcp", "contract", "reassoc"}


def jit_kernel(**options):
    """numba.njit for the fitter kernels: cached, with numpy's error model (a division by
    zero gives inf / nan, which the finiteness checks catch, instead of raising; no
    zero-divisor branches in the compiled code)."""
    return njit(cache=True, error_model="numpy", **options)


@jit_kernel(fastmath=FAST_MATH)
def cholesky_factor(a):
    """Lower Cholesky factor of a symmetric positive definite a (n, n), not modified.
    Returns (low (n, n), ok); ok is False when a is not positive definite."""
    n = a.shape[0]
    low = np.zeros((n, n))
    for j in range(n):
        total = a[j, j]
        for k in range(j):
            total -= low[j, k] * low[j, k]
        if not total > 0.0:
            return low, False
        low[j, j] = np.sqrt(total)
        for i in range(j + 1, n):
            total = a[i, j]
            for k in range(j):
                total -= low[i, k] * low[j, k]
            low[i, j] = total / low[j, j]
    return low, True


@jit_kernel(fastmath=FAST_MATH)
def cholesky_substitute(low, b):
    """Solve (low low^T) x = b for b (n,) by forward and back substitution: x (n,)."""
    n = low.shape[0]
    y = np.empty(n)
    for i in range(n):
        total = b[i]
        for k in range(i):
            total -= low[i, k] * y[k]
        y[i] = total / low[i, i]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        total = y[i]
        for k in range(i + 1, n):
            total -= low[k, i] * x[k]
        x[i] = total / low[i, i]
    return x


@jit_kernel(fastmath=FAST_MATH)
def cholesky_solve(a, b):
    """Solve a x = b for symmetric positive definite a (n, n); a and b are not modified.
    Returns (x (n,), ok); ok is False when a is not positive definite."""
    low, ok = cholesky_factor(a)
    if not ok:
        return np.zeros(a.shape[0]), False
    return cholesky_substitute(low, b), True


@jit_kernel(fastmath=FAST_MATH)
def bounded_step(jtj, jtr, x, lower, upper, damping):
    """The projected LM step from x: returns (new x (P,) inside the bounds, ok).

    Active set: a variable on a bound whose gradient points out of the box is held; a free
    variable whose step would leave the box is moved onto that bound and held, and the rest
    is solved again (at most MAX_PASSES times), so the step stays a damped Newton step on the
    face of the box instead of a clipped one.
    """
    size = x.shape[0]
    floor = 0.0
    for i in range(size):
        floor = max(floor, jtj[i, i])
    floor = max(floor * DIAGONAL_FLOOR, 1e-12)
    held = np.zeros(size, dtype=np.bool_)
    fixed_delta = np.zeros(size)
    for i in range(size):
        held[i] = (x[i] <= lower[i] and jtr[i] > 0.0) or (x[i] >= upper[i] and jtr[i] < 0.0)
    free = np.empty(size, dtype=np.int64)
    new = x.copy()
    for _ in range(MAX_PASSES):
        count = 0
        for i in range(size):
            if not held[i]:
                free[count] = i
                count += 1
        a = np.empty((count, count))
        b = np.empty(count)
        for p in range(count):
            i = free[p]
            total = -jtr[i]
            for j in range(size):
                if held[j] and fixed_delta[j] != 0.0:
                    total -= jtj[i, j] * fixed_delta[j]
            b[p] = total
            for q in range(count):
                a[p, q] = jtj[i, free[q]]
            a[p, p] += damping * max(jtj[i, i], floor) + floor
        delta, ok = cholesky_solve(a, b)
        if not ok:
            return x.copy(), False
        crossed = False
        for p in range(count):
            i = free[p]
            target = x[i] + delta[p]
            if target < lower[i] or target > upper[i]:
                held[i] = True
                fixed_delta[i] = (lower[i] if target < lower[i] else upper[i]) - x[i]
                crossed = True
        if not crossed:
            break
    for i in range(size):
        new[i] = x[i] + fixed_delta[i]
    for p in range(count):
        i = free[p]
        new[i] = min(max(x[i] + delta[p], lower[i]), upper[i])
    return new, True


@jit_kernel(fastmath=FAST_MATH)
def predicted_decrease(jtj, jtr, x, new):
    """Decrease of ||r||^2 the Gauss-Newton model predicts for the step x -> new."""
    size = x.shape[0]
    linear = 0.0
    quadratic = 0.0
    for i in range(size):
        di = new[i] - x[i]
        if di == 0.0:
            continue
        linear += di * jtr[i]
        for j in range(size):
            quadratic += di * jtj[i, j] * (new[j] - x[j])
    return -(2.0 * linear + quadratic)
