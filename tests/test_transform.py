"""Transforms: the numbers of the spec's "Transforms" section (Lucid v0.3.10 behaviour)."""
import math

import numpy as np
import pytest
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import transform as T


def seed(i):
    return tf.constant([i, 7], tf.int32)


def rand_image(shape, s=0):
    return np.random.default_rng(s).uniform(size=shape).astype(np.float32)


def unique_image(b, h, w, c):
    """Every value distinct (so crops/rotations can be located); batch element k = element 0 + 1000 k."""
    base = np.arange(h * w * c, dtype=np.float32).reshape(h, w, c)
    return np.stack([base + 1000.0 * k for k in range(b)])


# ---------------------------------------------------------------- pad

def test_pad_constant_matches_numpy():
    x = rand_image([2, 5, 6, 3])
    out = T.pad(2, mode="constant", constant_value=0.3)(x, seed(0)).numpy()
    assert out.shape == (2, 9, 10, 3)
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], constant_values=np.float32(0.3)))


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "REFLECT"])
def test_pad_reflect_symmetric_match_numpy(mode):
    x = rand_image([2, 5, 6, 3], 1)
    out = T.pad(3, mode=mode)(x, seed(0)).numpy()
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (3, 3), (3, 3), (0, 0)], mode=mode.lower()))


def test_pad_default_mode_is_reflect():
    x = rand_image([1, 5, 6, 3], 2)
    np.testing.assert_array_equal(T.pad(2)(x, seed(0)).numpy(),
                                  np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect"))


def test_pad_uniform_one_value_per_call_shared_by_batch():
    x = np.full([3, 4, 4, 2], 7.0, np.float32)
    t = T.pad(2, mode="constant", constant_value="uniform")
    values = []
    for i in range(20):
        out = t(x, seed(i)).numpy()
        border = out[:, :2].ravel()  # top rows of every batch element
        assert np.all(border == border[0]) and 0.0 <= border[0] < 1.0
        assert np.all(out[:, :, :2] == border[0]) and np.all(out[:, 2:6, 2:6] == 7.0)
        values.append(border[0])
    assert len(set(values)) == 20  # a fresh draw every step
    assert t(x, seed(3)).numpy()[0, 0, 0, 0] == values[3]  # same seed, same draw


# ---------------------------------------------------------------- jitter

def test_jitter_is_contiguous_window_with_one_offset_per_call():
    d = 3
    x = unique_image(3, 10, 12, 2)
    fn = tf.function(T.jitter(d))
    seen = set()
    for i in range(120):
        out = fn(x, seed(i)).numpy()
        assert out.shape == (3, 10 - d, 12 - d, 2)
        oy, ox = np.argwhere(x[0, :, :, 0] == out[0, 0, 0, 0])[0]
        assert 0 <= oy <= d and 0 <= ox <= d
        np.testing.assert_array_equal(out, x[:, oy:oy + 10 - d, ox:ox + 12 - d])  # same window for the batch
        seen.add((oy, ox))
    assert seen == {(a, b) for a in range(d + 1) for b in range(d + 1)}  # offsets 0..d inclusive


# ---------------------------------------------------------------- random_scale

def tf1_bilinear_reference(x, oh, ow):
    """TF1 resize_bilinear (align_corners=False, half_pixel_centers=False): src = dst * in / out."""
    _, h, w, _ = x.shape

    def axis(n_in, n_out):
        src = np.arange(n_out) * (n_in / n_out)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), (src - lo)[:, None]

    y0, y1, fy = axis(h, oh)
    x0, x1, fx = axis(w, ow)
    top = x[:, y0][:, :, x0] * (1 - fx[None, None, :, :]) + x[:, y0][:, :, x1] * fx[None, None, :, :]
    bot = x[:, y1][:, :, x0] * (1 - fx[None, None, :, :]) + x[:, y1][:, :, x1] * fx[None, None, :, :]
    return top * (1 - fy[None, :, :, None]) + bot * fy[None, :, :, None]


