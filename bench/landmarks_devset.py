"""68-point NME on real images: (a) the raw network landmarks mapped to iBUG-68 and (b) the
fitted model's iBUG-68 landmarks reprojected, side by side.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.landmarks_devset \\
        [--eval-dir ../shared/devset] [--limit N] [--predictions-dir DIR]

--eval-dir takes any folder in the devset format (`images/` + `landmarks68.json`, labels with
the pixel-corner origin). Each image is tracked as a one-frame clip (detector, ROI, MediaPipe
478 landmarks, sigma, real-time fit with identity and focal refined on that frame).
The raw landmarks are mapped to iBUG-68 by taking, for each iBUG point of the ICT model, the
MediaPipe landmark whose embedded surface point is nearest on the neutral mesh (an
approximation: the two markups do not share points, most visibly on the jaw line).
Prints JSON; writes the predictions as devset-format JSON files when --predictions-dir is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from densecap.solver import load_face_model
from densecap.solver.camera import Camera
from densecap.solver.problem import landmark_points
from densecap.tracking.landmark_tracker import LANDMARK_SET, LandmarkFitTracker, Networks

DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "devset"
FAILURE_THRESHOLD = 0.10


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ibug_from_network(model) -> np.ndarray:
    """(68,) index of the network landmark nearest to each iBUG-68 point on the neutral."""
    zero_beta, zero_psi = np.zeros(model.num_identity), np.zeros(model.num_expressions)
    theta = np.zeros(18)
    ibug = landmark_points(model, model.landmark_embedding("ibug68"), zero_beta, zero_psi, theta)
    dense = landmark_points(model, model.landmark_embedding(LANDMARK_SET), zero_beta, zero_psi,
                            theta)
    return np.argmin(np.linalg.norm(ibug[:, None] - dense[None], axis=2), axis=1)


def nme(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image NME (N,) normalised by the outer-eye-corner distance and by sqrt(w h) of the
    ground-truth box (the devset's nme.py definitions)."""
    error = np.linalg.norm(pred - gt, axis=2).mean(axis=1)
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    size = gt.max(axis=1) - gt.min(axis=1)
    return {"iod": error / iod, "bbox": error / np.sqrt(size[:, 0] * size[:, 1])}


def summary(values: np.ndarray) -> dict[str, float]:
    return {"mean_percent": round(100 * float(values.mean()), 3),
            "median_percent": round(100 * float(np.median(values)), 3),
            "failure_rate_percent": round(100 * float((values > FAILURE_THRESHOLD).mean()), 2)}


def evaluate(eval_dir: Path, limit: int | None = None) -> tuple[dict, dict, dict]:
    labels = json.loads((eval_dir / "landmarks68.json").read_text())["images"]
    names = sorted(labels)[:limit]
    model = load_face_model()
    networks = Networks(threads=1)
    to_ibug = ibug_from_network(model)
    ibug = model.landmark_embedding("ibug68")
    raw, fitted, missed, seconds = {}, {}, [], []
    for name in names:
        image = cv2.imread(str(eval_dir / "images" / name))
        if image is None:
            raise SystemExit(f"cannot read {eval_dir / 'images' / name}")
        height, width = image.shape[:2]
        start = time.perf_counter()
        tracker = LandmarkFitTracker(model, width, height, networks=networks)
        result = tracker.track(0, image)
        seconds.append(time.perf_counter() - start)
        if not result.found:
            missed.append(name)
            continue
        camera: Camera = tracker.solver_camera
        points = landmark_points(model, ibug, tracker.identity, result.psi, result.theta)
        raw[name] = result.mu[to_ibug].tolist()
        fitted[name] = camera.project(points).tolist()
    gt = {name: np.asarray(labels[name]["landmarks"], dtype=np.float64) for name in names}
    found = sorted(raw)
    truth = np.stack([gt[n] for n in found])
    report = {
        "eval_dir": str(eval_dir), "images": len(names), "faces_found": len(found),
        "no_face": missed, "cpu": cpu_name(),
        "seconds_per_image_median": round(float(np.median(seconds)), 3),
        "note": "per image: detector + landmarks + fit with identity/focal refinement",
    }
    for label, predictions in (("network_mapped_to_68", raw), ("fitted_model_68", fitted)):
        errors = nme(np.stack([np.asarray(predictions[n]) for n in found]), truth)
        report[label] = {"nme_inter_ocular": summary(errors["iod"]),
                         "nme_bbox": summary(errors["bbox"])}
    return report, raw, fitted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--limit", type=int, help="only the first N images (sorted names)")
    parser.add_argument("--predictions-dir", type=Path,
                        help="write raw_68.json and fitted_68.json here (nme.py input)")
    args = parser.parse_args(argv)
    if not (args.eval_dir / "landmarks68.json").is_file():
        print(f"error: {args.eval_dir} has no landmarks68.json", file=sys.stderr)
        return 2
    report, raw, fitted = evaluate(args.eval_dir, args.limit)
    if args.predictions_dir:
        args.predictions_dir.mkdir(parents=True, exist_ok=True)
        (args.predictions_dir / "raw_68.json").write_text(json.dumps(raw))
        (args.predictions_dir / "fitted_68.json").write_text(json.dumps(fitted))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
