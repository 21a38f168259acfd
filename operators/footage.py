"""Load Footage: a video, image sequence or still becomes the Movie Clip DenseCap tracks."""

from __future__ import annotations

import os
import re

import bpy

from ..densecap_addon.performance_scene import frame_rate, tracking_camera
from ..landmarks.footage import open_footage
from ..tracking.errors import USER_ERRORS
from ..tracking.performance import Camera

_LAST_DIGITS = re.compile(r"(\d+)(?!.*\d)")


def clip_footage_source(clip: bpy.types.MovieClip) -> str:
    """What `open_footage` reads for `clip`: its file, or for an image sequence a printf
    pattern over the numbered files (``frame_0001.png`` -> ``frame_%04d.png``)."""
    path = bpy.path.abspath(clip.filepath)
    if clip.source != 'SEQUENCE':
        return path
    folder, name = os.path.split(path)
    match = _LAST_DIGITS.search(name)
    if match is None:
        return path
    digits = match.group(1)
    return os.path.join(folder, f"{name[:match.start()]}%0{len(digits)}d{name[match.end():]}")


def show_clip_in_editors(context: bpy.types.Context, clip: bpy.types.MovieClip) -> None:
    """Every open Movie Clip Editor shows `clip` (none headless)."""
    for window in getattr(context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == 'CLIP_EDITOR':
                area.spaces.active.clip = clip


class DENSECAP_OT_load_footage(bpy.types.Operator):
    """Load a video, an image sequence or a still as the clip to track: the scene's frame
    rate and range follow it, and it is shown behind the tracking camera"""

    bl_idname = "densecap.load_footage"
    bl_label = "Load Footage"
    bl_options = {'REGISTER', 'UNDO'}

    filepath: bpy.props.StringProperty(name="File", subtype='FILE_PATH',
                                       options={'SKIP_SAVE'})
    filter_movie: bpy.props.BoolProperty(default=True, options={'HIDDEN', 'SKIP_SAVE'})
    filter_image: bpy.props.BoolProperty(default=True, options={'HIDDEN', 'SKIP_SAVE'})
    filter_folder: bpy.props.BoolProperty(default=True, options={'HIDDEN', 'SKIP_SAVE'})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        if not self.filepath:
            self.report({'ERROR'}, "No footage file chosen")
            return {'CANCELLED'}
        try:
            with open_footage(path) as footage:
                width, height, fps = footage.width, footage.height, footage.fps
        except USER_ERRORS as exc:
            self.report({'ERROR'}, f"Cannot load footage: {exc}")
            return {'CANCELLED'}
        try:
            clip = bpy.data.movieclips.load(path, check_existing=True)
        except RuntimeError as exc:
            self.report({'ERROR'}, f"Blender cannot read {path} as a movie clip: {exc}")
            return {'CANCELLED'}
        from ..tracking.landmark_tracker import default_focal   # loads the networks' code
        clip.frame_start = 1
        scene = context.scene
        scene.render.fps, scene.render.fps_base = frame_rate(fps)
        scene.frame_start, scene.frame_end = 1, max(1, clip.frame_duration)
        scene.densecap.clip = clip
        tracking_camera(scene, Camera(default_focal(width, height), width, height), clip)
        show_clip_in_editors(context, clip)
        self.report({'INFO'}, f"Loaded {clip.name}: {width}x{height}, {clip.frame_duration} "
                              f"frames at {fps:g} fps")
        return {'FINISHED'}
