"""bench/report.md and bench/plots/*.png from the JSON in bench/results (matplotlib, Agg).

    .venv/bin/python -m bench.report [--results bench/results] [--out-dir bench]

Reads whatever sections are present (python -m bench writes them all); a section that is
missing or unavailable shows as such, never as a number.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .metrics import FAILURE_THRESHOLD, ced

CED_MAX = 0.20
MISSING = "n/a"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value, digits: int = 2, unit: str = "") -> str:
    return MISSING if value is None else f"{value:.{digits}f}{unit}"


def _entry_value(entry: dict | None, key: str, digits: int = 2, unit: str = "") -> str:
    """A metric of a method entry, or why it is unavailable."""
    if entry is None:
        return MISSING
    if not entry.get("available", True):
        return f"{MISSING} ({entry.get('reason', 'unavailable')})"
    return _fmt(entry.get(key), digits, unit)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""])


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# --- landmark accuracy ---------------------------------------------------------------------

def landmark_section(reports: list[dict], plots: Path) -> list[str]:
    lines = ["## Landmark accuracy on real images (68-point NME)", ""]
    if not reports:
        return lines + [f"{MISSING}: no landmarks_*.json in the results", ""]
    for report in reports:
        rows = []
        for name, method in report["methods"].items():
            if not method.get("available", True):
                rows.append([name, f"{MISSING}: {method['reason']}", "", "", "", "", ""])
                continue
            iod, bbox = method["nme_inter_ocular"], method["nme_bbox"]
            translated = method.get("nme_inter_ocular_label_translated")
            rows.append([method["label"], _fmt(iod["mean_percent"], 2, " %"),
                         _fmt(iod["median_percent"], 2, " %"),
                         _fmt(translated["mean_percent"], 2, " %") if translated else MISSING,
                         _fmt(bbox["mean_percent"], 2, " %"),
                         _fmt(iod["failure_rate_percent"], 1, " %"),
                         f"{iod['missed']} / {iod['count']}"])
        lines += [f"`{report['eval_dir']}`: {report['images']} images; ours "
                  f"{report['seconds_per_image_median'] * 1e3:.0f} ms per image "
                  f"({report['timing_note']}).", ""]
        lines += _table(["method", "NME inter-ocular mean", "median",
                         "label-translated mean", "NME bbox mean",
                         f"failure (> {FAILURE_THRESHOLD:.0%})", "no face"], rows)
    lines += ["![CED](plots/ced.png)", ""]
    plt = _plt()
    fig, axes = plt.subplots(1, len(reports), figsize=(6 * len(reports), 4.5), squeeze=False)
    thresholds = np.linspace(0.0, CED_MAX, 201)
    for ax, report in zip(axes[0], reports):
        for name, method in report["methods"].items():
            if not method.get("available", True):
                continue
            errors = np.array([np.inf if v is None else v
                               for v in method["per_image_nme_inter_ocular"]])
            ax.plot(100 * thresholds, 100 * ced(errors, thresholds),
                    label=f"{name} ({method['nme_inter_ocular']['mean_percent']:.2f} %)")
        ax.axvline(100 * FAILURE_THRESHOLD, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="NME, inter-ocular (%)", ylabel="images (%)", ylim=(0, 100),
               title=f"CED: {Path(report['eval_dir']).name} ({report['images']} images)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(plots / "ced.png", dpi=110)
    plt.close(fig)
    return lines


# --- clips -------------------------------------------------------------------------------

CLIP_METHODS = ("raw", "realtime", "offline", "peer")


def clip_section(report: dict | None, plots: Path) -> list[str]:
    lines = ["## Temporal stability on real clips", ""]
    if report is None:
        return lines + [f"{MISSING}: no clips.json in the results", ""]
    lines += [f"First {report['frames_per_clip']} frames per clip. Jitter: mean frame-to-frame "
              "acceleration of landmarks over the clip's inter-ocular distance (lower is "
              "steadier; true head motion counts too, so compare within a clip): raw, the "
              "front end's own landmarks; the fits, MediaPipe's 478 points on the fitted "
              "face; the peer, its 478 points. Frames lost: frames without landmarks / fit.",
              ""]
    rows = []
    for clip in report["clips"]:
        row = [Path(clip["clip"]).name, str(clip["frames"])]
        for method in CLIP_METHODS:
            entry = clip[method]
            row.append(_entry_value(entry, "jitter", 4) if not entry.get("available", True)
                       else f"{_fmt(entry['jitter'], 4)} ({entry['frames_lost']} lost)")
        rows.append(row)
    lines += _table(["clip", "frames"] + [f"{m} jitter (lost)" for m in CLIP_METHODS], rows)
    lines += ["![jitter](plots/jitter.png)", ""]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    clips = report["clips"]
    width = 0.8 / len(CLIP_METHODS)
    for k, method in enumerate(CLIP_METHODS):
        values = [c[method].get("jitter") if c[method].get("available", True) else None
                  for c in clips]
        x = np.arange(len(clips)) + (k - (len(CLIP_METHODS) - 1) / 2) * width
        heights = [0.0 if v is None else v for v in values]
        bars = ax.bar(x, heights, width, label=method)
        for bar, value in zip(bars, values):
            if value is None:
                ax.text(bar.get_x() + width / 2, 0, MISSING, ha="center", va="bottom",
                        fontsize=7, rotation=90)
    ax.set_xticks(np.arange(len(clips)), [Path(c["clip"]).stem for c in clips])
    ax.set(ylabel="jitter (acceleration / inter-ocular)", title="Jitter per clip")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(plots / "jitter.png", dpi=110)
    plt.close(fig)
    return lines


def sample_sheet(report: dict | None, plots: Path) -> list[str]:
    lines = ["## Sample frames (fitted mesh and landmarks with sigma)", ""]
    samples = [Path(p) for clip in (report or {}).get("clips", []) for p in clip["samples"]]
    samples = [p for p in samples if p.is_file()]
    if not samples:
        return lines + [f"{MISSING}: no sample frames", ""]
    import cv2
    plt = _plt()
    columns = 3
    rows = -(-len(samples) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, path in zip(axes.ravel(), samples):
        ax.imshow(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        ax.set_title(path.stem, fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "sheet.png", dpi=90)
    plt.close(fig)
    return lines + ["![samples](plots/sheet.png)", ""]


# --- synthetic -----------------------------------------------------------------------------

def synthetic_section(report: dict | None, plots: Path) -> list[str]:
    lines = ["## Synthetic ground truth (solver)", ""]
    if report is None:
        return lines + [f"{MISSING}: no synthetic.json in the results", ""]
    lines += [f"{report['landmarks']} landmarks, {report['faces']} random faces per setting; "
              f"mesh error: {report['mesh_error_note']}.", ""]
    lines += _table(["noise (px)", "mesh error (mm)", "expression MAE"],
                    [[r["noise_px"], r["mesh_error_mm"], r["expression_mae"]]
                     for r in report["vs_noise"]])
    weighting = report["sigma_weighting"]
    lines += [f"Sigma weighting (per-landmark noise, mean {weighting['sigma_mean_px']} px, "
              f"range {weighting['sigma_range_px']} px):", ""]
    lines += _table(["fitted with", "mesh error (mm)", "expression MAE"],
                    [[k, weighting[k]["mesh_error_mm"], weighting[k]["expression_mae"]]
                     for k in ("predicted_sigma", "constant_sigma")])
    lines += [f"Regularisers ({report['sequence_frames']}-frame sequences, "
              f"{report['sequence_noise_px']} px noise; error jitter = acceleration of the "
              "landmark error / inter-ocular):", ""]
    lines += _table(["settings", "mesh error (mm)", "expression MAE", "error jitter"],
                    [[r["settings"], r["mesh_error_mm"], r["expression_mae"],
                      r.get("error_jitter", MISSING)] for r in report["regularisers"]])
    for key, column in (("vs_frames", "frames"), ("vs_cameras", "cameras")):
        entry = report[key]
        if not entry.get("available"):
            lines += [f"Offline fitter {key.replace('_', ' ')} {entry.get('planned', '')}: "
                      f"{MISSING} ({entry['reason']})", ""]
            continue
        lines += [f"Offline fitter {key.replace('_', ' ')} ({entry['note']}):", ""]
        lines += _table([column, "identity error (mm)", "without size (mm)", "mesh error (mm)",
                         "expression MAE"],
                        [[r[column], r["identity_error_mm"],
                          r.get("identity_shape_error_mm", MISSING), r["mesh_error_mm"],
                          r["expression_mae"]] for r in entry["rows"]])
    lines += ["![synthetic](plots/synthetic.png)", ""]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    noise = [r["noise_px"] for r in report["vs_noise"]]
    for ax, key, label in ((axes[0], "mesh_error_mm", "mesh error (mm)"),
                           (axes[1], "expression_mae", "expression MAE")):
        ax.plot(noise, [r[key] for r in report["vs_noise"]], "o-")
        ax.set(xlabel="landmark noise (px, ~256 px face)", ylabel=label, xscale="log")
        ax.grid(alpha=0.3)
    fig.suptitle("Real-time fit vs landmark noise (single frame, identity refined)")
    fig.tight_layout()
    fig.savefig(plots / "synthetic.png", dpi=110)
    plt.close(fig)
    return lines


# --- speed ---------------------------------------------------------------------------------

STAGES = ("decode", "detect", "landmarks", "fit")


def speed_section(speeds: dict[int, dict], fit: dict | None, peer: dict | None,
                  plots: Path) -> list[str]:
    lines = ["## Speed and memory", ""]
    if not speeds:
        return lines + [f"{MISSING}: no speed_*.json in the results", ""]
    rows = []
    for threads, speed in sorted(speeds.items()):
        tracking = speed["tracking"]
        for kind in ("median", "mean"):
            ms = tracking[f"ms_per_frame_{kind}"]
            rows.append([f"ours, {threads} thread(s), {kind}"]
                        + [ms[s] for s in STAGES + ("total",)] + [speed["peak_rss_mb"]])
    peer_ms = _peer_clip_ms(peer)
    if peer_ms is not None:
        rows.append(["peer (MediaPipe, 1 core, video mode), median", "", "", "", "", peer_ms,
                     peer.get("peak_rss_mb", MISSING)])
    first = speeds[min(speeds)]
    lines += [f"Tracking `{Path(first['tracking']['clip']).name}`, "
              f"{first['tracking']['frames']} frames (ms per frame; mean includes the identity "
              "keyframes). Peak RSS in MiB.", ""]
    lines += _table(["run"] + list(STAGES) + ["total", "peak RSS"], rows)
    extra = []
    for threads, speed in sorted(speeds.items()):
        tracking = speed["tracking"]
        if "steady_median_ms_excluding_decode" in tracking:
            extra.append(f"- real-time path, {threads} thread(s), steady-state median without "
                         f"decode: {tracking['steady_median_ms_excluding_decode']} ms (target "
                         f"{tracking['target_ms_excluding_decode']} ms)")
        nets = speed["networks"]["models"]
        extra.append(f"- networks, {threads} thread(s): " + ", ".join(
            f"{k} {v['median_ms']:.2f} ms" for k, v in nets.items()))
        only = speed["fitter_only_478"]
        extra.append(f"- real-time fitter alone, 478 landmarks, {threads} thread(s): "
                     f"{only['ms_per_frame_median']} ms median, {only['iterations_median']} "
                     f"iterations")
        offline = speed["offline"]
        extra.append(f"- offline, {threads} thread(s), seconds per 1,800 frames: "
                     + (_fmt(offline.get("seconds_per_1800_frames"), 1) + f" ({offline['note']})"
                        if offline.get("available") else f"{MISSING} ({offline['reason']})"))
        if "bake" in speed:
            bake = speed["bake"]
            extra.append(f"- bake (bpy {bake.get('bpy', '')}): " + (
                f"{bake['seconds']} s for {bake['frames']} frames (rig "
                f"{bake['create_rig_seconds']} s + keyframes {bake['write_keyframes_seconds']} s)"
                if bake.get("available") else f"{MISSING} ({bake['reason']})"))
    if fit is not None:
        extra.append("- real-time fitter by landmark count (1 thread, synthetic): " + ", ".join(
            f"{s['landmarks']}: {s['ms_per_frame_median']} ms" for s in fit["sizes"]))
    lines += extra + ["", "![speed](plots/speed.png)", ""]
    plt = _plt()
    labels, data = [], []
    for threads, speed in sorted(speeds.items()):
        for kind in ("median", "mean"):
            ms = speed["tracking"][f"ms_per_frame_{kind}"]
            labels.append(f"ours, {threads} thread(s), {kind}")
            data.append([ms[s] for s in STAGES] + [0.0])
    if peer_ms is not None:
        labels.append("peer, 1 core, median")
        data.append([0.0] * len(STAGES) + [peer_ms])
    data = np.array(data)
    starts = np.cumsum(np.c_[np.zeros(len(data)), data[:, :-1]], axis=1)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.2))
    for k, stage in enumerate(STAGES + ("peer, whole pipeline",)):
        ax.barh(labels, data[:, k], left=starts[:, k], label=stage)
    ax.set(xlabel="ms per frame", title="Tracking speed per stage (mean includes keyframes)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "speed.png", dpi=110)
    plt.close(fig)
    return lines


def _peer_clip_ms(peer: dict | None) -> float | None:
    """The peer's median ms per frame over its clips (video mode), or None."""
    if not peer or not peer.get("clips"):
        return None
    return round(float(np.median([c["ms_per_frame_video_mode"]["ms_median"]
                                  for c in peer["clips"].values()])), 2)


