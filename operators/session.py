"""A background tracking job seen from Blender's UI thread (shared by Track Clip and Track
Cameras): progress into `scene.densecap` and the status bar, the result written on finish.

`TrackingSession.step()` drains the job's events; a `bpy.app.timers` function calls it
while Blender runs (tests call it directly: timers and modal operators do not run headless).
One session runs at a time.
"""

from __future__ import annotations

import time
from typing import Callable

import bpy

from ..tracking.cli import _ranges
from ..tracking.errors import USER_ERRORS, TrackingError
from ..tracking.job import BackgroundJob, JobFinished
from ..tracking.progress import Progress, TerminalProgress

TIMER_INTERVAL = 0.1
#: ``finish(scene, run) -> message``: validates then writes the result (raises a user error,
#: having written nothing, when there is nothing to write).
Finish = Callable[[bpy.types.Scene, object], str]

_active: dict[str, "TrackingSession"] = {}


class TrackingSession:
    """One `BackgroundJob` and what the UI does with its events.

    state : 'RUNNING', then 'FINISHED', 'CANCELLED' (frames done were written) or 'FAILED'
    message : what to report when it ends
    """

    def __init__(self, scene: bpy.types.Scene, job: BackgroundJob, finish: Finish,
                 label: str = "Tracking"):
        self.scene_name = scene.name
        self.job = job
        self.label = label
        self._finish = finish
        self._progress_format = TerminalProgress(label=f"DenseCap: {label.lower()}", width=20)
        self.state = 'RUNNING'
        self.message = ""
        self.run = None
        self.cancel_requested = False

    @property
    def scene(self) -> bpy.types.Scene | None:
        return bpy.data.scenes.get(self.scene_name)

    @property
    def done(self) -> bool:
        return self.state != 'RUNNING'

    def start(self) -> "TrackingSession":
        """Start the job and the timer that drains it."""
        if active_session() is not None:
            raise TrackingError("a tracking job is already running (cancel it first)")
        settings = self.scene.densecap
        settings.frames_done = settings.frames_total = 0
        settings.tracking_fps, settings.seconds_left = 0.0, -1.0
        _active["session"] = self
        self.job.start()
        if not bpy.app.timers.is_registered(_drain):
            bpy.app.timers.register(_drain, first_interval=TIMER_INTERVAL)
        return self

    def cancel(self) -> None:
        """Stop after the current frame; the frames done are still written."""
        self.cancel_requested = True
        self.job.cancel()

    def step(self) -> bool:
        """Handle the events posted since the last call (UI thread); True while running."""
        for event in self.job.events():
            if isinstance(event, Progress):
                self._show_progress(event)
            elif isinstance(event, JobFinished):
                self._finished(event.run)
            else:
                self._end('FAILED', f"{self.label} failed: {event.message}")
        return not self.done

    def _show_progress(self, progress: Progress) -> None:
        settings = self.scene.densecap
        settings.frames_done = progress.frames_done
        settings.frames_total = progress.frames_total or 0
        settings.tracking_fps = progress.fps
        left = progress.seconds_left
        settings.seconds_left = -1.0 if left is None else left
        _status_bar(self._progress_format.format(progress) + "  (Esc: cancel, keeps the frames "
                                                               "done)")

    def _finished(self, run) -> None:
        self.run = run
        scene = self.scene
        try:
            message = self._finish(scene, run)
        except USER_ERRORS as exc:
            self._end('FAILED', f"{self.label}: {exc}")
            return
        self._end('CANCELLED' if run.cancelled else 'FINISHED', message)

    def _end(self, state: str, message: str) -> None:
        self.state, self.message = state, message
        scene = self.scene
        if scene is not None:
            scene.densecap.status = message
        _active.pop("session", None)
        _status_bar(None)
        print(f"DenseCap: {message}")


def active_session() -> TrackingSession | None:
    """The running session, if any."""
    return _active.get("session")


def gap_ranges(frames) -> str:
    """Scene frames without a face as ranges ("3-5, 9"), "" when none."""
    return _ranges(frames) if len(frames) else ""


def _drain() -> float | None:
    session = active_session()
    if session is None:
        return None
    running = session.step()
    _redraw()
    return TIMER_INTERVAL if running else None


def _status_bar(text: str | None) -> None:
    """Show `text` in every window's status bar (None clears it); headless: nothing."""
    window_manager = bpy.context.window_manager
    for window in getattr(window_manager, "windows", ()):
        window.workspace.status_text_set(text)


def _redraw() -> None:
    window_manager = bpy.context.window_manager
    for window in getattr(window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type in {'VIEW_3D', 'CLIP_EDITOR'}:
                area.tag_redraw()


def shutdown() -> None:
    """Cancel a running session and remove the timer (add-on unregister, tests)."""
    session = active_session()
    if session is not None:
        session.job.cancel()
        session.job.join(10.0)
        _active.pop("session", None)
    if bpy.app.timers.is_registered(_drain):
        bpy.app.timers.unregister(_drain)


class DENSECAP_OT_cancel_tracking(bpy.types.Operator):
    """Stop tracking after the current frame; the frames tracked so far are kept"""

    bl_idname = "densecap.cancel_tracking"
    bl_label = "Cancel Tracking"

    @classmethod
    def poll(cls, context):
        return active_session() is not None

    def execute(self, context):
        active_session().cancel()
        self.report({'INFO'}, "Cancelling: the frames tracked so far will be kept")
        return {'FINISHED'}