@pytest.mark.parametrize("scale,h,w,expected", [
    (0.9, 128, 128, (115, 115)),   # 115.2 -> 115
    (0.9, 144, 144, (129, 129)),   # standard chain minimum: 129.6 -> 129
    (1.1, 144, 144, (158, 158)),   # standard chain maximum: 158.4 -> 158
    (1.02, 33, 51, (33, 52)),      # 33.66 -> 33, 52.02 -> 52 (non-square, odd)
    (1.06, 50, 17, (52, 18)),      # float32: 1.06f * 50 = 52.99999 -> 52 (Lucid), not Python's 53
])
def test_random_scale_sizes_truncate_float32(scale, h, w, expected):
    out = T.random_scale([scale])(rand_image([2, h, w, 3]), seed(0))
    assert tuple(out.shape) == (2, *expected, 3)


def test_random_scale_float64_size_option():
    out = T.random_scale([1.06], float64_size=True)(rand_image([1, 50, 50, 3]), seed(0))
    assert tuple(out.shape[1:3]) == (53, 53)


def test_random_scale_values_are_tf1_bilinear():
    x = rand_image([2, 13, 17, 3], 3)
    out = T.random_scale([0.9])(x, seed(0)).numpy()
    assert out.shape == (2, 11, 15, 3)
    np.testing.assert_allclose(out, tf1_bilinear_reference(x, 11, 15), atol=1e-6)
    np.testing.assert_allclose(out, tf.compat.v1.image.resize_bilinear(x, [11, 15]).numpy(), atol=1e-6)
    half_pixel = tf.image.resize(x, [11, 15], method="bilinear").numpy()
    assert np.abs(out - half_pixel).max() > 0.05  # not the TF2 (half-pixel) resize
    fixed = T.random_scale([0.9], half_pixel_centers=True)(x, seed(0)).numpy()
    np.testing.assert_allclose(fixed, half_pixel, atol=1e-5)


def test_random_scale_draws_every_scale_uniformly_one_per_call():
    x = rand_image([3, 20, 20, 1])
    fn = tf.function(T.random_scale([0.5, 1.0, 1.5]))
    sizes = [fn(x, seed(i)).shape[1] for i in range(90)]
    counts = {s: sizes.count(s) for s in (10, 20, 30)}
    assert sum(counts.values()) == 90 and min(counts.values()) >= 15


# ---------------------------------------------------------------- random_rotate

def rotate_reference(x, degrees, pi=3.14):
    """Spec formula: inverse map (counter-clockwise about the centre), radians = pi * deg / 180, nearest
    (round half away from zero), zero fill. Returns the image and a mask of pixels whose source coordinate
    lies within 1e-3 of a rounding boundary (float32 vs float64 may round those either way)."""
    b, h, w, c = x.shape
    a = pi * degrees / 180.0
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    sx = math.cos(a) * (xx - cx) - math.sin(a) * (yy - cy) + cx
    sy = math.sin(a) * (xx - cx) + math.cos(a) * (yy - cy) + cy
    ambiguous = (np.abs(np.abs(sx) % 1 - 0.5) < 1e-3) | (np.abs(np.abs(sy) % 1 - 0.5) < 1e-3)
    rx = (np.sign(sx) * np.floor(np.abs(sx) + 0.5)).astype(int)
    ry = (np.sign(sy) * np.floor(np.abs(sy) + 0.5)).astype(int)
    inside = (rx >= 0) & (rx < w) & (ry >= 0) & (ry < h)
    out = np.zeros_like(x)
    out[:, inside] = x[:, ry[inside], rx[inside]]
    return out, ambiguous


