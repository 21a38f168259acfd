"""Synthetic ground truth for the solver: mesh error (mm) and expression MAE of the
real-time fitter vs landmark noise, predicted vs constant sigma, and each regulariser on/off;
of the offline fitter (when the build has solver.offline) vs frames (1/10/100) and cameras
(1/2/3).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.synthetic_fits \\
        [--faces 4] [--frames 20] [--out bench/results/synthetic.json]

Faces come from solver.synthetic (priors, ~256 px wide in a 640x480 image, f = 1000 px),
landmarks are our front end's 478 (the mediapipe478 embedding), each observed with Gaussian
noise. Identity (and expression and pose) are fitted: the first frame is an identity
keyframe of solver.realtime.RealtimeTracker. Mesh error: mean distance over the face-region
vertices between the fitted and the true mesh after removing the mean offset (the depth /
size ambiguity of one camera is not counted), in mm. Expression MAE: mean |psi - psi_true|
over the 55 weights (psi in [0, 1]). Seeds are fixed: the same build gives the same numbers.
"""

from __future__ import annotations

from .machine import single_thread_env

single_thread_env()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .machine import peak_rss_mb, write_json  # noqa: E402
from .metrics import inter_ocular, jitter, shape_error_mm  # noqa: E402

NOISE_LEVELS_PX = (0.5, 1.0, 2.0, 4.0, 8.0)
SIGMA_MEAN_PX = 2.0
SEQUENCE_NOISE_PX = 2.0
TEMPORAL_ON = 0.05
REGULARISERS = ("identity", "expression", "joints", "intersect")
SWEEP_FRAMES = (1, 10, 100)
SWEEP_CAMERAS = (1, 2, 3)
CAMERAS_FRAMES = 10
CAMERA_YAWS_DEG = (0.0, 30.0, -30.0)


class Scene:
    """The model, the 478-landmark embedding, the face-region vertices and its iBUG map."""

    def __init__(self):
        from densecap.solver import load_face_model
        from densecap.solver.regions import face_region_vertices
        from densecap.tracking.landmark_tracker import LANDMARK_SET
        self.model = load_face_model()
        self.embedding = self.model.landmark_embedding(LANDMARK_SET)
        self.region = face_region_vertices(self.model)
        self.ibug = self.model.landmark_embedding("ibug68")


def mesh_error_mm(scene: Scene, beta, psi, theta, beta_true, psi_true, theta_true,
                  remove_scale: bool = False) -> float:
    """Mean face-region vertex distance (mm) after removing the mean offset (and the size
    with remove_scale; see metrics.shape_error_mm)."""
    from densecap.solver import mesh
    return shape_error_mm(mesh(scene.model, beta, psi, theta, scene.region),
                          mesh(scene.model, beta_true, psi_true, theta_true, scene.region),
                          remove_scale=remove_scale)


def fit_sequence(scene: Scene, beta, psis, thetas, sigma_true, sigma_fit, settings,
                 seed: int) -> dict:
    """Track a sequence (F frames: psis (F, E), thetas (F, 18)) observed with noise of
    sigma_true (L,) pixels and fitted with sigma_fit (L,): mean mesh error, expression MAE,
    and (F >= 3) the jitter of the fitted landmarks' error (fitted - true projection, so the
    true motion does not count) over the true inter-ocular distance."""
    from densecap.solver.problem import landmark_points
    from densecap.solver.realtime import RealtimeTracker
    from densecap.solver.synthetic import CAMERA
    rng = np.random.default_rng(seed)
    tracker = RealtimeTracker(scene.model, scene.embedding, CAMERA, settings)
    errors, maes, residuals, iods = [], [], [], []
    for psi, theta in zip(psis, thetas):
        clean = CAMERA.project(landmark_points(scene.model, scene.embedding, beta, psi, theta))
        result = tracker.track(clean + rng.normal(size=clean.shape) * sigma_true[:, None],
                               sigma_fit)
        errors.append(mesh_error_mm(scene, result.beta, result.psi, result.theta, beta, psi,
                                    theta))
        maes.append(float(np.abs(result.psi - psi).mean()))
        residuals.append(result.pixels - clean)
        ibug = CAMERA.project(landmark_points(scene.model, scene.ibug, beta, psi, theta))
        iods.append(inter_ocular(ibug[None])[0])
    return {"mesh_error_mm": float(np.mean(errors)), "expression_mae": float(np.mean(maes)),
            "error_jitter": jitter(np.array(residuals), np.ones(len(residuals), bool),
                                   np.array(iods))}


