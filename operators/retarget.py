"""Bake / Retarget: the rig's tracked Performance onto any mesh with ARKit-named shape keys
and onto the neck, head and eye bones of the user's armature, baked to keyframes.

Names match case- and suffix-insensitively (`tracking.arkit.match_names`); per-channel gain
and offset (`scene.densecap.channels`), a rotation gain and optional smoothing apply; what
did not match is reported. Frames without a face stay gaps, as on the DenseCap rig.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Euler, Quaternion

from ..densecap_addon.animation import write_curves
from ..densecap_addon.performance_scene import FIRST_FRAME_PROPERTY
from ..densecap_addon.rig_data import axis_angle_to_quaternion
from ..solver.conventions import JOINT_NAMES, theta_rotation
from ..tracking.arkit import (BONE_PRESETS, RETARGET_BONES, NameMatching, bone_rotations,
                              match_names, shape_key_curves)
from ..tracking.errors import USER_ERRORS, TrackingError
from ..tracking.performance import Performance
from .export import rig_performance

GROUP = "DenseCap"


def _target_shape_keys(mesh_obj: bpy.types.Object) -> list[bpy.types.ShapeKey]:
    keys = mesh_obj.data.shape_keys if mesh_obj.type == 'MESH' else None
    if keys is None:
        return []
    return [block for block in keys.key_blocks if block != keys.reference_key]


def _shape_key_matching(mesh_obj, performance: Performance) -> NameMatching:
    blocks = _target_shape_keys(mesh_obj)
    if not blocks:
        raise TrackingError(f"target mesh {mesh_obj.name!r} has no shape keys to animate")
    matching = match_names(performance.expression_names, [block.name for block in blocks])
    if not matching.targets:
        raise TrackingError(f"none of the {len(blocks)} shape keys of {mesh_obj.name!r} has an "
                            f"ARKit name (such as jawOpen, eyeBlinkLeft, EyeBlink_L)")
    return matching


def _bone_map(settings, armature_obj) -> tuple[dict[str, str], list[str]]:
    """DenseCap bone -> target pose bone name for the names found; the names not found."""
    names = {bone: getattr(settings, f"bone_{bone}").strip() for bone in RETARGET_BONES}
    found = {bone: name for bone, name in names.items()
             if name and name in armature_obj.pose.bones}
    missing = [name for bone, name in names.items() if name and bone not in found]
    if not found:
        raise TrackingError(f"armature {armature_obj.name!r} has none of the bones "
                            f"{', '.join(n for n in names.values() if n) or '(none set)'}")
    return found, missing


def _rest_rotation(obj: bpy.types.Object, bone_name: str) -> np.ndarray:
    """(3, 3) world rotation of a bone's rest axes."""
    matrix = obj.matrix_world.to_3x3().normalized() @ obj.data.bones[bone_name].matrix_local.to_3x3()
    return np.array(matrix.normalized())


def _rotation_curves(pose_bone, quaternions: np.ndarray) -> list[tuple[str, int, str, np.ndarray]]:
    """F-curves for unit quaternions (F, 4) in the pose bone's own rotation mode."""
    path = f'pose.bones["{pose_bone.name}"]'
    mode = pose_bone.rotation_mode
    if mode == 'QUATERNION':
        return [(f"{path}.rotation_quaternion", i, pose_bone.name, quaternions[:, i])
                for i in range(4)]
    if mode == 'AXIS_ANGLE':
        values = np.array([[angle, *axis] for axis, angle in
                           (Quaternion(q).to_axis_angle() for q in quaternions.tolist())])
        return [(f"{path}.rotation_axis_angle", i, pose_bone.name, values[:, i]) for i in range(4)]
    eulers, previous = [], Euler((0.0, 0.0, 0.0), mode)
    for q in quaternions.tolist():
        previous = Quaternion(q).to_euler(mode, previous)
        eulers.append(tuple(previous))
    values = np.array(eulers)
    return [(f"{path}.rotation_euler", i, pose_bone.name, values[:, i]) for i in range(3)]


