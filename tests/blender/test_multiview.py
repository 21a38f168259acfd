"""Track Cameras: the Blender side of the multi-view fit (cameras placed, one animation).

The fitter itself (`densecap.tracking.multiview`) is tested in tests/unit; here its
`track_multiview` is replaced by one returning a `MultiviewRun` made of a real tracked
Performance and known camera poses, run through the same background session as Track Clip.
"""

from dataclasses import replace

import numpy as np
import pytest

import bpy
from mathutils import Vector
from densecap.densecap_addon.performance_scene import CAMERA_NAME, stored_performance
from densecap.densecap_addon.rig import rig_armature, rig_mesh
from densecap.operators.session import active_session
from densecap.operators.track import DENSECAP_OT_track_cameras
from densecap.solver.conventions import CM_TO_M, MODEL_TO_BLENDER, MODEL_TO_OPENCV
from densecap.solver.model import rodrigues
from densecap.tracking import multiview
from densecap.tracking.multiview import CameraPose, MultiviewRun
from densecap.tracking.performance import Camera
from workflow_helpers import TALKING, Recorder, fcurves, keys, run_session

@pytest.fixture
def two_views(registered, shared_dir):
    settings = bpy.context.scene.densecap
    clip = bpy.data.movieclips.load(str(shared_dir / "footage" / TALKING))
    for offset in (0, 3):
        assert bpy.ops.densecap.add_view() == {'FINISHED'}
        settings.views[-1].clip = clip
        settings.views[-1].offset = offset
    return settings


def test_no_cameras_is_an_error(registered):
    operator = Recorder(DENSECAP_OT_track_cameras)
    assert DENSECAP_OT_track_cameras.execute(operator, bpy.context) == {'CANCELLED'}
    assert "No cameras" in operator.messages('ERROR')[0]


def test_multiview_result_places_cameras_and_keys_one_animation(two_views, tracked_blend,
                                                                monkeypatch):
    performance = replace(tracked_blend[1].performance, mode="offline")
    rotation = rodrigues(np.array([0.0, 0.6, 0.1]))
    translation = np.array([-25.0, 2.0, 8.0])
    calls = []

    def track_multiview(sources, offsets=None, *, face_index=None, progress=None, cancel=None):
        calls.append((list(sources), list(offsets), face_index))
        progress(performance.num_frames, performance.num_frames, 10.0)
        cameras = (CameraPose(performance.camera, np.eye(3), np.zeros(3), sources[0], 0),
                   CameraPose(Camera(900.0, 590, 590), rotation, translation, sources[1], 3))
        return MultiviewRun(performance, cameras, performance.num_frames, False, None, 1.0)

    monkeypatch.setattr(multiview, "track_multiview", track_multiview)
    assert bpy.ops.densecap.track_cameras() == {'FINISHED'}
    session = active_session()
    run_session(session)
    assert session.state == 'FINISHED', session.message
    assert calls[0][1] == [0, 3] and len(calls[0][0]) == 2 and calls[0][2] is None

    scene = bpy.context.scene
    rigs = [o for o in bpy.data.objects if rig_armature(o) is o]
    assert len(rigs) == 1 and stored_performance(rigs[0]).mode == "offline"
    frames, _ = keys(fcurves(rig_mesh(rigs[0]).data.shape_keys)[('key_blocks["jawOpen"].value',
                                                                   0)])
    np.testing.assert_array_equal(frames, performance.frame_indices + 1)
    first, second = bpy.data.objects[CAMERA_NAME], bpy.data.objects[f"{CAMERA_NAME}.1"]
    assert scene.camera == first
    assert second.data.lens == pytest.approx(900.0 * 36.0 / 590)
    assert second.data.background_images[0].clip.frame_start == 4
    # A world point seen by Blender's second camera lands where the fit's extrinsics put it.
    for point in ([0.0, 0.5, 0.1], [0.05, 0.6, -0.02]):
        model_cm = MODEL_TO_BLENDER.T @ np.array(point) / CM_TO_M
        expected = rotation @ (MODEL_TO_OPENCV @ model_cm) + translation
        local = np.array(second.matrix_world.inverted() @ Vector(point)) / CM_TO_M
        np.testing.assert_allclose([local[0], -local[1], -local[2]], expected, atol=1e-3)
