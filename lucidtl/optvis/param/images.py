"""image(): the high-level parameterisation render_vis uses by default."""
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis.param.base import Param
from lucidtl.optvis.param.color import to_valid_rgb
from lucidtl.optvis.param.spatial import fft_image, pixel_image


def image(w, h=None, batch=1, sd=None, decorrelate=True, fft=True, alpha=False, channels=None):
    """A Param making [batch, h, w, channels] images in (0, 1).

    w, h: width and height (h defaults to w).  sd: init noise std (None -> 0.01).
    fft: Fourier (True) or pixel parameterisation.  decorrelate: colours live in Lucid's decorrelated
      space (only when there are exactly 3 colour channels; skipped for grayscale or multispectral).
    channels: total channel count, default 3, or 4 with alpha.  alpha: the last channel is an alpha
      channel, squashed by sigmoid only (never decorrelated); the others are colour channels.
    """
    h = h or w
    batch = batch or 1
    ch = int(channels or (4 if alpha else 3))
    colour = ch - 1 if alpha else ch
    if colour < 1:
        raise InvalidArgumentError(f"channels={channels} leaves no colour channel next to alpha; use channels >= 2")
    spatial = (fft_image if fft else pixel_image)([batch, h, w, ch], sd=sd)

    def make():
        t = spatial()
        rgb = to_valid_rgb(t[..., :colour] if alpha else t, decorrelate=decorrelate, sigmoid=True)
        if alpha:
            return tf.concat([rgb, tf.sigmoid(t[..., colour:])], -1)
        return rgb

    return Param(make, [spatial], name="image")
