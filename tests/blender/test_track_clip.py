"""Load Footage + Track Clip on real footage: keyframes, gaps, fit quality, cancel, re-track,
save/reload, and every user error cancelled with nothing written."""

import cv2
import numpy as np
import pytest

import bpy
from densecap.densecap_addon.performance_scene import (FACE_FOUND_PROPERTY, FIT_ERROR_PROPERTY,
                                                       stored_performance)
from densecap.densecap_addon.rig import rig_armature, rig_mesh
from densecap.operators import session as session_module
from densecap.operators.session import active_session
from densecap.operators.track import DENSECAP_OT_track_clip
from densecap.solver.conventions import JOINT_NAMES
from workflow_helpers import (TALKING, Event, Recorder, fcurves, keys, load_and_track,
                              run_session)


def test_track_clip_keys_the_valid_frames_and_survives_reload(registered, tracked_blend,
                                                             face_model):
    path, run = tracked_blend
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    rig = rig_armature(scene.densecap.rig)
    assert rig is not None and scene.densecap.clip is not None
    performance = run.performance
    assert performance.num_frames == 12 and performance.valid.all()
    frames = performance.frame_indices + 1
    # The stored Performance came back with the file.
    stored = stored_performance(rig)
    np.testing.assert_array_equal(stored.psi, performance.psi)
    np.testing.assert_array_equal(stored.theta, performance.theta)
    np.testing.assert_allclose(np.asarray(rig["densecap_beta"]), performance.beta)
    # 55 shape-key curves keyed on every valid frame, values finite and in [0, 1].
    shape_curves = fcurves(rig_mesh(rig).data.shape_keys)
    assert len(shape_curves) == face_model.num_expressions
    for index, name in enumerate(face_model.expression_names):
        key_frames, values = keys(shape_curves[(f'key_blocks["{name}"].value', 0)])
        np.testing.assert_array_equal(key_frames, frames)
        assert np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0
        np.testing.assert_allclose(values, performance.psi[:, index], atol=1e-6)
    assert max(np.ptp(keys(c)[1]) for c in shape_curves.values()) > 0.01   # it moves
    rig_curves = fcurves(rig)
    for name in JOINT_NAMES:
        for component in range(4):
            key_frames, values = keys(rig_curves[(f'pose.bones["{name}"].rotation_quaternion',
                                                  component)])
            np.testing.assert_array_equal(key_frames, frames)
            assert np.all(np.isfinite(values))
    # The fit-quality curves, visible in the Graph Editor.
    _, error = keys(rig_curves[(f'["{FIT_ERROR_PROPERTY}"]', 0)])
    np.testing.assert_allclose(error, performance.landmark_error, rtol=1e-6)
    _, found = keys(rig_curves[(f'["{FACE_FOUND_PROPERTY}"]', 0)])
    assert np.all(found == 1.0)
    # The camera the fit set, with the footage behind it.
    camera = scene.camera
    assert camera.data.background_images[0].clip == scene.densecap.clip
    focal = camera.data.lens / camera.data.sensor_width * max(performance.camera.width,
                                                              performance.camera.height)
    assert focal == pytest.approx(performance.camera.focal_length, rel=1e-5)
    assert scene.densecap.gaps == "" and "Tracked 12 frames" in scene.densecap.status


def test_load_footage_sets_scene_and_camera(registered, shared_dir):
    assert bpy.ops.densecap.load_footage(
        filepath=str(shared_dir / "footage" / TALKING)) == {'FINISHED'}
    scene = bpy.context.scene
    clip = scene.densecap.clip
    assert (scene.render.fps, scene.frame_start, scene.frame_end) == (25, 1, 125)
    assert clip.frame_duration == 125 and tuple(clip.size) == (590, 590)
    assert scene.camera.data.background_images[0].clip == clip
    assert scene.camera.data.lens == pytest.approx(36.0)      # focal = image size


def test_cancel_half_way_keeps_exactly_the_frames_done(registered, shared_dir, face_model):
    assert bpy.ops.densecap.load_footage(
        filepath=str(shared_dir / "footage" / TALKING)) == {'FINISHED'}
    scene = bpy.context.scene
    scene.frame_end = 120     # long enough that Esc lands well before the end
    assert bpy.ops.densecap.track_clip() == {'FINISHED'}
    session = active_session()
    assert bpy.app.timers.is_registered(session_module._drain)
    run_session(session, until=lambda: scene.densecap.frames_done >= 8)
    # Esc, as the modal operator receives it.
    operator = Recorder(_session=session)
    assert DENSECAP_OT_track_clip.modal(operator, bpy.context, Event('ESC')) == {'PASS_THROUGH'}
    run_session(session)
    assert DENSECAP_OT_track_clip.modal(operator, bpy.context, Event('MOUSEMOVE')) == {'FINISHED'}
    assert session.state == 'CANCELLED' and operator.messages('WARNING')
    assert session_module._drain() is None           # the timer stops itself
    run = session.run
    assert run.cancelled and 8 <= run.frames_done < 120
    assert run.performance.num_frames == run.frames_done
    rig = rig_armature(scene.densecap.rig)
    done_frames = np.arange(1, run.frames_done + 1)
    for fcurve in fcurves(rig_mesh(rig).data.shape_keys).values():
        np.testing.assert_array_equal(keys(fcurve)[0], done_frames)
    assert (scene.frame_start, scene.frame_end) == (1, 120)     # the user's range is kept
    assert active_session() is None

    # Tracking again replaces the previous take cleanly: one rig, its two actions, one text.
    scene.frame_start, scene.frame_end = 3, 6
    assert bpy.ops.densecap.track_clip() == {'FINISHED'}
    run_session(active_session())
    rigs = [o for o in bpy.data.objects if rig_armature(o) is o]
    assert len(rigs) == 1 and rigs[0].name == "DenseCapFace"
    assert sorted(a.name for a in bpy.data.actions) == ["DenseCapFaceExpressions",
                                                         "DenseCapFacePose"]
    assert len(bpy.data.texts) == 1 and len(bpy.data.meshes) == 1
    for fcurve in fcurves(rig_mesh(rigs[0]).data.shape_keys).values():
        np.testing.assert_array_equal(keys(fcurve)[0], [3, 4, 5, 6])
    assert stored_performance(rigs[0]).frame_indices.tolist() == [2, 3, 4, 5]


