"""A tracked Performance as a Blender scene: the rig with the fitted identity, its keyframes,
a fit-quality curve, the Performance itself stored in the .blend, and the tracking camera(s)
with the footage behind them. Used by the Track Clip operators and `densecap track --blend`.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..solver.conventions import CM_TO_M, MODEL_TO_BLENDER, MODEL_TO_OPENCV
from ..solver.face_model import FaceModel, load_face_model
from ..tracking.errors import TrackingError
from ..tracking.performance import Camera, Performance, load_performance
from .animation import remove_animation, write_curves, write_rig_animation
from .rig import create_rig

#: Sensor size used to turn the fitted focal length (pixels) into a lens (mm).
SENSOR_MM = 36.0
CAMERA_NAME = "DenseCapTrackingCamera"
#: Custom properties of the rig's armature object: the fit-quality curves (keyed, shown in
#: the Graph Editor) and the name of the Text datablock holding the stored Performance.
FIT_ERROR_PROPERTY = "densecap_fit_error"
FACE_FOUND_PROPERTY = "densecap_face_found"
PERFORMANCE_PROPERTY = "densecap_performance"
#: Scene frame of the stored Performance's source frame 0 (on the armature).
FIRST_FRAME_PROPERTY = "densecap_first_frame"
#: OpenCV camera axes -> Blender camera axes (Blender cameras look along -Z, up +Y).
_OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])


def set_camera_intrinsics(data: bpy.types.Camera, camera: Camera) -> None:
    """Lens and shift of a Blender camera from pinhole intrinsics in pixels."""
    size = max(camera.width, camera.height)
    data.sensor_fit = 'AUTO'
    data.sensor_width = SENSOR_MM
    data.lens = camera.focal_length * SENSOR_MM / size
    data.shift_x = (camera.width / 2.0 - camera.principal_point[0]) / size
    data.shift_y = (camera.principal_point[1] - camera.height / 2.0) / size


def camera_world_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) Blender world matrix of a camera with OpenCV extrinsics relative to the
    reference camera (camera 0): ``x_cam = rotation @ x_ref + translation`` (cm), where the
    reference camera is the solver's monocular one (model -> camera = `MODEL_TO_OPENCV`)."""
    model_to_camera = np.asarray(rotation, dtype=np.float64) @ MODEL_TO_OPENCV
    centre = -model_to_camera.T @ np.asarray(translation, dtype=np.float64)      # model, cm
    matrix = np.eye(4)
    matrix[:3, :3] = MODEL_TO_BLENDER @ model_to_camera.T @ _OPENCV_TO_BLENDER_CAMERA
    matrix[:3, 3] = MODEL_TO_BLENDER @ centre * CM_TO_M
    return matrix


def tracking_camera(scene: bpy.types.Scene, camera: Camera,
                    clip: bpy.types.MovieClip | None = None, name: str = CAMERA_NAME,
                    rotation: np.ndarray | None = None,
                    translation: np.ndarray | None = None,
                    active: bool = True) -> bpy.types.Object:
    """The camera object `name` (created, or updated if it exists) with `camera`'s
    intrinsics, placed by (rotation, translation) relative to the reference camera (default:
    it is the reference, at the origin of the solver's camera frame), `clip` behind it;
    it becomes the scene camera (and sets the render size) when `active` or the scene has
    none."""
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != 'CAMERA':
        obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    if scene.collection.objects.get(obj.name) is None and obj.name not in scene.objects:
        scene.collection.objects.link(obj)
    set_camera_intrinsics(obj.data, camera)
    rotation = np.eye(3) if rotation is None else rotation
    translation = np.zeros(3) if translation is None else translation
    obj.matrix_world = Matrix(camera_world_matrix(rotation, translation).tolist())
    if active or scene.camera is None:
        scene.camera = obj
        scene.render.resolution_x, scene.render.resolution_y = camera.width, camera.height
        scene.render.resolution_percentage = 100
    if clip is not None:
        obj.data.show_background_images = True
        backgrounds = obj.data.background_images
        background = next((b for b in backgrounds if b.source == 'MOVIE_CLIP'), None)
        background = background or backgrounds.new()
        background.source = 'MOVIE_CLIP'
        background.clip = clip
        background.alpha = 1.0
    return obj


def add_tracking_camera(scene: bpy.types.Scene, performance: Performance,
                        footage: Path | None = None) -> bpy.types.Object:
    """The fitted camera of `performance`, with the footage file as background when given."""
    clip = None
    if footage is not None and Path(footage).is_file():
        clip = bpy.data.movieclips.load(str(Path(footage).resolve()))
    return tracking_camera(scene, performance.camera, clip)


