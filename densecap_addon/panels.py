"""The "DenseCap" tab of the 3D viewport sidebar and of the Movie Clip Editor sidebar (N
panel): footage, tracking with its progress, several cameras, Live Preview, retarget, export.
"""

import bpy


def _progress(layout, settings) -> None:
    done, total = settings.frames_done, settings.frames_total
    text = f"{done}/{total} frames" if total else f"{done} frames"
    text += f"  {settings.tracking_fps:.1f} fps"
    if settings.seconds_left >= 0:
        text += f"  {settings.seconds_left:.0f} s left"
    if hasattr(layout, "progress"):                     # Blender 4.0+
        layout.progress(factor=done / total if total else 0.0, type='BAR', text=text)
    else:
        layout.label(text=text)
    layout.operator("densecap.cancel_tracking", icon='CANCEL')


def _track(layout, context, settings) -> None:
    from ..operators.session import active_session
    box = layout.box()
    box.label(text="Footage", icon='SEQUENCE')
    box.operator("densecap.load_footage", icon='FILE_MOVIE')
    box.prop(settings, "clip")
    box.prop(settings, "face_index")
    session = active_session()
    if session is not None and session.scene_name == context.scene.name:
        _progress(box, settings)
    else:
        box.operator("densecap.track_clip", icon='TRACKING')
        row = box.row(align=True)
        row.operator("densecap.track_clip", text="Real-time").mode = 'REALTIME'
        row.operator("densecap.track_clip", text="Offline").mode = 'OFFLINE'
    if settings.status:
        box.label(text=settings.status, icon='INFO')
    if settings.gaps:
        box.label(text=f"No face: {settings.gaps}", icon='ERROR')


def _cameras(layout, settings) -> None:
    box = layout.box()
    box.label(text="Several Cameras", icon='OUTLINER_OB_CAMERA')
    for index, view in enumerate(settings.views):
        row = box.row(align=True)
        row.prop(view, "clip", text="")
        row.prop(view, "offset")
        row.operator("densecap.remove_view", text="", icon='X').index = index
    row = box.row(align=True)
    row.operator("densecap.add_view", icon='ADD')
    row.operator("densecap.track_cameras", icon='TRACKING')


def _live(layout, settings) -> None:
    from ..operators.live import active_live
    box = layout.box()
    box.label(text="Live Preview", icon='OUTLINER_OB_CAMERA')
    box.prop(settings, "live_source")
    if not settings.live_source.strip().isdigit():
        box.prop(settings, "live_every_frame")
    session = active_live()
    if session is None:
        box.operator("densecap.live_start", icon='PLAY')
        return
    box.label(text=f"{settings.live_fps:.1f} fps")
    row = box.row(align=True)
    row.operator("densecap.live_record", text="Stop Recording" if session.recording else "Record",
                 icon='REC', depress=session.recording)
    row.operator("densecap.live_calibrate_neutral", icon='NEUTRAL')
    box.operator("densecap.live_stop", icon='PAUSE')


class DENSECAP_UL_channels(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_property):
        row = layout.row(align=True)
        row.label(text=item.name)
        row.prop(item, "gain", text="")
        row.prop(item, "offset", text="")


def _retarget(layout, settings) -> None:
    box = layout.box()
    box.label(text="Bake / Retarget", icon='MOD_DATA_TRANSFER')
    box.prop(settings, "target_mesh")
    if settings.target_mesh is not None:
        box.operator("densecap.match_channels", icon='SHAPEKEY_DATA')
        if len(settings.channels):
            box.template_list("DENSECAP_UL_channels", "", settings, "channels", settings,
                              "active_channel", rows=4)
    box.prop(settings, "target_armature")
    if settings.target_armature is not None:
        row = box.row(align=True)
        row.prop(settings, "bone_preset", text="")
        row.operator("densecap.apply_bone_preset", text="Apply")
        for bone in ("neck", "head", "eye_L", "eye_R"):
            box.prop_search(settings, f"bone_{bone}", settings.target_armature.data, "bones")
        box.prop(settings, "bone_gain")
    box.prop(settings, "smoothing")
    box.operator("densecap.retarget", icon='ACTION')


def draw_densecap(layout, context) -> None:
    settings = context.scene.densecap
    layout.prop(settings, "rig")
    layout.operator("densecap.generate_rig", icon='ARMATURE_DATA')
    _track(layout, context, settings)
    _cameras(layout, settings)
    _live(layout, settings)
    _retarget(layout, settings)
    box = layout.box()
    box.label(text="Export", icon='EXPORT')
    row = box.row(align=True)
    row.operator("densecap.export_livelink", text="Live Link CSV")
    row.operator("densecap.export_performance", text="Performance")


class _DenseCapPanel:
    bl_label = "DenseCap"
    bl_region_type = 'UI'
    bl_category = "DenseCap"

    def draw(self, context):
        draw_densecap(self.layout, context)


class VIEW3D_PT_densecap(_DenseCapPanel, bpy.types.Panel):
    bl_space_type = 'VIEW_3D'


class CLIP_PT_densecap(_DenseCapPanel, bpy.types.Panel):
    bl_space_type = 'CLIP_EDITOR'


CLASSES = (DENSECAP_UL_channels, VIEW3D_PT_densecap, CLIP_PT_densecap)
