"""Official weight files -> Keras InceptionV1, checked against an independent NumPy forward pass
(tests/inception_reference.py) on files written in the official layouts: a TF-slim V1 checkpoint inside the
model-zoo .tar.gz, a V2 prefix, and a torchvision googlenet state dict in torch.save's zip layout."""
import os
import tarfile

import keras
import numpy as np
import pytest

import inception_reference as ref
from lucidtl import render as render_cli
from lucidtl.errors import WeightsError
from lucidtl.models import build_model, inception_v1
from lucidtl.models.converters import (BACKGROUND_BIAS, load_slim_checkpoint, load_torchvision_googlenet,
                                       torchvision_name)
from lucidtl.optvis import features

LAYERS = ["Conv2d_1a_7x7", "Conv2d_2c_3x3_pre_relu", "Mixed_3b", "Mixed_4c_Branch_2_b_3x3_pre_relu",
          "Mixed_5b_Branch_2_b_3x3", "Mixed_5c"]
TOL = 1e-4


def _assert_close(got, want, name):
    scale = max(1.0, float(np.abs(want).max()))  # activations are O(1)-O(10): 1e-4 relative to their scale
    err = float(np.abs(got - want).max())
    assert err <= TOL * scale, f"{name}: max error {err:.2e} at scale {scale:.1f}"


@pytest.fixture(scope="module")
def params():
    return ref.random_params(seed=0)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 1, (2, 224, 224, 3))


@pytest.fixture(scope="module")
def reference(params, images):
    return ref.forward(images, params)


@pytest.fixture(scope="module")
def slim_tarball(tmp_path_factory, params):
    folder = tmp_path_factory.mktemp("slim")
    arrays = ref.slim_arrays(params)
    arrays["global_step"] = np.array(1234, np.int64)  # training state: ignored by name
    arrays["InceptionV1/Mixed_4c/Branch_0/Conv2d_0a_1x1/weights/ExponentialMovingAverage"] = np.zeros(1, np.float32)
    ref.write_slim_checkpoint(folder / "inception_v1.ckpt", arrays, v1=True)
    archive = folder / "inception_v1_2016_08_28.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "inception_v1.ckpt", arcname="inception_v1.ckpt")
    return archive


def _acts(model, images, layers):
    outs = features.feature_model(model, layers)(images.astype(np.float32))
    return dict(zip(layers, [np.asarray(o, np.float64) for o in outs]))


def test_slim_tarball_matches_reference_activations_and_logits(slim_tarball, images, reference):
    model, info = build_model("inception_v1", weights=str(slim_tarball), include_top=True)
    assert info.weights_source == str(slim_tarball) and not info.random_weights
    got = _acts(model, images, LAYERS)
    for name in LAYERS:
        _assert_close(got[name], reference[name], name)
    logits = np.asarray(model(images.astype(np.float32)), np.float64)
    assert logits.shape == (2, 1001)
    _assert_close(logits, reference["Logits"], "Logits")
    # BN in inference mode: moving statistics, not the batch's
    assert np.argmax(logits, 1).tolist() == np.argmax(reference["Logits"], 1).tolist()


def test_slim_conversion_reports_what_it_ignored(slim_tarball):
    model = inception_v1()  # no head: the Logits variables are ignored, by name
    done = load_slim_checkpoint(model, slim_tarball)
    assert done.assigned == 57 * 4
    assert "global_step" in done.ignored
    assert "InceptionV1/Logits/Conv2d_0c_1x1/weights" in done.ignored
    assert any(n.endswith("/ExponentialMovingAverage") for n in done.ignored)


def test_slim_v2_prefix_index_and_folder(tmp_path, params, images, reference):
    arrays = ref.slim_arrays(params, head=False)
    ref.write_slim_checkpoint(tmp_path / "model.ckpt-3000", arrays, v1=False)
    small = images[:1, :64, :64]
    want = ref.forward(small, params)["Mixed_4c"]
    for weights in (tmp_path / "model.ckpt-3000", tmp_path / "model.ckpt-3000.index", tmp_path):
        model, _ = build_model("inception_v1", weights=str(weights))
        _assert_close(_acts(model, small, ["Mixed_4c"])["Mixed_4c"], want, f"Mixed_4c via {weights}")


def _slim_error(tmp_path, arrays, model=None):
    ref.write_slim_checkpoint(tmp_path / "bad.ckpt", arrays)
    model = model or inception_v1()
    before = [v.numpy().copy() for v in model.weights]
    with pytest.raises(WeightsError) as e:
        load_slim_checkpoint(model, tmp_path / "bad.ckpt")
    for v, old in zip(model.weights, before):  # all or nothing
        np.testing.assert_array_equal(v.numpy(), old)
    text = str(e.value)
    assert "\n" not in text
    return text


