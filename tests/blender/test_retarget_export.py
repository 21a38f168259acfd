"""Bake / Retarget onto a mesh with variant ARKit names and a Rigify- or Auto-Rig-Pro-named
armature, and the two exports, from the tracked (and reloaded) .blend."""

import csv

import numpy as np
import pytest

import bpy
from densecap.densecap_addon.rig import rig_armature
from densecap.operators.export import DENSECAP_OT_export_livelink
from densecap.operators.retarget import DENSECAP_OT_retarget
from densecap.tracking.livelink import HEADER
from densecap.tracking.performance import load_performance
from workflow_helpers import Recorder, fcurves, keys

TARGET_KEYS = ("EyeBlink_L", "eyeBlinkRight", "JAWOPEN", "browInnerUp", "mouthSmile.L",
               "notAnArkitName")


def _target_mesh(with_keys=True):
    mesh = bpy.data.meshes.new("Target")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    obj = bpy.data.objects.new("Target", mesh)
    bpy.context.scene.collection.objects.link(obj)
    if with_keys:
        obj.shape_key_add(name="Basis")
        for name in TARGET_KEYS:
            obj.shape_key_add(name=name)
    return obj


def _armature(names, rotation_mode='QUATERNION'):
    """Bones in a chain, each with its own roll, on a rotated armature object."""
    obj = bpy.data.objects.new("User", bpy.data.armatures.new("User"))
    bpy.context.scene.collection.objects.link(obj)
    obj.rotation_euler = (0.2, -0.1, 0.7)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    parent = None
    for index, name in enumerate(names):
        bone = obj.data.edit_bones.new(name)
        bone.head, bone.tail = (0, 0, 0.1 * index), (0.02 * index, 0.03, 0.1 * index + 0.1)
        bone.roll = 0.4 * index
        bone.parent = parent
        parent = bone
    bpy.ops.object.mode_set(mode='OBJECT')
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = rotation_mode
    return obj


def _world_rest(obj, bone):
    return (obj.matrix_world.to_3x3().normalized() @ obj.data.bones[bone].matrix_local.to_3x3())


def _pose_rotation(pose_bone):
    mode = pose_bone.rotation_mode
    if mode == 'QUATERNION':
        return pose_bone.rotation_quaternion.to_matrix()
    return pose_bone.rotation_euler.to_matrix()


@pytest.fixture
def tracked(registered, tracked_blend):
    path, run = tracked_blend
    bpy.ops.wm.open_mainfile(filepath=str(path))
    return rig_armature(bpy.context.scene.densecap.rig), run.performance


@pytest.mark.parametrize("preset, names, mode", [
    ('RIGIFY', ("neck", "head", "eye.L", "eye.R"), 'QUATERNION'),
    ('AUTO_RIG_PRO', ("c_neck.x", "c_head.x", "c_eye.l", "c_eye.r"), 'XYZ')])
def test_retarget_matches_names_and_bones(tracked, preset, names, mode):
    rig, performance = tracked
    settings = bpy.context.scene.densecap
    settings.target_mesh = mesh_obj = _target_mesh()
    settings.target_armature = armature_obj = _armature(names, mode)
    settings.bone_preset = preset
    assert bpy.ops.densecap.apply_bone_preset() == {'FINISHED'}
    assert bpy.ops.densecap.match_channels() == {'FINISHED'}
    assert [c.name for c in settings.channels] == list(TARGET_KEYS[:5])
    settings.channels["JAWOPEN"].gain = 0.5
    operator = Recorder(DENSECAP_OT_retarget)
    assert DENSECAP_OT_retarget.execute(operator, bpy.context) == {'FINISHED'}
    assert operator.messages('WARNING') == ["Not matched: notAnArkitName"]

    names_in = performance.expression_names
    curves = fcurves(mesh_obj.data.shape_keys)
    assert {path for path, _ in curves} == {f'key_blocks["{n}"].value' for n in TARGET_KEYS[:5]}
    expected = {"EyeBlink_L": performance.psi[:, names_in.index("eyeBlink_L")],
                "eyeBlinkRight": performance.psi[:, names_in.index("eyeBlink_R")],
                "JAWOPEN": 0.5 * performance.psi[:, names_in.index("jawOpen")],
                "browInnerUp": performance.psi[:, [names_in.index("browInnerUp_L"),
                                                   names_in.index("browInnerUp_R")]].mean(1),
                "mouthSmile.L": performance.psi[:, names_in.index("mouthSmile_L")]}
    for name, values in expected.items():
        frames, got = keys(curves[(f'key_blocks["{name}"].value', 0)])
        np.testing.assert_array_equal(frames, performance.frame_indices + 1)
        np.testing.assert_allclose(got, values, atol=1e-6)

    # Each target bone turns in world space exactly as the DenseCap bone does.
    scene = bpy.context.scene
    angles = []
    for frame in (1, 7, 12):
        scene.frame_set(frame)
        for source, target in zip(("neck", "head", "eye_L", "eye_R"), names):
            source_rest, target_rest = _world_rest(rig, source), _world_rest(armature_obj, target)
            world_source = (source_rest @ _pose_rotation(rig.pose.bones[source])
                            @ source_rest.transposed())
            world_target = (target_rest @ _pose_rotation(armature_obj.pose.bones[target])
                            @ target_rest.transposed())
            np.testing.assert_allclose(np.array(world_target), np.array(world_source),
                                       atol=1e-5)
            angles.append(rig.pose.bones[source].rotation_quaternion.angle)
    assert max(angles) > 1e-3                  # the comparison is not between identities


