"""Per-landmark base sigma of the MediaPipe front end from fit residuals on development footage.

    .venv/bin/python -m tools.calibrate_sigma [CLIP ...] [--rounds 2]
        [--out landmarks/data/mediapipe478_sigma.npz]

Tracks each clip (default: the talking-head clips in ../shared/footage) with the real-time
tracker, collects every landmark's residual between the network and the fitted model in
pixels of the 192 px crop (image residual x crop scale, the scale taken from the eye distance
of the crop layout), and stores the per-landmark RMS as `sigma_crop_px`. Because the fit that
produces the residuals is weighted by the current sigma, the tool repeats this `--rounds`
times (the first round starts from the render-based `spread_px`). `landmarks.sigma` reads the
result when the file exists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from densecap.landmarks import sigma as sigma_model
from densecap.landmarks.footage import open_footage
from densecap.landmarks.mediapipe478 import CROP_LAYOUT, CROP_SIZE, LEFT_EYE_IDS, RIGHT_EYE_IDS
from densecap.solver import load_face_model
from densecap.solver.problem import landmark_points
from densecap.tracking.landmark_tracker import LANDMARK_SET, LandmarkFitTracker, Networks

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLIPS = [ROOT.parent / "shared" / "footage" / name
                 for name in ("talking_1.mp4", "talking_2.mp4")]
DEFAULT_OUT = sigma_model.DATA_DIR / f"{LANDMARK_SET}_sigma.npz"


def crop_residuals(clip: Path, model, networks: Networks) -> np.ndarray:
    """(F, L) landmark residuals of the fit in crop pixels, NaN where a frame has no face."""
    embedding = model.landmark_embedding(LANDMARK_SET)
    rows = []
    with open_footage(clip) as footage:
        tracker = LandmarkFitTracker(model, footage.width, footage.height, networks=networks)
        for frame_index, image in footage:
            result = tracker.track(frame_index, image)
            if not result.found:
                continue
            fitted = tracker.solver_camera.project(
                landmark_points(model, embedding, tracker.identity, result.psi, result.theta))
            eyes = [result.mu[list(ids)].mean(axis=0) for ids in (RIGHT_EYE_IDS, LEFT_EYE_IDS)]
            scale = CROP_LAYOUT.eye_distance * CROP_SIZE / np.linalg.norm(eyes[1] - eyes[0])
            rows.append(np.linalg.norm(fitted - result.mu, axis=1) * scale)
    return np.asarray(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    model, networks = load_face_model(), Networks()
    args.out.unlink(missing_ok=True)           # round 1 starts from the render-based spread
    for round_index in range(args.rounds):
        residuals = np.concatenate([crop_residuals(clip, model, networks) for clip in args.clips])
        # RMS of a 2D residual = sqrt(2) sigma for an isotropic Gaussian.
        sigma = np.sqrt(np.mean(residuals ** 2, axis=0) / 2.0)
        np.savez(args.out, format_version=np.int32(1), sigma_crop_px=sigma,
                 frames=np.int32(len(residuals)),
                 clips=np.asarray([clip.name for clip in args.clips]))
        print(f"round {round_index + 1}: {len(residuals)} frames, sigma crop px median "
              f"{np.median(sigma):.2f} (5%-95%: {np.percentile(sigma, 5):.2f}-"
              f"{np.percentile(sigma, 95):.2f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
