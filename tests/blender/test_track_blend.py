"""`densecap track --blend`: the tracked clip as an animated rig behind the tracking camera."""

import bpy
import numpy as np

from densecap.tracking import cli
from densecap.tracking.performance import load_performance


def test_track_writes_an_animated_blend(tmp_path, shared_dir):
    clip = shared_dir / "footage" / "talking_2.mp4"
    out, blend = tmp_path / "perf.npz", tmp_path / "perf.blend"
    assert cli.main(["track", str(clip), "--end", "12", "--out", str(out), "--blend", str(blend),
                     "--quiet"]) == cli.EXIT_OK
    performance = load_performance(out)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 12)
    armature = next(o for o in scene.objects if o.type == 'ARMATURE')
    np.testing.assert_allclose(np.asarray(armature["densecap_beta"]), performance.beta, atol=1e-6)
    mesh = next(o for o in scene.objects if o.type == 'MESH')
    jaw = mesh.data.shape_keys.key_blocks["jawOpen"]
    expected = performance.psi[:, list(performance.expression_names).index("jawOpen")]
    for frame in (1, 6, 12):
        scene.frame_set(frame)
        assert abs(jaw.value - expected[frame - 1]) < 1e-5
    camera = scene.camera
    assert camera is not None and camera.data.background_images[0].clip is not None
    focal_px = camera.data.lens / camera.data.sensor_width * max(scene.render.resolution_x,
                                                                scene.render.resolution_y)
    assert abs(focal_px - performance.camera.focal_length) < 1e-3
