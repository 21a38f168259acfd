"""The DenseCap panels draw (in the 3D viewport and the Movie Clip Editor) with every
property and operator they name existing, in each state: idle, tracking, live."""

import time
import types

import bpy
from densecap.densecap_addon.panels import CLIP_PT_densecap, VIEW3D_PT_densecap, draw_densecap
from densecap.operators.session import TrackingSession, active_session
from densecap.tracking.job import BackgroundJob
from workflow_helpers import run_session


class Layout:
    """Records what a panel draws and checks that each name resolves."""

    def __init__(self, drawn):
        self.drawn = drawn

    def _child(self, *args, **kwargs):
        return Layout(self.drawn)

    box = row = column = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.drawn.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.drawn.append(("prop", name))

    def operator(self, idname, **kwargs):
        category, name = idname.split(".")
        assert getattr(getattr(bpy.ops, category), name).get_rna_type() is not None, idname
        self.drawn.append(("operator", idname))
        return type("Properties", (), {})()

    def label(self, text="", **kwargs):
        self.drawn.append(("label", text))

    def progress(self, text="", **kwargs):
        self.drawn.append(("progress", text))

    def template_list(self, list_type, *args, **kwargs):
        assert hasattr(bpy.types, list_type)
        self.drawn.append(("list", list_type))


def _draw():
    drawn = []
    draw_densecap(Layout(drawn), bpy.context)
    return drawn


def test_panels_in_both_editors(registered):
    assert (VIEW3D_PT_densecap.bl_space_type, CLIP_PT_densecap.bl_space_type) == (
        'VIEW_3D', 'CLIP_EDITOR')
    assert hasattr(bpy.types, "VIEW3D_PT_densecap") and hasattr(bpy.types, "CLIP_PT_densecap")
    drawn = _draw()
    for idname in ("densecap.load_footage", "densecap.track_clip", "densecap.track_cameras",
                   "densecap.live_start", "densecap.retarget", "densecap.export_livelink",
                   "densecap.export_performance", "densecap.generate_rig"):
        assert ("operator", idname) in drawn


def test_panel_shows_progress_while_tracking(registered):
    def work(progress, cancel):
        progress(30, 120, 15.0)
        while not cancel.cancelled:
            time.sleep(0.01)
        return types.SimpleNamespace(cancelled=True)

    session = TrackingSession(bpy.context.scene, BackgroundJob(work), lambda scene, run: "",
                              "Tracking").start()
    run_session(session, until=lambda: bpy.context.scene.densecap.frames_done == 30)
    drawn = _draw()
    assert ("progress", "30/120 frames  15.0 fps  6 s left") in drawn
    assert ("operator", "densecap.cancel_tracking") in drawn
    assert ("operator", "densecap.track_clip") not in drawn
    session.cancel()
    session.job.join(10)
    session.step()
    assert active_session() is None and ("operator", "densecap.track_clip") in _draw()


def test_panel_retarget_section_with_targets(registered):
    settings = bpy.context.scene.densecap
    settings.target_armature = bpy.data.objects.new("A", bpy.data.armatures.new("A"))
    settings.target_mesh = bpy.data.objects.new("M", bpy.data.meshes.new("M"))
    settings.channels.add().name = "jawOpen"
    drawn = _draw()
    assert ("prop", "bone_eye_L") in drawn and ("list", "DENSECAP_UL_channels") in drawn
