"""Blender-side bake speed of the workflow: a tracked take of 1,800 frames written as the
rig's keyframes (55 shape keys + 5 bones), the whole Track Clip finish (rig, keys, fit-quality
curves, stored Performance), and Bake / Retarget onto a mesh with the 52 ARKit shape keys and
a Rigify-named armature. Prints JSON; the target is < 2 s for the keyframes.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m bench.bake [--frames 1800] [--repeats 3]

Times are the best of `--repeats` runs, in seconds, each in a fresh scene.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import densecap  # noqa: E402
from densecap.bench.rig_bench import _best, _cpu  # noqa: E402
from densecap.densecap_addon.animation import write_rig_animation  # noqa: E402
from densecap.densecap_addon.performance_scene import apply_performance  # noqa: E402
from densecap.densecap_addon.rig import create_rig  # noqa: E402
from densecap.solver import load_face_model  # noqa: E402
from densecap.tracking.arkit import ARKIT_NAMES, BONE_PRESETS  # noqa: E402
from densecap.tracking.performance import Camera, Performance  # noqa: E402

TARGET_SECONDS = 2.0


def synthetic_performance(model, frames: int) -> Performance:
    """A take of `frames` frames with random expressions and head motion, 2% without a face."""
    rng = np.random.default_rng(0)
    valid = rng.uniform(size=frames) > 0.02
    return Performance(
        beta=np.zeros(model.num_identity),
        psi=rng.uniform(0.0, 1.0, (frames, model.num_expressions)).astype(np.float32),
        theta=rng.uniform(-0.3, 0.3, (frames, 18)), camera=Camera(700.0, 640, 480), valid=valid,
        landmark_error=np.where(valid, rng.uniform(0.5, 2.0, frames), np.nan),
        energies=np.where(valid[:, None], 1.0, np.nan) * np.ones((frames, 2)),
        energy_names=("landmarks", "prior"), frame_indices=np.arange(frames), fps=30.0,
        expression_names=model.expression_names)


def _retarget_targets() -> None:
    """A mesh with the 52 ARKit shape keys and a Rigify-named armature as retarget targets."""
    scene = bpy.context.scene
    mesh = bpy.data.meshes.new("Target")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    mesh_obj = bpy.data.objects.new("Target", mesh)
    scene.collection.objects.link(mesh_obj)
    mesh_obj.shape_key_add(name="Basis")
    for name in ARKIT_NAMES:
        mesh_obj.shape_key_add(name=name)
    armature_obj = bpy.data.objects.new("User", bpy.data.armatures.new("User"))
    scene.collection.objects.link(armature_obj)
    bpy.context.view_layer.objects.active = armature_obj
    bpy.ops.object.mode_set(mode='EDIT')
    for index, name in enumerate(BONE_PRESETS["RIGIFY"].values()):
        bone = armature_obj.data.edit_bones.new(name)
        bone.head, bone.tail = (0, 0, 0.1 * index), (0, 0, 0.1 * index + 0.1)
    bpy.ops.object.mode_set(mode='OBJECT')
    scene.densecap.target_mesh, scene.densecap.target_armature = mesh_obj, armature_obj


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model = load_face_model()
    performance = synthetic_performance(model, args.frames)
    valid = performance.valid

    def keyframes() -> float:
        rig = create_rig(model, performance.beta)
        start = time.perf_counter()
        write_rig_animation(rig, performance.frame_indices[valid] + 1,
                            performance.psi[valid].astype(np.float64), performance.theta[valid])
        return time.perf_counter() - start

    def finish() -> float:
        start = time.perf_counter()
        apply_performance(bpy.context.scene, model, performance)
        return time.perf_counter() - start

    def retarget() -> float:
        densecap.register()
        try:
            bpy.context.scene.densecap.rig = apply_performance(bpy.context.scene, model,
                                                               performance)
            _retarget_targets()
            start = time.perf_counter()
            assert bpy.ops.densecap.retarget() == {'FINISHED'}
            return time.perf_counter() - start
        finally:
            densecap.unregister()

    seconds = _best(keyframes, args.repeats)
    print(json.dumps({
        "bpy": bpy.app.version_string,
        "cpu": _cpu(),
        "frames": args.frames,
        "keyed_frames": int(valid.sum()),
        "shape_keys": model.num_expressions,
        "bones": 5,
        "write_keyframes_seconds": seconds,
        "target_seconds": TARGET_SECONDS,
        "meets_target": seconds < TARGET_SECONDS,
        "track_finish_seconds": _best(finish, args.repeats),
        "retarget_52_keys_4_bones_seconds": _best(retarget, args.repeats),
    }, indent=1))


if __name__ == "__main__":
    main()
