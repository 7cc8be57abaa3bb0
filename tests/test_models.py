"""Model registry and weight I/O: build_model, load/save, manifests, error messages."""
import json
import os

import keras
import numpy as np
import pytest

from conftest import build_tiny_cnn
from lucidtl import models
from lucidtl.errors import InvalidArgumentError, UnknownModelError, WeightsError
from lucidtl.models import weights as weights_mod

X = np.random.default_rng(0).random((2, 32, 40, 3), dtype=np.float32)


def _randomise_bn(net, seed):
    """Non-trivial BN moving statistics, so a round trip has to carry them too."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2, size=layer.moving_variance.shape).astype("float32"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A random InceptionV1 (seed 1, random BN statistics) saved as .weights.h5 and .keras, and its output on X."""
    folder = tmp_path_factory.mktemp("weights")
    keras.utils.set_random_seed(1)
    net, info = models.build_model("inception_v1")
    _randomise_bn(net, 1)
    h5 = models.save_weights(net, os.path.join(folder, "inc.weights.h5"))
    full = models.save_model(net, os.path.join(folder, "inc.keras"))
    return {"info": info, "h5": h5, "keras": full, "out": np.asarray(net(X)), "folder": folder}


def _one_line(excinfo):
    text = str(excinfo.value)
    assert "\n" not in text and text
    return text


def test_registry_names_and_info(saved):
    assert "inception_v1" in models.MODELS and list(models.MODELS) == ["inception_v1"]
    info = saved["info"]
    assert info == models.ModelInfo("inception_v1", info.weights_source, (0.0, 1.0), True)
    assert "random" in info.weights_source


def test_random_weights_are_seeded():
    keras.utils.set_random_seed(5)
    a, _ = models.build_model("inception_v1", weights="random")
    keras.utils.set_random_seed(5)
    b, _ = models.build_model("inception_v1", weights="random")
    np.testing.assert_array_equal(a.get_layer("Mixed_4c_Branch_1_b_3x3_conv").kernel, b.get_layer(
        "Mixed_4c_Branch_1_b_3x3_conv").kernel)
    np.testing.assert_array_equal(np.asarray(a(X[:1])), np.asarray(b(X[:1])))


def test_unknown_model_lists_closest():
    with pytest.raises(UnknownModelError) as e:
        models.build_model("inception_v2")
    assert "unknown model 'inception_v2'" in _one_line(e) and "closest: inception_v1" in str(e.value)
    with pytest.raises(UnknownModelError, match="closest: inception_v1"):
        models.build_model("InceptionV1")


def test_weights_h5_round_trip(saved):
    keras.utils.set_random_seed(2)
    net, info = models.build_model("inception_v1", weights=saved["h5"])
    assert info.weights_source == saved["h5"] and not info.random_weights
    np.testing.assert_array_equal(np.asarray(net(X)), saved["out"])
    assert sorted(os.listdir(saved["folder"])) == ["inc.keras", "inc.weights.h5"]  # no temporary files left


def test_keras_file_round_trip(saved):
    net, info = models.build_model(saved["keras"])
    assert info.name == saved["keras"] and not info.random_weights and info.input_range == (0.0, 1.0)
    assert net.get_layer("Mixed_4c").output.shape[-1] == 512
    np.testing.assert_array_equal(np.asarray(net(X)), saved["out"])
    fresh, info = models.build_model(saved["keras"], weights="random")
    assert info.random_weights and not np.allclose(np.asarray(fresh(X)), saved["out"])


def test_weights_from_a_keras_file(saved):
    net, info = models.build_model("inception_v1", weights=saved["keras"])
    np.testing.assert_array_equal(np.asarray(net(X)), saved["out"])


