"""MaCo: the amplitude stays the given spectrum while the phase is optimised; the transparency map."""
import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import objectives, param
from lucidtl.optvis.render import Renderer

maco_lib = importlib.import_module("lucidtl.optvis.param.maco")  # (param.maco is the function)


def _amplitude(images):
    """|rfft2d| of [B, H, W, C] images, [B, C, H, W//2+1], in float64 numpy (independent of TF's FFT)."""
    return np.abs(np.fft.rfft2(np.moveaxis(np.asarray(images, np.float64), -1, 1), axes=(-2, -1)))


@pytest.mark.parametrize("h,w", [(16, 16), (15, 21)])
def test_amplitude_is_the_spectrum_through_optimisation(tiny_cnn, h, w):
    rng = np.random.default_rng(0)
    natural = rng.random((6, h, w, 3)).cumsum(1).cumsum(2)  # smooth images: a falling spectrum
    natural = natural / natural.max()
    given = param.natural_spectrum(natural)
    spatial = []

    def param_f():
        s = param.maco_image([1, h, w, 3], spectrum=given)
        spatial.append(s)
        return param.to_valid_rgb(s, decorrelate=True, sigmoid=True)

    r = Renderer(tiny_cnn, objectives.channel("conv1_relu", 2), param_f=param_f, transforms="none", seed=1)
    s = spatial[0]
    before = r.evaluate()
    img0 = np.asarray(s())
    amp0 = _amplitude(img0)
    for _ in range(30):
        r.step()
    after = r.evaluate()
    amp1 = _amplitude(s())
    assert after > before
    assert np.abs(np.asarray(s()) - img0).max() > 0.1  # the image changed...
    # ...its amplitude did not: the given spectrum up to one scale factor, DC 0 (independent check)
    ratio = np.median(amp1[0][given > 1e-6] / given[given > 1e-6])
    sym = given.copy()
    mirror = (-np.arange(h)) % h
    for c in [0] + ([w // 2] if w % 2 == 0 else []):
        sym[:, :, c] = 0.5 * (given[:, :, c] + given[:, mirror, c])
    sym[:, 0, 0] = 0
    np.testing.assert_allclose(amp1[0], ratio * sym, rtol=1e-4, atol=1e-4 * amp1.max())
    np.testing.assert_allclose(amp0, amp1, rtol=1e-4, atol=1e-4 * amp1.max())
    img = np.asarray(s())
    assert abs(img.mean()) < 1e-5 and abs(img.std() - 1) < 1e-4


def test_power_law_and_its_fit():
    s = param.power_law_spectrum(32, 32, 3, alpha=1.7)
    f = np.sqrt(np.fft.fftfreq(32)[:, None] ** 2 + np.fft.rfftfreq(32)[None] ** 2)
    np.testing.assert_allclose(s[1][f > 0], f[f > 0] ** -1.7, rtol=1e-5)
    assert abs(param.fit_power_law(s) - 1.7) < 1e-6


def test_stored_spectrum_resized_and_checked(tmp_path):
    s = param.power_law_spectrum(32, 32, 3)
    path = str(tmp_path / "spectrum.npy")
    np.save(path, s)
    p = param.maco(16, batch=1, spectrum=path)
    assert p().shape == (1, 16, 16, 3) and p.amplitude.shape == (3, 16, 9)
    np.save(path, -s)
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        param.maco(16, spectrum=path)
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        param.maco(16, spectrum=str(tmp_path / "missing.npy"))


def _patch_model(size=24, top=6, left=10, side=5):
    """A unit that reads only a known patch of the image: crop, 1x1 conv, mean."""
    inp = keras.Input((size, size, 3))
    x = keras.layers.Cropping2D(((top, size - top - side), (left, size - left - side)))(inp)
    x = keras.layers.Conv2D(2, 1, activation="relu", name="unit",
                            kernel_initializer=keras.initializers.Constant(0.5))(x)
    return keras.Model(inp, x)


def test_transparency_ranks_the_pixels_the_objective_reads():
    size, top, left, side = 24, 6, 10, 5
    model = _patch_model(size, top, left, side)
    r = Renderer(model, objectives.channel("unit", 0), param_f=lambda: param.maco(size), transforms="none",
                 seed=0, transparency=True)
    r.run((20,), verbose=False)
    alpha = r.transparency_map()
    assert alpha.shape == (1, size, size, 1) and alpha.max() == 1.0
    inside = np.zeros((size, size), bool)
    inside[top:top + side, left:left + side] = True
    a = alpha[0, ..., 0]
    ranked = np.argsort(-a, axis=None)[:side * side]
    assert inside.flat[ranked].all()  # the highest-ranked pixels are exactly the patch
    assert a[~inside].max() == 0 and a[inside].min() > 0


def test_transparency_needs_the_flag(tiny_cnn):
    r = Renderer(tiny_cnn, "conv1_relu:0", param_f=lambda: param.maco(16), transforms="none", seed=0)
    with pytest.raises(InvalidArgumentError, match="transparency=True"):
        r.transparency_map()


def test_natural_spectrum_is_the_mean_amplitude():
    rng = np.random.default_rng(3)
    images = rng.random((4, 8, 8, 1)).astype(np.float32)
    got = param.natural_spectrum(images)
    logit = np.log(np.clip(images, 0.01, 0.99) / (1 - np.clip(images, 0.01, 0.99)))  # before maco's sigmoid
    want = np.mean([np.abs(np.fft.fft2(t[..., 0] - t.mean()))[:, :5] for t in logit], 0)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    assert maco_lib.resize_spectrum(got, 8, 8) is got or np.array_equal(maco_lib.resize_spectrum(got, 8, 8), got)
    bigger = maco_lib.resize_spectrum(param.power_law_spectrum(8, 8, 1), 16, 16)
    assert bigger.shape == (1, 16, 9) and np.all(np.diff(bigger[0, 0, 2:]) < 0)  # falls with frequency
    same = param.power_law_spectrum(8, 8, 1)[0, 0, 1:]
    np.testing.assert_allclose(bigger[0, 0, 2::2], same, rtol=1e-6)  # the same frequency, the same value
    mean, std = maco_lib.natural_statistics(images)
    np.testing.assert_allclose(mean, logit.mean((0, 1, 2)), rtol=1e-5)
    made = np.asarray(maco_lib.maco_image([2, 8, 8, 1], spectrum=got, mean=mean, std=std)())
    np.testing.assert_allclose(made.mean((1, 2, 3)), mean[0], atol=1e-5)  # the mean colour...
    np.testing.assert_allclose((made - made.mean((1, 2, 3), keepdims=True)).std(), std, rtol=1e-4)  # ...contrast
    assert tf.is_tensor(param.maco(8, channels=1, spectrum=got)())


def test_render_cli_refuses_a_spectrum_without_maco(tmp_path, capsys):
    """--spectrum belongs to --param maco; a missing spectrum file: one line, exit 2, nothing written."""
    from conftest import cli_exit
    from lucidtl.render import main

    path = tmp_path / "s.npy"
    np.save(path, param.power_law_spectrum(16, 16, 3))
    out = tmp_path / "out"
    code, (_, err) = cli_exit(main, ["--spectrum", str(path), "--out", str(out)], capsys)
    assert code == 2 and err.strip() == ("error: --spectrum is --param maco's amplitude spectrum: add --param maco "
                                         "or drop --spectrum")
    code, (_, err) = cli_exit(main, ["--param", "maco", "--spectrum", str(tmp_path / "no.npy"), "--out", str(out)],
                              capsys)
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
