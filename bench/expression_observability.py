"""How well each landmark set determines each expression weight: the single-frame fit's
expression error per channel next to the posterior standard deviation the landmarks allow.

    .venv/bin/python -m bench.expression_observability [--seeds 8] [--noise 1.5]
        [--out bench/results/expression_observability.json]

Per landmark set (the trackers' sets and the tests' 478 random surface points) and seed:
a face from solver.synthetic.random_face (identity known), landmarks with `--noise` px
Gaussian noise on a ~256 px face, the real-time tracker run to convergence, and the
Laplace approximation of the posterior at the true parameters: E is the negative log
posterior (E_landmarks is the Gaussian NLL, E_expression = ||psi||^2 a N(0, 1/2) prior), so
its Gauss-Newton Hessian 2 J^T J (solver.problem.FitProblem, dense) is the precision of
(psi, theta); the [0, 1] bounds are ignored, so the standard deviations are upper bounds
of what the box allows. A channel whose posterior std is close to the prior's 0.71 is not
seen by the landmarks at all (its fit falls back on the prior's 0), and no estimator fed
these landmarks recovers it; `mae_determined` is the expression MAE over the channels
with posterior std below DETERMINED_STD.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .machine import single_thread_env, write_json

single_thread_env()

SETS = ("ibug68", "dense320", "mediapipe478", "dense703", "random478")
#: channels whose posterior std is below this count as determined by the landmarks
DETERMINED_STD = 0.1


def _embedding(model, name: str):
    from densecap.solver.landmark_sets import random_embedding
    return (random_embedding(model, 478, seed=0) if name == "random478"
            else model.landmark_embedding(name))


def posterior_std(model, embedding, colliders, beta, psi, theta, sigma_px: float) -> np.ndarray:
    """Laplace posterior std (E,) of the expression weights at the truth, identity known."""
    from densecap.solver.energies import FitSettings
    from densecap.solver.problem import FitProblem, Observation
    from densecap.solver.synthetic import CAMERA, observe
    mu = observe(model, embedding, beta, psi, theta, 0.0, 0)
    problem = FitProblem(model, embedding, CAMERA,
                         [Observation(mu, np.full(len(embedding), sigma_px))], FitSettings(),
                         beta, colliders)
    _, jacobian = problem.residuals_and_jacobian(problem.pack(beta, CAMERA.focal, psi[None],
                                                              theta[None]))
    covariance = np.linalg.inv(2.0 * jacobian.T @ jacobian)
    return np.sqrt(np.diag(covariance)[:model.num_expressions])


def fitted_errors(model, embedding, beta, psi, theta, noise_px: float, seed: int) -> np.ndarray:
    """|psi_fit - psi| (E,) of the real-time tracker run to convergence on one noisy frame."""
    from densecap.solver.energies import FitSettings
    from densecap.solver.realtime import RealtimeTracker
    from densecap.solver.synthetic import CAMERA, observe
    mu = observe(model, embedding, beta, psi, theta, noise_px, 100 + seed)
    tracker = RealtimeTracker(model, embedding, CAMERA,
                              FitSettings(tolerance=1e-12, max_iterations=100), beta=beta,
                              refine_identity=False)
    result = tracker.track(mu, np.full(len(embedding), noise_px))
    return np.abs(result.psi - psi)


def run_set(model, colliders, name: str, seeds: int, noise_px: float) -> dict:
    from densecap.solver.synthetic import random_face
    embedding = _embedding(model, name)
    stds, errors = [], []
    for seed in range(seeds):
        beta, psi, theta = random_face(model, seed)
        stds.append(posterior_std(model, embedding, colliders, beta, psi, theta, noise_px))
        errors.append(fitted_errors(model, embedding, beta, psi, theta, noise_px, seed))
    std, error = np.mean(stds, axis=0), np.array(errors)
    determined = std < DETERMINED_STD
    worst = np.argsort(std)[::-1][:10]
    return {"landmarks": len(embedding),
            "mae_mean": round(float(error.mean()), 4),
            "mae_max_over_seeds": round(float(error.mean(axis=1).max()), 4),
            "determined_channels": int(determined.sum()),
            "mae_determined": round(float(error[:, determined].mean()), 4),
            "mae_undetermined": (round(float(error[:, ~determined].mean()), 4)
                                 if (~determined).any() else None),
            "least_determined": {model.expression_names[i]: {
                "posterior_std": round(float(std[i]), 3),
                "mae": round(float(error[:, i].mean()), 3)} for i in worst}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--noise", type=float, default=1.5, help="landmark noise, px")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.seeds < 1 or not args.noise > 0:
        parser.error("--seeds must be >= 1 and --noise > 0")
    from densecap.solver import load_face_model
    from densecap.solver.colliders import build_colliders
    model = load_face_model()
    colliders = build_colliders(model)
    report = {"seeds": args.seeds, "noise_px": args.noise,
                               "determined_std": DETERMINED_STD,
                               "sets": {name: run_set(model, colliders, name, args.seeds,
                                                      args.noise) for name in args.sets}}
    print(write_json(report, args.out))


if __name__ == "__main__":
    main()
