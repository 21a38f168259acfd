"""Shared by the workflow tests: driving a tracking session headless, operator stand-ins."""

import time

import bpy

TALKING = "talking_2.mp4"


class Recorder:
    """Stands in for an instance of operator class `cls` when its `execute`/`modal` is
    called directly (bpy.ops turns an ERROR report into RuntimeError and hides the return
    value); `properties` are the operator's property values (all unset)."""

    def __init__(self, cls=None, **properties):
        self.__dict__.update(properties)
        self._cls = cls
        self.properties = self
        self.reports = []

    def __getattr__(self, name):
        attribute = getattr(self._cls, name)
        return attribute.__get__(self) if callable(attribute) else attribute

    def is_property_set(self, name):
        return False

    def report(self, levels, message):
        self.reports.append((set(levels), message))

    def messages(self, level):
        return [message for levels, message in self.reports if level in levels]


class Event:
    """A window-manager event for `modal()`."""

    def __init__(self, type, value='PRESS'):
        self.type, self.value = type, value


def run_session(session, timeout=600.0, until=None):
    """Call `session.step()` as the timer would until the job ends (or `until()` is true)."""
    deadline = time.monotonic() + timeout
    while session.step():
        if until is not None and until():
            return
        assert time.monotonic() < deadline, "tracking did not finish"
        time.sleep(0.02)


def fcurves(owner):
    from densecap.densecap_addon.animation import action_fcurves
    return {(fc.data_path, fc.array_index): fc for fc in action_fcurves(owner)}


def keys(fcurve):
    """(frames, values) of an F-curve's keyframes."""
    import numpy as np
    co = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    co = co.reshape(-1, 2)
    return co[:, 0], co[:, 1]


def load_and_track(footage_path, frame_end, **track):
    """Load Footage + Track Clip over frames 1..frame_end; returns the finished session."""
    from densecap.operators.session import active_session
    assert bpy.ops.densecap.load_footage(filepath=str(footage_path)) == {'FINISHED'}
    bpy.context.scene.frame_end = frame_end
    assert bpy.ops.densecap.track_clip(**track) == {'FINISHED'}
    session = active_session()
    run_session(session)
    return session
