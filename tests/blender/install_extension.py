"""Install a built extension zip into a throw-away repository, enable it, run its operator.

Run in a subprocess by test_extension.py (an installed copy must not share a process with
the `densecap` import the other tests register):

    python install_extension.py ZIP REPO_DIR

Prints one JSON line: install/operator results, the module the add-on runs from, the rig,
and where the shipped wheels' modules import from (Blender installs them into the user
extensions' site-packages; they are imported there in a clean interpreter that only shares
numpy, which Blender bundles, with this one).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy

IMPORT_CHECK = """
import json, sys
sys.path[:0] = sys.argv[1:3]
import cv2, numba, onnxruntime
session = onnxruntime.InferenceSession(sys.argv[3], providers=["CPUExecutionProvider"])
print(json.dumps({m.__name__: m.__file__ for m in (cv2, numba, onnxruntime)}))
"""


def shipped_wheel_modules(repo_dir: str) -> dict:
    """{module: file} of cv2, numba, onnxruntime imported from the installed wheels."""
    site = Path(os.environ["BLENDER_USER_EXTENSIONS"], ".local", "lib",
                f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")
    model = Path(repo_dir, "densecap", "assets", "models", "face_landmark.onnx")
    result = subprocess.run([sys.executable, "-S", "-c", IMPORT_CHECK, str(site),
                             str(Path(numpy.__file__).parent.parent), str(model)],
                            capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout) if result.returncode == 0 else {"error": result.stderr}


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
        "wheel_modules": shipped_wheel_modules(repo_dir),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:3])
