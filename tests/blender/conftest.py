"""Blender tier: real `bpy` (PyPI), headless. Each test gets an empty factory scene."""

import pytest

bpy = pytest.importorskip("bpy")


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene


@pytest.fixture
def registered(empty_scene):
    """The add-on registered (as Blender's extension loader would), unregistered after."""
    import densecap
    densecap.register()
    yield
    densecap.unregister()