def store_performance(armature_obj: bpy.types.Object, performance: Performance) -> bpy.types.Text:
    """Keep `performance` in the .blend: its npz, base64 in lines, in a Text datablock named
    on the armature (`PERFORMANCE_PROPERTY`); a previous one is replaced."""
    with tempfile.TemporaryDirectory() as folder:
        path = performance.save(Path(folder) / "performance.npz")
        # 76-character lines: Blender's Text is slow with one very long line.
        payload = base64.encodebytes(path.read_bytes()).decode("ascii")
    previous = bpy.data.texts.get(armature_obj.get(PERFORMANCE_PROPERTY, ""))
    if previous is not None:
        bpy.data.texts.remove(previous)
    text = bpy.data.texts.new(f"{armature_obj.name}.performance")
    text.from_string(payload)
    text.use_fake_user = True
    armature_obj[PERFORMANCE_PROPERTY] = text.name
    return text


def stored_performance(armature_obj: bpy.types.Object | None) -> Performance | None:
    """The Performance stored on the rig by `store_performance`, None if there is none;
    TrackingError if the stored text is damaged."""
    if armature_obj is None:
        return None
    text = bpy.data.texts.get(armature_obj.get(PERFORMANCE_PROPERTY, ""))
    if text is None:
        return None
    try:
        payload = base64.b64decode("".join(text.as_string().split()), validate=True)
    except ValueError as exc:
        raise TrackingError(f"the performance stored in {text.name!r} is damaged: {exc}") from exc
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "performance.npz"
        path.write_bytes(payload)
        return load_performance(path)


def remove_rig(armature_obj: bpy.types.Object) -> None:
    """Delete a DenseCap rig: its objects, mesh, armature, actions and stored Performance."""
    text = bpy.data.texts.get(armature_obj.get(PERFORMANCE_PROPERTY, ""))
    if text is not None:
        bpy.data.texts.remove(text)
    for child in list(armature_obj.children):
        if child.type == 'MESH' and child.data.shape_keys is not None:
            remove_animation(child.data.shape_keys)
        mesh = child.data
        bpy.data.objects.remove(child)
        if mesh is not None and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    remove_animation(armature_obj)
    armature = armature_obj.data
    bpy.data.objects.remove(armature_obj)
    if armature.users == 0:
        bpy.data.armatures.remove(armature)


def apply_performance(scene: bpy.types.Scene, model: FaceModel, performance: Performance, *,
                      first_frame: int = 1, replace: bpy.types.Object | None = None,
                      collection: bpy.types.Collection | None = None,
                      set_frame_range: bool = True) -> bpy.types.Object:
    """Create the rig with the fitted identity and key its valid frames; returns the armature.

    Source frame i becomes scene frame ``i + first_frame``. Frames without a face are left
    as gaps on every channel; the fit quality is keyed on the armature's custom properties
    `FIT_ERROR_PROPERTY` (mean sigma-normalised landmark error, valid frames) and
    `FACE_FOUND_PROPERTY` (1/0 on every frame, constant interpolation). The Performance is
    stored in the .blend (`store_performance`). `replace` is a previous DenseCap rig: it is
    removed with its actions first and the new rig takes its name and collection.
    With `set_frame_range`, the scene's frame rate and range follow the Performance.
    """
    name = "DenseCapFace"
    if replace is not None:
        name = replace.name
        collection = collection or (replace.users_collection[0] if replace.users_collection
                                    else None)
        remove_rig(replace)
    armature = create_rig(model, performance.beta, name=name, collection=collection)
    armature.name = name
    valid = performance.valid
    frames = (performance.frame_indices + first_frame).astype(np.float64)
    if valid.any():
        write_rig_animation(armature, frames[valid], performance.psi[valid].astype(np.float64),
                            performance.theta[valid])
    armature[FIT_ERROR_PROPERTY] = 0.0
    armature[FACE_FOUND_PROPERTY] = 0.0
    curves = [(f'["{FACE_FOUND_PROPERTY}"]', 0, "Fit Quality", valid.astype(np.float64))]
    write_curves(armature, f"{name}Pose", frames, curves, interpolation='CONSTANT')
    if valid.any():
        write_curves(armature, f"{name}Pose", frames[valid],
                     [(f'["{FIT_ERROR_PROPERTY}"]', 0, "Fit Quality",
                       performance.landmark_error[valid].astype(np.float64))])
    store_performance(armature, performance)
    armature[FIRST_FRAME_PROPERTY] = int(first_frame)
    if set_frame_range:
        scene.render.fps, scene.render.fps_base = frame_rate(performance.fps)
        scene.frame_start = int(frames[0])
        scene.frame_end = int(frames[-1])
    return armature


def frame_rate(fps: float) -> tuple[int, float]:
    """Blender's (fps, fps_base) for a frame rate: 29.97 -> (30, 1.001)."""
    nominal = max(1, int(round(fps)))
    return nominal, nominal / fps if abs(nominal / fps - 1.0) > 1e-6 else 1.0


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
