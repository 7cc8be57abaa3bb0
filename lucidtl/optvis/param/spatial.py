"""Spatial parameterisations: pixels, Fourier coefficients, a Laplacian pyramid (pre-colour tensors)."""
import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis.param.base import Param, check_shape

DEFAULT_SD = 0.01


def _sd(sd):
    return DEFAULT_SD if sd is None else float(sd)


def pixel_image(shape, sd=None, init_val=None):
    """One variable per pixel, initialised N(0, sd) (sd default 0.01), or to init_val when given."""
    b, h, w, ch = check_shape(shape)
    if init_val is None:
        init_val = tf.random.normal([b, h, w, ch], stddev=_sd(sd))
    pixels = tf.Variable(tf.cast(init_val, tf.float32), name="pixels")
    return Param(lambda: tf.identity(pixels), [pixels], name="pixel_image")


def rfft2d_freqs(h, w):
    """Frequency magnitude of each rfft2d bin, [h, w//2 + 1]; odd widths keep one more bin
    (w//2 + 2, Lucid's quirk: the image is made one pixel wider and cropped)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + (2 if w % 2 else 1)]
    return np.sqrt(fx * fx + fy * fy)


def fft_decoder(shape, decay_power=1):
    """fft_image's maths for a spectrum tensor: (spectrum shape [2, B, C, H, Wf], decode(spectrum) -> [B,H,W,C]).
    decode scales by sqrt(W*H) / max(freq, 1/max(W, H))**decay_power, inverse-rfft's, crops, divides by 4."""
    b, h, w, ch = check_shape(shape)
    freqs = rfft2d_freqs(h, w)
    scale = (np.sqrt(w * h) / np.maximum(freqs, 1.0 / max(w, h)) ** decay_power).astype(np.float32)
    # irfft length matching the spectrum width: w for even w, w + 1 for odd (cropped below)
    fft_length = [h, 2 * (freqs.shape[1] - 1) if w > 1 else 1]

    def decode(spectrum):
        real, imag = tf.unstack(spectrum)  # (not spectrum[0]: a strided slice's gradient is slow on CPU)
        coeffs = tf.complex(real * scale, imag * scale)
        image = tf.signal.irfft2d(coeffs, fft_length=fft_length)  # [B, C, H, W'] (divides by H*W')
        image = tf.transpose(image, [0, 2, 3, 1])
        if fft_length[1] != w:  # odd w: crop the extra column
            image = tf.slice(image, [0, 0, 0, 0], [b, h, w, ch])
        return image / 4.0

    return (2, b, ch) + freqs.shape, decode


def fft_image(shape, sd=None, decay_power=1):
    """Lucid's Fourier parameterisation: a spectrum variable [2, B, C, H, Wf] ~ N(0, sd) (real, imaginary),
    decoded by fft_decoder."""
    spectrum_shape, decode = fft_decoder(shape, decay_power)
    spectrum = tf.Variable(tf.random.normal(spectrum_shape, stddev=_sd(sd)), name="spectrum")
    return Param(lambda: decode(spectrum), [spectrum], name="fft_image")


def _resize_bilinear(t, size):
    """TF1 bilinear resize (align_corners=False, half_pixel_centers=False), as Lucid's lowres_tensor."""
    return tf.raw_ops.ResizeBilinear(images=t, size=size, align_corners=False, half_pixel_centers=False)


def laplacian_pyramid_image(shape, n_levels=4, sd=None):
    """Sum over n < n_levels of a variable of size (H // 2^n, W // 2^n) ~ N(0, sd), bilinearly resized
    up to (H, W). Levels never go below 1x1."""
    b, h, w, ch = check_shape(shape)
    if int(n_levels) < 1:
        raise InvalidArgumentError(f"n_levels must be at least 1, got {n_levels}")
    levels = []
    for n in range(int(n_levels)):
        k = 2 ** n
        size = [b, max(1, h // k), max(1, w // k), ch]
        levels.append(tf.Variable(tf.random.normal(size, stddev=_sd(sd)), name=f"level{n}"))

    def make():
        out = 0.0
        for level in levels:
            out += level if tuple(level.shape[1:3]) == (h, w) else _resize_bilinear(level, [h, w])
        return tf.convert_to_tensor(out)

    return Param(make, levels, name="laplacian_pyramid_image")
