"""Generate Face Rig: build the DenseCap face rig from the packed face model."""

import bpy
import numpy as np

from ..densecap_addon.rig import create_rig, rig_armature, rig_identity
from ..solver import SolverError, load_face_model


class DENSECAP_OT_generate_rig(bpy.types.Operator):
    """Build a face rig (mesh with 55 ARKit shape keys and an armature) from the face model.
The identity is the average face, or the one stored on the active DenseCap rig"""

    bl_idname = "densecap.generate_rig"
    bl_label = "Generate Face Rig"
    bl_options = {'REGISTER', 'UNDO'}

    model_path: bpy.props.StringProperty(
        name="Face Model", subtype='FILE_PATH', options={'HIDDEN', 'SKIP_SAVE'},
        description="Face model file (.npz); empty uses the one packed with the extension")

    def execute(self, context):
        try:
            model = load_face_model(bpy.path.abspath(self.model_path) if self.model_path else None)
        except SolverError as exc:
            self.report({'ERROR'}, f"Cannot generate the face rig: {exc}")
            return {'CANCELLED'}
        source = rig_armature(context.active_object)
        beta = np.zeros(model.num_identity) if source is None else rig_identity(source)
        if beta.shape != (model.num_identity,):
            self.report({'ERROR'}, f"The active rig stores {beta.size} identity weights, "
                                   f"the face model has {model.num_identity}")
            return {'CANCELLED'}
        if context.mode != 'OBJECT':
            bpy.ops.object.mode_set(mode='OBJECT')
        armature_obj = create_rig(model, beta, collection=context.collection)
        for obj in context.view_layer.objects:
            obj.select_set(False)
        armature_obj.select_set(True)
        context.view_layer.objects.active = armature_obj
        context.scene.densecap.rig = armature_obj
        self.report({'INFO'}, f"Generated face rig {armature_obj.name!r}")
        return {'FINISHED'}
