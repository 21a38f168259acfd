"""The temporary main job (until tracking lands): a keyframed face rig in a .blend.

    python -m densecap.densecap_addon.demo [--out out/densecap_demo.blend]
                                           [--preview out/densecap_preview.png] [--seconds 4]

Builds the rig from the packed face model (average identity), keys a few seconds of
scripted expressions and head/eye motion through the same writer tracking will use, adds
a camera and a light, saves the .blend and renders a Workbench preview still.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bpy
import numpy as np

from ..solver import SolverError, load_face_model
from ..solver.conventions import JOINT_NAMES, THETA_SIZE, THETA_TRANSLATION, theta_rotation
from ..solver.face_model import FaceModel
from .animation import write_rig_animation
from .rig import create_rig

ROOT = Path(__file__).resolve().parent.parent
FPS = 30


def _bump(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-((t - centre) / width) ** 2)


def demo_performance(model: FaceModel, frame_count: int,
                     fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """Scripted example motion: psi (F, E) in [0, 1] and theta (F, 18).

    A jaw opening, a smile, raised brows, two blinks, a head turn and nod carried partly
    by the neck, eyes looking around and a small sway of the whole head (cm).
    """
    t = np.arange(frame_count) / fps
    psi = np.zeros((frame_count, model.num_expressions))
    index = {name: i for i, name in enumerate(model.expression_names)}
    psi[:, index["jawOpen"]] = 0.6 * _bump(t, 0.8, 0.35)
    for side in ("_L", "_R"):
        psi[:, index["mouthSmile" + side]] = 0.9 * _bump(t, 2.4, 0.5)
        psi[:, index["cheekSquint" + side]] = 0.5 * _bump(t, 2.4, 0.5)
        psi[:, index["browInnerUp" + side]] = 0.8 * _bump(t, 1.5, 0.4)
        psi[:, index["eyeBlink" + side]] = np.maximum(_bump(t, 1.1, 0.07), _bump(t, 3.3, 0.07))
    psi[:, index["mouthFunnel"]] = 0.7 * _bump(t, 3.6, 0.3)

    theta = np.zeros((frame_count, THETA_SIZE))
    yaw = 0.35 * np.sin(2 * np.pi * t / 4.0)                 # about model +Y (up)
    pitch = 0.15 * np.sin(2 * np.pi * t / 2.0)               # about model +X (nod)
    neck, head = JOINT_NAMES.index("neck"), JOINT_NAMES.index("head")
    theta[:, theta_rotation(neck)] = 0.4 * np.column_stack([pitch, yaw, 0 * t])
    theta[:, theta_rotation(head)] = 0.6 * np.column_stack([pitch, yaw, 0 * t])
    look = np.column_stack([0.15 * np.sin(2 * np.pi * t / 1.5),
                            0.35 * np.sin(2 * np.pi * t / 3.0), 0 * t])
    for eye in ("eye_L", "eye_R"):
        theta[:, theta_rotation(JOINT_NAMES.index(eye))] = look
    theta[:, THETA_TRANSLATION] = np.column_stack([1.0 * np.sin(2 * np.pi * t / 4.0),
                                                   0.5 * np.sin(2 * np.pi * t / 2.0), 0 * t])
    return psi, theta


def _add_camera_and_light(scene: bpy.types.Scene, target: np.ndarray) -> None:
    """A front camera (85 mm, 0.75 m away along -Y) and an area light aimed at `target` (3,)."""
    camera = bpy.data.objects.new("DenseCapCamera", bpy.data.cameras.new("DenseCapCamera"))
    camera.data.lens = 85.0
    camera.location = (target + [0.0, -0.75, 0.0]).tolist()
    camera.rotation_euler = (np.pi / 2, 0.0, 0.0)            # looks along +Y, at the face
    scene.collection.objects.link(camera)
    scene.camera = camera
    light = bpy.data.objects.new("DenseCapKey", bpy.data.lights.new("DenseCapKey", 'AREA'))
    light.data.energy = 30.0
    light.data.size = 0.5
    light.location = (target + [-0.4, -0.6, 0.4]).tolist()
    light.rotation_euler = (np.radians(55.0), 0.0, np.radians(-35.0))
    scene.collection.objects.link(light)


def build_demo_scene(model: FaceModel, seconds: float) -> bpy.types.Object:
    """A fresh scene with the keyframed rig, camera and light; returns the armature."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.unit_settings.system = 'METRIC'
    scene.unit_settings.scale_length = 1.0
    scene.render.fps = FPS
    frame_count = max(2, int(round(seconds * FPS)))
    scene.frame_start, scene.frame_end = 1, frame_count

    armature_obj = create_rig(model, np.zeros(model.num_identity))
    psi, theta = demo_performance(model, frame_count)
    write_rig_animation(armature_obj, np.arange(1, frame_count + 1), psi, theta)
    eyes = [armature_obj.data.bones[name].head_local for name in ("eye_L", "eye_R")]
    _add_camera_and_light(scene, np.mean(eyes, axis=0) + [0.0, 0.0, -0.03])
    return armature_obj


def render_preview(scene: bpy.types.Scene, path: Path, frame: int, size: int = 512) -> None:
    """Render `frame` with Workbench (material colours, studio light) to a PNG."""
    scene.frame_set(frame)
    scene.render.engine = 'BLENDER_WORKBENCH'
    scene.display.shading.light = 'STUDIO'
    scene.display.shading.color_type = 'MATERIAL'
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = 'Standard'   # plain material colours
    scene.render.image_settings.file_format = 'PNG'
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "densecap_demo.blend")
    parser.add_argument("--preview", type=Path, default=ROOT / "out" / "densecap_preview.png")
    parser.add_argument("--preview-frame", type=int, default=72,
                        help="frame of the preview still (default: the smile)")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    try:
        model = load_face_model()
    except SolverError as exc:
        print(f"densecap demo: {exc}", file=sys.stderr)
        return 1
    build_demo_scene(model, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.preview.parent.mkdir(parents=True, exist_ok=True)
    scene = bpy.context.scene
    render_preview(scene, args.preview.resolve(), args.preview_frame)
    scene.frame_set(scene.frame_start)
    bpy.ops.wm.save_as_mainfile(filepath=str(args.out.resolve()), check_existing=False)
    print(f"wrote {args.out} ({scene.frame_end} frames at {FPS} fps) and {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
