"""The generated face rig in Blender: writes `rig_data` arrays with bulk `foreach_set`.

One armature object (bones root, neck, head, eye_L, eye_R) with one child mesh object
(the ICT render parts, UVs, one material per ICT material, identity in the Basis, the 55
expression shape keys, vertex groups per bone, an Armature modifier). The fitted identity
is stored on the armature as the custom property ``densecap_beta``.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ..solver.conventions import JOINT_NAMES
from ..solver.face_model import FaceModel
from .rig_data import (DEFAULT_LOOK, MATERIAL_LOOKS, RigBoneData, RigMeshData, build_bone_data,
                       build_mesh_data, pose_from_parameters)

#: Custom properties marking the rig (on the armature object) and its mesh.
BETA_PROPERTY = "densecap_beta"
MESH_PROPERTY = "densecap_rig_mesh"


def create_rig(model: FaceModel, beta: np.ndarray, name: str = "DenseCapFace",
               collection: bpy.types.Collection | None = None) -> bpy.types.Object:
    """Build the rig for identity `beta` (B,) and return its armature object.

    The objects are linked to `collection` (default: the scene collection of the context).
    Call in Object Mode (bones are written in the armature's Edit Mode).
    """
    if bpy.context.mode != 'OBJECT':
        raise RuntimeError(f"create_rig needs Object Mode, the context is in {bpy.context.mode}")
    beta = np.asarray(beta, dtype=np.float64)
    if beta.shape != (model.num_identity,):
        raise ValueError(f"beta must have shape ({model.num_identity},), got {beta.shape}")
    if collection is None:
        collection = bpy.context.scene.collection
    mesh_data = build_mesh_data(model, beta)
    bone_data = build_bone_data(model, beta)

    armature_obj = _create_armature(name, bone_data, collection)
    armature_obj[BETA_PROPERTY] = beta.tolist()
    mesh_obj = _create_mesh_object(f"{name}Mesh", mesh_data, collection)
    mesh_obj[MESH_PROPERTY] = True
    for bone_name, weights in zip(bone_data.names, mesh_data.vertex_group_weights.T):
        _add_vertex_group(mesh_obj, bone_name, weights)
    modifier = mesh_obj.modifiers.new("Armature", 'ARMATURE')
    modifier.object = armature_obj
    modifier.use_vertex_groups = True
    modifier.use_deform_preserve_volume = False
    mesh_obj.parent = armature_obj
    return armature_obj


def _create_mesh_object(name: str, data: RigMeshData,
                        collection: bpy.types.Collection) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(data.positions))
    mesh.vertices.foreach_set("co", data.positions.astype(np.float32).ravel())
    mesh.loops.add(len(data.loop_vertices))
    mesh.loops.foreach_set("vertex_index", data.loop_vertices)
    mesh.polygons.add(len(data.polygon_loop_starts))
    mesh.polygons.foreach_set("loop_start", data.polygon_loop_starts)
    mesh.polygons.foreach_set("loop_total", data.polygon_loop_totals)
    mesh.polygons.foreach_set("material_index", data.polygon_material)
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", data.loop_uvs.ravel())
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    for material_name in data.material_names:
        mesh.materials.append(_material(material_name))

    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for key_name, positions in zip(data.shape_key_names, data.shape_key_positions):
        key_block = obj.shape_key_add(name=key_name, from_mix=False)
        key_block.data.foreach_set("co", positions.ravel())
        key_block.slider_min = 0.0
        key_block.slider_max = 1.0
        key_block.value = 0.0            # Blender 5.x adds new shape keys at 1.0
    mesh.shape_keys.use_relative = True
    return obj


def _material(name: str) -> bpy.types.Material:
    """A Principled BSDF material named after the ICT material (reused if it exists)."""
    material = bpy.data.materials.get(name)
    if material is not None:
        return material
    colour, roughness = MATERIAL_LOOKS.get(name, DEFAULT_LOOK)
    material = bpy.data.materials.new(name)
    material.diffuse_color = colour          # viewport (Workbench) colour
    material.roughness = roughness
    if material.node_tree is None:           # Blender < 5.0 creates materials without nodes
        material.use_nodes = True
    for node in material.node_tree.nodes:
        if node.type == 'BSDF_PRINCIPLED':
            node.inputs["Base Color"].default_value = colour
            node.inputs["Roughness"].default_value = roughness
            node.inputs["Alpha"].default_value = colour[3]
    if colour[3] < 1.0:
        material.surface_render_method = 'BLENDED'   # EEVEE (4.2+); Workbench uses diffuse_color
    return material


def _add_vertex_group(obj: bpy.types.Object, name: str, weights: np.ndarray) -> None:
    """One vertex group holding `weights` (V,): one `add` call per distinct weight value."""
    group = obj.vertex_groups.new(name=name)
    weights = weights.astype(np.float32)
    nonzero = np.nonzero(weights > 0)[0]
    values, inverse = np.unique(weights[nonzero], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(values) + 1))
    for value, start, stop in zip(values.tolist(), bounds[:-1], bounds[1:]):
        group.add(nonzero[order[start:stop]].tolist(), value, 'REPLACE')


def _create_armature(name: str, data: RigBoneData,
                     collection: bpy.types.Collection) -> bpy.types.Object:
    armature = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, armature)
    collection.objects.link(obj)
    obj.show_in_front = True
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        edit_bones = []
        for bone_name, head, tail, parent in zip(data.names, data.heads, data.tails,
                                                 data.parents):
            bone = armature.edit_bones.new(bone_name)
            bone.head = head.tolist()
            bone.tail = tail.tolist()
            bone.use_deform = True
            if parent >= 0:
                bone.parent = edit_bones[parent]
            edit_bones.append(bone)
        # Explicit rest matrices (rotation MODEL_TO_BLENDER) rather than head/tail/roll.
        for bone, rest in zip(edit_bones, data.rest_matrices):
            bone.matrix = Matrix(rest.tolist())
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')
        view_layer.objects.active = previous_active
    for pose_bone in obj.pose.bones:
        pose_bone.rotation_mode = 'QUATERNION'
    return obj


def rig_armature(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The rig's armature object for `obj` (the armature itself or its mesh), else None."""
    if obj is None:
        return None
    if obj.type == 'MESH' and obj.get(MESH_PROPERTY) and obj.parent is not None:
        obj = obj.parent
    if obj.type == 'ARMATURE' and BETA_PROPERTY in obj:
        return obj
    return None


def rig_mesh(armature_obj: bpy.types.Object) -> bpy.types.Object:
    """The rig's mesh object (the child mesh marked as the rig mesh)."""
    for child in armature_obj.children:
        if child.type == 'MESH' and child.get(MESH_PROPERTY):
            return child
    raise LookupError(f"{armature_obj.name!r} has no DenseCap rig mesh")


def rig_identity(armature_obj: bpy.types.Object) -> np.ndarray:
    """The identity beta (B,) float64 the rig was built with."""
    return np.array(armature_obj[BETA_PROPERTY], dtype=np.float64)


def pose_rig(armature_obj: bpy.types.Object, psi: np.ndarray, theta: np.ndarray) -> None:
    """Pose the rig for one frame: psi (E,) as shape-key values, theta (18,) as bones."""
    pose = pose_from_parameters(psi, theta)
    key_blocks = rig_mesh(armature_obj).data.shape_keys.key_blocks
    names = [block.name for block in key_blocks][1:]   # [0] is the Basis
    if len(names) != len(pose.shape_key_values):
        raise ValueError(f"the rig has {len(names)} shape keys, psi has "
                         f"{len(pose.shape_key_values)} values")
    for name, value in zip(names, pose.shape_key_values.tolist()):
        key_blocks[name].value = value
    bones = armature_obj.pose.bones
    for name, quaternion in zip(JOINT_NAMES, pose.bone_quaternions.tolist()):
        bones[name].rotation_quaternion = quaternion
    bones[JOINT_NAMES[0]].location = pose.root_location.tolist()
