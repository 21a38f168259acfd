"""68-point landmark accuracy on real images: our front end's raw landmarks mapped to
iBUG-68, the fitted model's iBUG-68 landmarks reprojected, and the peer (MediaPipe's own face
mesh, when bench.peer_mediapipe ran), scored by the same code (bench.metrics).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.landmarks_devset \\
        [--eval-dir ../shared/devset] [--limit N] [--peer-dir bench/results/peer] \\
        [--landmarks dense320|mediapipe478|dense703] [--out bench/results/devset.json] \\
        [--predictions-dir DIR]

--eval-dir takes any folder in the devset format (`images/` + `landmarks68.json`, labels with
the pixel-corner origin). Each image is tracked as a one-frame clip by the front end
`--landmarks` names (default: the command line's, `tracking.cli.DEFAULT_LANDMARK_MODEL`):
detector, ROI, landmarks with their sigma, real-time fit with identity and focal refined on
that frame. Raw landmarks are mapped to iBUG-68 by taking, for each iBUG point of the ICT
model, the landmark whose embedded surface point is nearest on the neutral mesh: exact for
our dense sets (their first 68 are the iBUG points), an approximation for MediaPipe's 478
(ours and the peer's, same order; the two markups do not share points, most visibly on the
jaw line). An image where a method finds no face counts as a failure (NME = inf).
With at least 50 faces found, each method is also scored after label translation
(bench.metrics: a cross-validated linear map onto the labels' markup, as the paper scores
300W), which separates the markups' systematic difference from the per-image error.
Prints JSON (with the per-image NME for CED plots); writes the predictions as devset-format
JSON files (input of ../shared/devset/nme.py) when --predictions-dir is given.
"""

from __future__ import annotations

from .machine import single_thread_env

single_thread_env()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .machine import peak_rss_mb, write_json  # noqa: E402
from .metrics import MIN_TRANSLATION_IMAGES, label_translated, nme, summary  # noqa: E402
from .peer_mediapipe import load_peer  # noqa: E402
from densecap.tracking.cli import DEFAULT_LANDMARK_MODEL  # noqa: E402

DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "devset"
#: What each front end (`tracking.cli.LANDMARK_MODELS`) is, for the report.
FRONT_ENDS = {"mediapipe478": "MediaPipe 478 (face mesh + iris, converted to ONNX)",
              "dense320": "DenseCap 320 (our network; the crop and its mirror)",
              "dense703": "DenseCap 703 (our network; the crop and its mirror)"}


def ibug_from_network(model, landmark_set: str = "mediapipe478") -> np.ndarray:
    """(68,) index of the `landmark_set` landmark nearest to each iBUG-68 point on the
    neutral (exact for the dense sets, whose first 68 are the iBUG points)."""
    from densecap.solver.landmark_sets import neutral_landmark_points
    ibug, dense = (neutral_landmark_points(model, model.landmark_embedding(name))
                   for name in ("ibug68", landmark_set))
    return np.argmin(np.linalg.norm(ibug[:, None] - dense[None], axis=2), axis=1)


def load_labels(eval_dir: Path, limit: int | None) -> dict[str, np.ndarray]:
    """{image name: (68, 2) label} for the first `limit` names (sorted) of an eval dir."""
    labels = json.loads((eval_dir / "landmarks68.json").read_text())["images"]
    return {name: np.asarray(labels[name]["landmarks"], dtype=np.float64)
            for name in sorted(labels)[:limit]}


def dense_front_end(onnx_path: Path, networks=None, views=None) -> tuple:
    """``(make_tracker, to_ibug)`` for `track_images`: our dense network in `onnx_path`
    (`DenseFitTracker`, loaded once, the detectors `networks` shared across images; default:
    loaded here; `views` the `dense_network.CropViews` it reads, default: real time's),
    whose first 68 landmarks are the iBUG ones."""
    from densecap.landmarks.dense_network import NUM_IBUG, REALTIME_VIEWS, DenseLandmarks
    from densecap.tracking.dense_tracker import DenseFitTracker
    from densecap.tracking.landmark_tracker import Networks
    network, detectors = DenseLandmarks(onnx_path), networks or Networks(face_mesh=False)

    def make_tracker(model, width, height):
        return DenseFitTracker(model, width, height, network, networks=detectors,
                               views=views or REALTIME_VIEWS)
    return make_tracker, np.arange(NUM_IBUG)


def track_images(eval_dir: Path, names: list[str], make_tracker=None, to_ibug=None
                 ) -> tuple[dict, dict, list[float]]:
    """Our raw (68, 2) and fitted (68, 2) predictions per image (absent where no face was
    found) and the seconds per image (detector + landmarks + fit with refinement).

    make_tracker : ``(model, width, height) -> tracker`` and to_ibug : (68,) indices of the
    iBUG points in its raw landmarks; default: the MediaPipe front end."""
    from densecap.solver import load_face_model
    from densecap.solver.problem import landmark_points
    from densecap.tracking.landmark_tracker import LandmarkFitTracker, Networks
    model = load_face_model()
    if make_tracker is None:
        networks = Networks(threads=1)
        to_ibug = ibug_from_network(model)

        def make_tracker(model, width, height):
            return LandmarkFitTracker(model, width, height, networks=networks)
    ibug = model.landmark_embedding("ibug68")
    raw, fitted, seconds = {}, {}, []
    for name in names:
        image = cv2.imread(str(eval_dir / "images" / name))
        if image is None:
            raise SystemExit(f"cannot read {eval_dir / 'images' / name}")
        height, width = image.shape[:2]
        start = time.perf_counter()
        tracker = make_tracker(model, width, height)
        result = tracker.track(0, image)
        seconds.append(time.perf_counter() - start)
        if not result.found:
            continue
        points = landmark_points(model, ibug, tracker.identity, result.psi, result.theta)
        raw[name] = result.mu[to_ibug]
        fitted[name] = tracker.solver_camera.project(points)
    return raw, fitted, seconds


