"""The peer: MediaPipe's own Python face mesh (``mediapipe==0.10.21``) on the bench's images
and clips, in its own venv (``make peer`` -> ``.venv-peer``, Python 3.11, numpy < 2).

    .venv-peer/bin/python -m bench.peer_mediapipe --out-dir bench/results/peer \\
        [--eval-dir DIR ...] [--limit 100] [--clip VIDEO ...] [--frames 150]

Writes, per eval dir and per clip, an npz of its 478 landmarks in pixels (the same order as
our front end, ``refine_landmarks=True``; NaN where it found no face) and the time of each
call, and ``peer.json`` with its version and speed. Scoring (68-point NME through the same
mapping as our raw landmarks, jitter) happens in the main venv (bench.landmarks_devset,
bench.clips), so both sides are scored by the same code. Images are processed in static
mode (detector every image), clips in video mode (MediaPipe's own tracking). The process is
pinned to one CPU core so its speed compares with our single-threaded numbers.

Imports only numpy, OpenCV and mediapipe (and bench.machine / bench.metrics helpers).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .machine import peak_rss_mb, write_json

NUM_POINTS = 478


def peer_key(path: Path) -> str:
    """File stem for the peer's output of `path`: its name plus a hash of its absolute path
    (two folders may hold files with the same name)."""
    resolved = str(Path(path).resolve())
    return f"{Path(path).stem}-{hashlib.sha1(resolved.encode()).hexdigest()[:8]}"


def load_peer(peer_dir: Path | None, path: Path) -> dict | None:
    """The peer's arrays for an eval dir or clip (`points` (N, 478, 2), `ms` (N,), ...), or
    None when the peer did not run on it."""
    if peer_dir is None:
        return None
    file = Path(peer_dir) / f"{peer_key(path)}.npz"
    if not file.is_file():
        return None
    with np.load(file, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _points(result, width: int, height: int) -> np.ndarray:
    """(478, 2) pixels of the first face (NaN when none): normalised coordinates span the
    image, so x * width is already pixel-corner based."""
    if not result.multi_face_landmarks:
        return np.full((NUM_POINTS, 2), np.nan)
    marks = result.multi_face_landmarks[0].landmark
    return np.array([[m.x * width, m.y * height] for m in marks])


def _run(face_mesh, images) -> tuple[np.ndarray, np.ndarray]:
    """(N, 478, 2) points and (N,) ms per call over an iterable of BGR images."""
    import cv2
    points, ms = [], []
    for image in images:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        start = time.perf_counter()
        result = face_mesh.process(rgb)
        ms.append(1e3 * (time.perf_counter() - start))
        points.append(_points(result, image.shape[1], image.shape[0]))
    return np.asarray(points, np.float64).reshape(-1, NUM_POINTS, 2), np.asarray(ms)


def _eval_images(eval_dir: Path, limit: int | None):
    import cv2
    labels = json.loads((eval_dir / "landmarks68.json").read_text())["images"]
    names = sorted(labels)[:limit]
    for name in names:
        image = cv2.imread(str(eval_dir / "images" / name))
        if image is None:
            raise SystemExit(f"cannot read {eval_dir / 'images' / name}")
        yield name, image


def _clip_frames(clip: Path, frames: int | None):
    import cv2
    capture = cv2.VideoCapture(str(clip))
    try:
        count = 0
        while frames is None or count < frames:
            ok, image = capture.read()
            if not ok:
                break
            count += 1
            yield image
    finally:
        capture.release()


def _speed(ms: np.ndarray) -> dict:
    steady = ms[1:] if len(ms) > 1 else ms          # the first call loads the graph
    return {"ms_median": round(float(np.median(steady)), 3),
            "ms_mean": round(float(np.mean(steady)), 3), "calls": int(len(ms))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--eval-dir", type=Path, action="append", default=[])
    parser.add_argument("--limit", type=int, help="first N images (sorted names) per eval dir")
    parser.add_argument("--clip", type=Path, action="append", default=[])
    parser.add_argument("--frames", type=int, help="first N frames per clip (default: all)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import mediapipe as mp
    face_mesh = mp.solutions.face_mesh
    report = {"peer": f"mediapipe {mp.__version__} solutions.face_mesh (refine_landmarks)",
              "cpu_cores_pinned": 1, "eval_dirs": {}, "clips": {}}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for eval_dir in args.eval_dir:
        pairs = list(_eval_images(eval_dir, args.limit))
        with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                refine_landmarks=True) as mesh:
            points, ms = _run(mesh, (image for _, image in pairs))
        np.savez(args.out_dir / f"{peer_key(eval_dir)}.npz", points=points, ms=ms,
                 names=np.array([name for name, _ in pairs]))
        report["eval_dirs"][str(eval_dir)] = {
            "images": len(pairs), "found": int(np.isfinite(points[:, 0, 0]).sum()),
            "ms_per_image_static_mode": _speed(ms)}
    for clip in args.clip:
        with face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                refine_landmarks=True) as mesh:
            points, ms = _run(mesh, _clip_frames(clip, args.frames))
        np.savez(args.out_dir / f"{peer_key(clip)}.npz", points=points, ms=ms)
        report["clips"][str(clip)] = {
            "frames": len(points), "found": int(np.isfinite(points[:, 0, 0]).sum()),
            "ms_per_frame_video_mode": _speed(ms)}
    report["peak_rss_mb"] = peak_rss_mb()
    print(write_json(report, args.out_dir / "peer.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
