"""Single-thread speed of the CPU head renderer (training/render): prints JSON.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m bench.render_speed [--size 192] [--repeat 50]
"""

from __future__ import annotations

import argparse
import time

from .machine import single_thread_env, write_json

single_thread_env()

import numpy as np  # noqa: E402

from densecap.solver import load_face_model, mesh  # noqa: E402
from densecap.solver.conventions import THETA_SIZE, THETA_TRANSLATION, theta_rotation  # noqa: E402
from densecap.training.render import (HeadScene, PinholeCamera, model_to_camera,  # noqa: E402
                                      rasterize, render_head)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)
    model = load_face_model()
    scene = HeadScene.from_model(model)
    rng = np.random.default_rng(0)
    theta = np.zeros(THETA_SIZE)
    theta[theta_rotation(0)] = [0.1, 0.3, 0.05]
    theta[THETA_TRANSLATION] = [0.0, -3.0, -60.0]
    beta = rng.normal(size=model.num_identity)
    psi = rng.uniform(0, 0.3, model.num_expressions)
    points = model_to_camera(mesh(model, beta, psi, theta))
    camera = PinholeCamera.centred(args.size * 60 / 24.0, args.size)
    render_head(scene, points, camera)  # compile / load the numba cache

    def per_call_ms(function):
        start = time.perf_counter()
        for _ in range(args.repeat):
            function()
        return 1000 * (time.perf_counter() - start) / args.repeat

    result = {
        "size_px": args.size,
        "triangles_drawn": int(len(scene.triangles)),
        "render_head_ms": round(per_call_ms(lambda: render_head(scene, points, camera)), 3),
        "rasterize_only_ms": round(per_call_ms(
            lambda: rasterize(points, scene.corners, camera, cull_back=scene.cull_back)), 3),
        # Not part of the render: solver.model.mesh over all 26,719 vertices.
        "pose_mesh_numpy_ms": round(per_call_ms(lambda: mesh(model, beta, psi, theta)), 3),
    }
    print(write_json(result, None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
