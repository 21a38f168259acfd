"""Registration and the Generate Face Rig operator, through bpy.ops as a user runs it."""

import numpy as np
import pytest

import bpy
import densecap
from densecap.densecap_addon.rig import rig_identity, rig_mesh
from densecap.operators.generate_rig import DENSECAP_OT_generate_rig


def test_register_unregister_twice(empty_scene):
    for _ in range(2):
        densecap.register()
        assert hasattr(bpy.types.Scene, "densecap")
        panel = bpy.types.VIEW3D_PT_densecap
        assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == (
            'VIEW_3D', 'UI', "DenseCap")
        assert bpy.ops.densecap.generate_rig.get_rna_type() is not None
        densecap.unregister()
        assert not hasattr(bpy.types.Scene, "densecap")
        assert not hasattr(bpy.types, "VIEW3D_PT_densecap")


def test_generate_rig_operator(registered, face_model):
    assert bpy.ops.densecap.generate_rig() == {'FINISHED'}
    armature_obj = bpy.context.scene.densecap.rig
    assert armature_obj is not None and bpy.context.active_object == armature_obj
    np.testing.assert_array_equal(rig_identity(armature_obj), np.zeros(face_model.num_identity))
    assert len(rig_mesh(armature_obj).data.shape_keys.key_blocks) == 56


def test_generate_rig_reuses_identity_of_active_rig(registered, face_model):
    assert bpy.ops.densecap.generate_rig() == {'FINISHED'}
    first = bpy.context.scene.densecap.rig
    beta = np.linspace(-1.0, 1.0, face_model.num_identity)
    first["densecap_beta"] = beta.tolist()
    assert bpy.ops.densecap.generate_rig() == {'FINISHED'}
    second = bpy.context.scene.densecap.rig
    assert second != first
    np.testing.assert_allclose(rig_identity(second), beta)


class ReportRecorder:
    """Stands in for the operator instance when `execute` is called directly."""

    def __init__(self, model_path):
        self.model_path = model_path
        self.reports = []

    def report(self, levels, message):
        self.reports.append((levels, message))


def test_generate_rig_missing_model_is_cancelled(registered, tmp_path):
    missing = str(tmp_path / "no_such_model.npz")
    # Through bpy.ops, as a user runs it: the ERROR report surfaces as RuntimeError.
    with pytest.raises(RuntimeError, match="face model file not found"):
        bpy.ops.densecap.generate_rig(model_path=missing)
    assert len(bpy.data.objects) == 0
    # The operator's own answer: CANCELLED with one ERROR report naming the file.
    recorder = ReportRecorder(missing)
    assert DENSECAP_OT_generate_rig.execute(recorder, bpy.context) == {'CANCELLED'}
    assert [levels for levels, _ in recorder.reports] == [{'ERROR'}]
    assert missing in recorder.reports[0][1]
    assert len(bpy.data.objects) == 0


def test_generate_rig_invalid_model_is_cancelled(registered, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(RuntimeError, match="not a readable npz"):
        bpy.ops.densecap.generate_rig(model_path=str(broken))
    assert len(bpy.data.objects) == 0