# --- headline ----------------------------------------------------------------------------------

def headline(landmarks: list[dict], clips: dict | None, speeds: dict[int, dict],
             synthetic: dict | None, peer: dict | None) -> list[str]:
    rows = []
    for report in landmarks:
        methods = report["methods"]

        def nme(name, key="mean_percent"):
            method = methods.get(name, {})
            return (_fmt(method["nme_inter_ocular"][key], 2, " %")
                    if method.get("available", True) and method else MISSING)

        where = f"{Path(report['eval_dir']).name}, {report['images']} images"
        rows.append([f"68-pt NME inter-ocular ({where})",
                     f"raw {nme('raw')}, fitted {nme('fitted')}", nme("peer")])
        rows.append([f"failure rate > 10 % ({where})",
                     f"raw {nme('raw', 'failure_rate_percent')}, fitted "
                     f"{nme('fitted', 'failure_rate_percent')}",
                     nme("peer", "failure_rate_percent")])
    if 1 in speeds:
        tracking = speeds[1]["tracking"]
        peer_ms = _peer_clip_ms(peer)
        rows.append([f"ms per frame, 1 thread ({Path(tracking['clip']).name})",
                     f"{tracking['ms_per_frame_median']['total']} median, "
                     f"{tracking['ms_per_frame_mean']['total']} mean",
                     MISSING if peer_ms is None else f"{peer_ms} median"])
    if clips is not None:
        def mean_jitter(method):
            values = [c[method]["jitter"] for c in clips["clips"]
                      if c[method].get("available", True) and c[method].get("jitter") is not None]
            return _fmt(float(np.mean(values)) if values else None, 4)
        rows.append([f"jitter, mean over {len(clips['clips'])} clips",
                     f"raw {mean_jitter('raw')}, real-time {mean_jitter('realtime')}, "
                     f"offline {mean_jitter('offline')}", mean_jitter("peer")])
    if synthetic is not None:
        at2 = next((r for r in synthetic["vs_noise"] if r["noise_px"] == 2.0), None)
        if at2:
            rows.append(["synthetic, 2 px noise: mesh error / expression MAE",
                         f"{at2['mesh_error_mm']} mm / {at2['expression_mae']}", "-"])
    return ["## Headline", ""] + _table(["measure", "DenseCap", "peer (MediaPipe face mesh)"],
                                        rows)


