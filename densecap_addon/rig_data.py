"""What the generated face rig holds, as plain numpy data (no bpy).

The Blender layer (`rig.py`) only copies these arrays into Blender with `foreach_set`;
everything that needs thought (which parts are shown, index remapping, unit and axis
conversion, bone rest matrices, pose conversion) happens here, where it is unit-testable.

Bone rest matrices all share the rotation `MODEL_TO_BLENDER` (armature space), so a
model-space local rotation (axis-angle) is exactly the pose bone's rotation_quaternion and
the root translation (cm, model axes) times `CM_TO_M` is the root pose bone's location.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..solver.conventions import (CM_TO_M, JOINT_NAMES, JOINT_PARENTS, MODEL_TO_BLENDER,
                                  NUM_JOINTS, THETA_SIZE, THETA_TRANSLATION,
                                  model_to_blender_points)
from ..solver.face_model import FaceModel
from ..solver.model import joints, shape

#: Length of every bone (metres); bones point along their rest Y axis (Blender +Z, up).
BONE_LENGTH = 0.05

#: ICT eyeballs are two shells: an outer one ("sclera" material) that bulges into the
#: cornea, and an inner one ("iris" material) carrying iris and pupil. ICT paints them with
#: textures; the rig has plain colours, so it derives two materials from the geometry:
#: the outer-shell polygons over the iris become a transparent cornea, and the inner-shell
#: polygons of the pupil (what PupilDilate moves most) a dark pupil.
CORNEA_MATERIAL = "M_Cornea"
PUPIL_MATERIAL = "M_Pupil"

#: Per eye: ICT outer-shell material, inner-shell material, pupil shape key, eye joint.
EYES = (("M_ScleraLeft", "M_IrisLeft", "PupilDilate_L", "eye_L"),
        ("M_ScleraRight", "M_IrisRight", "PupilDilate_R", "eye_R"))

#: Principled BSDF base colour (linear RGBA) and roughness per ICT material;
#: materials not listed get the skin colour.
MATERIAL_LOOKS = {
    "M_Face": ((0.80, 0.55, 0.45, 1.0), 0.5),
    "M_BackHead": ((0.80, 0.55, 0.45, 1.0), 0.5),
    "M_GumsTongue": ((0.70, 0.22, 0.25, 1.0), 0.3),
    "M_Teeth": ((0.90, 0.87, 0.78, 1.0), 0.25),
    "M_ScleraLeft": ((0.92, 0.90, 0.88, 1.0), 0.15),
    "M_ScleraRight": ((0.92, 0.90, 0.88, 1.0), 0.15),
    "M_IrisLeft": ((0.12, 0.22, 0.35, 1.0), 0.1),
    "M_IrisRight": ((0.12, 0.22, 0.35, 1.0), 0.1),
    "M_EyeLashes": ((0.03, 0.02, 0.015, 0.45), 0.6),   # cards: ICT paints them with alpha
    CORNEA_MATERIAL: ((1.0, 1.0, 1.0, 0.0), 0.05),
    PUPIL_MATERIAL: ((0.005, 0.005, 0.005, 1.0), 0.1),
}
DEFAULT_LOOK = MATERIAL_LOOKS["M_Face"]


@dataclass(frozen=True)
class RigMeshData:
    """The rig mesh in Blender units (metres, Blender axes), render parts only.

    positions : (V, 3) float64, Basis (identity baked in, no expression)
    loop_vertices : (C,) int32, vertex index of each polygon corner
    polygon_loop_starts : (P,) int32, first corner of each polygon
    polygon_loop_totals : (P,) int32, corners per polygon (3 or 4)
    loop_uvs : (C, 2) float32, UV of each corner
    polygon_material : (P,) int32, index into material_names
    material_names : (M,) names of the ICT materials the render polygons use, then
        CORNEA_MATERIAL and PUPIL_MATERIAL
    shape_key_names : (E,) expression names (ARKit + pupils)
    shape_key_positions : (E, V, 3) float32, absolute positions of each shape key
    vertex_group_weights : (V, K) float64, skinning weight per vertex and bone
    model_vertex_ids : (V,) int32, model vertex index of each rig vertex
    """

    positions: np.ndarray
    loop_vertices: np.ndarray
    polygon_loop_starts: np.ndarray
    polygon_loop_totals: np.ndarray
    loop_uvs: np.ndarray
    polygon_material: np.ndarray
    material_names: tuple[str, ...]
    shape_key_names: tuple[str, ...]
    shape_key_positions: np.ndarray
    vertex_group_weights: np.ndarray
    model_vertex_ids: np.ndarray


@dataclass(frozen=True)
class RigBoneData:
    """The armature in armature space (metres, Blender axes).

    names : (K,) joint names; parents : (K,) parent index, -1 for the root
    heads : (K, 3), tails : (K, 3) float64
    rest_matrices : (K, 4, 4) float64, rotation MODEL_TO_BLENDER, translation = head
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: np.ndarray
    tails: np.ndarray
    rest_matrices: np.ndarray


