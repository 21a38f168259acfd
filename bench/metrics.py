"""Accuracy and stability metrics shared by the bench scripts (numpy; label translation
aligns shapes with the front end's own similarity fit, `landmarks.roi.similarity_from_points`).

Definitions (68-point iBUG layout, pixels):
- NME of one image: mean over points of |pred - gt| divided by the inter-ocular distance
  (outer eye corners, 0-based points 36 and 45) or by sqrt(w h) of the ground-truth box,
  as ../shared/devset/nme.py.
- failure rate: share of images whose NME exceeds `FAILURE_THRESHOLD` (10 %).
- CED: cumulative error distribution, the share of images with NME <= t for each t.
- jitter: mean norm of the frame-to-frame acceleration x[t+1] - 2 x[t] + x[t-1] of the
  landmarks over all landmarks and all frame triples that are valid, divided by an
  inter-ocular distance (dimensionless; real head motion contributes too, so compare methods
  on the same clip, not clips with each other).
- label-translated NME: the NME after a cross-validated linear map from the predicted
  markup to the labelled one (`label_translated`), which removes the systematic part of
  the difference between two markups and leaves the per-image error.
- shape error: distance between a fitted and a true vertex set (cm in, mm out) after removing
  the mean offset, and with remove_scale the size too (the least-squares scale of the fitted
  set onto the true one): one camera, or several with unknown extrinsics, cannot tell a
  smaller face nearer from a larger one further away, so the size is reported apart.
"""

from __future__ import annotations

import numpy as np

from densecap.landmarks.roi import similarity_from_points

FAILURE_THRESHOLD = 0.10
#: iBUG-68 outer eye corners (0-based).
OUTER_EYE_CORNERS = (36, 45)
#: `label_translated`: folds, ridge weight (per training image, on similarity-aligned pixels
#: of the mean prediction's frame), and the fewest images it is reported for.
TRANSLATION_FOLDS = 10
TRANSLATION_RIDGE = 0.1
MIN_TRANSLATION_IMAGES = 50


def inter_ocular(gt: np.ndarray) -> np.ndarray:
    """(N,) outer-eye-corner distance of ground truth gt : (N, 68, 2)."""
    return np.linalg.norm(gt[:, OUTER_EYE_CORNERS[0]] - gt[:, OUTER_EYE_CORNERS[1]], axis=1)


def box_size(gt: np.ndarray) -> np.ndarray:
    """(N,) sqrt(w h) of each ground-truth landmark bounding box, gt : (N, P, 2)."""
    size = gt.max(axis=1) - gt.min(axis=1)
    return np.sqrt(size[:, 0] * size[:, 1])