def test_slim_missing_unused_and_misshaped_are_named(tmp_path, params):
    arrays = ref.slim_arrays(params, head=False)
    del arrays["InceptionV1/Mixed_4d/Branch_1/Conv2d_0b_3x3/BatchNorm/beta"]
    arrays["InceptionV1/Mixed_6a/Branch_0/Conv2d_0a_1x1/weights"] = np.zeros((1, 1, 2, 2), np.float32)
    arrays["InceptionV1/Conv2d_2b_1x1/weights"] = np.zeros((1, 1, 64, 65), np.float32)
    text = _slim_error(tmp_path, arrays)
    assert "missing 1: InceptionV1/Mixed_4d/Branch_1/Conv2d_0b_3x3/BatchNorm/beta" in text
    assert "unused 1: InceptionV1/Mixed_6a/Branch_0/Conv2d_0a_1x1/weights" in text
    assert "mis-shaped 1: InceptionV1/Conv2d_2b_1x1/weights [1, 1, 64, 65] (model needs [1, 1, 64, 64])" in text


def test_slim_mixed_5b_quirk_is_required(tmp_path, params):
    arrays = ref.slim_arrays(params, head=False)
    for var in ("weights", "BatchNorm/beta", "BatchNorm/moving_mean", "BatchNorm/moving_variance"):
        arrays[f"InceptionV1/Mixed_5b/Branch_2/Conv2d_0b_3x3/{var}"] = arrays.pop(
            f"InceptionV1/Mixed_5b/Branch_2/Conv2d_0a_3x3/{var}")
    text = _slim_error(tmp_path, arrays)
    assert "missing 4: InceptionV1/Mixed_5b/Branch_2/Conv2d_0a_3x3/weights" in text
    assert "unused 4" in text


def test_slim_head_with_other_class_count(tmp_path, params):
    text = _slim_error(tmp_path, ref.slim_arrays(params), inception_v1(include_top=True, classes=10,
                                                                         pooling="global"))
    assert "InceptionV1/Logits/Conv2d_0c_1x1/weights [1, 1, 1024, 1001] (model needs [1, 1, 1024, 10])" in text


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="cannot read checkpoint .*x.ckpt"):
        build_model("inception_v1", weights=str(tmp_path / "x.ckpt"))
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "x.ckpt", arcname="README")
    with pytest.raises(WeightsError, match="holds no .ckpt file"):
        build_model("inception_v1", weights=str(tmp_path / "empty.tar.gz"))
    with pytest.raises(WeightsError, match="does not exist"):
        build_model("inception_v1", weights=str(tmp_path / "missing.ckpt"))


def test_other_model_is_refused(tmp_path, params, tiny_cnn):
    ref.write_slim_checkpoint(tmp_path / "m.ckpt", ref.slim_arrays(params, head=False))
    with pytest.raises(WeightsError, match="has no layer 'Conv2d_1a_7x7_conv'.*lucidtl's inception_v1"):
        load_slim_checkpoint(tiny_cnn, tmp_path / "m.ckpt")


# ---- torchvision googlenet --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_params():
    return ref.random_params(seed=2, gamma=True)  # trained-looking BN: gammas with negative and zero entries


@pytest.fixture(scope="module")
def googlenet_pth(tmp_path_factory, torch_params):
    path = tmp_path_factory.mktemp("torch") / "googlenet.pth"
    return ref.write_torch_zip(path, ref.torchvision_arrays(torch_params))


def test_torchvision_names_follow_the_spec():
    assert torchvision_name("Conv2d_1a_7x7") == "conv1"
    assert torchvision_name("Mixed_3b_Branch_0_a_1x1") == "inception3a.branch1"
    assert torchvision_name("Mixed_4c_Branch_2_b_3x3") == "inception4b.branch3.1"
    assert torchvision_name("Mixed_5c_Branch_3_b_1x1") == "inception5b.branch4.1"


def test_torchvision_matches_reference(googlenet_pth, torch_params, images):
    want = ref.forward(images, torch_params)
    model, _ = build_model("inception_v1", weights=str(googlenet_pth), include_top=True)
    layers = LAYERS + ["Mixed_4c_Branch_0_a_1x1_pre_relu"]  # holds the gamma = 0 and negative channels
    got = _acts(model, images, layers)
    for name in layers:
        _assert_close(got[name], want[name], name)
    logits = np.asarray(model(images.astype(np.float32)), np.float64)
    _assert_close(logits[:, 1:], want["Logits"][:, 1:], "Logits 1..1000")
    np.testing.assert_allclose(logits[:, 0], BACKGROUND_BIAS)  # torchvision has no background class

    thousand = inception_v1(include_top=True, classes=1000)
    done = load_torchvision_googlenet(thousand, googlenet_pth)
    _assert_close(np.asarray(thousand(images.astype(np.float32)), np.float64), want["Logits"][:, 1:], "1000")
    assert done.assigned == 57 * 4 + 2
    assert "aux1.conv.conv.weight" in done.ignored and "conv1.bn.num_batches_tracked" in done.ignored
    assert "conv1.bn.weight" in done.ignored  # folded, so listed


