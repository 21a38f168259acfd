"""Every `bpy.types.Operator` of DenseCap lives in this package (one home)."""

import bpy

from . import live, session
from .export import DENSECAP_OT_export_livelink, DENSECAP_OT_export_performance
from .footage import DENSECAP_OT_load_footage
from .generate_rig import DENSECAP_OT_generate_rig
from .live import (DENSECAP_OT_live_calibrate_neutral, DENSECAP_OT_live_record,
                   DENSECAP_OT_live_start, DENSECAP_OT_live_stop)
from .retarget import (DENSECAP_OT_apply_bone_preset, DENSECAP_OT_match_channels,
                       DENSECAP_OT_retarget)
from .session import DENSECAP_OT_cancel_tracking
from .track import (DENSECAP_OT_add_view, DENSECAP_OT_remove_view, DENSECAP_OT_track_cameras,
                    DENSECAP_OT_track_clip)

CLASSES = (DENSECAP_OT_generate_rig, DENSECAP_OT_load_footage, DENSECAP_OT_track_clip,
           DENSECAP_OT_cancel_tracking, DENSECAP_OT_track_cameras, DENSECAP_OT_add_view,
           DENSECAP_OT_remove_view, DENSECAP_OT_live_start, DENSECAP_OT_live_stop,
           DENSECAP_OT_live_record, DENSECAP_OT_live_calibrate_neutral,
           DENSECAP_OT_apply_bone_preset, DENSECAP_OT_match_channels, DENSECAP_OT_retarget,
           DENSECAP_OT_export_livelink, DENSECAP_OT_export_performance)

_register, _unregister = bpy.utils.register_classes_factory(CLASSES)


@bpy.app.handlers.persistent
def _stop_background_work(*_args):
    """Stop what runs in the background (tracking job, live capture, their timers)."""
    session.shutdown()
    live.shutdown()


def register():
    _register()
    bpy.app.handlers.load_pre.append(_stop_background_work)   # its scene is going away


def unregister():
    if _stop_background_work in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_stop_background_work)
    _stop_background_work()
    _unregister()