def _sequence(folder, source, frames, black):
    """An image sequence of `source`'s first frames, the ones in `black` blacked out."""
    folder.mkdir()
    capture = cv2.VideoCapture(str(source))
    for index in range(frames):
        ok, image = capture.read()
        assert ok
        if index in black:
            image[:] = 0
        cv2.imwrite(str(folder / f"frame_{index + 1:04d}.png"), image)
    capture.release()
    return folder / "frame_0001.png"


def test_frames_without_a_face_are_gaps_and_listed(registered, shared_dir, tmp_path):
    first = _sequence(tmp_path / "seq", shared_dir / "footage" / TALKING, 8, black={3, 4})
    session = load_and_track(first, 8)
    assert session.state == 'FINISHED', session.message
    scene = bpy.context.scene
    assert scene.densecap.clip.source == 'SEQUENCE'
    assert scene.densecap.gaps == "4-5" and "4-5" in session.message
    rig = rig_armature(scene.densecap.rig)
    for fcurve in fcurves(rig_mesh(rig).data.shape_keys).values():
        np.testing.assert_array_equal(keys(fcurve)[0], [1, 2, 3, 6, 7, 8])
    found_frames, found = keys(fcurves(rig)[(f'["{FACE_FOUND_PROPERTY}"]', 0)])
    np.testing.assert_array_equal(found_frames, np.arange(1, 9))
    np.testing.assert_array_equal(found, [1, 1, 1, 0, 0, 1, 1, 1])


def _nothing_written():
    return (not any(rig_armature(o) for o in bpy.data.objects) and not bpy.data.actions
            and not bpy.data.texts)


def test_user_errors_cancel_and_write_nothing(registered, shared_dir, tmp_path):
    # No clip selected.
    operator = Recorder(DENSECAP_OT_track_clip)
    assert DENSECAP_OT_track_clip.execute(operator, bpy.context) == {'CANCELLED'}
    assert "load footage first" in operator.messages('ERROR')[0]
    # Unreadable file.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(RuntimeError, match="Cannot load footage"):
        bpy.ops.densecap.load_footage(filepath=str(broken))
    assert bpy.context.scene.densecap.clip is None and not bpy.data.movieclips
    # The clip's file went away after loading.
    moved = tmp_path / "clip.mp4"
    moved.write_bytes((shared_dir / "footage" / TALKING).read_bytes())
    assert bpy.ops.densecap.load_footage(filepath=str(moved)) == {'FINISHED'}
    moved.unlink()
    operator = Recorder(DENSECAP_OT_track_clip)
    assert DENSECAP_OT_track_clip.execute(operator, bpy.context) == {'CANCELLED'}
    assert "footage file not found" in operator.messages('ERROR')[0]
    assert active_session() is None and _nothing_written()
    # No face in the clip: the job runs, then reports and writes nothing.
    first = _sequence(tmp_path / "dark", shared_dir / "footage" / TALKING, 3, black={0, 1, 2})
    session = load_and_track(first, 3)
    assert session.state == 'FAILED' and "no face found" in session.message
    operator = Recorder(_session=session)         # the modal operator ends with the error
    assert DENSECAP_OT_track_clip.modal(operator, bpy.context, Event('TIMER')) == {'CANCELLED'}
    assert "no face found" in operator.messages('ERROR')[0]
    assert _nothing_written() and active_session() is None


def test_opening_another_file_stops_tracking(registered, tracked_blend, shared_dir):
    assert bpy.ops.densecap.load_footage(
        filepath=str(shared_dir / "footage" / TALKING)) == {'FINISHED'}
    bpy.context.scene.frame_end = 100
    assert bpy.ops.densecap.track_clip() == {'FINISHED'}
    job = active_session().job
    bpy.ops.wm.open_mainfile(filepath=str(tracked_blend[0]))
    assert active_session() is None and not job.running
    assert not bpy.app.timers.is_registered(session_module._drain)
