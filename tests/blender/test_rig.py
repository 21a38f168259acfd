"""The generated rig: structure, and the bridge test (Blender deforms exactly like the solver)."""

import numpy as np
import pytest

import bpy
from densecap.densecap_addon.rig import create_rig, pose_rig, rig_identity, rig_mesh
from densecap.densecap_addon.rig_data import build_mesh_data
from densecap.solver import mesh
from densecap.solver.conventions import (JOINT_NAMES, JOINT_PARENTS, MODEL_TO_BLENDER,
                                         THETA_SIZE, model_to_blender_points)
from bridge_checks import BRIDGE_TOLERANCE_M, evaluated_world_vertices, random_parameters


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bridge_rig_deforms_like_the_solver(empty_scene, face_model, seed):
    beta, psi, theta = random_parameters(np.random.default_rng(seed), face_model)
    armature_obj = create_rig(face_model, beta)
    pose_rig(armature_obj, psi, theta)

    blender = evaluated_world_vertices(rig_mesh(armature_obj))
    expected = model_to_blender_points(
        mesh(face_model, beta, psi, theta)[face_model.render_vertices])
    error = np.linalg.norm(blender - expected, axis=1).max()
    print(f"bridge seed {seed}: max vertex error {error:.3e} m "
          f"(bpy {bpy.app.version_string})")
    assert blender.shape == expected.shape
    assert error < BRIDGE_TOLERANCE_M
    # The pose moved the mesh well beyond the tolerance, so the comparison means something.
    rest = model_to_blender_points(
        mesh(face_model, beta, np.zeros_like(psi), np.zeros(THETA_SIZE))[face_model.render_vertices])
    assert np.linalg.norm(blender - rest, axis=1).max() > 100 * BRIDGE_TOLERANCE_M


def test_rig_structure(empty_scene, face_model):
    beta = np.random.default_rng(5).normal(size=face_model.num_identity)
    armature_obj = create_rig(face_model, beta)
    mesh_obj = rig_mesh(armature_obj)

    np.testing.assert_allclose(rig_identity(armature_obj), beta)
    assert mesh_obj.parent == armature_obj
    assert len(mesh_obj.data.vertices) == len(face_model.render_vertices)

    key_blocks = mesh_obj.data.shape_keys.key_blocks
    assert [k.name for k in key_blocks] == ["Basis", *face_model.expression_names]
    assert all(k.slider_min == 0.0 and k.slider_max == 1.0 and k.value == 0.0
               for k in key_blocks[1:])

    bones = armature_obj.data.bones
    assert [b.name for b in bones] == list(JOINT_NAMES)
    for bone, parent in zip(bones, JOINT_PARENTS):
        assert (bone.parent.name if bone.parent else None) == (
            JOINT_NAMES[parent] if parent >= 0 else None)
        np.testing.assert_allclose(np.array(bone.matrix_local)[:3, :3], MODEL_TO_BLENDER,
                                   atol=1e-6)
    assert [g.name for g in mesh_obj.vertex_groups] == list(JOINT_NAMES)
    # Vertex-group weights round-trip (eye_L: rigid eyeball, head: falloff).
    for joint in (JOINT_NAMES.index("head"), JOINT_NAMES.index("eye_L")):
        expected = face_model.skin_weights[face_model.render_vertices, joint]
        got = np.zeros_like(expected)
        for vertex in mesh_obj.data.vertices:
            for element in vertex.groups:
                if element.group == joint:
                    got[vertex.index] = element.weight
        np.testing.assert_allclose(got, expected, atol=1e-6)

    modifiers = [m for m in mesh_obj.modifiers if m.type == 'ARMATURE']
    assert len(modifiers) == 1 and modifiers[0].object == armature_obj
    assert mesh_obj.data.uv_layers.active is not None
    material_names = [m.name for m in mesh_obj.data.materials]
    assert {"M_Face", "M_Teeth", "M_IrisLeft", "M_EyeLashes", "M_Cornea", "M_Pupil"} <= set(
        material_names)
    used = np.zeros(len(mesh_obj.data.polygons), dtype=np.int32)
    mesh_obj.data.polygons.foreach_get("material_index", used)
    assert set(np.unique(used)) == set(range(len(material_names)))
    assert not mesh_obj.data.validate(verbose=False)      # nothing to fix in the topology


def test_rig_uvs_and_topology_match_the_model(empty_scene, face_model):
    beta = np.zeros(face_model.num_identity)
    data = build_mesh_data(face_model, beta)
    mesh_data = rig_mesh(create_rig(face_model, beta)).data
    uv = np.empty(2 * len(mesh_data.loops), dtype=np.float32)
    mesh_data.uv_layers.active.data.foreach_get("uv", uv)
    np.testing.assert_array_equal(uv.reshape(-1, 2), data.loop_uvs)
    loop_vertices = np.empty(len(mesh_data.loops), dtype=np.int32)
    mesh_data.loops.foreach_get("vertex_index", loop_vertices)
    np.testing.assert_array_equal(loop_vertices, data.loop_vertices)
    totals = np.empty(len(mesh_data.polygons), dtype=np.int32)
    mesh_data.polygons.foreach_get("loop_total", totals)
    np.testing.assert_array_equal(totals, data.polygon_loop_totals)
