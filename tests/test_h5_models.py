"""Legacy Keras HDF5 model files (`model.save("m.h5")`, what Keras 2 published) load wherever `.keras` files do
(issue 26, item 3): build_model, `render`, `render layers`, --custom-objects, analyses with --model, a run
trained from one through `study`; weights-only `.h5` files stay weights (--weights) and are named as such
when passed as --model. Fixtures are generated: the tiny CNN of conftest saved by Keras 3's legacy writer."""
import json
import os

import h5py
import keras
import numpy as np
import pytest

from conftest import build_tiny_cnn, cli_exit
from lucidtl import analyze
from lucidtl import render as render_cli
from lucidtl.analysis import tables
from lucidtl.errors import WeightsError
from lucidtl.models import build_model, load_weights, save_weights
from lucidtl.optvis import features
from test_analysis import make_run
from test_model_files import CUSTOM  # the same custom layer module

SMALL = ["--progress", "False", "--channels", "0:2", "--batch-size", "2", "--size", "24"]


def _legacy_weights_only(full, path):
    """What Keras 2's model.save_weights("w.h5") wrote: a full-model file's `model_weights` group at the root."""
    with h5py.File(full, "r") as src, h5py.File(path, "w") as dst:
        group = src["model_weights"]
        for key, value in group.attrs.items():
            dst.attrs[key] = value
        for name in group:
            group.copy(group[name], dst, name=name)
    return str(path)


def _as_keras2(obj):
    """A Keras 3 legacy-h5 model_config rewritten in the dialect tf.keras 2.x wrote."""
    if isinstance(obj, list):
        return [_as_keras2(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("class_name") == "DTypePolicy":
        return obj["config"]["name"]
    if "module" in obj and "class_name" in obj and "config" in obj:  # a serialised object: Keras 2 had no module
        cfg = {k: v for k, v in obj["config"].items() if k not in ("input_axes", "output_axes")}
        return {"class_name": obj["class_name"], "config": _as_keras2(cfg)}
    out = {}
    for k, v in obj.items():
        if k == "batch_shape":
            out["batch_input_shape"] = v
        elif k == "optional":
            continue
        elif k in ("input_layers", "output_layers") and v and isinstance(v[0], str):
            out[k] = [v]  # tf.keras 2 wrote a list of [name, node, index] even for one
        elif k == "inbound_nodes":
            nodes = []
            for node in v:
                args = node["args"][0]
                tensors = args if isinstance(args, list) else [args]
                nodes.append([[*t["config"]["keras_history"], {}] for t in tensors])
            out[k] = nodes
        else:
            out[k] = _as_keras2(v)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("h5")
    net = build_tiny_cnn()
    paths = {"h5": str(root / "tiny.h5"), "hdf5": str(root / "tiny.hdf5"), "weights": str(root / "tiny.weights.h5")}
    net.save(paths["h5"])  # Keras 3 still writes the legacy format for these names
    net.save(paths["hdf5"])
    save_weights(net, paths["weights"])
    paths["legacy_weights"] = _legacy_weights_only(paths["h5"], root / "legacy_weights.h5")
    return net, root, paths


def test_h5_model_loads_with_the_same_outputs(files):
    net, _, paths = files
    x = np.random.default_rng(0).uniform(size=(2, 20, 20, 3)).astype(np.float32)
    want = net(x).numpy()
    want_mixed = keras.Model(net.input, net.get_layer("mixed").output)(x).numpy()
    for key in ("h5", "hdf5"):
        loaded, info = build_model(paths[key])
        np.testing.assert_allclose(loaded(x).numpy(), want, rtol=1e-6, atol=1e-6)
        got_mixed = features.feature_model(loaded, ["mixed"])(x)
        np.testing.assert_allclose(np.asarray(got_mixed), want_mixed, rtol=1e-6, atol=1e-6)
        assert info.weights_source == paths[key] and not info.random_weights and info.input_range == (0.0, 1.0)
        assert "input range (0, 1) assumed for a .h5 file" in info.note and "--input-range" in info.note
    _, given = build_model(paths["h5"], input_range=(0, 255))
    assert given.input_range == (0.0, 255.0) and given.note == "input range (0.0, 255.0) as given"
    fresh, info = build_model(paths["h5"], weights="random")
    assert info.random_weights and not np.allclose(fresh(x).numpy(), want)
    reloaded, info = build_model(paths["h5"], weights=paths["weights"])  # weights of the same network
    np.testing.assert_allclose(reloaded(x).numpy(), want, rtol=1e-6, atol=1e-6)


def test_render_cli_raises_the_objective_and_lists_layers(files, tmp_path, capsys):
    _, _, paths = files
    out = tmp_path / "o"
    render_cli.main(["--model", paths["h5"], "--layer", "mixed", "--steps", "32", "--thresholds", "1,32",
                     "--out", str(out), *SMALL])
    record = json.loads((out / "mixed_render.json").read_text())
    assert record["model"] == paths["h5"] and record["weights"] == paths["h5"] and record["status"] == "complete"
    assert record["input_range"] == [0.0, 1.0] and not record["random_weights"]
    values = record["objective_values"]
    assert values["32:0-1"] > values["1:0-1"] + 1e-3  # the optimisation raised the channels' mean activation
    assert (out / "mixed_0001_32.png").exists()
    capsys.readouterr()
    render_cli.main(["layers", "--model", paths["h5"]])
    listing = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in listing[1:]}
    assert {"conv1_relu", "branch_a_relu", "branch_b_relu", "mixed", "fused", "logits"} <= set(rows)
    assert rows["mixed"][2] == "10" and rows["conv1_relu"][2] == "8"  # Concatenate of 6 + 4 channels; Conv2D(8)


def test_weights_only_files_are_weights(files, tmp_path, capsys):
    net, _, paths = files
    for key in ("weights", "legacy_weights"):
        code, captured = cli_exit(render_cli.main, ["--model", paths[key], "--out", str(tmp_path / "o")], capsys)
        err = captured.err.strip()
        assert code == 2 and err == (f"error: cannot use {paths[key]} as a model: it holds weights only (written by "
                                     "save_weights, no model_config), not the architecture; pass it as --weights "
                                     "with the --model it was saved from")
        assert not (tmp_path / "o").exists()
    x = np.random.default_rng(1).uniform(size=(1, 16, 16, 3)).astype(np.float32)
    for key in ("weights", "legacy_weights", "h5"):  # as --weights: into a fresh copy of the architecture
        other = build_tiny_cnn(seed=7)
        assert not np.allclose(other(x).numpy(), net(x).numpy())
        load_weights(other, paths[key])
        np.testing.assert_allclose(other(x).numpy(), net(x).numpy(), rtol=1e-6, atol=1e-6)
    render_cli.main(["--model", paths["h5"], "--weights", paths["legacy_weights"], "--layer", "mixed", "--steps",
                     "2", "--out", str(tmp_path / "w"), *SMALL])
    assert json.loads((tmp_path / "w" / "mixed_render.json").read_text())["weights"] == paths["legacy_weights"]
    wrong = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 5, name="conv1")])
    with pytest.raises(WeightsError, match="holds 10 arrays but model .* has 2 variables"):
        load_weights(wrong, paths["legacy_weights"])
    fake = tmp_path / "fake.h5"
    fake.write_bytes(b"not an hdf5 file")
    code, captured = cli_exit(render_cli.main, ["--model", str(fake), "--out", str(tmp_path / "o")], capsys)
    err = captured.err.strip()
    assert code == 2 and err.startswith(f"error: cannot read {fake} as an HDF5 file") and "\n" not in err


