"""Accuracy, sigma calibration and single-thread latency of trained dense landmark
networks (training/) on synthetic held-out crops: prints JSON.

    python -m bench.dense_landmarks --run build/training/dense320 [--run build/training/dense320_l2]
        [--held-out 500] [--repeat 200]

Held-out crops: samples 0..N-1 of the stream seed + training.train.HELD_OUT_OFFSET of the
first run's config (never seen in training), at its crop size, footage backgrounds
included. Per run:

- NME: per image, the mean landmark error over the distance between the outer eye
  corners (iBUG 36 and 45 of the label; "iod") or over sqrt(w h) of the label's iBUG-68
  box ("bbox"), then the mean and the median over images; over all landmarks (occluded
  included), the visible ones, and the 68 iBUG points (the first 68 of every dense set);
- calibration: the fraction of landmarks whose error is within 1 and 2 sigma (a 2D
  isotropic Gaussian gives 39.3 % and 86.5 %);
- latency: onnxruntime, one thread, batch 1, median over --repeat runs, float32 and
  float16-weight exports and the int8 build `make models` makes of them
  (`tools/quantize_network.py`; all written next to the checkpoint);
- a reference: the NME of always predicting the training set's mean label positions;
- with --devset / --eval-dir DIR (devset format: images/ + landmarks68.json), on real images:
  - the tracker: each image tracked as a one-frame clip by the front end a user runs
    (`tracking.dense_tracker.DenseFitTracker` on the run's float32 ONNX export: detector,
    crop, network reading the crop and its mirror image (`REALTIME_VIEWS`), its sigma,
    real-time fit with identity and focal refined), side by side
    with the MediaPipe front end (`LandmarkFitTracker`) in the same run, both scored by
    bench.landmarks_devset's code: the 68-point NME of the raw landmarks (ours: the first
    68; MediaPipe's: mapped to 68) and of the fitted model's iBUG-68 reprojected;
  - the same on single crops (`SINGLE_VIEW`, the paper's real-time front end) and with
    offline mode's views (`OFFLINE_VIEWS`: the crop and its mirror at three zooms, all
    averaged), and in real time with the int8 build (what `make models` gives the front end);
  - the network alone: its first 68 landmarks on crops placed by an oracle ROI
    (`crop_transform` on the labelled eye and mouth centres, as training places crops),
    the synthetic-to-real gap without detector or fit;
  - the tracker's NME also after label translation (bench.metrics.label_translated: a
    cross-validated linear map onto the labels' markup, the paper's protocol on 300W), for
    both front ends alike: the per-image error without the markups' systematic difference;
  - both broken down by iBUG region (jaw, brows, nose, eyes, mouth: the median over
    images of each region's inter-ocular NME), to tell the jaw line's markup convention
    from errors over the inner face.

Several runs side by side make the GNLL-vs-L2 ablation (paper, Fig. 8).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from densecap.bench.machine import cpu_name, single_thread_env

single_thread_env()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

from densecap.bench.landmarks_devset import (dense_front_end, load_labels, score,  # noqa: E402
                                             track_images)
from densecap.landmarks.dense_network import (NUM_IBUG, OFFLINE_VIEWS, REALTIME_VIEWS,  # noqa: E402
                                              SINGLE_VIEW, CropViews, crop_transform, decode)
from densecap.landmarks.onnx_models import load_session  # noqa: E402
from densecap.landmarks.roi import CropLayout, crop  # noqa: E402
from densecap.solver import load_face_model  # noqa: E402
from densecap.tools.quantize_network import (CALIBRATION_CROPS, CALIBRATION_SEED,  # noqa: E402
                                             quantize, render_crops)
from densecap.training.export import export_onnx  # noqa: E402
from densecap.training.synthetic import (SyntheticConfig, SyntheticRenderer,  # noqa: E402
                                         load_footage_frames)
from densecap.training.train import (HELD_OUT_OFFSET, load_network, load_shards,  # noqa: E402
                                     predict, run_config)

#: 2D isotropic Gaussian: P(|d| <= k sigma) = 1 - exp(-k^2 / 2).
GAUSSIAN_WITHIN = {1: 1 - np.exp(-0.5), 2: 1 - np.exp(-2.0)}


def per_image_nme(mu: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None,
                  norm: str = "iod") -> np.ndarray:
    """Per-image mean error over the `mask`ed landmarks (n,), divided by the outer-eye-corner
    distance ("iod", iBUG 36-45 of the label) or by sqrt(w h) of the label's iBUG-68 box
    ("bbox", as ../shared/devset/nme.py); images without a masked landmark are NaN.
    mu, labels (n, L, 2); mask (n, L) bool or None."""
    error = np.linalg.norm(mu - labels, axis=-1)
    mask = np.ones(error.shape, dtype=bool) if mask is None else mask
    if norm == "iod":
        scale = np.linalg.norm(labels[:, 36] - labels[:, 45], axis=-1)
    else:
        size = labels[:, :68].max(1) - labels[:, :68].min(1)
        scale = np.sqrt(size[:, 0] * size[:, 1])
    count = mask.sum(1)
    return np.where(count > 0, (error * mask).sum(1) / np.maximum(count, 1) / scale, np.nan)


def nme(mu, labels, mask=None) -> dict:
    """Mean and median over images of the per-image NME, both normalisations. The
    inter-ocular distance shrinks towards zero in profile views, so its mean is dominated
    by the few near-profile crops: read its median, or the bbox one."""
    result = {}
    for norm in ("iod", "bbox"):
        values = per_image_nme(mu, labels, mask, norm)
        result[f"{norm}_mean"] = round(float(np.nanmean(values)), 5)
        result[f"{norm}_median"] = round(float(np.nanmedian(values)), 5)
    return result


#: iBUG-68 regions (index ranges) for the per-region breakdown on real images.
IBUG_REGIONS = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48),
                "mouth": (48, 68)}


def region_nme(predictions: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    """Median over the images with a prediction of the inter-ocular NME of each iBUG region,
    percent: where a front end loses (the jaw line's markup convention or the inner face)."""
    names = sorted(predictions)
    if not names:
        return {}
    mu = np.stack([predictions[name] for name in names])
    truth = np.stack([labels[name] for name in names])
    result = {}
    for region, (start, stop) in IBUG_REGIONS.items():
        mask = np.zeros(truth.shape[:2], dtype=bool)
        mask[:, start:stop] = True
        result[region] = round(100 * float(np.median(per_image_nme(mu, truth, mask))), 3)
    return result


def calibration(mu, sigma, labels, mask=None) -> dict:
    error = np.linalg.norm(mu - labels, axis=-1)
    mask = np.ones(error.shape, dtype=bool) if mask is None else mask
    return {f"within_{k}_sigma": round(float((error[mask] <= k * sigma[mask]).mean()), 4)
            for k in GAUSSIAN_WITHIN}


def latency_ms(path: Path, size: int, repeat: int) -> float:
    session = load_session(path, threads=1)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, size, size)).astype(np.float32)
    for _ in range(10):
        session.run(None, {"image": x})
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, {"image": x})
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 3)


