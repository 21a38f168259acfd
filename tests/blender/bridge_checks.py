"""Shared by the bridge tests: evaluated vertex positions and random solver parameters."""

import bpy
import numpy as np

from densecap.solver.conventions import THETA_SIZE

BRIDGE_TOLERANCE_M = 1e-4


def evaluated_world_vertices(obj) -> np.ndarray:
    """Evaluated (shape keys + modifiers) vertex positions of `obj` in world space: (V, 3)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    vertices = evaluated.data.vertices
    co = np.empty(3 * len(vertices), dtype=np.float32)
    vertices.foreach_get("co", co)
    world = np.array(evaluated.matrix_world)
    return co.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]


def random_parameters(rng, model):
    beta = rng.normal(size=model.num_identity)
    psi = rng.uniform(0.0, 1.0, size=model.num_expressions)
    theta = np.concatenate([rng.uniform(-0.4, 0.4, size=THETA_SIZE - 3),
                            rng.uniform(-3.0, 3.0, size=3)])            # cm
    return beta, psi, theta
