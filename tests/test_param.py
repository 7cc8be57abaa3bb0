"""Parameterisations: the numbers of the spec's "Parameterisations" section (Lucid v0.3.10 behaviour)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import param as P

C = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


def set_var(param, value, index=0):
    var = param.trainable_variables[index]
    var.assign(np.broadcast_to(np.asarray(value, np.float32), var.shape))
    return var


def photo_like_target(h=32, w=32, seed=0):
    """A seeded stand-in for a photo, in [0.125, 0.875]: half smooth (a 5x5 random grid, bilinearly
    upsampled), half per-pixel noise, so every frequency must be fitted."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.15, 0.85, [1, 5, 5, 3]).astype(np.float32)
    smooth = tf.image.resize(coarse, [h, w], method="bilinear").numpy()
    return 0.5 * smooth + 0.5 * rng.uniform(0.1, 0.9, smooth.shape).astype(np.float32)


# ---------------------------------------------------------------- Param

def test_param_wraps_function_and_variables():
    v = tf.Variable(tf.ones([1, 2, 2, 3]))
    p = P.Param(lambda: v * 2.0, [v])
    assert [id(x) for x in p.trainable_variables] == [id(v)]
    np.testing.assert_array_equal(p().numpy(), 2.0)
    q = p.map(lambda t: t + 1.0)
    assert len(q.trainable_variables) == 1
    np.testing.assert_array_equal(q().numpy(), 3.0)
    with pytest.raises(InvalidArgumentError):
        P.Param(v)


def test_same_seed_same_init_and_tf_function_matches_eager():
    keras.utils.set_random_seed(5)
    a = P.image(16, batch=2)
    keras.utils.set_random_seed(5)
    b = P.image(16, batch=2)
    np.testing.assert_array_equal(a().numpy(), b().numpy())
    np.testing.assert_allclose(tf.function(a)().numpy(), a().numpy(), atol=1e-6)
    keras.utils.set_random_seed(6)
    assert not np.array_equal(P.image(16, batch=2)().numpy(), a().numpy())


# ---------------------------------------------------------------- rfft2d_freqs / fft_image

