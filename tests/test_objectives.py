"""Objectives: exact values against numpy versions of the spec's formulas, the algebra, and Lucid's own
check that every objective increases under 3 steps of Adam(0.1) from image(32)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import objectives as obj
from lucidtl.optvis import param
from lucidtl.optvis.render import Renderer

rng = np.random.default_rng(0)
A = rng.normal(size=(3, 5, 7, 4)).astype(np.float32)  # H != W to catch row/column mix-ups
B = rng.normal(size=(3, 5, 7, 6)).astype(np.float32)
LOGITS = rng.normal(size=(3, 10)).astype(np.float32)
IMG = rng.uniform(size=(3, 9, 8, 3)).astype(np.float32)
ACTS = {"a": A, "b": B, "logits": LOGITS, "input": IMG}


def value(o):
    return tf.reduce_sum(o(lambda name: tf.constant(ACTS[name]))).numpy()


def close(o, expected, rtol=1e-5):
    np.testing.assert_allclose(value(o), expected, rtol=rtol, atol=1e-6)


def test_neuron_rows_then_columns():
    close(obj.neuron("a", 2), A[:, 5 // 2, 7 // 2, 2].mean())
    close(obj.neuron("a", 1, x=1, y=6), A[:, 1, 6, 1].mean())
    close(obj.neuron("a", 1, batch=2), A[2, 2, 3, 1])


def test_channel():
    close(obj.channel("a", 3), A[..., 3].mean())
    close(obj.channel("a", 3, batch=1), A[1, ..., 3].mean())


def _dot_cossim(x, v, p):
    dot = (x * v).sum(-1)
    if p == 0:
        return dot.mean()
    cos = dot / (1e-4 + np.sqrt((x * x).sum(-1))) / (1e-4 + np.sqrt((v * v).sum()))
    return (dot * np.maximum(0.1, cos) ** p).mean()


@pytest.mark.parametrize("p", [0, 2])
def test_direction_and_direction_neuron(p):
    v = rng.normal(size=4).astype(np.float32)
    close(obj.direction("a", v, cossim_pow=p), _dot_cossim(A, v, p), rtol=1e-4)
    close(obj.direction("a", v, batch=1, cossim_pow=p), _dot_cossim(A[1], v, p), rtol=1e-4)
    close(obj.direction_neuron("a", v, cossim_pow=p), _dot_cossim(A[:, 2, 3], v, p), rtol=1e-4)


@pytest.mark.parametrize("p", [0, 1, 3])
def test_tensor_direction_is_lucids_per_position_formula(p):
    # Lucid 0.3.10: acts[:, M1:M1+h, M2:M2+w] with M = (size - vec size) // 2, then _dot_cossim:
    # mean over images and positions of dot * max(0.1, cos)^p, dot and cos along channels per position
    v = rng.normal(size=(3, 5, 4)).astype(np.float32)
    m1, m2 = (5 - 3) // 2, (7 - 5) // 2
    a = A[:, m1:m1 + 3, m2:m2 + 5]
    dot = (a * v[None]).sum(-1)
    cos = dot / (1e-4 + np.sqrt((a * a).sum(-1))) / (1e-4 + np.sqrt((v * v).sum(-1)))[None]
    expected = dot.mean() if p == 0 else (dot * np.maximum(0.1, cos) ** p).mean()
    close(obj.tensor_direction("a", v, cossim_pow=p), expected, rtol=1e-4)
    close(obj.tensor_direction("a", v[None], cossim_pow=p, batch=2),
          dot[2].mean() if p == 0 else (dot[2] * np.maximum(0.1, cos[2]) ** p).mean(), rtol=1e-4)
    assert p == 0 or (cos < 0.1).any()  # the 0.1 floor is exercised


def test_deepdream_logit_probability():
    close(obj.deepdream("a"), (A ** 2).mean())
    close(obj.class_logit("logits", 4), LOGITS[:, 4].sum())
    e = np.exp(LOGITS - LOGITS.max(-1, keepdims=True))
    close(obj.class_probability("logits", 4), (e / e.sum(-1, keepdims=True))[:, 4].sum())


def test_total_variation_is_per_image_vector():
    tv = obj.total_variation()(lambda n: tf.constant(ACTS[n])).numpy()
    expected = np.abs(np.diff(IMG, axis=1)).sum(axis=(1, 2, 3)) + np.abs(np.diff(IMG, axis=2)).sum(axis=(1, 2, 3))
    assert tv.shape == (3,)
    np.testing.assert_allclose(tv, expected, rtol=1e-5)


def test_l1_l2():
    close(obj.L1(), np.abs(IMG).sum())
    close(obj.L1("a", constant=0.5, batch=1), np.abs(A[1] - 0.5).sum())
    close(obj.L2("a", constant=0.2), np.sqrt(1e-6 + ((A - 0.2) ** 2).sum()))


def _blur3(x):
    k = np.full((3, 3), 0.5)
    k[1, 1] = 1.0
    pad = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    ones = np.pad(np.ones_like(x), [(0, 0), (1, 1), (1, 1), (0, 0)])
    num = sum(k[i, j] * pad[:, i:i + x.shape[1], j:j + x.shape[2]] for i in range(3) for j in range(3))
    den = sum(k[i, j] * ones[:, i:i + x.shape[1], j:j + x.shape[2]] for i in range(3) for j in range(3))
    return num / den


def test_blur_input_each_step():
    close(obj.blur_input_each_step(), 0.5 * ((IMG - _blur3(IMG)) ** 2).sum())


def test_blur_alpha_each_step():
    rgba = rng.uniform(size=(2, 6, 5, 4)).astype(np.float32)
    alpha = rgba[..., 3:4]
    got = obj.blur_alpha_each_step()(lambda n: tf.constant(rgba)).numpy()
    np.testing.assert_allclose(got, 0.5 * ((alpha - _blur3(alpha)) ** 2).sum(), rtol=1e-5)


def test_lucid_0_3_10_argument_order():
    # direction(layer, vec, cossim_pow, batch); direction_neuron(layer, vec, x, y, cossim_pow, batch)
    v = rng.normal(size=4).astype(np.float32)
    close(obj.direction("a", v, 2, 1), _dot_cossim(A[1], v, 2), rtol=1e-4)
    close(obj.direction_cossim("a", v, 2), _dot_cossim(A, v, 2), rtol=1e-4)
    close(obj.direction_neuron("a", v, 1, 6, 2, 0), _dot_cossim(A[:1, 1, 6], v, 2), rtol=1e-4)


def test_channel_interpolate():
    w = np.arange(3) / 2.0
    expected = sum((1 - w[n]) * A[n, ..., 1].mean() + w[n] * B[n, ..., 5].mean() for n in range(3))
    close(obj.channel_interpolate("a", 1, "b", 5), expected)


def test_alignment():
    x = rng.normal(size=(5, 2, 3, 4)).astype(np.float32)
    expected = -sum(((x[i] - x[i + d]) ** 2).mean() / 2.0 ** d for d in (1, 2, 3, 4) for i in range(5 - d))
    np.testing.assert_allclose(obj.alignment("x")(lambda n: tf.constant(x)).numpy(), expected, rtol=1e-5)


def test_diversity():
    f = A.reshape(3, -1, 4)
    grams = np.einsum("bpi,bpj->bij", f, f)
    grams /= np.sqrt(np.maximum((grams ** 2).sum(axis=(1, 2), keepdims=True), 1e-10))
    expected = sum((grams[i] * grams[j]).sum() for i in range(3) for j in range(3) if i != j) / 3
    close(obj.diversity("a"), expected, rtol=1e-4)


def test_input_diff_and_boundary():
    orig = rng.uniform(size=IMG.shape).astype(np.float32)
    close(obj.input_diff(orig), np.sqrt(((IMG - orig) ** 2).mean()))
    mask = np.ones(IMG.shape, np.float32)
    mask[:, 2:-2, 2:-2] = 0
    k = np.full((5, 5), 0.5)
    k[1:-1, 1:-1] = 1.0
    pad = np.pad(IMG, [(0, 0), (2, 2), (2, 2), (0, 0)])
    ones = np.pad(np.ones_like(IMG), [(0, 0), (2, 2), (2, 2), (0, 0)])
    num = sum(k[i, j] * pad[:, i:i + 9, j:j + 8] for i in range(5) for j in range(5))
    den = sum(k[i, j] * ones[:, i:i + 9, j:j + 8] for i in range(5) for j in range(5))
    diffs = (num / den - IMG) ** 2 + 0.8 * (IMG - 0.5) ** 2
    close(obj.penalize_boundary_complexity(IMG.shape, w=2), -(diffs * mask).sum(), rtol=1e-4)


def test_algebra():
    a, b = obj.channel("a", 0), obj.channel("b", 1)
    va, vb = A[..., 0].mean(), B[..., 1].mean()
    close(a + b, va + vb)
    close(a - b, va - vb)
    close(2 * a, 2 * va)
    close(a * 3, 3 * va)
    close(a / 2, va / 2)
    close(1 - a, 1 - va)
    close(a + 1, va + 1)
    close(-a, -va)
    close(a * b, va * vb)
    close(sum([a, b, a]), 2 * va + vb)
    close(obj.Objective.sum([a, b]), va + vb)
    assert (a + 2 * b).layers == {"a", "b"}
    assert (a - 100 * obj.diversity("b")).name == "channel(a, 0) - 100 * diversity(b)"
    assert obj.total_variation().layers == frozenset()  # "input" is not a layer
    with pytest.raises(InvalidArgumentError):
        a / b
    with pytest.raises(InvalidArgumentError):
        a + "x"


def test_as_objective():
    o = obj.as_objective("Mixed_4c_Branch_2_b_3x3:7")
    assert o.layers == {"Mixed_4c_Branch_2_b_3x3"} and o.name == "channel(Mixed_4c_Branch_2_b_3x3, 7)"
    assert obj.as_objective(o) is o
    for bad in ("Mixed_4c", "Mixed_4c:x", ":3"):
        with pytest.raises(InvalidArgumentError, match="layer:channel"):
            obj.as_objective(bad)


# ---- Lucid's check: each objective increases under 3 steps of Adam(0.1) from image(32) --------------

@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((None, None, 3), name="images")
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    x = keras.layers.ReLU(name="r1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c2")(x)
    x = keras.layers.ReLU(name="r2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, name="logits")(x)
    return keras.Model(inp, x)


def _increases(net, objective, batch=1):
    r = Renderer(net, objective, param_f=lambda: param.image(32, batch=batch),
                 optimizer=keras.optimizers.Adam(0.1, epsilon=1e-8), transforms=[],
                 relu_gradient_override=False, seed=0)
    before = r.objective_value()
    for _ in range(3):
        r.step()
    after = r.objective_value()
    assert after > before, (objective.name, before, after)


VEC = np.linspace(-1, 1, 8).astype(np.float32)
INCREASING = [
    obj.neuron("c2", 1), obj.channel("c2", 1), obj.direction("c2", VEC), obj.direction("c2", VEC, cossim_pow=1),
    obj.direction_neuron("c2", VEC), obj.tensor_direction("c2", np.ones((4, 4, 8), np.float32)),
    obj.deepdream("c2"), obj.class_logit("logits", 2), obj.class_probability("logits", 2),
    obj.total_variation(), obj.L1(), obj.L2(), obj.blur_input_each_step(), obj.channel("r1", 3, batch=0),
]


@pytest.mark.parametrize("objective", INCREASING, ids=lambda o: o.name)
def test_objective_increases(net, objective):
    _increases(net, objective)


def test_interpolate_increases(net):
    _increases(net, obj.channel_interpolate("c1", 0, "c2", 1), batch=3)


@pytest.mark.parametrize("make", [lambda: obj.alignment("c2"), lambda: obj.diversity("c2"),
                                  lambda: obj.input_diff(np.random.default_rng(1).uniform(size=(3, 32, 32, 3))),
                                  lambda: obj.penalize_boundary_complexity((3, 32, 32, 3), w=4)],
                         ids=["alignment", "diversity", "input_diff", "boundary"])
def test_penalties_increase_when_negated(net, make):
    _increases(net, -1 * make(), batch=3)
