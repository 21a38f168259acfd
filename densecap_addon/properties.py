"""Scene-level settings and state of DenseCap (`scene.densecap`)."""

import bpy



def _is_armature(_settings, obj) -> bool:
    return obj.type == 'ARMATURE'


def _is_mesh(_settings, obj) -> bool:
    return obj.type == 'MESH'


class DenseCapView(bpy.types.PropertyGroup):
    """One camera of a multi-view take."""

    clip: bpy.props.PointerProperty(name="Clip", type=bpy.types.MovieClip)
    offset: bpy.props.IntProperty(
        name="Offset", default=0,
        description="Timeline frame of this clip's first frame minus 1 (its source frame i is "
                    "timeline frame i + offset)")


class DenseCapChannel(bpy.types.PropertyGroup):
    """Gain and offset of one retargeted shape key (`name` is the target's shape key)."""

    gain: bpy.props.FloatProperty(name="Gain", default=1.0, soft_min=0.0, soft_max=3.0)
    offset: bpy.props.FloatProperty(name="Offset", default=0.0, soft_min=-1.0, soft_max=1.0)


_PRESET_ITEMS = (('RIGIFY', "Rigify", "Rigify's neck, head and eye bones"),
                 ('AUTO_RIG_PRO', "Auto-Rig Pro", "Auto-Rig Pro's c_neck, c_head, c_eye controls"))


class DenseCapSceneSettings(bpy.types.PropertyGroup):
    rig: bpy.props.PointerProperty(
        name="Face Rig", type=bpy.types.Object, poll=_is_armature,
        description="The DenseCap face rig (armature) that tracking results are written to")
    clip: bpy.props.PointerProperty(
        name="Clip", type=bpy.types.MovieClip,
        description="The footage Track Clip tracks (Load Footage sets it)")
    face_index: bpy.props.IntProperty(
        name="Face", default=-1, min=-1,
        description="Which face to track, counted from the left (-1: the largest)")

    # Track Clip progress, shown in the panel while a job runs.
    frames_done: bpy.props.IntProperty()
    frames_total: bpy.props.IntProperty()
    tracking_fps: bpy.props.FloatProperty()
    seconds_left: bpy.props.FloatProperty(default=-1.0)
    status: bpy.props.StringProperty(name="Status", description="The last tracking result")
    gaps: bpy.props.StringProperty(
        name="Frames Without a Face", description="Scene frames left as gaps by the last track")

    # Several cameras.
    views: bpy.props.CollectionProperty(type=DenseCapView)
    active_view: bpy.props.IntProperty()

    # Live Preview.
    live_source: bpy.props.StringProperty(
        name="Camera", default="0",
        description="Webcam index, or a video file that stands in for the camera")
    live_every_frame: bpy.props.BoolProperty(
        name="Every Frame",
        description="For a video file: track every frame at the tracker's speed instead of "
                    "playing it in real time (which drops the frames the tracker misses)")
    live_fps: bpy.props.FloatProperty()

    # Bake / Retarget.
    target_mesh: bpy.props.PointerProperty(
        name="Target Mesh", type=bpy.types.Object, poll=_is_mesh,
        description="A mesh with ARKit-named shape keys that receives the expressions")
    target_armature: bpy.props.PointerProperty(
        name="Target Armature", type=bpy.types.Object, poll=_is_armature,
        description="An armature that receives the neck, head and eye rotations")
    bone_preset: bpy.props.EnumProperty(name="Preset", items=_PRESET_ITEMS)
    bone_neck: bpy.props.StringProperty(name="Neck", default="neck")
    bone_head: bpy.props.StringProperty(name="Head", default="head")
    bone_eye_L: bpy.props.StringProperty(name="Left Eye", default="eye.L")
    bone_eye_R: bpy.props.StringProperty(name="Right Eye", default="eye.R")
    channels: bpy.props.CollectionProperty(type=DenseCapChannel)
    active_channel: bpy.props.IntProperty()
    bone_gain: bpy.props.FloatProperty(name="Rotation Gain", default=1.0, soft_min=0.0,
                                       soft_max=3.0)
    smoothing: bpy.props.IntProperty(
        name="Smoothing", default=0, min=0, soft_max=15,
        description="Moving-average window in frames (0: none)")


CLASSES = (DenseCapView, DenseCapChannel, DenseCapSceneSettings)


def register():
    bpy.types.Scene.densecap = bpy.props.PointerProperty(type=DenseCapSceneSettings)


def unregister():
    del bpy.types.Scene.densecap