def mean_over_faces(runs: list[dict]) -> dict:
    """Mean of each metric over faces (rounded)."""
    return {key: round(float(np.mean([run[key] for run in runs])), 4) for key in runs[0]
            if np.isfinite([run[key] for run in runs]).all()}


def noise_sweep(scene: Scene, faces: int) -> list[dict]:
    """Single-frame fits (identity keyframe) at each constant noise level."""
    from densecap.solver.energies import FitSettings
    from densecap.solver.synthetic import random_face
    rows = []
    for noise in NOISE_LEVELS_PX:
        sigma = np.full(len(scene.embedding), noise)
        runs = []
        for seed in range(faces):
            beta, psi, theta = random_face(scene.model, seed)
            runs.append(fit_sequence(scene, beta, psi[None], theta[None], sigma, sigma,
                                     FitSettings(), 100 * seed))
        rows.append({"noise_px": noise, **mean_over_faces(runs)})
    return rows


def sigma_weighting(scene: Scene, faces: int) -> dict:
    """Heteroscedastic noise (the front end's calibrated per-landmark sigma, scaled to a mean
    of SIGMA_MEAN_PX): fitted with the true per-landmark sigma vs a constant one."""
    from densecap.landmarks.sigma import base_sigma
    from densecap.solver.energies import FitSettings
    from densecap.solver.synthetic import random_face
    from densecap.tracking.landmark_tracker import LANDMARK_SET
    base = base_sigma(LANDMARK_SET)
    sigma_true = base * (SIGMA_MEAN_PX / base.mean())
    constant = np.full_like(sigma_true, sigma_true.mean())
    result = {"sigma_mean_px": SIGMA_MEAN_PX,
              "sigma_range_px": [round(float(sigma_true.min()), 3),
                                 round(float(sigma_true.max()), 3)]}
    for label, sigma_fit in (("predicted_sigma", sigma_true), ("constant_sigma", constant)):
        runs = []
        for seed in range(faces):
            beta, psi, theta = random_face(scene.model, seed)
            runs.append(fit_sequence(scene, beta, psi[None], theta[None], sigma_true, sigma_fit,
                                     FitSettings(), 100 * seed))
        result[label] = mean_over_faces(runs)
    return result


def regularisers(scene: Scene, faces: int, frames: int) -> list[dict]:
    """Sequences (head turning, expressions ramping) at SEQUENCE_NOISE_PX, with the tracker's
    default settings, then each regulariser off (weight 0), then E_temporal on."""
    from densecap.solver.energies import FitSettings
    from .realtime_fit import sequence
    default = FitSettings()
    configs = [("default", default)]
    configs += [(f"{name} off", replace(default, **{name: 0.0})) for name in REGULARISERS]
    configs.append((f"temporal on ({TEMPORAL_ON})", replace(default, temporal=TEMPORAL_ON)))
    sigma = np.full(len(scene.embedding), SEQUENCE_NOISE_PX)
    rows = []
    for label, settings in configs:
        runs = []
        for seed in range(faces):
            beta, psis, thetas = sequence(scene.model, frames, seed)
            runs.append(fit_sequence(scene, beta, psis, thetas, sigma, sigma, settings,
                                     1000 * seed))
        rows.append({"settings": label, **mean_over_faces(runs)})
    return rows


def clip_motion(model, frames: int, seed: int):
    """beta, psi (F, E), theta (F, 18) of a 30 fps clip: a random face turning (yaw 0.3 rad,
    3 s period) and nodding (0.15 rad, 5 s), its expressions breathing (2 s period)."""
    from densecap.solver.synthetic import random_face
    beta, psi, theta = random_face(model, seed)
    t = np.arange(frames)[:, None] / 30.0
    psis = np.clip(psi * (0.6 + 0.4 * np.sin(2 * np.pi * t / 2.0)), 0.0, 1.0)
    thetas = np.repeat(theta[None], frames, axis=0)
    thetas[:, 1] += 0.3 * np.sin(2 * np.pi * t[:, 0] / 3.0)
    thetas[:, 0] += 0.15 * np.sin(2 * np.pi * t[:, 0] / 5.0)
    return beta, psis, thetas


