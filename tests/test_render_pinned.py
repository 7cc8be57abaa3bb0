"""Same seed -> the same PNG bytes: digests pinned from the render loop before its speed work (issue 15).

A speed-up of the loop or the model must not change a single byte of a rendered picture. The digests are
sha256 of the PNG files (imageio.save_png) of short renders that cover both regimes of the loop (the
redirected-ReLU warm-up, steps 0..16, and the ordinary gradient after it), standard transforms, a batch of
channels, and `_pre_relu` endpoints. They were computed with TF 2.21 on this project's CPU machine; a
different TF build or CPU instruction set may round differently (then re-pin on the old code first).
"""
import hashlib

import keras
import numpy as np
import pytest

from lucidtl.imageio import save_png
from lucidtl.models.inception_v1 import inception_v1
from lucidtl.optvis import objectives, param
from lucidtl.optvis.render import render_channels, render_vis

from conftest import build_tiny_cnn


def _digests(images, tmp_path):
    out = []
    for i, img in enumerate(images):
        path = save_png(img, tmp_path / f"{i}.png")
        out.append(hashlib.sha256(path.read_bytes()).hexdigest()[:16])
    return out


def _inception_with_bn_statistics(seed=0):
    """Random BN-InceptionV1 whose batch norms are not the identity (non-trivial moving statistics)."""
    keras.utils.set_random_seed(seed)
    model = inception_v1()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.beta.assign(rng.normal(0.0, 0.1, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0.0, 0.2, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
    return model


def test_tiny_cnn_pngs_unchanged(tmp_path):
    model = build_tiny_cnn(seed=0)
    obj = objectives.channel("mixed", 2, batch=0) + objectives.channel("branch_a_relu_pre_relu", 1, batch=1)
    obj = obj + objectives.channel("conv1_relu", 3, batch=1)
    imgs = render_vis(model, obj, param_f=lambda: param.image(20, batch=2), thresholds=(5, 24), seed=7,
                      verbose=False)
    got = _digests([im for batch in imgs for im in batch], tmp_path)
    assert got == ["8319162eb85c237a", "6d33f80784b07b8e", "9c4e38a3b6111453", "dc16abefaaa282fc"]


@pytest.mark.parametrize("channels, pinned", [
    ([("Mixed_4c", 0), ("Mixed_4c", 400)], ["df40d75a5a1e71b7", "1107425ddf4da1e6"]),
    ([("Mixed_3b_pre_relu", 5), ("Mixed_4b_Branch_1_b_3x3", 43), ("Mixed_4c_pre_relu", 200)],
     ["cad0252232700a0d", "f43a999bd0703c1a", "0cf8f91d88f21eb5"]),
])
def test_inception_v1_pngs_unchanged(channels, pinned, tmp_path):
    model = _inception_with_bn_statistics()
    imgs = render_channels(model, channels, size=40, steps=20, seed=0)
    assert _digests(imgs, tmp_path) == pinned
