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

#: `Keyframe.interpolation` enum values for foreach_set.
_INTERPOLATION = {name: item.value for name, item in
                  bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items.items()}

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


def _fill(fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray,
          interpolation: str = 'LINEAR') -> None:
    """Replace the keyframes of `fcurve` by (frames (F,), values (F,))."""
    points = fcurve.keyframe_points
    points.clear()
    points.add(len(frames))
    points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    points.foreach_set("interpolation",
                       np.full(len(frames), _INTERPOLATION[interpolation], dtype=np.int32))
    fcurve.update()


def action_fcurves(id_data: bpy.types.ID) -> list[bpy.types.FCurve]:
    """The F-curves animating `id_data` (its action's, or its slot's from 4.4 on); [] if none."""
    animation_data = id_data.animation_data
    if animation_data is None or animation_data.action is None:
        return []
    if not hasattr(animation_data, "action_slot"):                # Blender 4.2, 4.3
        return list(animation_data.action.fcurves)
    from bpy_extras.anim_utils import action_get_channelbag_for_slot
    channelbag = action_get_channelbag_for_slot(animation_data.action, animation_data.action_slot)
    return [] if channelbag is None else list(channelbag.fcurves)


def write_curves(id_data: bpy.types.ID, action_name: str, frames: np.ndarray,
                 curves: list[tuple[str, int, str, np.ndarray]],
                 interpolation: str = 'LINEAR') -> None:
    """Keyframe any channels of `id_data` in bulk.

    frames : (F,) scene frames; curves : (data_path, index, group, values (F,)) per F-curve.
    The action is created (named `action_name`) if `id_data` has none; existing keys on
    these channels are replaced.
    """
    _action(id_data, action_name)
    for data_path, index, group, values in curves:
        _fill(_fcurve(id_data, data_path, index, group), frames, values, interpolation)


def remove_animation(id_data: bpy.types.ID) -> None:
    """Unassign `id_data`'s action and delete the action if nothing else uses it."""
    animation_data = id_data.animation_data
    if animation_data is None or animation_data.action is None:
        return
    action = animation_data.action
    animation_data.action = None
    if action.users == 0:
        bpy.data.actions.remove(action)


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
    names = [block.name for block in shape_keys.key_blocks][1:]       # [0] is the Basis
    write_curves(shape_keys, f"{armature_obj.name}Expressions", frames,
                 [(f'key_blocks["{name}"].value', 0, "Expressions", values)
                  for name, values in zip(names, pose.shape_key_values.T)])
    curves = [(f'pose.bones["{name}"].rotation_quaternion', component, name,
               pose.bone_quaternions[:, joint, component])
              for joint, name in enumerate(JOINT_NAMES) for component in range(4)]
    curves += [(f'pose.bones["{JOINT_NAMES[0]}"].location', component, JOINT_NAMES[0],
                pose.root_location[:, component]) for component in range(3)]
    write_curves(armature_obj, f"{armature_obj.name}Pose", frames, curves)