def write_report(results: Path, out_dir: Path) -> Path:
    """Write out_dir/report.md and out_dir/plots/*.png; returns the report's path."""
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    suite = _load(results / "suite.json") or {}
    landmarks = [json.loads(p.read_text()) for p in sorted(results.glob("landmarks_*.json"))]
    clips = _load(results / "clips.json")
    synthetic = _load(results / "synthetic.json")
    speeds = {t: s for t in (1, 2) if (s := _load(results / f"speed_{t}thread.json"))}
    peer = _load(results / "peer" / "peer.json")
    lines = ["# DenseCap bench report", "",
             f"Command: `{suite.get('command', 'python -m bench')}`, {suite.get('started_utc', '')}"
             f" UTC, {suite.get('seconds', MISSING)} s. CPU: {suite.get('cpu', MISSING)} "
             f"({suite.get('logical_cores', MISSING)} logical cores), Python "
             f"{suite.get('python', MISSING)}, 1-minute load average at start / end "
             f"{suite.get('load_average_1min', MISSING)} (times grow with other load). "
             "Single thread unless stated "
             "(NUMBA_NUM_THREADS=OMP_NUM_THREADS=1, onnxruntime intra-op threads 1); the peer "
             f"is pinned to one core. Peer: {suite.get('peer', MISSING)}.", ""]
    failed = [s["name"] for s in suite.get("steps", []) if s["returncode"]]
    if failed:
        lines += [f"**Failed sections** (see bench/results/logs/): {', '.join(failed)}", ""]
    lines += headline(landmarks, clips, speeds, synthetic, peer)
    lines += landmark_section(landmarks, plots)
    lines += clip_section(clips, plots)
    lines += synthetic_section(synthetic, plots)
    lines += speed_section(speeds, _load(results / "realtime_fit.json"), peer, plots)
    lines += sample_sheet(clips, plots)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent
    parser.add_argument("--results", type=Path, default=root / "results")
    parser.add_argument("--out-dir", type=Path, default=root)
    args = parser.parse_args(argv)
    print(write_report(args.results, args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
