"""MaCo (Fel et al., NeurIPS 2023): the Fourier phase is optimised, the amplitude stays a fixed spectrum.

The spectrum is [C, H, W//2 + 1] (rfft2d bins, frequencies as np.fft.fftfreq orders them). Before use it is
made consistent with a real image: its DC bin is 0 (zero mean), the bins that must mirror each other (the
first column, and the last for even widths) are averaged with their mirror, and it is scaled so that the
image has standard deviation 1 (by Parseval this scale does not depend on the phase). The image's rfft2d
amplitude then equals this spectrum at every step of an optimisation, to float precision.
"""
import os

import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis.param.base import Param, check_shape
from lucidtl.optvis.param.color import color_correlation_svd_sqrt, max_norm_svd_sqrt, to_valid_rgb

DEFAULT_ALPHA = 1.0  # amplitude ~ 1/f: natural images' power falls as 1/f^2 (Field 1987; MaCo's premise)


def _freqs(h, w):
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def power_law_spectrum(h, w, channels=3, alpha=DEFAULT_ALPHA):
    """Amplitude 1 / f^alpha at each rfft2d bin, [channels, h, w//2+1] (the DC bin is 0)."""
    f = _freqs(int(h), int(w))
    amp = np.zeros_like(f)
    amp[f > 0] = f[f > 0] ** -float(alpha)
    return np.repeat(amp[None], int(channels), 0).astype(np.float32)


def fit_power_law(spectrum):
    """alpha of the least-squares line log(amplitude) = c - alpha * log(f) over the bins f > 0 (all channels
    averaged): how MaCo's authors describe natural images' amplitude spectrum."""
    spectrum = np.asarray(spectrum, np.float64)
    mean = spectrum.mean(0) if spectrum.ndim == 3 else spectrum
    h, wf = mean.shape
    f = _freqs(h, 2 * (wf - 1))[:, :wf]
    keep = (f > 0) & (mean > 0)
    slope = np.polyfit(np.log(f[keep]), np.log(mean[keep]), 1)[0]
    return float(-slope)


def decorrelated(images):
    """[N, H, W, 3] RGB -> Lucid's decorrelated colour space (the inverse of param.decorrelate)."""
    matrix = (color_correlation_svd_sqrt / max_norm_svd_sqrt).T
    flat = np.asarray(images, np.float64).reshape(-1, 3) @ np.linalg.inv(matrix)
    return flat.reshape(np.shape(images))


def pre_sigmoid(images, decorrelate=True, eps=0.01):
    """The values maco() would have to make before its sigmoid (and colour mixing) to give these [0, 1]
    images: logit(clip(x, eps, 1 - eps)), 3-channel images in the decorrelated colour space (decorrelate)."""
    x = np.clip(np.asarray(images, np.float64), eps, 1.0 - eps)
    t = np.log(x / (1.0 - x))
    return decorrelated(t) if decorrelate and t.shape[-1] == 3 else t


def natural_spectrum(images, size=None, decorrelate=True):
    """Mean amplitude spectrum [C, H, W//2+1] of images [N, H, W, C] in [0, 1] (resized to size x size when
    given), taken where maco() optimises: before its sigmoid (pre_sigmoid), each image's mean removed."""
    x = _images(images, size)
    t = pre_sigmoid(x, decorrelate)
    t = t - t.mean(axis=(1, 2), keepdims=True)
    amp = np.abs(np.fft.rfft2(np.moveaxis(t, -1, 1), axes=(-2, -1)))  # [N, C, H, Wf]
    return amp.mean(0).astype(np.float32)


def natural_statistics(images, size=None, decorrelate=True):
    """(mean [C], std) of the images before maco()'s sigmoid (pre_sigmoid): the mean colour and the
    contrast maco() gives its pictures when made from these images' spectrum."""
    t = pre_sigmoid(_images(images, size), decorrelate)
    centred = t - t.mean(axis=(1, 2), keepdims=True)
    return t.mean(axis=(0, 1, 2)).astype(np.float32), float(centred.std())


def _images(images, size):
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise InvalidArgumentError(f"a spectrum needs images [N, H, W, C], got shape {images.shape}")
    if size is not None and images.shape[1:3] != (size, size):
        images = tf.image.resize(images, [size, size], antialias=True).numpy()
    return images


def resize_spectrum(spectrum, h, w):
    """A spectrum [C, H', W'//2+1] at another image size: linear interpolation at each target bin's
    frequency (cycles per pixel, clipped to the stored range)."""
    from scipy.interpolate import RegularGridInterpolator

    spectrum = np.asarray(spectrum, np.float32)
    c, hs, wfs = spectrum.shape
    if (hs, wfs) == (h, w // 2 + 1):
        return spectrum
    ws = 2 * (wfs - 1) if wfs > 1 else 1
    fy_src = np.fft.fftshift(np.fft.fftfreq(hs))
    fx_src = np.fft.rfftfreq(ws)[:wfs] if wfs > 1 else np.zeros(1)
    fy = np.clip(np.fft.fftfreq(h), fy_src[0], fy_src[-1])
    fx = np.clip(np.fft.rfftfreq(w), fx_src[0], fx_src[-1])
    points = np.stack(np.meshgrid(fy, fx, indexing="ij"), -1)
    out = []
    for channel in np.fft.fftshift(spectrum, axes=1):
        if len(fy_src) < 2 or len(fx_src) < 2:
            raise InvalidArgumentError(f"a spectrum of shape {spectrum.shape} is too small to resize")
        out.append(RegularGridInterpolator((fy_src, fx_src), channel)(points))
    return np.asarray(out, np.float32)


def load_spectrum(path):
    """A stored spectrum (.npy, [C, H, Wf] or [H, Wf]; what save_spectrum writes)."""
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"spectrum file {path} does not exist")
    return check_spectrum(np.load(path), path)


