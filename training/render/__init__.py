"""CPU rasteriser and shaded renders of the ICT head (dev-only)."""

from .head import Albedo, HeadRender, HeadScene, model_to_camera, render_head
from .raster import PinholeCamera, RasterBuffers, rasterize

__all__ = ["Albedo", "HeadRender", "HeadScene", "PinholeCamera", "RasterBuffers",
           "model_to_camera", "rasterize", "render_head"]
