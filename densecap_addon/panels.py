"""The "DenseCap" tab of the 3D viewport sidebar (N panel)."""

import bpy


class VIEW3D_PT_densecap(bpy.types.Panel):
    bl_label = "DenseCap"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "DenseCap"

    def draw(self, context):
        layout = self.layout
        layout.prop(context.scene.densecap, "rig")
        layout.operator("densecap.generate_rig", icon='ARMATURE_DATA')


CLASSES = (VIEW3D_PT_densecap,)
