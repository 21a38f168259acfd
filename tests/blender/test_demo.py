"""The temporary main job: the demo scene keys the rig, and the .blend round-trips."""

import numpy as np

import bpy
from densecap.densecap_addon.demo import FPS, build_demo_scene, demo_performance
from densecap.densecap_addon.rig import rig_armature, rig_identity, rig_mesh


def test_demo_performance_is_in_bounds(face_model):
    psi, theta = demo_performance(face_model, 3 * FPS)
    assert psi.shape == (3 * FPS, face_model.num_expressions) and theta.shape == (3 * FPS, 18)
    assert psi.min() >= 0.0 and psi.max() <= 1.0 and psi.max() > 0.5
    assert np.abs(theta[:, :15]).max() < 0.5                 # rad
    assert np.abs(theta[:, 15:]).max() <= 1.0 + 1e-12        # cm


def test_demo_scene_saves_and_reloads(face_model, tmp_path):
    armature_obj = build_demo_scene(face_model, seconds=1.0)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, FPS)
    assert scene.camera is not None
    jaw = rig_mesh(armature_obj).data.shape_keys.key_blocks["jawOpen"]
    scene.frame_set(24)                                       # the jaw-opening peak
    assert jaw.value > 0.5
    name = armature_obj.name
    path = tmp_path / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reloaded = rig_armature(bpy.data.objects[name])
    assert reloaded is not None
    np.testing.assert_array_equal(rig_identity(reloaded), np.zeros(face_model.num_identity))
    bpy.context.scene.frame_set(24)
    assert rig_mesh(reloaded).data.shape_keys.key_blocks["jawOpen"].value > 0.5