def nme(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image NME of pred, gt : (N, 68, 2).

    Returns {"iod": (N,), "bbox": (N,)}: the mean point error over the inter-ocular
    distance and over the ground-truth box size."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"pred and gt must both be (N, P, 2), got {pred.shape} and {gt.shape}")
    error = np.linalg.norm(pred - gt, axis=2).mean(axis=1)
    return {"iod": error / inter_ocular(gt), "bbox": error / box_size(gt)}


def label_translated(pred: np.ndarray, gt: np.ndarray, folds: int = TRANSLATION_FOLDS,
                     ridge: float = TRANSLATION_RIDGE, seed: int = 0) -> np.ndarray:
    """pred (N, P, 2) mapped towards gt's markup (N, P, 2) by cross-validated linear label
    translation: each prediction similarity-aligned onto the mean prediction, a ridge
    regression from the aligned prediction to the label (aligned by the same transform)
    learned on the other folds' images only, mapped back. Returns (N, P, 2).

    Two markups of one face differ systematically (where a model's vertex sits against where
    annotators click, most along the jaw line); this removes that, and any other bias a
    linear map of the whole shape learned from the labels can undo, leaving the per-image
    error. The map is learned from the other images, so it gets better with more of them:
    compare methods on the same images only. The paper scores 300W this way, "for benchmark
    purposes only" (section 4.3, after Wood et al. 2021).
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or len(pred) < folds:
        raise ValueError(f"pred and gt must both be (N, P, 2) with N >= {folds}, got "
                         f"{pred.shape} and {gt.shape}")
    reference = pred.mean(0)
    aligned = [similarity_from_points(points, reference) for points in pred]    # (2, 3) each
    x = np.stack([p @ m[:, :2].T + m[:, 2] for p, m in zip(pred, aligned)]).reshape(len(pred), -1)
    y = np.stack([g @ m[:, :2].T + m[:, 2] for g, m in zip(gt, aligned)]).reshape(len(pred), -1)
    fold = np.random.default_rng(seed).permutation(len(pred)) % folds
    out = np.empty_like(x)
    for k in range(folds):
        train, test = fold != k, fold == k
        x_mean, y_mean = x[train].mean(0), y[train].mean(0)
        a, b = x[train] - x_mean, y[train] - y_mean
        weights = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(a.shape[1]), a.T @ b)
        out[test] = (x[test] - x_mean) @ weights + y_mean
    return np.stack([(q - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
                     for q, m in zip(out.reshape(pred.shape), aligned)])


def failure_rate(errors: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> float:
    """Share of errors (N,) above threshold (a missed face counts as inf: a failure)."""
    errors = np.asarray(errors, np.float64)
    return float((errors > threshold).mean()) if errors.size else float("nan")


def ced(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(T,) share of errors (N,) at or below each threshold (T,) (inf never counts)."""
    errors = np.sort(np.asarray(errors, np.float64))
    return np.searchsorted(errors, np.asarray(thresholds, np.float64), side="right") / len(errors)


def summary(errors: np.ndarray, threshold: float = FAILURE_THRESHOLD) -> dict[str, float]:
    """Mean / median NME and failure rate of errors (N,), in percent. Missed images (inf)
    count in the failure rate and the median but not in the mean (see `missed`)."""
    errors = np.asarray(errors, np.float64)
    finite = errors[np.isfinite(errors)]
    return {"mean_percent": round(100 * float(finite.mean()), 3) if finite.size else None,
            "median_percent": round(100 * float(np.median(errors)), 3),
            "failure_rate_percent": round(100 * failure_rate(errors, threshold), 2),
            "missed": int((~np.isfinite(errors)).sum()), "count": int(errors.size)}


def jitter(points: np.ndarray, valid: np.ndarray, scale: float | np.ndarray) -> float:
    """Mean landmark acceleration over `scale` (see the module docstring).

    points : (F, L, 2) landmark positions per frame (pixels)
    valid : (F,) bool, frames whose landmarks exist; a triple counts when all three are valid
    scale : inter-ocular distance, a scalar or (F,) per frame (the middle frame's is used)
    Returns NaN when no triple of consecutive valid frames exists.
    """
    points = np.asarray(points, np.float64)
    valid = np.asarray(valid, bool)
    if points.ndim != 3 or len(points) != len(valid):
        raise ValueError(f"points must be (F, L, 2) with valid (F,), got {points.shape}, "
                         f"{valid.shape}")
    if len(points) < 3:
        return float("nan")
    triple = valid[:-2] & valid[1:-1] & valid[2:]
    if not triple.any():
        return float("nan")
    acceleration = points[2:] - 2 * points[1:-1] + points[:-2]               # (F-2, L, 2)
    per_frame = np.linalg.norm(acceleration, axis=2).mean(axis=1)             # (F-2,)
    scale = np.broadcast_to(np.asarray(scale, np.float64), (len(points),))[1:-1]
    return float((per_frame[triple] / scale[triple]).mean())


def shape_error_mm(fitted: np.ndarray, truth: np.ndarray, *, remove_scale: bool,
                   statistic=np.mean) -> float:
    """statistic (mean or median) of the vertex distances (mm) between fitted and truth
    (N, 3), in cm, after removing the mean offset (and the scale when remove_scale)."""
    fitted = np.asarray(fitted, np.float64) - np.mean(fitted, axis=0)
    truth = np.asarray(truth, np.float64) - np.mean(truth, axis=0)
    scale = (fitted * truth).sum() / (fitted * fitted).sum() if remove_scale else 1.0
    return 10.0 * float(statistic(np.linalg.norm(scale * fitted - truth, axis=1)))
