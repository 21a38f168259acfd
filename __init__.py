"""DenseCap: facial performance capture for Blender (extension entry point).

Blender imports this package as `bl_ext.<repo>.densecap`; tests and the command line
import it as `densecap`. Nothing here imports bpy at module level, so
`import densecap.solver` works without Blender.
"""


def register():
    from . import densecap_addon
    densecap_addon.register()


def unregister():
    from . import densecap_addon
    densecap_addon.unregister()