def test_torchvision_without_transform_input(tmp_path, torch_params, images):
    arrays = ref.torchvision_arrays(torch_params, aux=False)
    path = ref.write_torch_zip(tmp_path / "g.pth", {f"module.{k}": v for k, v in arrays.items()})  # DataParallel
    small = images[:1, :48, :48]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = ref.forward(small, torch_params, scaled=(small - mean) / std)["Mixed_3c"]
    model = inception_v1(input_scaling="imagenet")
    load_torchvision_googlenet(model, path, transform_input=False)
    _assert_close(_acts(model, small, ["Mixed_3c"])["Mixed_3c"], want, "Mixed_3c")
    with pytest.raises(WeightsError, match="build it with input_scaling='imagenet'"):
        load_torchvision_googlenet(inception_v1(), path, transform_input=False)


def test_torchvision_errors(tmp_path, torch_params):
    arrays = ref.torchvision_arrays(torch_params, aux=False)
    del arrays["inception4b.branch3.1.bn.running_var"]
    arrays["fc.weight"] = arrays["fc.weight"][:10]
    path = ref.write_torch_zip(tmp_path / "bad.pth", arrays)
    model = inception_v1(include_top=True, classes=1000)
    with pytest.raises(WeightsError) as e:
        load_torchvision_googlenet(model, path)
    text = str(e.value)
    assert "missing 1: inception4b.branch3.1.bn.running_var" in text
    assert "mis-shaped 1: fc.weight [10, 1024]" in text
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    with pytest.raises(WeightsError, match="pickles a os.system, not a state dict"):
        build_model("inception_v1", weights=str(tmp_path / "junk.pth"))


def test_render_cli_takes_a_slim_checkpoint(tmp_path, params, capsys):
    ref.write_slim_checkpoint(tmp_path / "inception_v1.ckpt", ref.slim_arrays(params))
    out = tmp_path / "out"
    render_cli.main(["--weights", str(tmp_path / "inception_v1.ckpt"), "--layer", "Mixed_3b", "--channels", "0:2",
                     "--size", "32", "--steps", "2", "--progress", "False", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "RANDOM" not in printed
    assert sorted(os.listdir(out)) == ["Mixed_3b_0000_2.png", "Mixed_3b_0001_2.png", "Mixed_3b_grid.png",
                                       "Mixed_3b_render.json"]


def test_keras_native_round_trip_after_conversion(tmp_path, slim_tarball, images, reference):
    from lucidtl.models import save_model, save_weights

    model, _ = build_model("inception_v1", weights=str(slim_tarball), include_top=True)
    save_weights(model, tmp_path / "iv1.weights.h5")
    save_model(model, tmp_path / "iv1.keras")
    small = images[:1]
    for again, _ in (build_model("inception_v1", weights=str(tmp_path / "iv1.weights.h5"), include_top=True),
                     build_model(str(tmp_path / "iv1.keras"))):
        _assert_close(np.asarray(again(small.astype(np.float32)), np.float64), reference["Logits"][:1], "Logits")
    keras.backend.clear_session()


def test_damaged_archives_are_named_corrupt_or_truncated(tmp_path, slim_tarball, monkeypatch):
    """A truncated or bit-flipped .tar.gz names the archive (not a scratch folder) and says corrupt or
    truncated; in the Keras download cache the fix is to delete it."""
    data = slim_tarball.read_bytes()
    cases = {"truncated.tar.gz": data[: len(data) // 2], "garbage.tar.gz": b"\x1f\x8b\x08" + bytes(500)}
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    cases["flipped.tar.gz"] = bytes(flipped)
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(WeightsError) as e:
            build_model("inception_v1", weights=str(tmp_path / name))
        text = str(e.value)
        assert text.startswith(f"archive {tmp_path / name} is corrupt or truncated") and "download it again" in text
        assert "lucidtl-ckpt-" not in text and "\n" not in text
    cache = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(cache))
    cached = cache / "lucidtl" / "inception_v1_2016_08_28.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(cases["truncated.tar.gz"])
    with pytest.raises(WeightsError, match=r"corrupt or truncated .*; delete it \(the next run downloads it again\)"):
        build_model("inception_v1", weights=str(cached))


def test_plain_tar_is_accepted_like_tar_gz(tmp_path, slim_tarball, images, reference):
    with tarfile.open(slim_tarball) as src, tarfile.open(tmp_path / "inception_v1.tar", "w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
    net, info = build_model("inception_v1", weights=str(tmp_path / "inception_v1.tar"))
    assert info.weights_source.endswith("inception_v1.tar") and not info.random_weights
    want = build_model("inception_v1", weights=str(slim_tarball))[0]
    for a, b in zip(net.get_weights(), want.get_weights()):
        np.testing.assert_array_equal(a, b)
