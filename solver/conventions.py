"""Units, axes and parameter layouts shared by every layer (the one place that owns them).

Model space
    ICT-FaceKit as shipped: centimetres, +Y up, +Z out of the face, +X to the
    subject's left. The solver works in model space and in centimetres.
Camera space
    OpenCV: x right, y down, z forward (into the scene). A camera with the
    identity extrinsics of `MODEL_TO_OPENCV` looks at the face from the front.
Blender space
    metres, +Z up, -Y out of the face (Blender's front view looks along +Y).
    Only the Blender layer uses it, through `model_to_blender_points` and
    `MODEL_TO_BLENDER`.
Image space
    pixels, origin at the top-left corner of the top-left pixel, x right, y down.
Rotations
    axis-angle vectors (3,) in the solver state; quaternions are (w, x, y, z).
"""

from __future__ import annotations

import numpy as np

#: Centimetres (model) to metres (Blender).
CM_TO_M = 0.01

#: Rotation taking model axes (Y up, Z out of the face) to Blender axes (Z up, -Y out
#: of the face): +90 degrees about X. (3, 3)
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0],
                             [0.0, 0.0, -1.0],
                             [0.0, 1.0, 0.0]])

#: Rotation taking model axes to an OpenCV camera that faces the subject:
#: x stays, y flips to point down, z flips to point from the camera into the face. (3, 3)
MODEL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])

#: Joint names in skeleton order; parents index into this tuple (-1: none).
JOINT_NAMES = ("root", "neck", "head", "eye_L", "eye_R")
JOINT_PARENTS = (-1, 0, 1, 2, 2)
NUM_JOINTS = len(JOINT_NAMES)

#: Pose vector theta (18,): five joint rotations (axis-angle, local to the parent,
#: in model axes) followed by the root translation (cm, model axes).
THETA_SIZE = 3 * NUM_JOINTS + 3
THETA_TRANSLATION = slice(3 * NUM_JOINTS, 3 * NUM_JOINTS + 3)


def theta_rotation(joint: int) -> slice:
    """Slice of theta holding the axis-angle rotation of `joint` (index into JOINT_NAMES)."""
    return slice(3 * joint, 3 * joint + 3)


def model_to_blender_points(points_cm: np.ndarray) -> np.ndarray:
    """Model-space points (..., 3) in cm -> Blender-space points (..., 3) in metres."""
    return (np.asarray(points_cm, dtype=np.float64) @ MODEL_TO_BLENDER.T) * CM_TO_M
