"""Keyframes on the face rig, written in bulk: one `keyframe_points.add` + `foreach_set`
per F-curve (never `keyframe_insert` in a loop).

Works with the legacy action API (Blender 4.2/4.3: `Action.fcurves`) and the layered one
(4.4+: slots and layers; `Action.fcurves` is gone in 5.0), choosing by feature, not version.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..solver.conventions import JOINT_NAMES
from .rig import rig_mesh
from .rig_data import RigPose, pose_from_parameters

#: `FCurveKeyframePoints.interpolation` enum value of 'LINEAR' for foreach_set.
_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value

#: Whether `Action.fcurve_ensure_for_datablock` (4.4+) takes a group name (5.0+).
_ENSURE_FUNCTION = bpy.types.Action.bl_rna.functions.get("fcurve_ensure_for_datablock")
_ENSURE_TAKES_GROUP = (_ENSURE_FUNCTION is not None
                       and "group_name" in _ENSURE_FUNCTION.parameters.keys())


def _action(id_data: bpy.types.ID, name: str) -> bpy.types.Action:
    """The action animating `id_data`, created and assigned if there is none."""
    animation_data = id_data.animation_data or id_data.animation_data_create()
    if animation_data.action is None:
        animation_data.action = bpy.data.actions.new(name)
    return animation_data.action


def _fcurve(id_data: bpy.types.ID, data_path: str, index: int, group: str) -> bpy.types.FCurve:
    """The F-curve of (data_path, index) on `id_data`'s action, created if needed."""
    action = id_data.animation_data.action
    if not hasattr(action, "fcurve_ensure_for_datablock"):        # Blender 4.2, 4.3
        fcurve = action.fcurves.find(data_path, index=index)
        return fcurve or action.fcurves.new(data_path, index=index, action_group=group)
    if _ENSURE_TAKES_GROUP:                                        # Blender 5.0+
        return action.fcurve_ensure_for_datablock(id_data, data_path, index=index,
                                                  group_name=group)
    fcurve = action.fcurve_ensure_for_datablock(id_data, data_path, index=index)  # 4.4, 4.5
    if fcurve.group is None:
        from bpy_extras.anim_utils import action_get_channelbag_for_slot
        channelbag = action_get_channelbag_for_slot(action, id_data.animation_data.action_slot)
        fcurve.group = channelbag.groups.get(group) or channelbag.groups.new(group)
    return fcurve


def _fill(fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray) -> None:
    """Replace the keyframes of `fcurve` by (frames (F,), values (F,)), linear."""
    points = fcurve.keyframe_points
    points.clear()
    points.add(len(frames))
    points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    points.foreach_set("interpolation", np.full(len(frames), _LINEAR, dtype=np.int32))
    fcurve.update()


def write_rig_animation(armature_obj: bpy.types.Object, frames: np.ndarray,
                        psi: np.ndarray, theta: np.ndarray) -> None:
    """Keyframe the rig from solver parameters.

    frames : (F,) scene frame numbers; psi : (F, E) expression weights; theta : (F, 18).
    Shape-key values go on the mesh's shape-key datablock, bone rotations and the root
    location on the armature object; existing keys on these channels are replaced.
    """
    frames = np.asarray(frames, dtype=np.float64)
    pose = pose_from_parameters(psi, theta)
    if pose.shape_key_values.shape[:-1] != frames.shape:
        raise ValueError(f"{len(frames)} frames but psi/theta have shape "
                         f"{pose.shape_key_values.shape[:-1]}")
    write_pose_keyframes(armature_obj, frames, pose)


def write_pose_keyframes(armature_obj: bpy.types.Object, frames: np.ndarray,
                         pose: RigPose) -> None:
    """Keyframe already converted rig channels (see `rig_data.pose_from_parameters`)."""
    shape_keys = rig_mesh(armature_obj).data.shape_keys
    _action(shape_keys, f"{armature_obj.name}Expressions")
    names = [block.name for block in shape_keys.key_blocks][1:]       # [0] is the Basis
    for name, values in zip(names, pose.shape_key_values.T):
        _fill(_fcurve(shape_keys, f'key_blocks["{name}"].value', 0, "Expressions"),
              frames, values)

    _action(armature_obj, f"{armature_obj.name}Pose")
    for joint, name in enumerate(JOINT_NAMES):
        path = f'pose.bones["{name}"].rotation_quaternion'
        for component in range(4):
            _fill(_fcurve(armature_obj, path, component, name), frames,
                  pose.bone_quaternions[:, joint, component])
    root_path = f'pose.bones["{JOINT_NAMES[0]}"].location'
    for component in range(3):
        _fill(_fcurve(armature_obj, root_path, component, JOINT_NAMES[0]), frames,
              pose.root_location[:, component])
