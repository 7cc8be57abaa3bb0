"""A user error (LucidtlError) raised while a tf.function is traced, or inside a Keras callback, reaches the
command line as itself: one line `error: ...`, exit code 2, no traceback, from every entry point family
(analyze, render, atlas, study, train). The error is planted in code that runs only while traced (the
planted function checks that it is)."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import cli_exit
from lucidtl import attribution, cli
from lucidtl.errors import InvalidArgumentError, UnknownLayerError
from lucidtl.optvis import render as optvis_render
from lucidtl.train import fit
from tiny_models import make_image_folder

MESSAGE = "planted user error: pass a better flag"


def planted(*args, **kwargs):
    if not tf.inside_function():
        raise AssertionError("the planted error is meant to be raised while a tf.function is traced")
    raise InvalidArgumentError(MESSAGE)


def one_line(code, captured, message=MESSAGE):
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert lines == [f"error: {message}"] and "Traceback" not in captured.err, captured.err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("traced")
    folder = make_image_folder(str(base / "data"), per_class=2, size=16)
    out = str(base / "tinyrun")
    fit.train(f"folder:{folder}", iterations=2, save_at="0,2", out=out, model="tiny_models.tiny_backbone",
              weights="random", recipe="temporal", image_size=16, batch_size=4, progress=False, tensorboard=False)
    return out, folder


def test_autograph_wrapper_is_unwrapped():
    @tf.function
    def traced(x):
        for _ in tf.range(2):  # autograph converts the function: its errors come back as StagingError
            x = x + 1.0
        return planted(x)

    with pytest.raises(Exception) as e:
        traced(tf.constant(1.0))
    assert not isinstance(e.value, InvalidArgumentError)  # what TensorFlow hands over is a wrapper
    assert cli.user_error(e.value) == MESSAGE

    def in_py_function(x):
        raise UnknownLayerError("unknown layer 'x'; pick one")

    with pytest.raises(tf.errors.OpError) as e:
        tf.function(lambda x: tf.py_function(in_py_function, [x], tf.float32))(tf.constant(1.0))
    assert cli.user_error(e.value) == "unknown layer 'x'; pick one"
    assert cli.user_error(RuntimeError("InvalidArgumentError: not ours")) is None  # a bug keeps its traceback


def test_render(run_dir, tmp_path, capsys, monkeypatch):
    from lucidtl.render import main

    monkeypatch.setattr(optvis_render, "objective_value", planted)
    one_line(*cli_exit(main, ["--run", run_dir[0], "--layer", "conv2_relu", "--channels", "0", "--size", "16",
                              "--steps", "2", "--out", str(tmp_path / "r")], capsys))


def test_atlas(run_dir, tmp_path, capsys, monkeypatch):
    from lucidtl.atlas.__main__ import main

    monkeypatch.setattr(optvis_render, "objective_value", planted)
    one_line(*cli_exit(main, ["render", "--runs", run_dir[0], "--out", str(tmp_path / "a"), "--layers",
                              "conv2_relu", "--channels", "0", "--size", "16", "--steps", "2", "--progress",
                              "False"], capsys))


def test_study(run_dir, tmp_path, capsys, monkeypatch):
    from lucidtl.study.__main__ import main

    monkeypatch.setattr(optvis_render, "objective_value", planted)
    one_line(*cli_exit(main, ["--runs", run_dir[0], "--out", str(tmp_path / "s"), "--layers", "conv2_relu",
                              "--channels", "0", "--size", "16", "--steps", "2", "--progress", "False"], capsys))


def test_analyze(run_dir, tmp_path, capsys, monkeypatch):
    from lucidtl.analyze import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", images=(rng.uniform(size=(2, 16, 16, 3)) * 255).astype(np.uint8),
             labels=np.array([0, 1]))
    split = attribution.Attributor._split_keras

    def upper_planted(self, model, output):  # the traced gradient function calls upper(a, x)
        split(self, model, output)
        self.upper = planted

    monkeypatch.setattr(attribution.Attributor, "_split_keras", upper_planted)
    one_line(*cli_exit(main, ["attribution", "--run", run_dir[0], "--layers", "conv2_relu", "--dataset",
                              str(tmp_path / "images.npz"), "--indices", "0", "--noprogress", "--out",
                              str(tmp_path / "an")], capsys))


def test_train_callback(run_dir, tmp_path, capsys, monkeypatch):
    """A live drawing (FeatureVisualization, a Keras callback) whose traced render raises."""
    from lucidtl.train.__main__ import main

    monkeypatch.setattr(optvis_render, "objective_value", planted)
    one_line(*cli_exit(main, ["--dataset", f"folder:{run_dir[1]}", "--out", str(tmp_path / "t"), "--model",
                              "tiny_models.tiny_backbone", "--weights", "random", "--iterations", "2",
                              "--image-size", "16", "--batch-size", "4", "--visualize", "conv2_relu:0",
                              "--visualize-steps", "2", "--visualize-size", "16", "--notensorboard",
                              "--noprogress"], capsys))