def check_spectrum(spectrum, where="spectrum"):
    spectrum = np.asarray(spectrum, np.float32)
    if spectrum.ndim == 2:
        spectrum = spectrum[None]
    if spectrum.ndim != 3 or min(spectrum.shape) < 1 or not np.all(np.isfinite(spectrum)) or spectrum.min() < 0:
        raise InvalidArgumentError(f"{where}: a spectrum is finite non-negative amplitudes [channels, H, W//2+1], "
                                   f"got shape {spectrum.shape}")
    return spectrum


def normalized_spectrum(spectrum, h, w, channels, std=1.0):
    """The amplitudes maco_image uses: resized to (h, w), channels broadcast, mirrored bins averaged, DC 0,
    scaled so that the image has standard deviation `std`."""
    s = resize_spectrum(check_spectrum(spectrum), h, w).astype(np.float64)
    if s.shape[0] not in (1, channels):
        raise InvalidArgumentError(f"the spectrum has {s.shape[0]} channels but the image {channels}")
    s = np.broadcast_to(s, (channels,) + s.shape[1:]).copy()
    mirror = (-np.arange(h)) % h
    cols = [0] + ([w // 2] if w % 2 == 0 and w > 1 else [])
    for c in cols:
        s[:, :, c] = 0.5 * (s[:, :, c] + s[:, mirror, c])
    s[:, 0, 0] = 0.0
    weight = np.full(s.shape[-1], 2.0)
    weight[cols] = 1.0
    energy = (weight * s * s).sum() / (h * w)  # sum of squared pixels over all channels (Parseval)
    if energy <= 0:
        raise InvalidArgumentError("the spectrum is zero outside its DC bin: it makes a flat image")
    return (float(std) * s / np.sqrt(energy / (channels * h * w))).astype(np.float32)


def maco_image(shape, spectrum=None, sd=1.0, mean=None, std=1.0):
    """Spatial MaCo parameterisation: a phase variable [B, C, H, W//2+1] ~ N(0, sd); the image is
    irfft2d(amplitude * exp(i * phase)) + mean, the amplitude fixed (normalized_spectrum of `spectrum`,
    default power_law_spectrum; the image's standard deviation `std`), mean: [C] or a number (default 0).
    The Param's `.amplitude` holds the amplitudes used."""
    b, h, w, ch = check_shape(shape)
    if spectrum is None:
        spectrum = power_law_spectrum(h, w, ch)
    amp = normalized_spectrum(spectrum, h, w, ch, std)
    offset = tf.constant(np.broadcast_to(np.asarray(0.0 if mean is None else mean, np.float32), (ch,)))
    mirror = (-np.arange(h)) % h
    cols = [0] + ([w // 2] if w % 2 == 0 and w > 1 else [])
    odd = np.zeros(amp.shape[1:], np.float32)  # the bins whose phase mirrors another's (negated)
    odd[:, cols] = 1.0
    phase = tf.Variable(tf.random.normal([b, ch, h, w // 2 + 1], stddev=float(sd)), name="phase")
    amp_t, odd_t = tf.constant(amp), tf.constant(odd)

    def make():
        mirrored = tf.gather(phase, mirror, axis=2)
        phi = phase * (1.0 - odd_t) + 0.5 * (phase - mirrored) * odd_t  # Hermitian: real image, amp kept
        coeffs = tf.complex(amp_t * tf.cos(phi), amp_t * tf.sin(phi))
        image = tf.signal.irfft2d(coeffs, fft_length=[h, w])  # [B, C, H, W]
        return tf.transpose(image, [0, 2, 3, 1]) + offset

    param = Param(make, [phase], name="maco_image")
    param.amplitude = amp
    return param


def maco(w, h=None, batch=1, spectrum=None, decorrelate=True, channels=3, sd=1.0, mean=None, std=1.0):
    """A Param making [batch, h, w, channels] images in (0, 1): maco_image, then (3 channels, decorrelate)
    Lucid's decorrelated colours and a sigmoid. spectrum: an array [C, H, W//2+1] (natural_spectrum,
    power_law_spectrum), a .npy path, or None (1/f). mean, std: before the sigmoid (natural_statistics of
    the images the spectrum came from; default 0 and 1, MaCo's)."""
    h = h or w
    if isinstance(spectrum, (str, os.PathLike)):
        spectrum = load_spectrum(os.fspath(spectrum))
    spatial = maco_image([batch or 1, h, w, int(channels)], spectrum=spectrum, sd=sd, mean=mean, std=std)
    param = to_valid_rgb(spatial, decorrelate=decorrelate, sigmoid=True)
    param.amplitude = spatial.amplitude
    return param
