"""The paper's tops and losses on a backbone: layer names kept, no layer frozen, softmax / sigmoid outputs."""
import keras
import numpy as np
import pytest

from conftest import build_tiny_cnn
from lucidtl.errors import InvalidArgumentError
from lucidtl.train.heads import add_head, compile_for


def _backbone():
    net = build_tiny_cnn(seed=1)
    return keras.Model(net.input, net.get_layer("fused").output, name="tiny")


def test_paper_and_single_tops():
    paper = add_head(_backbone(), 17, "paper")
    assert [layer.name for layer in paper.layers[-3:]] == ["head_pool", "head_dense", "predictions"]
    assert paper.get_layer("head_dense").units == 1024 and paper.output.shape[-1] == 17
    single = add_head(_backbone(), 40, "single", multi_label=True)
    assert [layer.name for layer in single.layers[-2:]] == ["head_pool", "predictions"]
    assert "branch_a" in [layer.name for layer in single.layers]  # backbone layers stay reachable
    assert all(layer.trainable for layer in single.layers)  # nothing frozen
    x = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.sum(paper(x), -1), 1.0, rtol=1e-5)  # softmax
    p = np.asarray(single(x))
    assert ((p > 0) & (p < 1)).all() and not np.allclose(p.sum(-1), 1.0)  # independent sigmoids


def test_losses_and_metrics_follow_the_paper():
    model = compile_for(add_head(_backbone(), 40, "single", multi_label=True), multi_label=True)
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-3)
    x = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 3)).astype("float32")
    y = (np.random.default_rng(1).uniform(size=(8, 40)) > 0.5).astype("float32")
    logs = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert set(logs) == {"loss", "binary_accuracy"}
    p = np.clip(np.asarray(model(x)), 1e-7, 1 - 1e-7)  # mean binary cross-entropy, by hand
    want = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(want, rel=1e-4)
    soft = compile_for(add_head(_backbone(), 5, "paper"))
    assert isinstance(soft.loss, keras.losses.CategoricalCrossentropy)


def test_bad_top_and_classes():
    with pytest.raises(InvalidArgumentError, match="unknown top 'papr'; closest: paper"):
        add_head(_backbone(), 3, "papr")
    with pytest.raises(InvalidArgumentError, match="num_classes must be a positive integer"):
        add_head(_backbone(), 0)
