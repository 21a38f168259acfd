"""Blender tier: real `bpy` (PyPI), headless. Each test gets an empty factory scene."""

import pytest

bpy = pytest.importorskip("bpy")


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene


@pytest.fixture
def registered(empty_scene):
    """The add-on registered (as Blender's extension loader would), unregistered after
    (which also stops a tracking job or Live Preview left running and their timers)."""
    import densecap
    densecap.register()
    yield
    densecap.unregister()


@pytest.fixture(scope="session")
def tracked_blend(tmp_path_factory, shared_dir):
    """Load Footage + Track Clip on the first 12 frames of a real clip, saved as a .blend:
    (path, the session's TrackingRun). Tracked once per test session."""
    import densecap
    from workflow_helpers import TALKING, load_and_track
    bpy.ops.wm.read_factory_settings(use_empty=True)
    densecap.register()
    try:
        session = load_and_track(shared_dir / "footage" / TALKING, 12)
        assert session.state == 'FINISHED', session.message
        path = tmp_path_factory.mktemp("tracked") / "tracked.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False)
    finally:
        densecap.unregister()
    return path, session.run