@dataclass(frozen=True)
class Devset:
    """Real images with 68-point labels: folder, sorted names, labels {name: (68, 2)},
    BGR images in the names' order."""

    folder: Path
    names: list
    labels: dict
    images: list


def load_devset(folder: Path, limit: int | None) -> Devset:
    labels = load_labels(folder, limit)
    names = sorted(labels)
    return Devset(folder, names, labels,
                  [cv2.imread(str(folder / "images" / name), cv2.IMREAD_COLOR) for name in names])


def oracle_roi_nme(network, size: int, layout: CropLayout, devset: Devset) -> dict:
    """68-point NME of the network alone on oracle crops (see the docstring) of side `size`
    at the network's `layout`."""
    labels = np.stack([devset.labels[name] for name in devset.names])
    rois = [crop_transform(points, size, layout=layout) for points in labels]
    crops = np.stack([crop(image, roi) for image, roi in zip(devset.images, rois)])
    mu, _ = decode(predict(network, crops)[:, :NUM_IBUG], size)
    mu = np.stack([roi.to_image(m) for roi, m in zip(rois, mu)])
    return {**nme(mu, labels), "inter_ocular_median_by_region_percent": region_nme(
        dict(zip(devset.names, mu)), devset.labels)}


def tracked_nme(devset: Devset, onnx_path: Path | None, views: CropViews = REALTIME_VIEWS
                ) -> dict:
    """Raw and fitted 68-point NME of a front end tracking each image as a one-frame clip:
    the dense network in `onnx_path` reading each crop's `views`, or MediaPipe (None).
    Summaries in percent, as bench.landmarks_devset (an image without a face counts as a
    failure)."""
    front_end = () if onnx_path is None else dense_front_end(onnx_path, views=views)
    raw, fitted, seconds = track_images(devset.folder, devset.names, *front_end)
    result = {"faces_found": len(fitted), "seconds_per_image_median":
              round(float(np.median(seconds)), 3)}
    for method, predictions in (("raw", raw), ("fitted", fitted)):
        scored = score(predictions, devset.labels, method)
        result[method] = {"nme_inter_ocular": scored["nme_inter_ocular"],
                          "nme_bbox": scored["nme_bbox"],
                          "nme_inter_ocular_label_translated":
                              scored["nme_inter_ocular_label_translated"],
                          "inter_ocular_median_by_region_percent": region_nme(predictions,
                                                                      devset.labels)}
    return result