@pytest.mark.parametrize("h,w", [(4, 6), (5, 8), (6, 5), (3, 7)])
def test_rfft2d_freqs(h, w):
    fy = np.array([(k if k <= (h - 1) // 2 else k - h) / h for k in range(h)])
    n_x = w // 2 + 2 if w % 2 else w // 2 + 1  # odd widths keep one more bin
    fx = np.array([(k if k <= (w - 1) // 2 else k - w) / w for k in range(n_x)])
    out = P.rfft2d_freqs(h, w)
    assert out.shape == (h, n_x)
    np.testing.assert_allclose(out, np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2), atol=1e-12)


def test_rfft2d_freqs_odd_width_values():
    np.testing.assert_allclose(P.rfft2d_freqs(1, 5)[0], [0.0, 0.2, 0.4, 0.4], atol=1e-12)
    np.testing.assert_allclose(P.rfft2d_freqs(1, 6)[0], [0.0, 1 / 6, 2 / 6, 0.5], atol=1e-12)


def test_fft_image_variable_shape_and_init_sd():
    keras.utils.set_random_seed(0)
    p = P.fft_image([2, 64, 63, 3])
    (var,) = p.trainable_variables
    assert tuple(var.shape) == (2, 2, 3, 64, 33)  # [2, B, C, H, 63 // 2 + 2]
    assert abs(float(np.std(var.numpy())) - 0.01) < 0.0005
    assert p().shape == (2, 64, 63, 3)


def test_fft_image_unit_coefficients():
    p = P.fft_image([1, 16, 16, 2])
    var = set_var(p, 0.0)
    value = np.zeros(var.shape, np.float32)
    value[0, 0, 0, 0, 1] = 1.0  # real part, channel 0, (ky, kx) = (0, 1)
    value[0, 0, 1, 0, 0] = 1.0  # real part, channel 1, DC
    var.assign(value)
    img = p().numpy()[0]
    # (0,1): scale = sqrt(256) / (1/16) = 256; irfft doubles it and divides by 256; then /4
    expected = 0.5 * np.cos(2 * np.pi * np.arange(16) / 16)
    np.testing.assert_allclose(img[..., 0], np.broadcast_to(expected, (16, 16)), atol=1e-6)
    np.testing.assert_allclose(img[..., 1], 0.25, atol=1e-6)  # DC: 256 / 256 / 4


def test_fft_image_dc_scale_non_square():
    p = P.fft_image([1, 8, 16, 1])
    var = set_var(p, 0.0)
    value = np.zeros(var.shape, np.float32)
    value[0, 0, 0, 0, 0] = 1.0
    var.assign(value)
    # DC scale = sqrt(W*H) * max(W, H); irfft2d divides by H*W; then /4
    np.testing.assert_allclose(p().numpy(), np.sqrt(128) * 16 / 128 / 4, atol=1e-6)


@pytest.mark.parametrize("h,w", [(9, 15), (8, 12), (7, 7)])
def test_fft_image_matches_numpy_formula(h, w):
    keras.utils.set_random_seed(1)
    p = P.fft_image([2, h, w, 3], sd=1.0, decay_power=1.5)
    v = p.trainable_variables[0].numpy().astype(np.float64)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + (2 if w % 2 else 1)]
    scale = np.sqrt(w * h) / np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1.0 / max(w, h)) ** 1.5
    wide = w + (w % 2)  # odd widths: one pixel wider, then cropped
    spatial = np.fft.irfft2(scale * (v[0] + 1j * v[1]), s=(h, wide))  # [B, C, h, wide]
    expected = np.transpose(spatial, (0, 2, 3, 1))[:, :h, :w, :] / 4.0
    np.testing.assert_allclose(p().numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_fft_statistics_at_128():
    keras.utils.set_random_seed(0)
    raw = P.fft_image([8, 128, 128, 3], sd=0.01)().numpy()
    assert 0.017 < raw.std() < 0.0205  # spec: about 0.018
    keras.utils.set_random_seed(0)
    rgb = P.image(128, batch=8)().numpy()
    assert abs(rgb.mean() - 0.5) < 0.001
    assert 0.0015 < rgb.std() < 0.004  # spec: 0.5 +- 0.003
    assert abs(np.mean(raw)) < 0.005


# ---------------------------------------------------------------- colour

def test_color_constants():
    np.testing.assert_allclose(P.color_correlation_svd_sqrt, C, atol=1e-7)
    assert abs(float(P.max_norm_svd_sqrt) - 0.4619524) < 1e-6
    assert abs(float(P.max_norm_svd_sqrt) - np.sqrt(0.26 ** 2 + 2 * 0.27 ** 2)) < 1e-6  # column 0
    np.testing.assert_allclose(P.color_mean, [0.48, 0.46, 0.41], atol=1e-7)


def test_decorrelate_is_the_matrix_product():
    t = np.random.default_rng(0).normal(size=[2, 3, 4, 3]).astype(np.float32)
    expected = (t.reshape(-1, 3) @ (C / 0.4619524).T).reshape(t.shape)
    np.testing.assert_allclose(P.decorrelate(t).numpy(), expected, atol=1e-5)
    # the first (luminance) axis maps to the first column of C, normalised to unit length
    np.testing.assert_allclose(P.decorrelate(np.float32([[1, 0, 0]])).numpy()[0], C[:, 0] / 0.4619524, atol=1e-6)


def test_to_valid_rgb_sigmoid_path():
    t = np.random.default_rng(1).normal(scale=5.0, size=[1, 4, 4, 3]).astype(np.float32)
    out = P.to_valid_rgb(t, decorrelate=True).numpy()
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-(t.reshape(-1, 3) @ (C / 0.4619524).T).reshape(t.shape))),
                               atol=1e-6)
    plain = P.to_valid_rgb(t, decorrelate=False).numpy()
    np.testing.assert_allclose(plain, 1 / (1 + np.exp(-t)), atol=1e-6)
    assert plain.min() > 0 and plain.max() < 1
    # non-3-channel inputs are never decorrelated
    g = t[..., :1]
    np.testing.assert_allclose(P.to_valid_rgb(g, decorrelate=True).numpy(), 1 / (1 + np.exp(-g)), atol=1e-6)


def test_to_valid_rgb_clip_path_values():
    t = np.float32([-0.5, 0.2, 0.7, 1.5, 0.5, 1.0, 0.0]).reshape(1, 1, 7, 1)
    out = P.to_valid_rgb(t, sigmoid=False).numpy().ravel()
    np.testing.assert_allclose(out, [0.0, 0.2, 0.7, 1.0, 0.5, 1.0, 0.0], atol=1e-6)
    z = np.zeros([1, 1, 1, 3], np.float32)
    np.testing.assert_allclose(P.to_valid_rgb(z, decorrelate=True, sigmoid=False).numpy().ravel(),
                               [0.48, 0.46, 0.41], atol=1e-6)  # decorrelated: + color_mean


def test_to_valid_rgb_clip_gradient_at_edge():
    # 2t-1 = [-2, -2, 0, 0, 2, 2]; loss = sum(w * y), descent moves t by -grad
    t = tf.constant(np.float32([-0.5, -0.5, 0.5, 0.5, 1.5, 1.5]).reshape(1, 1, 6, 1))
    w = tf.constant(np.float32([1, -1, 1, -1, 1, -1]).reshape(1, 1, 6, 1))
    with tf.GradientTape() as tape:
        tape.watch(t)
        loss = tf.reduce_sum(w * P.to_valid_rgb(t, sigmoid=False))
    g = tape.gradient(loss, t).numpy().ravel()
    # below the edge: grad +1 would push further down (blocked), -1 pulls back up (passes);
    # inside: straight through; above: +1 pulls back down (passes), -1 pushes further up (blocked)
    np.testing.assert_allclose(g, [0, -1, 1, -1, 1, 0], atol=1e-6)


# ---------------------------------------------------------------- image()

@pytest.mark.parametrize("kwargs,shape", [
    (dict(w=16), (1, 16, 16, 3)),
    (dict(w=16, batch=4), (4, 16, 16, 3)),
    (dict(w=20, h=12), (1, 12, 20, 3)),
    (dict(w=15, h=9, batch=2), (2, 9, 15, 3)),
    (dict(w=15, h=9, fft=False), (1, 9, 15, 3)),
    (dict(w=13, channels=1), (1, 13, 13, 1)),
    (dict(w=12, channels=4), (1, 12, 12, 4)),
    (dict(w=12, channels=7, decorrelate=True), (1, 12, 12, 7)),
    (dict(w=11, alpha=True), (1, 11, 11, 4)),
    (dict(w=11, alpha=True, fft=False, batch=3), (3, 11, 11, 4)),
])
def test_image_shapes(kwargs, shape):
    keras.utils.set_random_seed(0)
    p = P.image(**kwargs)
    out = p().numpy()
    assert out.shape == shape and out.dtype == np.float32
    assert out.min() > 0 and out.max() < 1
    assert len(p.trainable_variables) == 1


def test_image_pixel_path_is_sigmoid_of_decorrelated_variable():
    p = P.image(6, h=5, fft=False, sd=1.0)
    v = p.trainable_variables[0].numpy()
    assert v.shape == (1, 5, 6, 3)
    expected = 1 / (1 + np.exp(-(v.reshape(-1, 3) @ (C / 0.4619524).T).reshape(v.shape)))
    np.testing.assert_allclose(p().numpy(), expected, atol=1e-6)
    q = P.image(6, fft=False, sd=1.0, decorrelate=False)
    np.testing.assert_allclose(q().numpy(), 1 / (1 + np.exp(-q.trainable_variables[0].numpy())), atol=1e-6)


def test_image_alpha_and_single_channel_are_plain_sigmoid():
    p = P.image(5, fft=False, sd=1.0, alpha=True)
    v = p.trainable_variables[0].numpy()
    out = p().numpy()
    np.testing.assert_allclose(out[..., 3], 1 / (1 + np.exp(-v[..., 3])), atol=1e-6)
    rgb = 1 / (1 + np.exp(-(v[..., :3].reshape(-1, 3) @ (C / 0.4619524).T).reshape(v[..., :3].shape)))
    np.testing.assert_allclose(out[..., :3], rgb, atol=1e-6)
    g = P.image(5, fft=False, sd=1.0, channels=1)
    np.testing.assert_allclose(g().numpy(), 1 / (1 + np.exp(-g.trainable_variables[0].numpy())), atol=1e-6)


def test_image_bad_arguments():
    with pytest.raises(InvalidArgumentError):
        P.image(0)
    with pytest.raises(InvalidArgumentError):
        P.image(8, channels=1, alpha=True)


# ---------------------------------------------------------------- laplacian pyramid

def test_laplacian_shapes_and_sum():
    keras.utils.set_random_seed(0)
    p = P.laplacian_pyramid_image([2, 32, 24, 3])
    shapes = sorted((tuple(v.shape) for v in p.trainable_variables), reverse=True)
    assert shapes == [(2, 32, 24, 3), (2, 16, 12, 3), (2, 8, 6, 3), (2, 4, 3, 3)]
    assert p().shape == (2, 32, 24, 3)
    for n, var in enumerate(p.trainable_variables):
        var.assign(tf.fill(var.shape, float(n + 1)))  # constants stay constant under bilinear resizing
    np.testing.assert_allclose(p().numpy(), 1 + 2 + 3 + 4, atol=1e-5)
    odd = P.laplacian_pyramid_image([1, 9, 5, 1], n_levels=5)
    assert odd().shape == (1, 9, 5, 1) and len(odd.trainable_variables) == 5


def test_laplacian_upsamples_bilinearly():
    p = P.laplacian_pyramid_image([1, 4, 4, 1], n_levels=2)
    fine, coarse = p.trainable_variables
    fine.assign(tf.zeros(fine.shape))
    coarse.assign(np.float32([[0, 1], [2, 3]]).reshape(1, 2, 2, 1))
    # TF1 bilinear (no half-pixel centres): source = dest / 2, clamped at the last row/column
    row = np.array([0, 0.5, 1, 1])
    expected = 2 * row[:, None] + row[None, :]
    np.testing.assert_allclose(p().numpy()[0, ..., 0], expected, atol=1e-6)


# ---------------------------------------------------------------- fitting (Lucid's test_param_can_fit_image)

def fit_steps(param, target, max_steps=1000):
    """Adam(0.05) on mean squared error of sigmoid(param); steps until mean |error| < 0.01."""
    variables = param.trainable_variables
    opt = keras.optimizers.Adam(0.05, epsilon=1e-8)
    target = tf.constant(target)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            img = P.to_valid_rgb(param())
            loss = tf.reduce_mean((img - target) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return tf.reduce_mean(tf.abs(img - target))

    for i in range(max_steps):
        if float(step()) < 0.01:
            return i
    return None


@pytest.mark.parametrize("h,w", [(32, 32), (31, 33)])
@pytest.mark.parametrize("make", [P.pixel_image, P.fft_image, P.laplacian_pyramid_image])
def test_param_can_fit_image(make, h, w):
    keras.utils.set_random_seed(0)
    steps = fit_steps(make([1, h, w, 3]), photo_like_target(h, w))
    assert steps is not None and steps < 1000


# ---------------------------------------------------------------- CPPN

def test_cppn_structure():
    keras.utils.set_random_seed(0)
    p = P.cppn(16, batch=2)
    assert p().shape == (2, 16, 16, 3)
    variables = p.trainable_variables
    assert len(variables) == 2 * 9
    kernels = sorted(tuple(v.shape) for v in variables if v.shape.rank == 2)
    assert kernels == sorted([(2, 24)] + [(48, 24)] * 7 + [(48, 3)])  # composite doubles the channels
    out_kernel = [v for v in variables if tuple(v.shape) == (48, 3)][0]
    np.testing.assert_array_equal(out_kernel.numpy(), 0.0)  # zero-initialised output layer
    img = p().numpy()
    np.testing.assert_allclose(img, img[:, :1, :1, :] * np.ones_like(img), atol=1e-7)  # constant image
    np.testing.assert_array_equal(img[0], img[1])  # shared weights and inputs
    x = np.float32([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(P.composite_activation(x).numpy(),
                               np.concatenate([np.arctan(x) / 0.67, np.arctan(x) ** 2 / 0.6]), atol=1e-6)
    assert P.cppn(8, num_layers=2, normalize=True)().shape == (1, 8, 8, 3)


def test_cppn_fits_xor():
    keras.utils.set_random_seed(0)
    p = P.cppn(16, num_output_channels=1)
    variables = p.trainable_variables
    opt = keras.optimizers.Adam(0.01, epsilon=1e-8)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            a = p()[0, ..., 0]
            loss = -(a[0, 0] ** 2 + a[-1, -1] ** 2 + (1 - a[-1, 0]) ** 2 + (1 - a[0, -1]) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return tf.stack([a[0, 0], a[-1, -1], a[-1, 0], a[0, -1]])

    for _ in range(200):
        c = step().numpy()
        if c[0] > 0.99 and c[1] > 0.99 and c[2] < 0.01 and c[3] < 0.01:
            return
    pytest.fail(f"CPPN did not fit XOR in 200 steps; corners {c}")
