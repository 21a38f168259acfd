"""tracking.posing (the tracker's per-frame posing) against solver.model and solver.camera,
and the per-stage stopwatch the benches read."""

import time

import numpy as np

from densecap.landmarks.stopwatch import NO_LAPS, Stopwatch
from densecap.solver.camera import Camera
from densecap.solver.model import mesh
from densecap.tracking.posing import CameraPoser, project_camera_space, triangle_facing


def _camera(rng) -> Camera:
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation *= np.sign(np.linalg.det(rotation))          # a rotation, not a reflection
    return Camera(900.0, 640, 480, rotation=rotation, translation=[1.0, -2.0, 3.0])


def test_camera_poser_equals_the_solver_mesh(face_model):
    rng = np.random.default_rng(0)
    ids = rng.choice(face_model.num_vertices, 300, replace=False)
    poser = CameraPoser(face_model, ids)
    camera = _camera(rng)
    for _ in range(2):                                    # a second identity: rest rebuilt
        beta = rng.normal(0, 1, face_model.num_identity)
        psi = rng.uniform(0, 0.5, face_model.num_expressions)
        theta = rng.normal(0, 0.2, 18)
        theta[15:] = [2.0, -1.0, 60.0]
        expected = mesh(face_model, beta, psi, theta, ids) @ camera.rotation.T \
            + camera.translation
        np.testing.assert_allclose(poser.camera_space(beta, psi, theta, camera).T, expected,
                                   atol=1e-9)


def test_projection_and_facing():
    rng = np.random.default_rng(1)
    camera = _camera(rng)
    world = rng.uniform(-10, 10, (50, 3)) @ camera.rotation     # in front of the camera
    world += np.linalg.solve(camera.rotation, [0.0, 0.0, 80.0] - camera.translation)
    rows = (world @ camera.rotation.T + camera.translation).T
    np.testing.assert_allclose(project_camera_space(rows, camera), camera.project(world),
                               atol=1e-9)
    # a triangle facing the camera (normal towards it) and the same one turned away
    corners = np.array([[[0, 0, 50], [0, 1, 50], [1, 0, 50]],
                        [[0, 0, 50], [1, 0, 50], [0, 1, 50]]], float)
    np.testing.assert_allclose(triangle_facing(corners.transpose(2, 0, 1)), [1.0, -1.0],
                               atol=1e-3)


def test_stopwatch_stages_add_up():
    watch = Stopwatch()
    NO_LAPS.start()
    NO_LAPS.lap("ignored")                                # the default records nothing
    started = time.perf_counter()
    watch.start()
    time.sleep(0.01)
    watch.lap("a")
    watch.lap("b")
    time.sleep(0.005)
    watch.lap("a")
    elapsed = time.perf_counter() - started
    seconds = watch.take()
    assert set(seconds) == {"a", "b"} and seconds["a"] >= 0.015
    assert sum(seconds.values()) <= elapsed
    assert watch.take() == {}
