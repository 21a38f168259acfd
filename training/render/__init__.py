"""CPU rasteriser and shaded renders of the ICT head (dev-only)."""

from .head import (BROW_POLYLINES, UPPER_LID_POLYLINES, Albedo, HeadRender, HeadScene,
                   SkinLighting, ambient_occlusion, band_weight, ibug_vertices,
                   light_visibility, model_to_camera, nearest_on_polyline, polyline_distance,
                   render_head)
from .raster import PinholeCamera, RasterBuffers, rasterize

__all__ = ["BROW_POLYLINES", "UPPER_LID_POLYLINES", "Albedo", "HeadRender", "HeadScene",
           "PinholeCamera", "RasterBuffers", "SkinLighting", "ambient_occlusion",
           "band_weight", "ibug_vertices", "light_visibility", "model_to_camera",
           "nearest_on_polyline", "polyline_distance", "rasterize", "render_head"]
