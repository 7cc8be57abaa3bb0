"""Model files as a new user brings them, and the rest of what a newcomer hit (issue 22): fixed-size `.keras`
files at any --size, --input-range, classifier tops, --custom-objects, and one-line errors in Python too."""
import hashlib
import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import build_tiny_cnn, cli_exit
from lucidtl import cli, imageio
from lucidtl import render as render_cli
from lucidtl.errors import ChannelRangeError, WeightsError
from lucidtl.models import weights as weights_mod
from lucidtl.optvis.render import render_vis

SMALL = ["--steps", "2", "--progress", "False", "--channels", "0:2", "--batch-size", "2"]


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A saved keras.applications.ResNet50 that takes 224x224 images only (random weights)."""
    keras.utils.set_random_seed(0)
    net = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(224, 224, 3))
    path = str(tmp_path_factory.mktemp("resnet") / "resnet50.keras")
    net.save(path)
    return path


@pytest.mark.slow  # a 224-only ResNet50 rendered at two sizes; test_render.py renders a fixed-size tiny model
def test_fixed_size_keras_file_renders_from_the_command_line_at_64_and_128(resnet_file, tmp_path, capsys):
    for size in (64, 128):
        out = tmp_path / f"s{size}"
        render_cli.main(["--model", resnet_file, "--layer", "conv2_block1_out", "--size", str(size),
                         "--out", str(out), *SMALL])
        record = json.loads((out / "conv2_block1_out_render.json").read_text())
        assert record["size"] == size and record["status"] == "complete"
        assert Image.open(out / "conv2_block1_out_0001_2.png").size == (size, size)
    assert "wrote 2 PNGs" in capsys.readouterr().out


def test_size_check_names_the_size_asked_for(tmp_path, capsys):
    code, captured = cli_exit(render_cli.main, ["--model", "keras.applications.InceptionV3", "--layer", "mixed10",
                                                "--size", "16", "--weights", "random", "--out", str(tmp_path / "o")],
                              capsys)
    assert code == 2 and "--size 16 is too small" in captured.err and "sees 24px" in captured.err  # int(0.9 * (16 + 16)) - 4


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    net = build_tiny_cnn()
    plain = str(base / "tiny.keras")
    net.save(plain)
    # the same network behind a layer that multiplies by 255: what --input-range 0,255 must amount to
    inp = keras.Input((None, None, 3))
    wrapped = keras.Model(inp, net(keras.layers.Rescaling(255.0)(inp)), name="wrapped")
    scaled = str(base / "scaled.keras")
    wrapped.save(scaled)
    return plain, scaled


def test_input_range_is_recorded_and_applied(tiny_file, tmp_path, capsys):
    plain, scaled = tiny_file
    args = ["--size", "24", "--seed", "3", "--layer", "conv1_relu", *SMALL]
    render_cli.main(["--model", plain, "--input-range", "0,255", "--out", str(tmp_path / "a"), *args])
    render_cli.main(["--model", scaled, "--out", str(tmp_path / "b"), *args])  # conv1_relu: a bare nested name
    ra = json.loads((tmp_path / "a" / "conv1_relu_render.json").read_text())
    rb = json.loads((tmp_path / "b" / "conv1_relu_render.json").read_text())
    assert ra["input_range"] == [0.0, 255.0] and rb["input_range"] == [0.0, 1.0]
    for name in ("conv1_relu_0000_2.png", "conv1_relu_0001_2.png"):
        a = np.asarray(Image.open(tmp_path / "a" / name), np.int16)
        b = np.asarray(Image.open(tmp_path / "b" / name), np.int16)
        assert np.abs(a - b).max() <= 1  # the same optimisation: x*255 fed to the network either way
    for key in ("2:0-1",):
        assert ra["objective_values"][key] == pytest.approx(rb["objective_values"][key], rel=1e-4, abs=1e-5)
    code, captured = cli_exit(render_cli.main, ["--model", plain, "--input-range", "255,0", "--out",
                                                str(tmp_path / "c")], capsys)
    assert code == 2 and "LO < HI" in captured.err and not (tmp_path / "c").exists()


@pytest.mark.slow  # MobileNetV2 with its top; test_cli.py renders a keras.applications model in the quick loop
def test_a_layer_of_the_classifier_top_keeps_the_top(tmp_path, capsys):
    """One rule: a model lucidtl builds loses its top unless the layer asked for is one only the top has."""
    render_cli.main(["--model", "keras.applications.MobileNetV2", "--layer", "predictions", "--channels", "0:2",
                     "--size", "32", "--steps", "1", "--batch-size", "2", "--progress", "False", "--weights",
                     "random", "--out", str(tmp_path / "o")])
    record = json.loads((tmp_path / "o" / "predictions_render.json").read_text())
    assert record["channels"] == [0, 1] and record["size"] == 32
    listing = render_cli.layers("keras.applications.MobileNetV2")
    assert "predictions" not in listing and "out_relu" in listing


CUSTOM = '''
import keras

class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return dict(super().get_config(), factor=self.factor)
'''


def test_custom_layer_class_needs_custom_objects(tmp_path, monkeypatch, capsys):
    (tmp_path / "mylayers.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    import mylayers

    inp = keras.Input((None, None, 3))
    x = mylayers.Scale(3.0, name="scale")(keras.layers.Conv2D(4, 3, name="conv")(inp))
    keras.Model(inp, keras.layers.ReLU(name="relu")(x)).save(str(tmp_path / "custom.keras"))
    monkeypatch.delitem(__import__("sys").modules, "mylayers")
    model = str(tmp_path / "custom.keras")
    code, captured = cli_exit(render_cli.main, ["--model", model, "--layer", "relu", "--out",
                                                str(tmp_path / "o"), "--size", "16", *SMALL], capsys)
    err = captured.err.strip()
    assert code == 2 and "'Scale'" in err and "--custom-objects mylayers:Scale" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
    for spec in ("mylayers", "mylayers:Scale", str(tmp_path / "mylayers.py")):
        assert "relu" in render_cli.layers(model, custom_objects=spec)
    render_cli.main(["--model", model, "--custom-objects", "mylayers:Scale", "--layer", "relu", "--size", "16",
                     "--out", str(tmp_path / "ok"), *SMALL])
    assert (tmp_path / "ok" / "relu_grid.png").exists()
    code, captured = cli_exit(render_cli.main, ["--model", model, "--custom-objects", "mylayers:Scal", "--layer",
                                                "relu", "--out", str(tmp_path / "o2")], capsys)
    assert code == 2 and "defines no 'Scal'" in captured.err and "Scale" in captured.err


# ---- the rest of what a newcomer hit ------------------------------------------------------------------------

def test_python_api_names_the_layers_channel_count(tiny_cnn):
    with pytest.raises(ChannelRangeError, match=r"channel 600 of layer 'mixed' is out of range: the layer has 10 "
                                                r"channels \(0\.\.9\)"):
        render_vis(tiny_cnn, "mixed:600", thresholds=(1,), verbose=False)


def test_layer_mistake_on_inception_v1_is_reported_before_the_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("looked for weights first"))
    code, captured = cli_exit(render_cli.main, ["--layer", "Mixed_9z", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and captured.err.startswith("error: unknown layer 'Mixed_9z'") and "note:" not in captured.out


def test_train_offline_offers_random_weights(tmp_path, monkeypatch, capsys):
    from lucidtl.train.__main__ import main as train_main
    from tiny_models import make_image_folder

    def offline(*a, **k):
        raise Exception("URL fetch failure on http://x: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    (tmp_path / "keras").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    folder = make_image_folder(str(tmp_path / "data"), per_class=2, size=16)
    code, captured = cli_exit(train_main, ["--dataset", f"folder:{folder}", "--out", str(tmp_path / "run"),
                                           "--iterations", "1", "--image-size", "16"], capsys)
    err = captured.err.strip().splitlines()[-1]
    assert code == 2 and "--weights random" in err and "[Errno -3] Temporary failure in name resolution" in err


def test_cached_archive_with_another_sha256_says_so(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    target = tmp_path / "lucidtl" / "inception_v1_2016_08_28.tar.gz"
    target.parent.mkdir()
    target.write_bytes(b"not the archive")
    with pytest.raises(WeightsError) as e:
        weights_mod.build_model("inception_v1", weights="imagenet")
    text = str(e.value)
    assert f"{target} has sha256 {hashlib.sha256(b'not the archive').hexdigest()[:12]}" in text
    assert "7a620c430fcaba8f8f716241f5148c4c47c035cce4e49ef02cfbe6cd1adf96a6" in text and "place it at" not in text


@pytest.mark.parametrize("argv", [["analyze", "table", "--csv", "{csv}", "--out", "{tmp}/reuse.csv"],
                                  ["stylegan", "convert", "--pickle", "{csv}", "--out", "{tmp}/g.npz"],
                                  ["render", "--out", "{tmp}/grid.png"]])
def test_out_named_like_a_file_is_refused(argv, tmp_path, capsys):
    import importlib

    (tmp_path / "a.csv").write_text("x\n")
    argv = [a.format(csv=tmp_path / "a.csv", tmp=tmp_path) for a in argv]
    main = importlib.import_module(f"lucidtl.{argv[0]}").main
    code, captured = cli_exit(main, argv[1:], capsys)
    assert code == 2 and "is always a folder" in captured.err and os.listdir(tmp_path) == ["a.csv"]


def test_random_weights_said_on_grids_and_report(tmp_path):
    cells = [[np.full((8, 8, 3), 0.5, np.float32)]]
    plain = imageio.labelled_grid(cells, ["t=1"], ["ch 0"])
    titled = np.asarray(imageio.labelled_grid(cells, ["t=1"], ["ch 0"], title=imageio.RANDOM_TITLE))
    assert titled.shape[0] > plain.height and ((titled[..., 0] > 120) & (titled[..., 1] < 40)).any()  # red text


def test_help_says_17_warm_up_steps_and_layers_lists_fused_relus(tiny_cnn, tmp_path, capsys):
    code, captured = cli_exit(render_cli.main, ["render", "--help"], capsys)
    assert "first 17 steps" in captured.out and "16 steps" not in captured.out
    path = str(tmp_path / "tiny.keras")
    tiny_cnn.save(path)
    rows = {line.split()[0]: line for line in render_cli.layers(path).splitlines()[1:]}
    # ... its _pre_relu, then the shape objectives see
    assert "fused" in rows and "Conv2D(relu)" in rows["fused"] and rows["fused"].split()[-2:] == ["yes", "?x?x5"]
    assert "conv1" not in rows  # a linear Conv2D stays hidden


def test_vocabulary_has_input_range_and_custom_objects():
    assert cli.VOCABULARY["input_range"][0] == "range" and "custom_objects" in cli.VOCABULARY