@pytest.mark.parametrize("degrees,h,w", [(7, 17, 20), (-10, 32, 32), (170, 64, 64), (33, 15, 9)])
def test_random_rotate_matches_reference(degrees, h, w):
    x = unique_image(2, h, w, 2) + 1.0  # no zeros in the input
    out = T.random_rotate([degrees])(x, seed(0)).numpy()
    ref, ambiguous = rotate_reference(x, degrees)
    assert ambiguous.mean() < 0.05  # the comparison covers (nearly) every pixel
    np.testing.assert_array_equal(out[:, ~ambiguous], ref[:, ~ambiguous])
    assert set(np.unique(out)) <= set(np.unique(x)) | {0.0}  # nearest: only input values (and the fill)


def test_random_rotate_uses_3_14_not_pi():
    x = unique_image(1, 64, 64, 1) + 1.0
    ref_314, amb1 = rotate_reference(x, 170, pi=3.14)
    ref_pi, amb2 = rotate_reference(x, 170, pi=math.pi)
    ok = ~(amb1 | amb2)
    out = T.random_rotate([170])(x, seed(0)).numpy()
    assert (out[:, ok] != ref_pi[:, ok]).sum() > 50  # 3.14 is visibly different from pi at 170 degrees
    np.testing.assert_array_equal(out[:, ok], ref_314[:, ok])
    exact = T.random_rotate([170], exact_pi=True)(x, seed(0)).numpy()
    np.testing.assert_array_equal(exact[:, ok], ref_pi[:, ok])


def test_random_rotate_is_counter_clockwise():
    x = np.zeros([1, 9, 9, 1], np.float32)
    x[0, 4, 8, 0] = 1.0  # right of the centre (4, 4)
    out = T.random_rotate([90])(x, seed(0)).numpy()[0, :, :, 0]
    assert out[0, 4] == 1.0 and out.sum() == 1.0  # moved to the top: counter-clockwise on screen
    out = T.random_rotate([math.pi / 2], units="radians")(x, seed(0)).numpy()[0, :, :, 0]
    assert out[0, 4] == 1.0 and out.sum() == 1.0


def test_random_rotate_fills_corners_with_zero():
    out = T.random_rotate([45])(np.ones([2, 21, 21, 3], np.float32), seed(0)).numpy()
    assert np.all(out[:, 0, 0] == 0) and np.all(out[:, -1, -1] == 0) and np.all(out[:, 0, -1] == 0)
    assert np.all(out[:, 5:16, 5:16] == 1)
    assert out.shape == (2, 21, 21, 3)


def test_random_rotate_one_angle_shared_by_batch():
    x = np.repeat(unique_image(1, 16, 16, 1) + 1.0, 3, axis=0)  # three identical images
    for i in range(10):
        out = T.random_rotate(list(range(-10, 11)))(x, seed(i)).numpy()
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2])


# ---------------------------------------------------------------- crop_or_pad_to

@pytest.mark.parametrize("size", [(7, 11), (12, 4), (9, 9), (10, 8)])
def test_crop_or_pad_to_matches_tf_image(size):
    x = rand_image([2, 9, 8, 3], 4)
    out = T.crop_or_pad_to(*size)(x, seed(0)).numpy()
    np.testing.assert_array_equal(out, tf.image.resize_with_crop_or_pad(x, *size).numpy())


# ---------------------------------------------------------------- compositions

STANDARD_SIZES = [125, 128, 131, 134, 137, 140, 142, 145, 148, 151, 154]  # int(144 * s) - 4, s = 0.90..1.10


def test_standard_transforms_are_the_spec_list():
    names = [repr(t) for t in T.standard_transforms]
    assert names == [
        "pad(12, mode='constant', constant_value=0.5)", "jitter(8)",
        f"random_scale({[1 + (i - 5) / 50.0 for i in range(11)]})",
        f"random_rotate({[float(a) for a in list(range(-10, 11)) + 5 * [0]]}, units='degrees')", "jitter(4)"]


