"""IterationCheckpoint in a real model.fit: exactly the requested iterations, iteration 0 untouched,
counting across epochs and across a continued fit; atomic files and a manifest."""
import json
import os

import keras
import numpy as np
import pytest

from conftest import build_tiny_cnn
from lucidtl.errors import InvalidArgumentError
from lucidtl.train import IterationCheckpoint, PAPER_ITERATIONS, log_spaced, parse_schedule, read_manifest


def test_schedules():
    assert parse_schedule(None) == (0, 10, 20, 30, 60, 150, 1000, 3000) == PAPER_ITERATIONS
    assert parse_schedule("30,0,10,10") == (0, 10, 30)
    assert parse_schedule("every:25", iterations=100) == (0, 25, 50, 75, 100)
    log = log_spaced(3000, 8)
    assert log[0] == 0 and log[-1] == 3000 and len(log) == 9 and list(log) == sorted(set(log))
    assert list(log) == [0] + [round(3001 ** (k / 8) - 1) for k in range(1, 9)]  # evenly spaced in log(1 + i)
    for bad in ("every:x", "0,-1", "ten"):
        with pytest.raises(InvalidArgumentError):
            parse_schedule(bad, iterations=10)
    with pytest.raises(InvalidArgumentError, match="needs the run length"):
        parse_schedule("log:8")


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 16, 16, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 4, n), 4)
    return x, y


def _model():
    model = build_tiny_cnn(seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_saves_exactly_the_requested_iterations(tmp_path):
    x, y = _data()
    model = _model()
    initial = [w.numpy().copy() for w in model.weights]
    cb = IterationCheckpoint(tmp_path, save_at="0,1,3,7,12,100")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[cb])  # 10 batches/epoch
    records = read_manifest(tmp_path)
    assert [r["iteration"] for r in records] == [0, 1, 3, 7, 12]  # 100 never reached
    assert [r["epoch"] for r in records] == [0, 0, 0, 0, 1]
    assert sorted(os.listdir(tmp_path)) == ["checkpoints.json"] + [f"iter_{i:06d}.weights.h5" for i in (0, 1, 3, 7, 12)]
    assert "loss" in records[1]["metrics"] and records[0]["metrics"] == {}
    assert all(r["wall_time"] >= 0 for r in records)

    probe = build_tiny_cnn(seed=4)
    probe.load_weights(tmp_path / "iter_000000.weights.h5")  # iteration 0 = the untouched model
    for w, v in zip(probe.weights, initial):
        np.testing.assert_array_equal(w.numpy(), v)
    probe.load_weights(tmp_path / "iter_000012.weights.h5")  # equals a fit stopped after 12 updates
    replay = _model()
    replay.fit(np.concatenate([x, x[:8]]), np.concatenate([y, y[:8]]), batch_size=4, epochs=1, shuffle=False,
               verbose=0)
    for w, v in zip(probe.weights, replay.weights):
        np.testing.assert_allclose(w.numpy(), v.numpy(), atol=1e-6)


def test_continued_fit_counts_on_and_never_duplicates(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[IterationCheckpoint(tmp_path, save_at="0,5,10,15,20")])
    assert [r["iteration"] for r in read_manifest(tmp_path)] == [0, 5, 10]
    stamp = os.path.getmtime(tmp_path / "iter_000010.weights.h5")
    model.fit(x, y, batch_size=4, epochs=2, initial_epoch=1, shuffle=False, verbose=0,
              callbacks=[IterationCheckpoint(tmp_path, save_at="0,5,10,15,20")])
    records = read_manifest(tmp_path)
    assert [r["iteration"] for r in records] == [0, 5, 10, 15, 20]
    assert os.path.getmtime(tmp_path / "iter_000010.weights.h5") == stamp
    assert records[-1]["wall_time"] >= records[2]["wall_time"]
    assert json.loads((tmp_path / "checkpoints.json").read_text())["format"] == "weights"
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_keras_format_and_bad_format(tmp_path):
    x, y = _data(8)
    model = _model()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[IterationCheckpoint(tmp_path, "2", save_format="keras")])
    assert os.path.isfile(tmp_path / "iter_000002.keras")
    with pytest.raises(InvalidArgumentError, match="unknown save_format"):
        IterationCheckpoint(tmp_path, save_format="h5")
