"""The Blender layer of DenseCap: properties, the sidebar panel, rig generation.

`register()` / `unregister()` are called by the extension's root `__init__.py`; they
register this layer's classes and every operator from `operators/`.
"""

import bpy

from .. import operators
from . import panels, properties

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(
    properties.CLASSES + panels.CLASSES)


def register():
    _register_classes()
    properties.register()
    operators.register()


def unregister():
    operators.unregister()
    properties.unregister()
    _unregister_classes()
