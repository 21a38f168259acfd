"""Single-thread timings of the front end's plumbing (no network, no fitter), as JSON.

    python -m bench.frontend_speed [--clip ../shared/footage/talking_1.mp4] [--frames 120]

Measures per frame: video decode, an upright face crop (cv2.warpAffine) at 192 and 256 px,
mapping 478 landmarks back to the image, the preview drawing (wireframe of the model's
fitting triangles subsampled to 4,000 edges, 478 landmarks with sigma circles, both + status
on a copy of the frame),
the pipeline loop's own overhead (a tracker that returns a fixed result), and PreviewWriter.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .machine import single_thread_env, write_json

single_thread_env()

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from densecap.landmarks.footage import open_footage  # noqa: E402
from densecap.landmarks.roi import align_face, crop, landmarks_to_image  # noqa: E402
from densecap.solver import load_face_model  # noqa: E402
from densecap.tracking.performance import Camera  # noqa: E402
from densecap.tracking.pipeline import FrameResult, draw_preview, track_footage  # noqa: E402
from densecap.tracking.preview import (PreviewWriter, draw_landmarks, draw_wireframe,  # noqa: E402
                                       mesh_edges, subsample_edges)

ROOT = Path(__file__).resolve().parent.parent


class _FixedResultTracker:
    """Returns the same result every frame: isolates the loop's own cost (bench only)."""

    def __init__(self, footage, result, edges):
        self.expression_names = tuple(f"e{i}" for i in range(55))
        self.energy_names = ("landmarks",)
        self.preview_edges = edges
        self.identity = np.zeros(100)
        self.camera = Camera(1000.0, footage.width, footage.height)
        self._result = result

    def track(self, frame_index, image):
        return self._result


def _ms_per_call(function, repeats: int) -> float:
    function()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return 1000.0 * (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "footage" / "talking_1.mp4"))
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    started = time.perf_counter()
    with open_footage(args.clip, end=args.frames) as footage:
        images = [image for _, image in footage]
    decode_ms = 1000.0 * (time.perf_counter() - started) / len(images)
    height, width = images[0].shape[:2]
    image = images[0]

    rng = np.random.default_rng(0)
    centre = np.array([width / 2, height / 2])
    roi = {size: align_face(centre - [40, 5], centre + [40, -5], size, centre + [0, 90])
           for size in (192, 256)}
    mu_crop = rng.uniform(0, 192, (478, 2))
    sigma_crop = rng.uniform(0.5, 4, 478)

    model = load_face_model()
    edges = subsample_edges(mesh_edges(model.triangles[model.fitting_triangles]), 4000)
    # the neutral head seen from the front, about a third of the frame wide (a real layout of
    # short edges; random points would draw long lines and time something that never happens)
    neutral = model.neutral.astype(np.float64)
    scale = width / 3 / np.ptp(neutral[:, 0])
    vertices_2d = centre + neutral[:, :2] * [scale, -scale]
    mu, sigma = landmarks_to_image(mu_crop, sigma_crop, roi[192])
    result = FrameResult(psi=np.zeros(55), theta=np.zeros(18), landmark_error=1.0,
                         energies=np.zeros(1), mu=mu, sigma=sigma, vertices_2d=vertices_2d)

    with open_footage(args.clip, end=args.frames) as footage:
        run = track_footage(footage, _FixedResultTracker(footage, result, edges))
    loop_ms = 1000.0 * run.seconds / run.frames_done

    with tempfile.TemporaryDirectory() as folder:
        with PreviewWriter(Path(folder) / "p.mp4", 30, width, height) as writer:
            write_ms = _ms_per_call(lambda: writer.write(image), 30)
            codec = writer.codec

    print(write_json({
        "threads": 1, "clip": Path(args.clip).name, "frame_size": [width, height],
        "frames": len(images),
        "ms_per_frame": {
            "decode": round(decode_ms, 3),
            "pipeline_loop_including_decode": round(loop_ms, 3),
            "crop_192": round(_ms_per_call(lambda: crop(image, roi[192]), 200), 3),
            "crop_256": round(_ms_per_call(lambda: crop(image, roi[256]), 200), 3),
            "landmarks_to_image_478": round(_ms_per_call(
                lambda: landmarks_to_image(mu_crop, sigma_crop, roi[192]), 200), 4),
            "preview_wireframe_4000_edges": round(_ms_per_call(
                lambda: draw_wireframe(image.copy(), vertices_2d, edges), 30), 3),
            "preview_landmarks_478": round(_ms_per_call(
                lambda: draw_landmarks(image.copy(), mu, sigma), 30), 3),
            "preview_draw_all": round(_ms_per_call(
                lambda: draw_preview(image, result, edges, "frame 0"), 30), 3),
            f"preview_write_{codec}": round(write_ms, 3),
        },
    }, None))


if __name__ == "__main__":
    main()