def score(predictions: dict[str, np.ndarray], gt: dict[str, np.ndarray], label: str) -> dict:
    """NME summaries (inter-ocular and bbox; inter-ocular after label translation, see
    bench.metrics.label_translated, None under MIN_TRANSLATION_IMAGES found faces) and
    per-image inter-ocular NME (None: missed)."""
    names = sorted(gt)
    found = [n for n in names if n in predictions]
    translate = len(found) >= MIN_TRANSLATION_IMAGES
    per_image = {norm: np.full(len(names), np.inf) for norm in ("iod", "bbox", "translated")}
    if found:
        pred, labels = np.stack([predictions[n] for n in found]), np.stack([gt[n] for n in found])
        errors = nme(pred, labels)
        if translate:
            errors["translated"] = nme(label_translated(pred, labels), labels)["iod"]
        where = [names.index(n) for n in found]
        for norm in errors:
            per_image[norm][where] = errors[norm]
    return {"label": label, "available": True,
            "nme_inter_ocular": summary(per_image["iod"]), "nme_bbox": summary(per_image["bbox"]),
            "nme_inter_ocular_label_translated":
                summary(per_image["translated"]) if translate else None,
            "per_image_nme_inter_ocular": [None if not np.isfinite(v) else round(float(v), 5)
                                           for v in per_image["iod"]]}


def peer_predictions(peer_dir: Path | None, eval_dir: Path, names: list[str],
                     to_ibug: np.ndarray) -> dict | None:
    """The peer's 68-point predictions {name: (68, 2)} (its 478 points through `to_ibug`),
    or None when it did not run on this eval dir with these images."""
    peer = load_peer(peer_dir, eval_dir)
    if peer is None or list(peer["names"]) != names:
        return None
    return {name: points[to_ibug] for name, points in zip(names, peer["points"])
            if np.isfinite(points).all()}


def evaluate(eval_dir: Path, limit: int | None, peer_dir: Path | None,
             landmark_model: str) -> tuple[dict, dict]:
    """The report and the predictions {method: {name: (68, 2)}} of the front end
    `landmark_model` (one of `tracking.cli.LANDMARK_MODELS`)."""
    from densecap.landmarks.dense_network import model_path
    from densecap.solver import load_face_model
    gt = load_labels(eval_dir, limit)
    names = sorted(gt)
    front_end = (() if landmark_model == "mediapipe478"
                 else dense_front_end(model_path(landmark_model)))
    raw, fitted, seconds = track_images(eval_dir, names, *front_end)
    predictions = {"raw": raw, "fitted": fitted}
    description = FRONT_ENDS[landmark_model]
    methods = {"raw": score(raw, gt, f"our front end: {description}, raw, mapped to 68"),
               "fitted": score(fitted, gt, "fitted model (real-time fit, identity + focal "
                                           "refined), iBUG-68 reprojected")}
    peer = peer_predictions(peer_dir, eval_dir, names, ibug_from_network(load_face_model()))
    if peer is None:
        methods["peer"] = {"available": False, "reason": "the peer did not run on these images "
                           "(make peer; python -m bench runs it)"}
    else:
        predictions["peer"] = peer
        methods["peer"] = score(peer, gt, "peer: MediaPipe face mesh (Python, static mode), "
                                          "mapped to 68 as ours")
    report = {
        "eval_dir": str(eval_dir), "images": len(names), "limit": limit,
        "front_ends": [description],
        "seconds_per_image_median": round(float(np.median(seconds)), 3),
        "timing_note": "ours per image: detector + landmarks + fit with identity/focal "
                       "refinement, 1 thread",
        "methods": methods, "peak_rss_mb": peak_rss_mb(),
    }
    return report, predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--limit", type=int, help="only the first N images (sorted names)")
    parser.add_argument("--peer-dir", type=Path, help="bench.peer_mediapipe's --out-dir")
    parser.add_argument("--landmarks", choices=sorted(FRONT_ENDS), default=DEFAULT_LANDMARK_MODEL,
                        help=f"the front end (default: {DEFAULT_LANDMARK_MODEL}, the command "
                             f"line's)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--predictions-dir", type=Path,
                        help="write <method>_68.json per method here (nme.py input)")
    args = parser.parse_args(argv)
    if not (args.eval_dir / "landmarks68.json").is_file():
        print(f"error: {args.eval_dir} has no landmarks68.json", file=sys.stderr)
        return 2
    report, predictions = evaluate(args.eval_dir, args.limit, args.peer_dir, args.landmarks)
    if args.predictions_dir:
        args.predictions_dir.mkdir(parents=True, exist_ok=True)
        for method, points in predictions.items():
            (args.predictions_dir / f"{method}_68.json").write_text(
                json.dumps({name: p.tolist() for name, p in points.items()}))
    print(write_json(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
