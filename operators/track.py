"""Track Clip (one clip) and Track Cameras (several clips of one performance), in the
background with progress and cancel; the result becomes the animated rig.

Both start a `session.TrackingSession`; while Blender runs, the operator stays modal only to
catch Esc and to report the outcome (the work and the writing happen in the session's
timer). `execute` (scripts, tests) starts the same session and returns at once.
"""

from __future__ import annotations

from functools import partial

import bpy
import numpy as np

from ..densecap_addon.performance_scene import CAMERA_NAME, apply_performance, tracking_camera
from ..densecap_addon.preferences import MODE_ITEMS, tracking_preferences
from ..densecap_addon.rig import rig_armature
from ..landmarks.footage import open_footage
from ..solver import load_face_model
from ..tracking.cli import make_tracker
from ..tracking.errors import USER_ERRORS, TrackingError
from ..tracking.job import BackgroundJob, TrackingJob
from .footage import clip_footage_source
from .session import TrackingSession, active_session, gap_ranges


def _write_run(scene: bpy.types.Scene, run, first_frame: int, set_frame_range: bool):
    """Validate a run, then write it as the scene's rig (replacing the previous one)."""
    performance = run.performance
    if performance is None:
        raise TrackingError("cancelled before the first frame; nothing written" if run.cancelled
                            else f"no frame was tracked ({run.error or 'empty footage'})")
    if not performance.valid.any():
        raise TrackingError(f"no face found in the {performance.num_frames} frames of "
                            f"{performance.source}; nothing written")
    model = load_face_model()
    settings = scene.densecap
    previous = rig_armature(settings.rig)
    armature = apply_performance(scene, model, performance, first_frame=first_frame,
                                 replace=previous, set_frame_range=set_frame_range)
    settings.rig = armature
    gaps = gap_ranges(performance.invalid_frames + first_frame)
    settings.gaps = gaps
    state = " (cancelled: kept the frames done)" if run.cancelled else ""
    stopped = f"; stopped early: {run.error}" if run.error else ""
    return (f"Tracked {run.frames_done} frames in {run.seconds:.1f} s "
            f"({run.frames_done / max(run.seconds, 1e-9):.1f} fps){state}; frames without a "
            f"face: {gaps or 'none'}{stopped}")


def _finish_clip(scene, run, clip_name: str, first_frame: int) -> str:
    message = _write_run(scene, run, first_frame, set_frame_range=False)
    tracking_camera(scene, run.performance.camera, bpy.data.movieclips.get(clip_name))
    return message


def _finish_views(scene, run, clip_names: tuple[str, ...]) -> str:
    if run.error and run.performance is None:
        raise TrackingError(run.error)
    message = _write_run(scene, run, 1, set_frame_range=True)
    for index, (pose, clip_name) in enumerate(zip(run.cameras, clip_names)):
        clip = bpy.data.movieclips.get(clip_name)
        if clip is not None:
            clip.frame_start = 1 + int(pose.offset)
        tracking_camera(scene, pose.camera, clip,
                        name=CAMERA_NAME if index == 0 else f"{CAMERA_NAME}.{index}",
                        rotation=np.asarray(pose.rotation), translation=np.asarray(pose.translation),
                        active=index == 0)
    return f"{message}; {len(run.cameras)} cameras placed"


class _TrackOperator:
    """Shared modal part: Esc cancels (keeping the frames done), the end is reported."""

    _session: TrackingSession | None = None

    def start(self, context) -> TrackingSession | None:
        """Validate and start the session; None (with an ERROR report) on user error."""
        raise NotImplementedError

    def execute(self, context):
        return {'FINISHED'} if self.start(context) is not None else {'CANCELLED'}

    def invoke(self, context, event):
        self._session = self.start(context)
        if self._session is None:
            return {'CANCELLED'}
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.25, window=context.window)  # wakes modal
        window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        session = self._session
        if event.type == 'ESC' and event.value == 'PRESS' and not session.done:
            session.cancel()
            self.report({'INFO'}, "Cancelling: the frames tracked so far will be kept")
        if not session.done:
            return {'PASS_THROUGH'}
        if getattr(self, "_timer", None) is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if session.state == 'FAILED':
            self.report({'ERROR'}, session.message)
            return {'CANCELLED'}
        self.report({'WARNING'} if session.state == 'CANCELLED' else {'INFO'}, session.message)
        return {'FINISHED'}

    def _begin(self, context, job: BackgroundJob, finish, label: str):
        try:
            return TrackingSession(context.scene, job, finish, label).start()
        except TrackingError as exc:
            self.report({'ERROR'}, str(exc))
            return None

    def _mode(self, context) -> str:
        if self.properties.is_property_set("mode"):
            return self.mode.lower()
        return tracking_preferences(context).default_mode