class DENSECAP_OT_apply_bone_preset(bpy.types.Operator):
    """Fill the target bone names from the chosen preset (Rigify, Auto-Rig Pro)"""

    bl_idname = "densecap.apply_bone_preset"
    bl_label = "Apply Bone Preset"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        settings = context.scene.densecap
        for bone, name in BONE_PRESETS[settings.bone_preset].items():
            setattr(settings, f"bone_{bone}", name)
        return {'FINISHED'}


class DENSECAP_OT_match_channels(bpy.types.Operator):
    """List the target mesh's shape keys that match an expression, each with a gain and an
    offset (the values set before are kept)"""

    bl_idname = "densecap.match_channels"
    bl_label = "Match Shape Keys"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        settings = context.scene.densecap
        mesh_obj = settings.target_mesh
        if mesh_obj is None:
            self.report({'ERROR'}, "Choose a target mesh first")
            return {'CANCELLED'}
        try:
            _, performance = rig_performance(context)
            matching = _shape_key_matching(mesh_obj, performance)
        except USER_ERRORS as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        kept = {channel.name: (channel.gain, channel.offset) for channel in settings.channels}
        settings.channels.clear()
        for name in matching.targets:
            channel = settings.channels.add()
            channel.name = name
            channel.gain, channel.offset = kept.get(name, (1.0, 0.0))
        self.report({'INFO'}, f"{len(matching.targets)} shape keys match"
                    + (f"; not matched: {', '.join(matching.unmatched_targets)}"
                       if matching.unmatched_targets else ""))
        return {'FINISHED'}


class DENSECAP_OT_retarget(bpy.types.Operator):
    """Bake the tracked animation onto the target mesh's ARKit shape keys and the target
    armature's neck, head and eye bones"""

    bl_idname = "densecap.retarget"
    bl_label = "Bake / Retarget"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        settings = context.scene.densecap
        mesh_obj, armature_obj = settings.target_mesh, settings.target_armature
        try:
            rig, performance = rig_performance(context)
            if mesh_obj is None and armature_obj is None:
                raise TrackingError("choose a target mesh and/or a target armature")
            matching = _shape_key_matching(mesh_obj, performance) if mesh_obj else None
            bones, missing_bones = _bone_map(settings, armature_obj) if armature_obj else ({}, [])
        except USER_ERRORS as exc:
            self.report({'ERROR'}, f"Cannot retarget: {exc}")
            return {'CANCELLED'}

        valid = performance.valid
        frames = (performance.frame_indices[valid] + rig.get(FIRST_FRAME_PROPERTY, 1)).astype(float)
        done = []
        if matching is not None:
            blocks = {block.name: block for block in _target_shape_keys(mesh_obj)}
            channels = {channel.name: channel for channel in settings.channels}
            gain = np.array([channels[n].gain if n in channels else 1.0 for n in matching.targets])
            offset = np.array([channels[n].offset if n in channels else 0.0
                               for n in matching.targets])
            limits = (np.array([blocks[n].slider_min for n in matching.targets]),
                      np.array([blocks[n].slider_max for n in matching.targets]))
            values = shape_key_curves(performance.psi[valid], performance.expression_names,
                                      matching, gain, offset, settings.smoothing, limits)
            write_curves(mesh_obj.data.shape_keys, f"{mesh_obj.name}DenseCap", frames,
                         [(f'key_blocks["{name}"].value', 0, GROUP, column)
                          for name, column in zip(matching.targets, values.T)])
            done.append(f"{len(matching.targets)} shape keys")
        if bones:
            curves = []
            for bone, target_name in bones.items():
                change = _rest_rotation(armature_obj, target_name).T @ _rest_rotation(rig, bone)
                axis_angle = performance.theta[valid][:, theta_rotation(JOINT_NAMES.index(bone))]
                rotations = bone_rotations(axis_angle, change, settings.bone_gain,
                                           settings.smoothing)
                curves += _rotation_curves(armature_obj.pose.bones[target_name],
                                           axis_angle_to_quaternion(rotations))
            write_curves(armature_obj, f"{armature_obj.name}DenseCap", frames, curves)
            done.append(f"{len(bones)} bones")
        unmatched = (list(matching.unmatched_targets) if matching else []) + missing_bones
        self.report({'INFO'}, f"Baked {' and '.join(done)} over {len(frames)} frames")
        if unmatched:
            self.report({'WARNING'}, f"Not matched: {', '.join(unmatched)}")
        return {'FINISHED'}
