"""Live Preview driven by a recorded clip standing in for the webcam (the same code path):
the rig follows, Calibrate Neutral subtracts, Record writes keys; no webcam is an error."""

import time

import numpy as np
import pytest

import bpy
from densecap.densecap_addon.performance_scene import stored_performance
from densecap.densecap_addon.rig import rig_armature, rig_mesh
from densecap.operators.live import (DENSECAP_OT_live_start, NEUTRAL_PROPERTY, active_live)
from densecap.tracking.live import subtract_neutral
from workflow_helpers import Recorder, fcurves, keys

CLIP = "talking_1.mp4"


def _step_until(session, condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        running = session.step()
        assert running or condition(), session.message
        assert time.monotonic() < deadline, "live preview made no progress"
        time.sleep(0.01)


def _shape_key_values(rig):
    blocks = rig_mesh(rig).data.shape_keys.key_blocks
    return np.array([block.value for block in blocks[1:]])


def test_live_preview_from_a_clip_poses_calibrates_and_records(registered, shared_dir):
    settings = bpy.context.scene.densecap
    settings.live_source = str(shared_dir / "footage" / CLIP)
    settings.live_every_frame = True       # no frame drops: the test does not race the clock
    assert bpy.ops.densecap.live_start() == {'FINISHED'}
    session = active_live()
    rig = rig_armature(settings.rig)                  # made for the preview: none existed
    assert rig is not None and not session.overlay.shown     # no drawing headless
    assert not _shape_key_values(rig).any()
    _step_until(session, lambda: session.latest is not None and session.latest.result.found)
    assert _shape_key_values(rig).max() > 0.01        # the rig follows the face
    height, width = session.overlay.image.shape[:2]
    points = session.overlay.points                  # landmarks in overlay pixels, y up
    assert width == 320 and len(points) >= 320    # the default network's 320 (MediaPipe 478)
    assert points.min() >= 0 and points[:, 0].max() <= width and points[:, 1].max() <= height

    assert bpy.ops.densecap.live_calibrate_neutral() == {'FINISHED'}
    neutral = np.array(rig[NEUTRAL_PROPERTY])
    np.testing.assert_allclose(neutral, session.latest.result.psi)
    seen = session.applied
    _step_until(session, lambda: session.applied > seen and session.latest.result.found)
    np.testing.assert_allclose(_shape_key_values(rig),
                               subtract_neutral(session.latest.result.psi, neutral), atol=1e-6)

    bpy.context.scene.frame_current = 10
    assert bpy.ops.densecap.live_record() == {'FINISHED'} and session.recording
    seen = session.applied
    _step_until(session, lambda: session.applied >= seen + 2)
    assert bpy.ops.densecap.live_record() == {'FINISHED'} and not session.recording
    rig = rig_armature(settings.rig)
    performance = stored_performance(rig)
    assert performance.valid.sum() >= 2 and performance.source.endswith(CLIP)
    shape_curves = fcurves(rig_mesh(rig).data.shape_keys)
    frames, values = keys(shape_curves[('key_blocks["jawOpen"].value', 0)])
    # Every Frame: each source frame was tracked, keyed at its place from the record frame.
    np.testing.assert_array_equal(performance.frame_indices, np.arange(performance.num_frames))
    np.testing.assert_array_equal(frames, 10 + performance.frame_indices[performance.valid])
    assert performance.fps == pytest.approx(30.0)
    assert np.all((values >= 0) & (values <= 1))
    np.testing.assert_allclose(rig[NEUTRAL_PROPERTY], neutral)   # kept on the new take
    assert bpy.ops.densecap.live_stop() == {'FINISHED'}
    assert active_live() is None and not session.capture.running


def test_missing_webcam_is_a_clear_error(registered):
    bpy.context.scene.densecap.live_source = "9"
    operator = Recorder(DENSECAP_OT_live_start)
    assert DENSECAP_OT_live_start.execute(operator, bpy.context) == {'CANCELLED'}
    assert "webcam 9 could not be opened" in operator.messages('ERROR')[0]
    assert active_live() is None and not bpy.data.objects


def test_record_without_a_face_writes_nothing(registered, tmp_path):
    import cv2
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((64, 64, 3), np.uint8))
    settings = bpy.context.scene.densecap
    settings.live_source = str(black)
    assert bpy.ops.densecap.live_start() == {'FINISHED'}
    session = active_live()
    session.start_recording()
    _step_until(session, lambda: session.applied >= 1)
    with pytest.raises(RuntimeError, match="no face was seen"):
        bpy.ops.densecap.live_record()
    assert not bpy.data.actions and stored_performance(rig_armature(settings.rig)) is None


def test_a_recording_is_keyed_when_the_source_ends(registered, shared_dir):
    from densecap.operators.live import _tick
    settings = bpy.context.scene.densecap
    settings.live_source = str(shared_dir / "footage" / CLIP)
    settings.live_every_frame = True
    assert bpy.ops.densecap.live_start() == {'FINISHED'}
    session = active_live()
    session.start_recording()
    _step_until(session, lambda: session.applied >= 1)
    session.capture.stop()                      # as when a clip ends or a camera unplugs
    assert _tick() is None and active_live() is None
    performance = stored_performance(rig_armature(settings.rig))
    assert performance is not None and performance.valid.sum() >= 1
