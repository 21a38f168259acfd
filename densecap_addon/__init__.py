"""The Blender layer of DenseCap: properties, the sidebar panel, rig generation, keyframes.

`register()` / `unregister()` are called by the extension's root `__init__.py`; they
register this layer's classes and every operator from `operators/`. bpy is imported only
inside them (and in the bpy modules), so the bpy-free `rig_data` imports without Blender.
"""


def _classes():
    from . import panels, preferences, properties
    return preferences.CLASSES + properties.CLASSES + panels.CLASSES


def register():
    import bpy
    from .. import operators
    from . import properties
    for cls in _classes():
        bpy.utils.register_class(cls)
    properties.register()
    operators.register()


def unregister():
    import bpy
    from .. import operators
    from . import properties
    operators.unregister()
    properties.unregister()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
