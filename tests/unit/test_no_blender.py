"""solver/, landmarks/ and tracking/ run without Blender."""

import subprocess
import sys


def test_core_packages_import_without_bpy():
    code = ("import sys; sys.modules['bpy'] = None\n"
            "import densecap, densecap.solver, densecap.landmarks, densecap.tracking\n"
            "from densecap.solver import load_face_model; load_face_model()\n")
    subprocess.run([sys.executable, "-c", code], check=True)
