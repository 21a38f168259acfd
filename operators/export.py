"""Export the rig's tracked Performance: ARKit curves as a Live Link Face style CSV, or the
Performance itself as npz (both read the Performance stored in the .blend)."""

from __future__ import annotations

import bpy
from bpy_extras.io_utils import ExportHelper

from ..densecap_addon.performance_scene import stored_performance
from ..densecap_addon.rig import rig_armature
from ..tracking.errors import USER_ERRORS, TrackingError
from ..tracking.livelink import write_livelink_csv
from ..tracking.performance import Performance


def rig_performance(context: bpy.types.Context) -> tuple[bpy.types.Object, Performance]:
    """The scene's DenseCap rig and its stored Performance; TrackingError saying what is
    missing otherwise."""
    armature = rig_armature(context.scene.densecap.rig) or rig_armature(context.active_object)
    if armature is None:
        raise TrackingError("no DenseCap face rig: track a clip first (or pick the rig in the "
                            "DenseCap panel)")
    performance = stored_performance(armature)
    if performance is None:
        raise TrackingError(f"rig {armature.name!r} holds no tracked performance: track a clip "
                            f"or record Live Preview first")
    return armature, performance


class _ExportOperator(ExportHelper):
    """Shared: find the rig's Performance, `write` it, report; user errors cancel."""

    def write(self, performance: Performance, path: str) -> str:
        """Write the file; returns the report."""
        raise NotImplementedError

    def execute(self, context):
        try:
            _, performance = rig_performance(context)
            message = self.write(performance, bpy.path.abspath(self.filepath))
        except USER_ERRORS as exc:
            self.report({'ERROR'}, f"Export failed: {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, message)
        return {'FINISHED'}


class DENSECAP_OT_export_livelink(_ExportOperator, bpy.types.Operator):
    """Write the ARKit curves and head/eye rotations as a Live Link Face style CSV"""

    bl_idname = "densecap.export_livelink"
    bl_label = "Export Live Link CSV"

    filename_ext = ".csv"
    filter_glob: bpy.props.StringProperty(default="*.csv", options={'HIDDEN'})

    def write(self, performance, path):
        table = write_livelink_csv(performance, path)
        missing = f" (no source for {', '.join(table.missing)}: written as 0)" if table.missing else ""
        return f"Wrote {len(table.frames)} frames to {path}{missing}"


class DENSECAP_OT_export_performance(_ExportOperator, bpy.types.Operator):
    """Write the tracked Performance (identity, expressions, pose, camera, fit quality) as npz"""

    bl_idname = "densecap.export_performance"
    bl_label = "Export Performance"

    filename_ext = ".npz"
    filter_glob: bpy.props.StringProperty(default="*.npz", options={'HIDDEN'})

    def write(self, performance, path):
        return f"Wrote {performance.num_frames} frames to {performance.save(path)}"
