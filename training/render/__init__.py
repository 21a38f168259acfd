"""CPU rasteriser and shaded renders of the ICT head (dev-only)."""

from .head import (Albedo, HeadRender, HeadScene, ambient_occlusion, band_weight, brow_distance,
                   ibug_vertices, light_visibility, model_to_camera, render_head)
from .raster import PinholeCamera, RasterBuffers, rasterize

__all__ = ["Albedo", "HeadRender", "HeadScene", "PinholeCamera", "RasterBuffers",
           "ambient_occlusion", "band_weight", "brow_distance", "ibug_vertices",
           "light_visibility", "model_to_camera", "rasterize", "render_head"]