def test_mismatched_weights_leave_the_model_unchanged(tmp_path):
    path = models.save_weights(build_tiny_cnn(channels=3, seed=0), tmp_path / "tiny.weights.h5")
    gray = build_tiny_cnn(channels=1, seed=1)
    before = [w.copy() for w in gray.get_weights()]
    with pytest.raises(WeightsError) as e:
        models.load_weights(gray, path)
    assert str(path) in _one_line(e) and "shape (3, 3, 3, 8)" in str(e.value)
    for a, b in zip(before, gray.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_missing_variables_are_an_error(tmp_path):
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    big = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(4)])
    path = models.save_weights(big, tmp_path / "big.weights.h5")
    with pytest.raises(WeightsError, match="holds 4 arrays but model .* has 2 variables"):
        models.load_weights(small, path)


def test_failed_load_is_all_or_nothing(tmp_path):
    """Same array shapes in another layout: Keras loads the first layer, then fails; we restore it."""
    def net(biases, seed):
        keras.utils.set_random_seed(seed)
        layers = [keras.layers.Dense(4, use_bias=b, name=f"d{i}") for i, b in enumerate(biases)]
        return keras.Sequential([keras.Input((4,))] + layers)

    path = models.save_weights(net((True, False, True), 0), tmp_path / "a.weights.h5")
    target = net((True, True, False), 1)
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(WeightsError) as e:
        models.load_weights(target, path)
    assert _one_line(e).startswith(f"cannot load weights file {path}")
    for a, b in zip(before, target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_corrupt_missing_and_foreign_files(tmp_path):
    tiny = build_tiny_cnn()
    corrupt = tmp_path / "bad.weights.h5"
    corrupt.write_bytes(b"not an hdf5 file")
    with pytest.raises(WeightsError) as e:
        models.load_weights(tiny, corrupt)
    assert _one_line(e).startswith(f"cannot read weights file {corrupt}")
    bad_keras = tmp_path / "bad.keras"
    bad_keras.write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="cannot read weights file .*bad.keras"):
        models.load_weights(tiny, bad_keras)
    with pytest.raises(WeightsError, match="cannot load model file .*bad.keras"):
        models.build_model(str(bad_keras))
    with pytest.raises(WeightsError, match="does not exist"):
        models.load_weights(tiny, tmp_path / "missing.weights.h5")
    with pytest.raises(WeightsError, match="expected a .weights.h5 or .keras file"):
        models.load_weights(tiny, tmp_path / "weights.npz")
    with pytest.raises(WeightsError, match="does not exist"):
        models.build_model(str(tmp_path / "missing.keras"))


def test_save_refuses_wrong_suffix(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"must end in \.weights\.h5"):
        models.save_weights(build_tiny_cnn(), tmp_path / "w.h5")
    assert os.listdir(tmp_path) == []


def test_manifest():
    m = models.manifest("inception_v1")
    assert set(m) == set(weights_mod.MANIFEST_FIELDS)
    assert m["url"] == "http://download.tensorflow.org/models/inception_v1_2016_08_28.tar.gz"
    # the digest OpenVINO's Open Model Zoo publishes for inception_v1_2016_08_28.tar.gz (24,642,554 bytes)
    assert m["sha256"] == "7a620c430fcaba8f8f716241f5148c4c47c035cce4e49ef02cfbe6cd1adf96a6"
    assert m["input_range"] == [0, 1] and m["archive_member"] == "inception_v1.ckpt"
    with open(os.path.join(weights_mod.MANIFEST_DIR, "inception_v1.json")) as f:
        assert json.load(f) == m


def test_imagenet_unknown_converter(monkeypatch):
    monkeypatch.setattr(weights_mod, "CONVERTERS", {})
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(WeightsError) as e:
        models.build_model("inception_v1", weights="imagenet")
    assert "unknown converter 'slim_checkpoint'" in _one_line(e)


def test_imagenet_manifest_names_a_real_converter():
    from lucidtl.models.converters import load_slim_checkpoint

    assert weights_mod.CONVERTERS[models.manifest("inception_v1")["converter"]] is load_slim_checkpoint


