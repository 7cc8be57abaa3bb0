"""The Lucid core: parameterisations, transforms, objectives and the render loop (no training, data or CLIs)."""
from lucidtl.optvis import objectives, param, transform
from lucidtl.optvis.render import Renderer, render_vis

__all__ = ["objectives", "param", "transform", "render_vis", "Renderer"]
