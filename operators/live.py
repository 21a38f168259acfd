"""Live Preview: the webcam drives the face rig at camera rate through the real-time
tracker; Record keys what is seen, Calibrate Neutral makes the current face the zero.

The camera is read and tracked in worker threads (`tracking.live.LiveCapture`); a
`bpy.app.timers` function calls `LiveSession.step()`, which poses the rig with the newest
result and updates the viewport overlay. Tests call `step()` directly with a clip standing
in for the camera (the same code path: `open_footage` reads both).
"""

from __future__ import annotations

import time

import bpy
import numpy as np

from ..densecap_addon.live_view import LiveOverlay
from ..densecap_addon.performance_scene import apply_performance
from ..densecap_addon.preferences import tracking_preferences
from ..densecap_addon.rig import create_rig, pose_rig, rig_armature
from ..landmarks.footage import open_footage
from ..solver import load_face_model
from ..tracking.cli import make_tracker
from ..tracking.errors import USER_ERRORS, TrackingError
from ..tracking.live import LiveCapture, LiveFrame, subtract_neutral
from ..tracking.performance import PerformanceBuilder

TIMER_INTERVAL = 1.0 / 60.0
#: Custom property of the rig's armature: the calibrated neutral expression weights (E,).
NEUTRAL_PROPERTY = "densecap_neutral"

_active: dict[str, "LiveSession"] = {}


class LiveSession:
    """A running Live Preview: the capture, the rig it poses, the overlay, a recording."""

    def __init__(self, scene: bpy.types.Scene, armature: bpy.types.Object,
                 capture: LiveCapture):
        self.scene_name = scene.name
        self.armature_name = armature.name
        self.capture = capture
        self.overlay = LiveOverlay()
        self.applied = 0
        self.latest: LiveFrame | None = None
        self._started = time.monotonic()
        self._recording: list[tuple[LiveFrame, np.ndarray | None]] | None = None
        self._record_start_frame = 1
        self.message = ""

    @property
    def scene(self) -> bpy.types.Scene:
        return bpy.data.scenes[self.scene_name]

    @property
    def armature(self) -> bpy.types.Object | None:
        return bpy.data.objects.get(self.armature_name)

    @property
    def recording(self) -> bool:
        return self._recording is not None

    def start(self) -> "LiveSession":
        _active["session"] = self
        self.capture.start()
        self.overlay.show()
        if not bpy.app.timers.is_registered(_tick):
            bpy.app.timers.register(_tick, first_interval=TIMER_INTERVAL)
        return self

    def neutral(self) -> np.ndarray | None:
        armature = self.armature
        if armature is None or NEUTRAL_PROPERTY not in armature:
            return None
        return np.array(armature[NEUTRAL_PROPERTY], dtype=np.float64)   # a copy, not a view

    def step(self) -> bool:
        """Pose the rig with the newest tracked frame (UI thread); False once the capture
        has stopped (the source ended or failed: see `message`)."""
        frames = self.capture.drain()
        if self._recording is not None:
            self._recording += [(frame, self._calibrated(frame)) for frame in frames]
        if frames:
            self._apply(frames[-1])
        if not self.capture.running:
            self.message = (f"Live Preview stopped: {self.capture.error}" if self.capture.error
                            else "Live Preview: the source ended")
            return False
        return True

    def _apply(self, frame: LiveFrame) -> None:
        armature = self.armature
        if armature is None:                       # the user deleted the rig
            return
        result = frame.result
        if result.found:
            pose_rig(armature, self._calibrated(frame), result.theta)
        self.latest = frame
        self.applied += 1
        self.scene.densecap.live_fps = self.applied / max(time.monotonic() - self._started, 1e-9)
        self.overlay.update(frame.image, result.mu)
        armature.update_tag()

    def _calibrated(self, frame: LiveFrame) -> np.ndarray | None:
        """The frame's expression weights less the neutral; None without a face."""
        return subtract_neutral(frame.result.psi, self.neutral()) if frame.result.found else None

    def start_recording(self) -> None:
        self._recording = []
        self._record_start_frame = self.scene.frame_current

    def stop_recording(self) -> str:
        """Key the recorded frames on the rig (a new take replaces the rig's previous one).
        Returns what was done; TrackingError (nothing written) when no face was recorded."""
        recording, self._recording = self._recording or [], None
        tracker = self.capture.tracker
        if tracker is None or all(psi is None for _, psi in recording):
            raise TrackingError("no face was seen while recording; nothing written")
        scene = self.scene
        footage = self.capture.footage
        # A camera's frames are placed by capture time at the scene's rate, a file's by
        # their source frame (at the file's rate).
        webcam = footage.kind == "webcam"
        fps = scene.render.fps / scene.render.fps_base if webcam else footage.fps
        builder = PerformanceBuilder(tracker.expression_names, tracker.energy_names)
        first, last_index = recording[0][0], -1
        for frame, psi in recording:
            index = (int(round((frame.captured - first.captured) * fps)) if webcam
                     else frame.frame_index - first.frame_index)
            if index <= last_index:
                continue
            last_index = index
            result = frame.result
            if psi is None:
                builder.add(index)
            else:
                builder.add(index, psi, result.theta, result.landmark_error, result.energies)
        performance = builder.build(tracker.identity, tracker.camera, fps, footage.source,
                                    "realtime")
        neutral = self.neutral()
        armature = apply_performance(scene, load_face_model(), performance,
                                     first_frame=self._record_start_frame,
                                     replace=self.armature, set_frame_range=False)
        if neutral is not None:
            armature[NEUTRAL_PROPERTY] = neutral.tolist()
        self.armature_name = armature.name
        scene.densecap.rig = armature
        return (f"Recorded {len(performance.valid)} frames from frame "
                f"{self._record_start_frame} ({int(performance.valid.sum())} with a face)")

    def stop(self) -> str:
        """Stop the capture (a recording in progress is keyed first); returns what was done."""
        message = "Live Preview stopped"
        if self.recording and bpy.data.scenes.get(self.scene_name) is not None:
            self.step()                              # the frames tracked since the last poll
            try:
                message = self.stop_recording()
            except TrackingError as exc:
                message = str(exc)
        self._recording = None
        self.capture.stop()
        self.overlay.hide()
        _active.pop("session", None)
        return message


