"""Caricatures (Lucid's recipe): the optimised image's activations move toward the target's; dot_compare
is Lucid's formula."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import build_tiny_cnn
from lucidtl.optvis import objectives
from lucidtl.recipes import caricature as car


def test_dot_compare_is_lucids_formula():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(3, 4, 4, 5)).astype(np.float32)
    t, c = acts[0].astype(np.float64), acts[2].astype(np.float64)
    dot = (t * c).sum()
    s = max(0.1, dot / (1e-6 + np.linalg.norm(c)))
    for p in (0, 1, 2):
        value = float(objectives.dot_compare("x", batch=2, cossim_pow=p)(lambda name: tf.constant(acts)))
        assert value == pytest.approx(dot * s ** p, rel=1e-5)


def test_caricature_activations_move_toward_the_target():
    model = build_tiny_cnn()
    y, x = np.mgrid[0:16, 0:16] / 16.0
    target = np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), x * y], -1).astype(np.float32)
    seen = []
    out = car.caricature(target, model, ["mixed", "fused"], n_steps=40, verbose=False, seed=1, transforms="none",
                         callback=lambda i, v, img: seen.append(img))
    assert out.shape == (3, 16, 16, 3) and np.allclose(out[0], target)
    first = car.caricature(target, model, ["mixed", "fused"], n_steps=1, verbose=False, seed=1, transforms="none")
    for i, layer in enumerate(["mixed", "fused"]):
        before = car.cosine(model, layer, first[[0, i + 1]])[1]
        after = car.cosine(model, layer, out[[0, i + 1]])[1]
        assert after > before + 0.02 and after > 0.8, (layer, before, after)
    # Lucid's transforms (the default) also work, the target sharing each step's transform
    std = car.caricature(target, model, "mixed", n_steps=2, verbose=False)
    assert std.shape == (2, 16, 16, 3) and np.isfinite(std).all()
