"""Scene-level settings of DenseCap (`scene.densecap`)."""

import bpy


def _is_armature(_settings, obj) -> bool:
    return obj.type == 'ARMATURE'


class DenseCapSceneSettings(bpy.types.PropertyGroup):
    rig: bpy.props.PointerProperty(
        name="Face Rig", type=bpy.types.Object, poll=_is_armature,
        description="The DenseCap face rig (armature) that tracking results are written to")


CLASSES = (DenseCapSceneSettings,)


def register():
    bpy.types.Scene.densecap = bpy.props.PointerProperty(type=DenseCapSceneSettings)


def unregister():
    del bpy.types.Scene.densecap