def test_retarget_smoothing_and_missing_bones(tracked):
    rig, performance = tracked
    settings = bpy.context.scene.densecap
    settings.target_mesh = mesh_obj = _target_mesh()
    settings.target_armature = _armature(("neck", "head"))
    settings.smoothing = 3
    operator = Recorder(DENSECAP_OT_retarget)
    assert DENSECAP_OT_retarget.execute(operator, bpy.context) == {'FINISHED'}
    assert operator.messages('WARNING') == ["Not matched: notAnArkitName, eye.L, eye.R"]
    _, got = keys(fcurves(mesh_obj.data.shape_keys)[('key_blocks["JAWOPEN"].value', 0)])
    jaw = performance.psi[:, performance.expression_names.index("jawOpen")]
    np.testing.assert_allclose(got[1:-1], np.convolve(jaw, np.ones(3) / 3, "valid"), atol=1e-6)


def test_retarget_user_errors_write_nothing(tracked):
    settings = bpy.context.scene.densecap
    operator = Recorder(DENSECAP_OT_retarget)
    assert DENSECAP_OT_retarget.execute(operator, bpy.context) == {'CANCELLED'}
    assert "choose a target mesh" in operator.messages('ERROR')[0]
    settings.target_mesh = bare = _target_mesh(with_keys=False)
    settings.target_armature = armature_obj = _armature(("neck", "head"))
    assert DENSECAP_OT_retarget.execute(operator, bpy.context) == {'CANCELLED'}
    assert "has no shape keys" in operator.messages('ERROR')[-1]
    settings.target_mesh = None
    settings.bone_neck = settings.bone_head = "spine"
    settings.bone_eye_L = settings.bone_eye_R = ""
    assert DENSECAP_OT_retarget.execute(operator, bpy.context) == {'CANCELLED'}
    assert "has none of the bones spine" in operator.messages('ERROR')[-1]
    assert bare.data.shape_keys is None and armature_obj.animation_data is None


def test_exports(tracked, tmp_path):
    _, performance = tracked
    csv_path, npz_path = tmp_path / "take.csv", tmp_path / "take.npz"
    assert bpy.ops.densecap.export_livelink(filepath=str(csv_path)) == {'FINISHED'}
    rows = list(csv.reader(open(csv_path)))
    assert tuple(rows[0]) == HEADER and len(rows) == 1 + performance.valid.sum()
    jaw = [float(row[HEADER.index("JawOpen")]) for row in rows[1:]]
    np.testing.assert_allclose(jaw, performance.psi[:, performance.expression_names.index(
        "jawOpen")], atol=1e-6)
    assert bpy.ops.densecap.export_performance(filepath=str(npz_path)) == {'FINISHED'}
    np.testing.assert_array_equal(load_performance(npz_path).psi, performance.psi)


def test_export_without_a_tracked_rig_is_cancelled(registered, tmp_path):
    assert bpy.ops.densecap.generate_rig() == {'FINISHED'}     # a rig, but nothing tracked
    operator = Recorder(DENSECAP_OT_export_livelink, filepath=str(tmp_path / "a.csv"))
    assert DENSECAP_OT_export_livelink.execute(operator, bpy.context) == {'CANCELLED'}
    assert "holds no tracked performance" in operator.messages('ERROR')[0]
    assert not list(tmp_path.iterdir())