def _all_corners(model: FaceModel, corner_flags: np.ndarray) -> np.ndarray:
    """Per polygon (P_all,): whether the flag (C,) holds at every corner."""
    starts = np.concatenate([[0], np.cumsum(model.polygon_sizes)[:-1]])
    return np.logical_and.reduceat(corner_flags, starts)


def render_polygons(model: FaceModel) -> np.ndarray:
    """Indices (P,) of the render polygons: those whose corners are all render vertices."""
    shown = np.zeros(model.num_vertices, dtype=bool)
    shown[model.render_vertices] = True
    return np.nonzero(_all_corners(model, shown[model.polygon_vertices]))[0]


def eye_polygon_masks(model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """Cornea and pupil polygons of the model: two (P_all,) bool masks.

    Per eye, on the neutral mesh: the inner-shell vertices that the pupil shape key moves
    are the iris; the gaze axis runs from the eye joint to their centroid. Cornea: outer-shell
    polygons with every corner within the iris's angular radius about the axis. Pupil: every
    inner-shell polygon but the iris ring, i.e. the pupil disc (corners within the angular
    radius of the vertices moved by more than half the largest pupil displacement) and the
    eyeball's inside, which shows only through the pupil.
    """
    corner_material = np.repeat(model.polygon_material, model.polygon_sizes)
    joint_positions = joints(model, np.zeros(model.num_identity))
    cornea = np.zeros(len(model.polygon_sizes), dtype=bool)
    pupil = np.zeros_like(cornea)
    for outer_name, inner_name, pupil_key, joint_name in EYES:
        if not {outer_name, inner_name} <= set(model.material_names):
            continue
        inner = np.unique(model.polygon_vertices[
            corner_material == model.material_names.index(inner_name)])
        moved = np.linalg.norm(
            model.expression_basis[model.expression_names.index(pupil_key)][inner], axis=1)
        iris = moved > 1e-3 * moved.max()
        centre = joint_positions[JOINT_NAMES.index(joint_name)]
        directions = _unit(model.neutral[inner].astype(np.float64) - centre)
        axis = _unit(directions[iris].mean(axis=0))
        iris_cos = (directions[iris] @ axis).min()
        pupil_cos = (directions[moved > 0.5 * moved.max()] @ axis).min()
        corner_cos = _unit(model.neutral[model.polygon_vertices].astype(np.float64)
                           - centre) @ axis
        in_iris_cone = _all_corners(model, corner_cos >= iris_cos)
        in_pupil_cone = _all_corners(model, corner_cos >= pupil_cos)
        cornea |= ((model.polygon_material == model.material_names.index(outer_name))
                   & in_iris_cone)
        pupil |= ((model.polygon_material == model.material_names.index(inner_name))
                  & ~(in_iris_cone & ~in_pupil_cone))
    return cornea, pupil


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def build_mesh_data(model: FaceModel, beta: np.ndarray) -> RigMeshData:
    """Mesh arrays of the rig for identity `beta` (B,)."""
    vertex_ids = np.asarray(model.render_vertices, dtype=np.int64)
    remap = np.full(model.num_vertices, -1, dtype=np.int64)
    remap[vertex_ids] = np.arange(len(vertex_ids))

    polygons = render_polygons(model)
    totals = model.polygon_sizes[polygons].astype(np.int32)
    corner_polygon = np.repeat(np.arange(len(model.polygon_sizes)), model.polygon_sizes)
    corner_ids = np.nonzero(np.isin(corner_polygon, polygons))[0]
    loop_vertices = remap[model.polygon_vertices[corner_ids]]
    if (loop_vertices < 0).any():
        raise ValueError("a render polygon uses a vertex outside render_vertices")

    used_materials, polygon_material = np.unique(model.polygon_material[polygons],
                                                 return_inverse=True)
    material_names = tuple(model.material_names[i] for i in used_materials)
    polygon_material = polygon_material.reshape(-1)
    cornea, pupil = eye_polygon_masks(model)
    polygon_material[cornea[polygons]] = len(material_names)
    polygon_material[pupil[polygons]] = len(material_names) + 1
    basis = shape(model, beta, np.zeros(model.num_expressions), vertex_ids)
    positions = model_to_blender_points(basis)
    offsets = model.expression_basis[:, vertex_ids].astype(np.float64)
    keys = model_to_blender_points(basis[None] + offsets).astype(np.float32)
    return RigMeshData(
        positions=positions,
        loop_vertices=loop_vertices.astype(np.int32),
        polygon_loop_starts=np.concatenate([[0], np.cumsum(totals)[:-1]]).astype(np.int32),
        polygon_loop_totals=totals,
        loop_uvs=model.uv_coords[model.polygon_uv_indices[corner_ids]].astype(np.float32),
        polygon_material=polygon_material.astype(np.int32),
        material_names=material_names + (CORNEA_MATERIAL, PUPIL_MATERIAL),
        shape_key_names=tuple(model.expression_names),
        shape_key_positions=keys,
        vertex_group_weights=model.skin_weights[vertex_ids],
        model_vertex_ids=vertex_ids.astype(np.int32),
    )


def build_bone_data(model: FaceModel, beta: np.ndarray) -> RigBoneData:
    """Bones at the joint rest positions J(beta), all with rest rotation MODEL_TO_BLENDER."""
    heads = model_to_blender_points(joints(model, beta))
    y_axis = MODEL_TO_BLENDER[:, 1]
    rest = np.tile(np.eye(4), (NUM_JOINTS, 1, 1))
    rest[:, :3, :3] = MODEL_TO_BLENDER
    rest[:, :3, 3] = heads
    return RigBoneData(names=JOINT_NAMES, parents=JOINT_PARENTS, heads=heads,
                       tails=heads + BONE_LENGTH * y_axis, rest_matrices=rest)


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle vectors (..., 3) -> unit quaternions (..., 4) as (w, x, y, z)."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(a/2)/a, with its limit 1/2 near zero.
    scale = np.where(angle < 1e-8, 0.5, np.sin(half) / np.where(angle < 1e-8, 1.0, angle))
    return np.concatenate([np.cos(half), axis_angle * scale], axis=-1)


@dataclass(frozen=True)
class RigPose:
    """Pose channels of the rig for F frames (or one frame without the leading axis).

    shape_key_values : (F, E) float64, expression weights = shape-key values
    bone_quaternions : (F, K, 4) float64, pose-bone rotation_quaternion (w, x, y, z)
    root_location : (F, 3) float64, root pose-bone location (metres, bone axes)
    """

    shape_key_values: np.ndarray
    bone_quaternions: np.ndarray
    root_location: np.ndarray


def pose_from_parameters(psi: np.ndarray, theta: np.ndarray) -> RigPose:
    """Rig channels from solver parameters psi (..., E) and theta (..., 18).

    A leading frame axis is kept as is, so the keyframe writer converts a whole
    performance in one call.
    """
    psi = np.asarray(psi, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape[-1] != THETA_SIZE:
        raise ValueError(f"theta must end with axis {THETA_SIZE}, got shape {theta.shape}")
    if psi.shape[:-1] != theta.shape[:-1]:
        raise ValueError(f"psi {psi.shape} and theta {theta.shape} disagree on frames")
    rotations = theta[..., :3 * NUM_JOINTS].reshape(theta.shape[:-1] + (NUM_JOINTS, 3))
    return RigPose(shape_key_values=psi,
                   bone_quaternions=axis_angle_to_quaternion(rotations),
                   root_location=theta[..., THETA_TRANSLATION] * CM_TO_M)
