"""Per-landmark uncertainty for a network that predicts none (the bootstrap MediaPipe front end).

sigma (image pixels) of landmark i in a frame is

    sigma_i = max(base_i, SIGMA_FLOOR_CROP_PX) / roi_scale            (crop px -> image px)
              * 1 / clip(cos(angle_i), MIN_FACING, 1)                  (surface turning away)
              * 1 / clip(presence, MIN_PRESENCE, 1)                    (detector confidence)
              * OUTSIDE_CROP_FACTOR if the landmark lies outside the crop

base_i is the landmark's own precision in pixels of the 192 px crop. It comes from data
(`landmarks/data/mediapipe478_embedding.npz`): `spread_px`, the RMS disagreement between the
network and the landmark's embedded surface point over renders of the ICT head; when
`mediapipe478_sigma.npz` exists (residual statistics of fits on development footage, made by
`tools/calibrate_sigma.py`), its `sigma_crop_px` replaces it. angle_i is the angle between
the fitted surface normal at the landmark (previous frame) and the ray to the camera.
This is a hand-made model of uncertainty, not a learned one: our own networks predict sigma.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import LandmarkError

DATA_DIR = Path(__file__).resolve().parent / "data"
SIGMA_FLOOR_CROP_PX = 0.75
MIN_FACING = 0.2
MIN_PRESENCE = 0.25
OUTSIDE_CROP_FACTOR = 3.0


def base_sigma(landmark_set: str = "mediapipe478") -> np.ndarray:
    """(L,) float64 per-landmark base sigma in crop pixels, from the committed data."""
    calibrated = DATA_DIR / f"{landmark_set}_sigma.npz"
    source, key = ((calibrated, "sigma_crop_px") if calibrated.is_file()
                   else (DATA_DIR / f"{landmark_set}_embedding.npz", "spread_px"))
    try:
        with np.load(source, allow_pickle=False) as data:
            values = np.asarray(data[key], dtype=np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise LandmarkError(f"cannot read the base sigma of {landmark_set!r} from {source}: "
                            f"{exc}") from exc
    if values.ndim != 1 or not np.all(np.isfinite(values)) or (values <= 0).any():
        raise LandmarkError(f"{source}: {key} must be finite positive values, one per landmark")
    return np.maximum(values, SIGMA_FLOOR_CROP_PX)


def landmark_sigma(base_crop_px: np.ndarray, roi_scale: float, presence: float,
                   mu_crop: np.ndarray, crop_size: int,
                   facing: np.ndarray | None = None) -> np.ndarray:
    """Per-landmark sigma in image pixels for one frame.

    base_crop_px : (L,) base sigma in crop pixels; roi_scale : crop px per image px;
    presence : the network's face probability; mu_crop : (L, 2) landmarks in crop pixels;
    facing : (L,) cos of the angle between surface normal and view ray, or None (unknown).
    Returns (L,) float64.
    """
    sigma = base_crop_px / float(roi_scale)
    if facing is not None:
        sigma = sigma / np.clip(facing, MIN_FACING, 1.0)
    sigma = sigma / float(np.clip(presence, MIN_PRESENCE, 1.0))
    outside = ((mu_crop < 0) | (mu_crop > crop_size)).any(axis=1)
    return np.where(outside, sigma * OUTSIDE_CROP_FACTOR, sigma)
