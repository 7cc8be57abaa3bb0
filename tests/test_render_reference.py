"""The optimised render loop equals a plain reference loop bit for bit, and the same seed gives the same PNG bytes
in two fresh processes: checks that hold on any CPU (no digests stored from one machine).

The optimised loop (lucidtl.optvis.render.Renderer) prunes the Inception branches its channels do not read,
writes the gradient of a sum of channel means in one pass, and compiles two step functions (the redirected-ReLU
warm-up with a constant switch, and the plain step). The reference below does none of that: the full feature
model, plain autodiff, one tf.function whose ReLU gradients switch on the step variable inside the graph; it
follows Lucid's loop (param -> transforms seeded per step -> model -> objective -> tf.gradients -> Adam).
"""
import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl.optvis import features, objectives, redirected_relu
from lucidtl.optvis import param as param_lib
from lucidtl.optvis.render import default_optimizer, render_channels, resolve_transforms

from conftest import build_tiny_cnn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from bench_precision import inception_with_bn_statistics  # noqa: E402

SEED_SALT = 0x5EED  # Renderer's per-step seed: stateless_fold_in([seed, 0x5EED], step)


def reference_render(model, channels, size, steps, seed, transforms="standard"):
    """Lucid's loop, written plainly: image i maximises mean(layer_i[..., channel_i]) of image i."""
    keras.utils.set_random_seed(seed)
    param = param_lib.image(size, batch=len(channels))
    variables = list(param.trainable_variables)
    transform = resolve_transforms(transforms) or (lambda image, seed: image)
    optimizer = default_optimizer()
    optimizer.build(variables)
    layers = sorted({layer for layer, _ in channels})
    feats = features.feature_model(model, layers)
    step = tf.Variable(0, dtype=tf.int32)
    pair = tf.constant([seed, SEED_SALT], tf.int32)

    @tf.function
    def update():
        image = param()
        x = transform(image, tf.random.experimental.stateless_fold_in(pair, step))
        with redirected_relu.redirect(step):
            outs = feats(x, training=False)
        acts = dict(zip(layers, outs if isinstance(outs, (list, tuple)) else [outs]))
        value = tf.add_n([tf.reduce_mean(tf.cast(acts[layer], tf.float32)[i, ..., c])
                          for i, (layer, c) in enumerate(channels)])
        grads = tf.gradients(-value, variables)
        optimizer.apply_gradients(zip(grads, variables))
        step.assign_add(1)
        return value

    for _ in range(steps + 1):  # threshold t = the image after t + 1 updates
        update()
    return np.asarray(param())


CASES = [
    ([("Mixed_4c", 0), ("Mixed_4c", 400)]),  # one concat, two of its four branches: the others pruned
    ([("Mixed_3b_pre_relu", 5), ("Mixed_4b_Branch_1_b_3x3", 43), ("Mixed_4c_pre_relu", 200)]),  # no pruning
]


@pytest.fixture(scope="module")
def inception():
    return inception_with_bn_statistics()


@pytest.mark.parametrize("channels", [CASES[0], pytest.param(CASES[1], marks=pytest.mark.slow)],
                         ids=["pruned", "pre_relu"])  # pre_relu: InceptionV1 twice more
def test_optimised_loop_equals_reference_bit_for_bit(inception, channels):
    """20 steps: the 17 redirected-ReLU warm-up steps and the plain steps after them."""
    fast = render_channels(inception, channels, size=40, steps=20, seed=0)
    ref = reference_render(inception, channels, size=40, steps=20, seed=0)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.slow  # InceptionV1 twice more; the quick loop keeps the pruned case
def test_reference_equality_catches_a_wrong_pruning(inception, monkeypatch):
    """A pruning that drops a branch the objective reads (here channel 400's) changes the picture, and the
    reference comparison above sees it."""
    channels = CASES[0]
    right = features.partial_feature_model

    def wrong(model, name, chans):
        return right(model, name, {c for c in chans if c != 400})

    monkeypatch.setattr(features, "partial_feature_model", wrong)
    fast = render_channels(inception, channels, size=40, steps=20, seed=0)
    ref = reference_render(inception, channels, size=40, steps=20, seed=0)
    np.testing.assert_array_equal(fast[0], ref[0])  # image 0's branch is still computed
    assert not np.array_equal(fast[1], ref[1])


def test_tiny_model_loop_equals_reference_without_transforms():
    model = build_tiny_cnn(seed=0)
    channels = [("mixed", 2), ("branch_a_relu_pre_relu", 1), ("conv1_relu", 3)]
    fast = render_channels(model, channels, size=20, steps=24, seed=7, transforms="none")
    ref = reference_render(model, channels, size=20, steps=24, seed=7, transforms="none")
    np.testing.assert_array_equal(fast, ref)


def _render_digests(tmp_path, name):
    out = tmp_path / name
    cmd = [sys.executable, "-m", "lucidtl.render", "--weights", "random", "--layer", "Mixed_4c", "--channels",
           "0,400", "--size", "32", "--steps", "20", "--thresholds", "10,20", "--out", str(out), "--progress",
           "false"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    files = sorted(p for p in os.listdir(out) if p.endswith((".png", ".json")))
    return {p: hashlib.sha256((out / p).read_bytes()).hexdigest() for p in files}


@pytest.mark.slow  # two processes each building InceptionV1
def test_same_seed_same_bytes_in_two_fresh_processes(tmp_path):
    first = _render_digests(tmp_path, "a")
    second = _render_digests(tmp_path, "b")
    assert len([p for p in first if p.endswith(".png")]) == 5  # 2 channels x 2 thresholds + the grid
    assert first == second