class DENSECAP_OT_track_clip(_TrackOperator, bpy.types.Operator):
    """Track the face in the clip over the scene's frame range in the background (Esc
    cancels and keeps the frames done), then animate the face rig with the result"""

    bl_idname = "densecap.track_clip"
    bl_label = "Track Clip"

    mode: bpy.props.EnumProperty(name="Mode", items=MODE_ITEMS, options={'SKIP_SAVE'},
                                 description="Default: the add-on preferences' mode")

    def start(self, context):
        scene = context.scene
        settings = scene.densecap
        clip = getattr(context.space_data, "clip", None) or settings.clip   # a Clip Editor's
        if clip is None:
            self.report({'ERROR'}, "No clip to track: load footage first (Load Footage)")
            return None
        if active_session() is not None:
            self.report({'ERROR'}, "A tracking job is already running (cancel it first)")
            return None
        source = clip_footage_source(clip)
        start = max(scene.frame_start - clip.frame_start, 0)
        end = scene.frame_end - clip.frame_start + 1
        if end <= start:
            self.report({'ERROR'}, f"The scene's frame range {scene.frame_start}-"
                                   f"{scene.frame_end} does not cover clip {clip.name!r}")
            return None
        try:
            open_footage(source, start=start, end=end).close()    # a clear error, at once
        except USER_ERRORS as exc:
            self.report({'ERROR'}, f"Cannot track {clip.name!r}: {exc}")
            return None
        mode = self._mode(context)
        prefs = tracking_preferences(context)
        face = settings.face_index if settings.face_index >= 0 else None
        job = TrackingJob(lambda: open_footage(source, start=start, end=end),
                          lambda footage: make_tracker(footage, mode, face, threads=prefs.threads,
                                                       landmark_model=prefs.landmark_model),
                          mode=mode)
        finish = partial(_finish_clip, clip_name=clip.name, first_frame=clip.frame_start)
        return self._begin(context, job, finish, "Tracking")


class DENSECAP_OT_track_cameras(_TrackOperator, bpy.types.Operator):
    """Track several clips of the same performance together (offline multi-view fit): one
    identity, one animation, one Blender camera per clip placed where the fit found it"""

    bl_idname = "densecap.track_cameras"
    bl_label = "Track Cameras"

    def start(self, context):
        settings = context.scene.densecap
        views = [view for view in settings.views if view.clip is not None]
        if not views:
            self.report({'ERROR'}, "No cameras: add a clip per camera to the list first")
            return None
        if len(views) != len(settings.views):
            self.report({'ERROR'}, "Every camera in the list needs a clip")
            return None
        if active_session() is not None:
            self.report({'ERROR'}, "A tracking job is already running (cancel it first)")
            return None
        from ..tracking import multiview
        sources = [clip_footage_source(view.clip) for view in views]
        try:
            for source in sources:
                open_footage(source).close()
        except USER_ERRORS as exc:
            self.report({'ERROR'}, f"Cannot track the cameras: {exc}")
            return None
        offsets = [view.offset for view in views]
        face = settings.face_index if settings.face_index >= 0 else None
        job = BackgroundJob(lambda progress, cancel: multiview.track_multiview(
            sources, offsets, face_index=face, progress=progress, cancel=cancel))
        finish = partial(_finish_views, clip_names=tuple(view.clip.name for view in views))
        return self._begin(context, job, finish, "Tracking cameras")


class DENSECAP_OT_add_view(bpy.types.Operator):
    """Add a camera (a clip and its frame offset) to the multi-view list"""

    bl_idname = "densecap.add_view"
    bl_label = "Add Camera"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        settings = context.scene.densecap
        view = settings.views.add()
        view.clip = settings.clip
        settings.active_view = len(settings.views) - 1
        return {'FINISHED'}


class DENSECAP_OT_remove_view(bpy.types.Operator):
    """Remove a camera from the multi-view list"""

    bl_idname = "densecap.remove_view"
    bl_label = "Remove Camera"
    bl_options = {'REGISTER', 'UNDO'}

    index: bpy.props.IntProperty(default=-1, options={'SKIP_SAVE'})

    def execute(self, context):
        settings = context.scene.densecap
        index = self.index if self.index >= 0 else settings.active_view
        if not 0 <= index < len(settings.views):
            self.report({'ERROR'}, "No camera to remove")
            return {'CANCELLED'}
        settings.views.remove(index)
        settings.active_view = min(settings.active_view, max(len(settings.views) - 1, 0))
        return {'FINISHED'}
