"""Add-on preferences: tracking threads, landmark model, real-time or offline by default.

`tracking_preferences(context)` is what the operators read; it falls back to the defaults
when the add-on is registered without Blender's add-on manager (tests, scripts).
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy

#: The extension's root package (``bl_ext.<repo>.densecap`` in Blender, ``densecap`` in tests).
ADDON_PACKAGE = __package__.rpartition(".")[0]

MODE_ITEMS = (('REALTIME', "Real-time", "Per-frame fit, fast (the real-time fitter)"),
              ('OFFLINE', "Offline", "All frames at once with a shared identity and a temporal "
                                     "term (slower, steadier)"))
#: Landmark models the trackers accept (`tracking.cli.LANDMARK_MODELS`, default first; named
#: here, not imported, so registering the add-on loads no network or numba code).
LANDMARK_MODEL_ITEMS = (("dense320", "DenseCap 320",
                         "Our dense network, 320 landmarks with their own uncertainty, "
                         "trained on synthetic renders only (the default: on the dev set as "
                         "accurate as MediaPipe, faster, also tracks profiles: "
                         "training/README.md)"),
                        ("mediapipe478", "MediaPipe 478",
                         "MediaPipe face mesh + iris (478 landmarks) tied to the face model"),
                        ("dense703", "DenseCap 703",
                         "Our dense network, 703 landmarks with their own uncertainty, a "
                         "wider network for offline tracking (ships with the add-on; about "
                         "twice DenseCap 320's time: training/README.md)"))


class DenseCapPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    threads: bpy.props.IntProperty(
        name="Threads", default=1, min=1, max=64,
        description="CPU threads of the landmark network (1 keeps Blender responsive)")
    landmark_model: bpy.props.EnumProperty(
        name="Landmark Model", items=LANDMARK_MODEL_ITEMS,
        description="The landmark network the trackers run")
    default_mode: bpy.props.EnumProperty(
        name="Default Mode", items=MODE_ITEMS, default='REALTIME',
        description="Mode of Track Clip when none is chosen")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "threads")
        layout.prop(self, "landmark_model")
        layout.prop(self, "default_mode")


@dataclass(frozen=True)
class TrackingPreferences:
    threads: int
    landmark_model: str
    default_mode: str          # "realtime" or "offline" (tracking/ spelling)


def tracking_preferences(context: bpy.types.Context) -> TrackingPreferences:
    """The preferences as the tracking layer takes them (defaults when not enabled as an
    add-on)."""
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    prefs = addon.preferences if addon is not None else None
    if prefs is None:
        properties = DenseCapPreferences.bl_rna.properties
        return TrackingPreferences(properties["threads"].default,
                                   properties["landmark_model"].default,
                                   properties["default_mode"].default.lower())
    return TrackingPreferences(prefs.threads, prefs.landmark_model, prefs.default_mode.lower())


CLASSES = (DenseCapPreferences,)