def active_live() -> LiveSession | None:
    return _active.get("session")


def _tick() -> float | None:
    session = active_live()
    if session is None:
        return None
    running = session.step()
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()
    if not running:
        print(f"DenseCap: {session.message}; {session.stop()}")
        return None
    return TIMER_INTERVAL


def shutdown() -> None:
    """Stop a running Live Preview and remove its timer (add-on unregister, tests)."""
    session = active_live()
    if session is not None:
        session.stop()
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)


def _camera_source(text: str) -> str | int:
    text = text.strip()
    return int(text) if text.isdigit() else bpy.path.abspath(text)


class DENSECAP_OT_live_start(bpy.types.Operator):
    """Drive the face rig live from the webcam (or a video standing in for it)"""

    bl_idname = "densecap.live_start"
    bl_label = "Start Live Preview"

    @classmethod
    def poll(cls, context):
        return active_live() is None

    def execute(self, context):
        settings = context.scene.densecap
        try:
            footage = open_footage(_camera_source(settings.live_source))
        except USER_ERRORS as exc:
            self.report({'ERROR'}, f"Cannot start Live Preview: {exc}")
            return {'CANCELLED'}
        armature = rig_armature(settings.rig)
        if armature is None:
            model = load_face_model()
            if context.mode != 'OBJECT':
                bpy.ops.object.mode_set(mode='OBJECT')
            armature = create_rig(model, np.zeros(model.num_identity),
                                  collection=context.collection)
            settings.rig = armature
        prefs = tracking_preferences(context)
        capture = LiveCapture(footage, lambda f: make_tracker(
            f, "realtime", settings.face_index if settings.face_index >= 0 else None,
            threads=prefs.threads, landmark_model=prefs.landmark_model),
            paced=footage.kind == "webcam" or not settings.live_every_frame)
        LiveSession(context.scene, armature, capture).start()
        self.report({'INFO'}, f"Live Preview from {footage.source}")
        return {'FINISHED'}


class DENSECAP_OT_live_stop(bpy.types.Operator):
    """Stop Live Preview (a recording in progress is keyed first)"""

    bl_idname = "densecap.live_stop"
    bl_label = "Stop Live Preview"

    @classmethod
    def poll(cls, context):
        return active_live() is not None

    def execute(self, context):
        self.report({'INFO'}, active_live().stop())
        return {'FINISHED'}


class DENSECAP_OT_live_record(bpy.types.Operator):
    """Start recording keyframes from Live Preview, or stop and key what was recorded"""

    bl_idname = "densecap.live_record"
    bl_label = "Record"

    @classmethod
    def poll(cls, context):
        return active_live() is not None

    def execute(self, context):
        session = active_live()
        if not session.recording:
            session.start_recording()
            self.report({'INFO'}, "Recording")
            return {'FINISHED'}
        try:
            message = session.stop_recording()
        except TrackingError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, message)
        return {'FINISHED'}


class DENSECAP_OT_live_calibrate_neutral(bpy.types.Operator):
    """Take the current face as neutral: its expression weights are subtracted from now on"""

    bl_idname = "densecap.live_calibrate_neutral"
    bl_label = "Calibrate Neutral"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return active_live() is not None

    def execute(self, context):
        session = active_live()
        frame = session.latest
        if frame is None or not frame.result.found or session.armature is None:
            self.report({'ERROR'}, "No face in view yet: look at the camera with a relaxed "
                                   "face and try again")
            return {'CANCELLED'}
        session.armature[NEUTRAL_PROPERTY] = np.asarray(frame.result.psi, float).tolist()
        self.report({'INFO'}, "Neutral face captured")
        return {'FINISHED'}