def test_custom_layer_needs_custom_objects(tmp_path, monkeypatch, capsys):
    (tmp_path / "h5layers.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    import h5layers

    inp = keras.Input((None, None, 3))
    x = h5layers.Scale(3.0, name="scale")(keras.layers.Conv2D(4, 3, name="conv")(inp))
    original = keras.Model(inp, keras.layers.ReLU(name="relu")(x))
    model = str(tmp_path / "custom.h5")
    original.save(model)
    monkeypatch.delitem(__import__("sys").modules, "h5layers")
    code, captured = cli_exit(render_cli.main, ["--model", model, "--layer", "relu", "--out", str(tmp_path / "o"),
                                                "--steps", "2", *SMALL], capsys)
    err = captured.err.strip()
    assert code == 2 and "custom class 'Scale'" in err and "--custom-objects MODULE:Scale" in err and "\n" not in err
    assert not (tmp_path / "o").exists()
    for spec in ("h5layers", "h5layers:Scale", str(tmp_path / "h5layers.py")):
        assert "relu" in render_cli.layers(model, custom_objects=spec)
    loaded, _ = build_model(model, custom_objects="h5layers:Scale")
    x = np.random.default_rng(2).uniform(size=(1, 12, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), original(x).numpy(), rtol=1e-6, atol=1e-6)
    assert loaded.get_layer("scale").factor == 3.0
    render_cli.main(["--model", model, "--custom-objects", "h5layers:Scale", "--layer", "relu", "--steps", "2",
                     "--out", str(tmp_path / "ok"), *SMALL])
    assert (tmp_path / "ok" / "relu_grid.png").exists()


def test_analysis_takes_an_h5_model(files, tmp_path, capsys):
    """`analyze similarity --model tiny.h5`: the architecture of a run's weights-only checkpoints."""
    net, root, paths = files
    run = make_run(tmp_path / "run", build_tiny_cnn())
    images = np.random.default_rng(0).uniform(size=(5, 12, 12, 3)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "sim"
    analyze.main(["similarity", "--run", str(run), "--model", paths["h5"], "--layers", "mixed", "--dataset",
                  str(tmp_path / "images.npy"), "--batch_size", "4", "--out", str(out)])
    rows = tables.read_csv(str(out / "similarity.csv"))
    assert [r["iteration"] for r in rows] == [0, 10, 30]
    assert rows[0]["cka"] > 1 - 1e-9 and rows[2]["procrustes_norm"] > 1e-4


def test_study_of_a_run_fine_tuned_from_an_h5_model(tmp_path):
    """`python -m lucidtl.train --model backbone.h5`, then `python -m lucidtl.study` on that run: the study
    takes run folders (not model files), and a run remembers its .h5 backbone to rebuild its architecture."""
    from lucidtl.study.pipeline import study
    from lucidtl.train import fit
    from lucidtl.train import run as runs
    from tiny_models import make_image_folder, tiny_backbone

    keras.utils.set_random_seed(0)
    backbone = str(tmp_path / "backbone.h5")
    tiny_backbone().save(backbone)
    folder = make_image_folder(str(tmp_path / "data"), per_class=2, size=16)
    out = str(tmp_path / "run")
    fit.train(f"folder:{folder}", iterations=2, save_at="0,2", out=out, model=backbone, weights=None,
              recipe="temporal", image_size=16, batch_size=4, progress=False, tensorboard=False)
    assert runs.read_settings(out)["model"] == backbone
    first = runs.load_checkpoint(out, 0)
    own = keras.models.load_model(backbone, compile=False)
    x = np.random.default_rng(0).uniform(size=(1, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(features.feature_model(first, ["conv2_relu"])(x), own(x).numpy(), rtol=1e-5,
                               atol=1e-6)  # iteration 0: the .h5 file's own weights
    site = str(tmp_path / "S")
    result = study(runs=out, out=site, dataset=f"folder:{folder}", layers="conv2_relu", channels="0:2", size=16,
                   steps=2, batch_size=2, examples=2, blocks=0, progress=False)
    assert set(result.stages.values()) == {"done"} and os.path.isfile(os.path.join(site, "index.html"))


def test_export_classifier_from_an_h5_model(files, tmp_path, capsys):
    """`python -m lucidtl.export classifier --model tiny.h5`: the SavedModel computes the original's outputs."""
    import tensorflow as tf

    from lucidtl import export

    net, _, paths = files
    out = tmp_path / "c"
    export.main(["classifier", "--model", paths["h5"], "--image-size", "16", "--out", str(out)])
    assert f"wrote SavedModel to {out}" in capsys.readouterr().out
    x = np.random.default_rng(3).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    got = tf.saved_model.load(str(out)).signatures["serving_default"](images=tf.constant(x))["outputs"].numpy()
    np.testing.assert_allclose(got, net(x).numpy(), rtol=1e-5, atol=1e-5)


def test_a_file_in_tf_keras_2_dialect(files, tmp_path, capsys):
    """What Keras 2 (tf.keras) published: the same file with the model_config as 2.x wrote it (no `module`
    keys, dtype strings, batch_input_shape, [[name, node, index, {}]] inbound nodes), keras_version 2.12.0."""
    net, _, paths = files
    old = tmp_path / "keras2.h5"
    with h5py.File(paths["h5"], "r") as f:
        config = json.loads(f.attrs["model_config"])
    with h5py.File(paths["h5"], "r") as src, h5py.File(old, "w") as dst:
        for name in src:
            src.copy(src[name], dst, name=name)
        dst.attrs["model_config"] = json.dumps(_as_keras2(config))
        dst.attrs["keras_version"], dst.attrs["backend"] = "2.12.0", "tensorflow"
    with h5py.File(old, "r") as f:
        written = f.attrs["model_config"]
    assert '"module"' not in written and '"batch_input_shape"' in written and '[["images", 0, 0, {}]]' in written
    loaded, _ = build_model(str(old))
    x = np.random.default_rng(4).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), net(x).numpy(), rtol=1e-6, atol=1e-6)
    render_cli.main(["layers", "--model", str(old)])
    assert "mixed          Concatenate                10  yes" in capsys.readouterr().out