def orbit_cameras(count: int, head: np.ndarray) -> list:
    """`count` cameras like solver.synthetic.CAMERA, the k-th turned about the head position
    head (3,) (model space) by CAMERA_YAWS_DEG[k] (camera 0 is CAMERA itself)."""
    from densecap.solver.camera import Camera
    from densecap.solver.conventions import MODEL_TO_OPENCV
    from densecap.solver.synthetic import CAMERA
    cameras = []
    for yaw in np.radians(CAMERA_YAWS_DEG[:count]):
        c, s = np.cos(yaw), np.sin(yaw)
        turn = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        cameras.append(Camera(CAMERA.focal, CAMERA.width, CAMERA.height,
                              rotation=MODEL_TO_OPENCV @ turn,
                              translation=MODEL_TO_OPENCV @ (head - turn @ head)))
    return cameras


def offline_run(scene: Scene, frames: int, cameras: int, seed: int) -> dict:
    """solver.offline.fit_offline on a synthetic clip seen by `cameras` views: identity error
    (neutral face region, mean offset removed, mm; also with the size removed: the cameras
    after the first have unknown extrinsics, so the scene's scale stays ambiguous and the
    size error is reported apart), mean mesh error and expression MAE."""
    from densecap.solver import mesh
    from densecap.solver.offline import OfflineSettings, fit_offline
    from densecap.solver.problem import landmark_points
    beta, psis, thetas = clip_motion(scene.model, frames, seed)
    views = orbit_cameras(cameras, thetas[0, 15:18].copy())
    rng = np.random.default_rng(seed + 1)
    mu = np.stack([[view.project(landmark_points(scene.model, scene.embedding, beta, psi, theta))
                    for view in views] for psi, theta in zip(psis, thetas)])
    mu = mu + rng.normal(scale=SEQUENCE_NOISE_PX, size=mu.shape)
    sigma = np.full(mu.shape[:3], SEQUENCE_NOISE_PX)
    result = fit_offline(scene.model, scene.embedding, views, mu, sigma,
                         OfflineSettings(fit_focal=False))
    zero_psi, zero_theta = np.zeros(scene.model.num_expressions), np.zeros_like(thetas[0])
    neutral = (zero_psi, zero_theta)
    return {"identity_error_mm": mesh_error_mm(scene, result.beta, *neutral, beta, *neutral),
            "identity_shape_error_mm": mesh_error_mm(scene, result.beta, *neutral, beta,
                                                     *neutral, remove_scale=True),
            "mesh_error_mm": float(np.mean([
                mesh_error_mm(scene, result.beta, result.psi[i], result.theta[i], beta, psis[i],
                              thetas[i]) for i in range(0, frames, max(1, frames // 10))])),
            "expression_mae": float(np.abs(result.psi - psis).mean())}


def offline_sweeps(scene: Scene, faces: int) -> dict:
    """Identity / mesh / expression error of the offline fitter vs frames (one camera) and vs
    cameras (CAMERAS_FRAMES frames); unavailable without solver.offline."""
    if importlib.util.find_spec("densecap.solver.offline") is None:
        reason = "needs the offline fitter (solver.offline, branch offline): not in this build"
        return {name: {"available": False, "reason": reason, "planned": list(values)}
                for name, values in (("vs_frames", SWEEP_FRAMES),
                                     ("vs_cameras", SWEEP_CAMERAS))}
    note = (f"solver.offline.fit_offline, focal known, {SEQUENCE_NOISE_PX} px noise, "
            f"{faces} face(s)")
    return {"vs_frames": {"available": True, "note": note + ", one camera", "rows": [
                {"frames": count, **mean_over_faces([offline_run(scene, count, 1, 1000 * seed)
                                                     for seed in range(faces)])}
                for count in SWEEP_FRAMES]},
            "vs_cameras": {"available": True, "note": note + f", {CAMERAS_FRAMES} frames, "
                                                             f"cameras at {CAMERA_YAWS_DEG} deg",
                           "rows": [
                {"cameras": count, **mean_over_faces([offline_run(scene, CAMERAS_FRAMES, count,
                                                                  1000 * seed)
                                                     for seed in range(faces)])}
                for count in SWEEP_CAMERAS]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=4, help="random faces per setting")
    parser.add_argument("--frames", type=int, default=20,
                        help="frames per sequence in the regulariser study")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    scene = Scene()
    report = {"threads": 1, "landmarks": len(scene.embedding), "faces": args.faces,
              "sequence_frames": args.frames, "sequence_noise_px": SEQUENCE_NOISE_PX,
              "mesh_error_note": "face region, mean offset removed, mm",
              "vs_noise": noise_sweep(scene, args.faces),
              "sigma_weighting": sigma_weighting(scene, args.faces),
              "regularisers": regularisers(scene, max(1, args.faces // 4), args.frames),
              **offline_sweeps(scene, max(1, args.faces // 4)), "peak_rss_mb": peak_rss_mb()}
    print(write_json(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