def test_imagenet_offline(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on http://download.tensorflow.org/...: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(weights_mod, "CONVERTERS", {"slim_checkpoint": lambda *a: pytest.fail("no file")})
    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as e:
        models.build_model("inception_v1", weights="imagenet")
    text = _one_line(e)
    assert "http://download.tensorflow.org/models/inception_v1_2016_08_28.tar.gz" in text
    assert os.path.join(str(tmp_path), "lucidtl", "inception_v1_2016_08_28.tar.gz") in text


def test_imagenet_goes_through_get_file_and_the_converter(monkeypatch, tmp_path):
    calls = {}

    def get_file(fname, origin, file_hash, hash_algorithm, cache_subdir, cache_dir):
        calls["get_file"] = (fname, origin, file_hash, hash_algorithm, cache_subdir)
        return str(tmp_path / fname)

    monkeypatch.setattr(weights_mod, "CONVERTERS", {"slim_checkpoint": lambda m, p: calls.setdefault("conv", p)})
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    net, info = models.build_model("inception_v1", weights="imagenet", include_top=True, pooling="global")
    assert calls["get_file"] == ("inception_v1_2016_08_28.tar.gz",
                                 "http://download.tensorflow.org/models/inception_v1_2016_08_28.tar.gz",
                                 "7a620c430fcaba8f8f716241f5148c4c47c035cce4e49ef02cfbe6cd1adf96a6", "sha256",
                                 "lucidtl")
    assert calls["conv"].endswith("inception_v1_2016_08_28.tar.gz")
    assert not info.random_weights and "imagenet" in info.weights_source
    assert net.output.shape[-1] == 1001


def test_unknown_weights_string():
    with pytest.raises(WeightsError, match="pass 'random', 'imagenet'"):
        models.build_model("inception_v1", weights="imagnet")


def test_dotted_keras_application():
    keras.utils.set_random_seed(0)
    net, info = models.build_model("keras.applications.MobileNetV2", alpha=0.35)
    assert info.random_weights and info.input_range == (-1.0, 1.0) and info.name == "keras.applications.MobileNetV2"
    assert tuple(net.input.shape) == (None, None, None, 3)
    assert tuple(net(np.zeros((1, 64, 64, 3), np.float32)).shape) == (1, 2, 2, 1280)


def test_dotted_builder_without_the_keras_arguments():
    net, info = models.build_model("conftest.build_tiny_cnn", channels=1)
    assert net.name == "tiny" and net.input.shape[-1] == 1
    assert info.input_range == (0.0, 255.0) and "assumed" in info.note


def test_dotted_errors():
    with pytest.raises(UnknownModelError, match="cannot find model builder 'keras.applications.NoSuchNet'"):
        models.build_model("keras.applications.NoSuchNet")
    with pytest.raises(UnknownModelError, match="cannot import model builder 'nosuchpkg.Net'"):
        models.build_model("nosuchpkg.Net")


def test_imagenet_archive_failing_its_sha256_is_named_corrupt(monkeypatch, tmp_path):
    """keras.utils.get_file checks the pinned digest: a truncated download (here a file:// copy of half an
    archive) is an error naming it corrupt or truncated, and nothing is converted."""
    half = tmp_path / "src" / "inception_v1_2016_08_28.tar.gz"
    half.parent.mkdir()
    half.write_bytes(b"\x1f\x8b" + bytes(1000))
    real = models.manifest("inception_v1")
    monkeypatch.setattr(weights_mod, "manifest", lambda name: dict(real, url=half.as_uri()))
    monkeypatch.setattr(weights_mod, "CONVERTERS", {"slim_checkpoint": lambda *a: pytest.fail("not converted")})
    (tmp_path / "keras").mkdir()  # a KERAS_HOME that is not there is not writable: Keras would use /tmp/.keras
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError) as e:
        models.build_model("inception_v1", weights="imagenet")
    text = _one_line(e)
    assert "corrupt or truncated" in text and real["sha256"] in text and "\n" not in str(e.value)
