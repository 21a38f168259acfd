"""A tracked Performance as a Blender scene: the rig with the fitted identity, its keyframes,
and the tracking camera with the footage behind it. Used by `densecap track --blend`."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..solver.face_model import FaceModel, load_face_model
from ..tracking.performance import Performance
from .animation import write_rig_animation
from .rig import create_rig

#: Sensor size used to turn the fitted focal length (pixels) into a lens (mm).
SENSOR_MM = 36.0


def add_tracking_camera(scene: bpy.types.Scene, performance: Performance,
                        footage: Path | None = None) -> bpy.types.Object:
    """The fitted camera: at the origin of the solver's camera frame (OpenCV, looking along
    model -Z = Blender +Y, up +Z), its lens from the fitted focal length, and the footage
    as background when given."""
    camera = performance.camera
    data = bpy.data.cameras.new("DenseCapTrackingCamera")
    data.sensor_fit = 'AUTO'
    data.sensor_width = SENSOR_MM
    data.lens = camera.focal_length * SENSOR_MM / max(camera.width, camera.height)
    data.shift_x = (camera.width / 2.0 - camera.principal_point[0]) / max(camera.width, camera.height)
    data.shift_y = (camera.principal_point[1] - camera.height / 2.0) / max(camera.width, camera.height)
    obj = bpy.data.objects.new("DenseCapTrackingCamera", data)
    obj.rotation_euler = (np.pi / 2.0, 0.0, 0.0)
    scene.collection.objects.link(obj)
    scene.camera = obj
    scene.render.resolution_x, scene.render.resolution_y = camera.width, camera.height
    scene.render.resolution_percentage = 100
    if footage is not None and Path(footage).is_file():
        clip = bpy.data.movieclips.load(str(Path(footage).resolve()))
        data.show_background_images = True
        background = data.background_images.new()
        background.source = 'MOVIE_CLIP'
        background.clip = clip
        background.alpha = 1.0
    return obj


def apply_performance(scene: bpy.types.Scene, model: FaceModel,
                      performance: Performance) -> bpy.types.Object:
    """Create the rig with the fitted identity and key its valid frames (frames without a
    face are left as gaps). Source frame i becomes scene frame i + 1. Returns the armature."""
    armature = create_rig(model, performance.beta)
    valid = performance.valid
    frames = performance.frame_indices[valid] + 1
    if valid.any():
        write_rig_animation(armature, frames, performance.psi[valid].astype(np.float64),
                            performance.theta[valid])
    scene.render.fps = max(1, int(round(performance.fps)))
    scene.frame_start = int(performance.frame_indices[0]) + 1
    scene.frame_end = int(performance.frame_indices[-1]) + 1
    return armature


def write_performance_blend(performance: Performance, path: Path) -> None:
    """A new .blend at `path` with the animated rig and the tracking camera."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.unit_settings.system = 'METRIC'
    apply_performance(scene, load_face_model(), performance)
    add_tracking_camera(scene, performance, Path(performance.source))
    light = bpy.data.objects.new("DenseCapLight", bpy.data.lights.new("DenseCapLight", 'SUN'))
    light.rotation_euler = (np.radians(60.0), 0.0, np.radians(-20.0))
    scene.collection.objects.link(light)
    scene.frame_set(scene.frame_start)
    bpy.ops.wm.save_as_mainfile(filepath=str(Path(path).resolve()), check_existing=False)