def test_standard_chain_sizes_and_single_trace():
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([2], tf.int32)])
    def step(image, s):
        traces.append(1)
        out = T.compose(T.standard_transforms)(image, s)
        assert out.shape[-1] == 3  # static channels survive (Keras layers need them)
        return tf.shape(out)

    x = rand_image([2, 128, 128, 3])
    sizes = [tuple(step(x, seed(i)).numpy()) for i in range(150)]
    assert all(s[0] == 2 and s[1] == s[2] and s[3] == 3 for s in sizes)
    assert sorted({s[1] for s in sizes}) == STANDARD_SIZES  # 128 -> 152 -> 144 -> 129..158 -> 125..154
    for h, w in [(64, 64), (96, 80), (33, 47)]:  # other sizes: still no retrace
        step(rand_image([1, h, w, 3]), seed(0))
    assert len(traces) == 1


def test_compose_same_seed_same_output_different_seed_different():
    t = T.compose(T.standard_transforms)
    x = rand_image([2, 40, 40, 3])
    a, b = t(x, seed(5)).numpy(), t(x, seed(5)).numpy()
    np.testing.assert_array_equal(a, b)
    c = t(x, seed(6)).numpy()
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_compose_gives_each_member_its_own_seed():
    x = np.full([1, 2, 2, 1], 7.0, np.float32)
    uniform = T.pad(1, mode="constant", constant_value="uniform")
    out = T.compose([uniform, uniform])(x, seed(0)).numpy()[0, :, :, 0]
    inner, outer = out[1, 1], out[0, 0]
    assert inner != outer  # two members, two different draws


def test_standard_transforms_are_differentiable():
    x = tf.constant(rand_image([2, 32, 32, 3]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(T.compose(T.standard_transforms)(x, seed(1)) ** 2)
    g = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


@pytest.mark.parametrize("h,w", [(128, 128), (64, 48), (160, 150)])
def test_distill_transforms_keep_input_size(h, w):
    t = tf.function(T.distill_transforms())
    x = rand_image([2, h, w, 3])
    for i in range(5):
        out = t(x, seed(i)).numpy()
        assert out.shape == (2, h, w, 3)
    assert not np.array_equal(t(x, seed(0)).numpy(), t(x, seed(1)).numpy())


# ---------------------------------------------------------------- normalize_gradient

def test_normalize_gradient_identity_forward_unit_norm_backward():
    x = tf.constant(rand_image([3, 6, 5, 2]))
    weights = tf.constant(rand_image([3, 6, 5, 2], 9) * np.array([1.0, 50.0, 0.0], np.float32)[:, None, None, None])
    t = T.normalize_gradient()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = t(x, seed(0))
        loss = tf.reduce_sum(y * weights)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    g = tape.gradient(loss, x).numpy()
    norms = np.sqrt((g ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, [1.0, 1.0, 0.0], atol=1e-5)  # zero gradient stays zero, no NaN
    w = weights.numpy()
    np.testing.assert_allclose(g[1], w[1] / np.sqrt((w[1] ** 2).sum()), atol=1e-6)


def test_normalize_gradient_grad_scales():
    x = tf.constant(rand_image([2, 4, 4, 1]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(T.normalize_gradient([2.0, 0.5])(x, seed(0)) * 3.0)
    norms = np.sqrt((tape.gradient(loss, x).numpy() ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, [2.0, 0.5], atol=1e-5)


# ---------------------------------------------------------------- argument errors

@pytest.mark.parametrize("make", [
    lambda: T.pad(2, mode="wrap"), lambda: T.pad(-1), lambda: T.pad(2, mode="constant", constant_value="grey"),
    lambda: T.jitter(1.5), lambda: T.random_scale([]), lambda: T.random_scale([0.0, 1.0]),
    lambda: T.random_rotate([5], units="turns"), lambda: T.random_rotate("abc"), lambda: T.compose([3]),
])
def test_bad_arguments_raise(make):
    with pytest.raises(InvalidArgumentError):
        make()