def evaluate_run(run: Path, images, labels, visible, repeat: int,
                 devset: Devset | None = None) -> dict:
    config, network, step = load_network(run)
    mu, sigma = decode(predict(network, images), config.size)
    result = {
        "run": str(run), "loss": config.loss, "init_mean": config.init_mean,
        "width": config.width, "size_px": config.size,
        "train_images": config.images, "steps": step,
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "nme_all": nme(mu, labels),
        "nme_visible": nme(mu, labels, visible),
        "nme_ibug68": nme(mu[:, :68], labels[:, :68]),
        "nme_ibug68_visible": nme(mu[:, :68], labels[:, :68], visible[:, :68]),
        "median_error_px": round(float(np.median(np.linalg.norm(mu - labels, axis=-1))), 3),
    }
    if config.loss == "gnll":
        result["calibration_all"] = calibration(mu, sigma, labels)
        result["calibration_visible"] = calibration(mu, sigma, labels, visible)
        result["median_sigma_px_visible"] = round(float(np.median(sigma[visible])), 3)
        result["median_sigma_px_occluded"] = round(float(np.median(sigma[~visible])), 3)
    shards = sorted((run / "data").glob("shard_*.npz"))
    if shards:
        _, train_labels, _ = load_shards(shards)
        mean = np.broadcast_to(train_labels.mean(0), labels.shape)
        result["nme_all_mean_shape_reference"] = nme(mean, labels)
        result["nme_ibug68_mean_shape_reference"] = nme(mean[:, :68], labels[:, :68])
    for fp16 in (False, True):
        path = export_onnx(network, config.size, run / f"model{'_fp16' if fp16 else ''}.onnx",
                           config.landmark_set, fp16, config.layout())
        key = "fp16_weights" if fp16 else "fp32"
        result[f"latency_ms_{key}"] = latency_ms(path, config.size, repeat)
        result[f"onnx_bytes_{key}"] = path.stat().st_size
    int8 = quantize(path, run / "model_int8.onnx", render_crops(
        onnx.load(str(path)), CALIBRATION_SEED, CALIBRATION_CROPS))
    result["latency_ms_int8"] = latency_ms(int8, config.size, repeat)
    result["onnx_bytes_int8"] = int8.stat().st_size
    if devset is not None:
        onnx_path = run / "model.onnx"
        result["devset"] = {"tracked": tracked_nme(devset, onnx_path),
                            "tracked_single_crop": tracked_nme(devset, onnx_path, SINGLE_VIEW),
                            "tracked_offline_views": tracked_nme(devset, onnx_path,
                                                                 OFFLINE_VIEWS),
                            "tracked_int8": tracked_nme(devset, int8),
                            "network_alone_oracle_roi_ibug68":
                                oracle_roi_nme(network, config.size, config.layout(), devset)}
    return result


#: The tracked results' keys and their labels in the side-by-side summary.
VIEW_LABELS = (("tracked", " (real time: crop + mirror)"),
               ("tracked_single_crop", " (single crop)"),
               ("tracked_offline_views", " (offline mode: mirrored, three zooms)"),
               ("tracked_int8", " (int8 build, real time)"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", required=True)
    parser.add_argument("--held-out", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--devset", "--eval-dir", dest="devset", type=Path, default=None,
                        help="e.g. ../shared/devset (any folder in its format)")
    parser.add_argument("--devset-limit", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config, _, _ = load_network(args.run[0])
    crops = {str(run): (run_config(run).size, run_config(run).crop_zoom) for run in args.run}
    if len(set(crops.values())) > 1:
        raise SystemExit(f"the runs' crops differ (size, zoom: {crops}): they are read on one "
                         "set of held-out crops; bench them one command each")
    renderer = SyntheticRenderer(load_face_model(), config.landmark_set,
                                 SyntheticConfig(size=config.size, crop_zoom=config.crop_zoom),
                                 load_footage_frames())
    images, labels, visible = renderer.batch(config.seed + HELD_OUT_OFFSET, 0, args.held_out)
    labels = labels.astype(np.float64)
    devset = load_devset(args.devset, args.devset_limit) if args.devset else None
    runs = [evaluate_run(run, images, labels, visible, args.repeat, devset) for run in args.run]
    side_by_side = None
    if devset is not None:
        mediapipe = tracked_nme(devset, None)

        def by_front_end(key):
            """{front end: its fitted `key` summary}: MediaPipe, then each run in real time
            (its crop and the mirror image), on single crops, and offline mode's views."""
            return {"mediapipe478": mediapipe["fitted"][key],
                    **{f"{run['run']}{label}": run["devset"][views]["fitted"][key]
                       for run in runs for views, label in VIEW_LABELS}}

        side_by_side = {
            "eval_dir": str(devset.folder), "images": len(devset.names),
            "mediapipe478": mediapipe,
            "fitted_nme_inter_ocular": by_front_end("nme_inter_ocular"),
            "fitted_nme_inter_ocular_label_translated":
                by_front_end("nme_inter_ocular_label_translated")}
    print(json.dumps({
        "cpu": cpu_name(),
        "threads": 1,
        "landmark_set": config.landmark_set,
        "held_out_images": args.held_out,
        "held_out_visible_fraction": round(float(visible.mean()), 4),
        "gaussian_within_1_2_sigma": [round(v, 4) for v in GAUSSIAN_WITHIN.values()],
        "runs": runs,
        "devset_side_by_side": side_by_side,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
