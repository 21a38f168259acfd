"""The bpy-free half of the Blender layer: what the rig holds and the pose conversion."""

import subprocess
import sys

import numpy as np
import pytest

from densecap.densecap_addon.rig_data import (CORNEA_MATERIAL, PUPIL_MATERIAL,
                                              axis_angle_to_quaternion, build_bone_data,
                                              build_mesh_data, pose_from_parameters)
from densecap.solver import rodrigues, shape
from densecap.solver.conventions import (CM_TO_M, JOINT_NAMES, MODEL_TO_BLENDER, THETA_SIZE,
                                         model_to_blender_points)


def quaternion_matrix(q):
    """(w, x, y, z) unit quaternions (..., 4) -> rotation matrices (..., 3, 3)."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def test_rig_data_imports_without_bpy():
    code = ("import sys; sys.modules['bpy'] = None\n"
            "import densecap.densecap_addon.rig_data\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_quaternion_matches_rodrigues():
    rng = np.random.default_rng(0)
    axis_angles = np.concatenate([rng.normal(size=(20, 3)), np.zeros((1, 3)),
                                  [[1e-10, 0.0, 0.0]]])
    quaternions = axis_angle_to_quaternion(axis_angles)
    np.testing.assert_allclose(np.linalg.norm(quaternions, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(quaternion_matrix(quaternions), rodrigues(axis_angles),
                               atol=1e-12)
    np.testing.assert_array_equal(axis_angle_to_quaternion(np.zeros(3)), [1.0, 0, 0, 0])


def test_pose_from_parameters_layout():
    rng = np.random.default_rng(1)
    psi = rng.uniform(size=(4, 55))
    theta = rng.normal(size=(4, THETA_SIZE))
    pose = pose_from_parameters(psi, theta)
    assert pose.bone_quaternions.shape == (4, len(JOINT_NAMES), 4)
    np.testing.assert_array_equal(pose.shape_key_values, psi)
    np.testing.assert_allclose(pose.root_location, theta[:, -3:] * CM_TO_M)
    np.testing.assert_allclose(pose.bone_quaternions[2, 3],
                               axis_angle_to_quaternion(theta[2, 9:12]))
    single = pose_from_parameters(psi[0], theta[0])
    np.testing.assert_allclose(single.bone_quaternions, pose.bone_quaternions[0])
    with pytest.raises(ValueError, match="theta"):
        pose_from_parameters(psi, theta[:, :17])
    with pytest.raises(ValueError, match="frames"):
        pose_from_parameters(psi[:3], theta)


def test_mesh_data_is_consistent(face_model):
    beta = np.random.default_rng(2).normal(size=face_model.num_identity)
    data = build_mesh_data(face_model, beta)
    vertex_count = len(face_model.render_vertices)
    np.testing.assert_allclose(
        data.positions,
        model_to_blender_points(shape(face_model, beta, np.zeros(face_model.num_expressions),
                                      face_model.render_vertices)))
    assert data.loop_vertices.min() == 0 and data.loop_vertices.max() == vertex_count - 1
    assert len(np.unique(data.loop_vertices)) == vertex_count       # no loose vertex
    np.testing.assert_array_equal(data.polygon_loop_starts[1:],
                                  np.cumsum(data.polygon_loop_totals)[:-1])
    assert data.polygon_loop_totals.sum() == len(data.loop_vertices) == len(data.loop_uvs)
    assert set(np.unique(data.polygon_material)) == set(range(len(data.material_names)))
    assert data.shape_key_names == face_model.expression_names
    jaw = face_model.expression_names.index("jawOpen")
    np.testing.assert_allclose(
        data.shape_key_positions[jaw] - data.positions,
        face_model.expression_basis[jaw][face_model.render_vertices] @ MODEL_TO_BLENDER.T
        * CM_TO_M, atol=1e-6)
    np.testing.assert_allclose(data.vertex_group_weights.sum(axis=1), 1.0)


def test_eye_materials(face_model):
    data = build_mesh_data(face_model, np.zeros(face_model.num_identity))
    names = data.material_names
    counts = np.bincount(data.polygon_material, minlength=len(names))
    # Cornea taken from the outer eye shells only, pupil from the inner ones only; each
    # eye keeps white sclera and an iris ring.
    ict = np.bincount(face_model.polygon_material, minlength=len(face_model.material_names))
    outer = ict[face_model.material_names.index("M_ScleraLeft")] * 2
    inner = ict[face_model.material_names.index("M_IrisLeft")] * 2
    kept_outer = counts[names.index("M_ScleraLeft")] + counts[names.index("M_ScleraRight")]
    kept_inner = counts[names.index("M_IrisLeft")] + counts[names.index("M_IrisRight")]
    assert counts[names.index(CORNEA_MATERIAL)] + kept_outer == outer
    assert counts[names.index(PUPIL_MATERIAL)] + kept_inner == inner
    for name in ("M_ScleraLeft", "M_ScleraRight", "M_IrisLeft", "M_IrisRight",
                 CORNEA_MATERIAL, PUPIL_MATERIAL):
        assert counts[names.index(name)] > 0, name


def test_bone_rest_matrices(face_model):
    beta = np.random.default_rng(3).normal(size=face_model.num_identity)
    bones = build_bone_data(face_model, beta)
    assert bones.names == JOINT_NAMES
    np.testing.assert_allclose(bones.rest_matrices[:, :3, :3],
                               np.broadcast_to(MODEL_TO_BLENDER, (len(JOINT_NAMES), 3, 3)))
    np.testing.assert_allclose(bones.rest_matrices[:, :3, 3], bones.heads)
    # Tails lie along each bone's rest Y axis.
    directions = bones.tails - bones.heads
    np.testing.assert_allclose(directions / np.linalg.norm(directions, axis=1, keepdims=True),
                               np.broadcast_to(MODEL_TO_BLENDER[:, 1], directions.shape))
