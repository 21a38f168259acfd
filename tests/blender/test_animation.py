"""Bulk keyframe writing: the animated rig matches the solver at every keyed frame."""

import numpy as np

import bpy
from densecap.densecap_addon.animation import action_fcurves, write_rig_animation
from densecap.densecap_addon.rig import create_rig, rig_mesh
from densecap.solver import mesh
from densecap.solver.conventions import model_to_blender_points
from bridge_checks import BRIDGE_TOLERANCE_M, evaluated_world_vertices, random_parameters


def test_keyframed_rig_matches_solver(empty_scene, face_model):
    rng = np.random.default_rng(7)
    beta, _, _ = random_parameters(rng, face_model)
    frame_count = 6
    psi = rng.uniform(0.0, 1.0, size=(frame_count, face_model.num_expressions))
    theta = np.stack([random_parameters(rng, face_model)[2] for _ in range(frame_count)])
    frames = np.arange(10, 10 + frame_count)
    armature_obj = create_rig(face_model, beta)
    write_rig_animation(armature_obj, frames, psi * 0.5, theta * 0.5)   # replaced below
    write_rig_animation(armature_obj, frames, psi, theta)

    mesh_obj = rig_mesh(armature_obj)
    for fcurve_owner in (armature_obj, mesh_obj.data.shape_keys):
        action = fcurve_owner.animation_data.action
        assert action is not None
    for position, frame in enumerate(frames):
        empty_scene.frame_set(int(frame))
        blender = evaluated_world_vertices(mesh_obj)
        expected = model_to_blender_points(
            mesh(face_model, beta, psi[position], theta[position])[face_model.render_vertices])
        assert np.linalg.norm(blender - expected, axis=1).max() < BRIDGE_TOLERANCE_M
    # One key per frame on every curve: the second write replaced the first one's keys.
    for owner, curve_count in ((armature_obj, 5 * 4 + 3),
                               (mesh_obj.data.shape_keys, face_model.num_expressions)):
        fcurves = action_fcurves(owner)
        assert len(fcurves) == curve_count
        assert all(len(fcurve.keyframe_points) == frame_count for fcurve in fcurves)

