"""Bounded Levenberg-Marquardt: the damped step (numba) shared by the real-time kernel and
the dense numpy problems, and a small driver for the dense ones.

Step: solve (J^T J + lambda diag(J^T J)) delta = -J^T r by Cholesky over the free
variables; a variable sitting on a bound whose gradient points out of the box is held
(active set), and the new point is projected onto the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

#: Relative floor of the damping diagonal, so parameters the data does not see stay solvable.
DIAGONAL_FLOOR = 1e-9
INITIAL_DAMPING = 1e-4
MAX_DAMPING = 1e10


@njit(cache=True)
def cholesky_solve(a, b):
    """Solve a x = b for symmetric positive definite a (n, n) in place of copies.
    Returns (x (n,), ok); ok is False when a is not positive definite."""
    n = a.shape[0]
    low = np.zeros((n, n))
    for j in range(n):
        total = a[j, j]
        for k in range(j):
            total -= low[j, k] * low[j, k]
        if not total > 0.0:
            return np.zeros(n), False
        low[j, j] = np.sqrt(total)
        for i in range(j + 1, n):
            total = a[i, j]
            for k in range(j):
                total -= low[i, k] * low[j, k]
            low[i, j] = total / low[j, j]
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
    return x, True


@njit(cache=True)
def bounded_step(jtj, jtr, x, lower, upper, damping):
    """The projected LM step from x: returns (new x (P,) inside the bounds, ok)."""
    size = x.shape[0]
    free = np.empty(size, dtype=np.int64)
    count = 0
    floor = 0.0
    for i in range(size):
        floor = max(floor, jtj[i, i])
    floor = max(floor * DIAGONAL_FLOOR, 1e-12)
    for i in range(size):
        held = (x[i] <= lower[i] and jtr[i] > 0.0) or (x[i] >= upper[i] and jtr[i] < 0.0)
        if not held:
            free[count] = i
            count += 1
    a = np.empty((count, count))
    b = np.empty(count)
    for p in range(count):
        i = free[p]
        b[p] = -jtr[i]
        for q in range(count):
            a[p, q] = jtj[i, free[q]]
        a[p, p] += damping * max(jtj[i, i], floor) + floor
    delta, ok = cholesky_solve(a, b)
    new = x.copy()
    for p in range(count):
        i = free[p]
        new[i] = min(max(x[i] + delta[p], lower[i]), upper[i])
    return new, ok


@dataclass(frozen=True)
class SolveResult:
    """x : (P,) solution; cost : final sum of squared residuals; iterations : LM trials."""

    x: np.ndarray
    cost: float
    iterations: int
    converged: bool
    message: str


def solve_bounded(residuals_and_jacobian, x0: np.ndarray, lower: np.ndarray,
                  upper: np.ndarray, max_iterations: int, tolerance: float) -> SolveResult:
    """Minimise ||r(x)||^2 with lower <= x <= upper by projected LM (dense J, numpy).

    residuals_and_jacobian : x (P,) -> (r (M,), J (M, P)).
    """
    x = np.clip(np.asarray(x0, dtype=np.float64), lower, upper)
    r, jac = residuals_and_jacobian(x)
    cost = float(r @ r)
    damping = INITIAL_DAMPING
    for iteration in range(1, max_iterations + 1):
        new, ok = bounded_step(jac.T @ jac, jac.T @ r, x, lower, upper, damping)
        new_r, new_jac = residuals_and_jacobian(new) if ok else (r, jac)
        new_cost = float(new_r @ new_r) if ok else np.inf
        if np.isfinite(new_cost) and new_cost < cost:
            decrease = (cost - new_cost) / max(cost, 1e-300)
            x, r, jac, cost = new, new_r, new_jac, new_cost
            damping = max(damping * 0.1, 1e-12)
            if decrease < tolerance:
                return SolveResult(x, cost, iteration, True, "relative decrease below tolerance")
        else:
            damping *= 10.0
            if damping > MAX_DAMPING:
                return SolveResult(x, cost, iteration, True, "no step decreases the energy")
    return SolveResult(x, cost, max_iterations, False, "maximum number of iterations reached")
