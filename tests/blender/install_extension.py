"""Install a built extension zip into a throw-away repository, enable it, run its operator.

Run in a subprocess by test_extension.py (an installed copy must not share a process with
the `densecap` import the other tests register):

    python install_extension.py ZIP REPO_DIR

Prints one JSON line: install/operator results, the module the add-on runs from, the rig.
"""

import json
import sys

import bpy


def main(zip_path: str, repo_dir: str) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.extensions.repos.new(
        name="DenseCap Test", module="densecap_test", custom_directory=repo_dir, source='USER')
    installed = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="densecap_test", enable_on_install=True)
    generated = bpy.ops.densecap.generate_rig()
    rig = bpy.context.scene.densecap.rig
    module = sys.modules.get("bl_ext.densecap_test.densecap")
    print(json.dumps({
        "installed": sorted(installed),
        "enabled": "bl_ext.densecap_test.densecap" in bpy.context.preferences.addons,
        "module_file": getattr(module, "__file__", None),
        "generated": sorted(generated),
        "shape_keys": len(rig.children[0].data.shape_keys.key_blocks) if rig else 0,
    }))


if __name__ == "__main__":
    main(*sys.argv[1:3])
