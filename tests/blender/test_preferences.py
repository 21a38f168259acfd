"""Add-on preferences (threads, landmark model, default mode) reach the tracker factory; the
dense network the build ships tracks from the add-on."""

import subprocess
import sys

import addon_utils
import pytest

import bpy
from densecap.densecap_addon.performance_scene import stored_performance
from densecap.densecap_addon.preferences import (ADDON_PACKAGE, LANDMARK_MODEL_ITEMS,
                                                 tracking_preferences)
from densecap.densecap_addon.rig import rig_armature, rig_mesh
from densecap.tracking.cli import DEFAULT_LANDMARK_MODEL, LANDMARK_MODELS
from densecap.operators import track
from densecap.operators.session import active_session
from workflow_helpers import TALKING, fcurves, keys, run_session


@pytest.fixture
def enabled(empty_scene):
    """The add-on enabled through Blender's add-on manager, so it has preferences."""
    addon_utils.enable(ADDON_PACKAGE, default_set=True)
    yield bpy.context.preferences.addons[ADDON_PACKAGE].preferences
    addon_utils.disable(ADDON_PACKAGE, default_set=True)


def test_defaults_without_the_addon_manager(registered):
    prefs = tracking_preferences(bpy.context)
    assert (prefs.threads, prefs.landmark_model, prefs.default_mode) == (
        1, DEFAULT_LANDMARK_MODEL, "realtime")
    assert tuple(item[0] for item in LANDMARK_MODEL_ITEMS) == LANDMARK_MODELS
    assert LANDMARK_MODELS[0] == DEFAULT_LANDMARK_MODEL


def test_registering_loads_no_network_or_numba_code():
    code = ("import sys, bpy, densecap; densecap.register(); "
            "print(sorted(m for m in ('numba', 'onnxruntime', 'scipy') if m in sys.modules)); "
            "densecap.unregister()")   # bpy hangs at exit with an add-on left registered
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("default_mode", ['REALTIME', 'OFFLINE'])
def test_track_clip_uses_the_preferences(enabled, shared_dir, monkeypatch, default_mode):
    enabled.threads, enabled.default_mode = 2, default_mode
    calls = []

    def recording_factory(footage, mode, face_index, **options):
        calls.append((mode, face_index, options))
        return real_factory(footage, mode, face_index, **options)

    real_factory = track.make_tracker
    monkeypatch.setattr(track, "make_tracker", recording_factory)
    assert bpy.ops.densecap.load_footage(filepath=str(shared_dir / "footage" / TALKING)) == {
        'FINISHED'}
    bpy.context.scene.frame_end = 2
    assert bpy.ops.densecap.track_clip() == {'FINISHED'}
    run_session(active_session())
    assert calls == [(default_mode.lower(), None,
                      {"threads": 2, "landmark_model": DEFAULT_LANDMARK_MODEL})]
    # An explicit mode wins over the preference.
    calls.clear()
    assert bpy.ops.densecap.track_clip(mode='REALTIME') == {'FINISHED'}
    run_session(active_session())
    assert calls[0][0] == "realtime"


def test_the_shipped_dense_network_animates_the_rig(enabled, shared_dir):
    """DenseCap 320 chosen in the preferences: the network the build ships
    (training/models/dense320.onnx, `make models`) tracks the clip and keys the rig."""
    enabled.landmark_model = "dense320"
    assert bpy.ops.densecap.load_footage(filepath=str(shared_dir / "footage" / TALKING)) == {
        'FINISHED'}
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 4
    assert bpy.ops.densecap.track_clip(mode='REALTIME') == {'FINISHED'}
    run_session(active_session())
    rig = rig_armature(scene.densecap.rig)
    performance = stored_performance(rig)
    assert performance.valid.all() and performance.num_frames == 4
    assert performance.landmark_error.max() < 1.0      # sigma-normalised; measured 0.11-0.18
    for fcurve in fcurves(rig_mesh(rig).data.shape_keys).values():
        assert keys(fcurve)[0].tolist() == [1, 2, 3, 4]
