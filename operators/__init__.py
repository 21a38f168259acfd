"""Every `bpy.types.Operator` of DenseCap lives in this package (one home)."""

import bpy

from .generate_rig import DENSECAP_OT_generate_rig

CLASSES = (DENSECAP_OT_generate_rig,)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
