"""lucidtl.train end to end on a generated image folder: checkpoints, manifest, resume, live images, figures."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from lucidtl import figures, imageio
from lucidtl.data import load
from lucidtl.errors import InvalidArgumentError, UnknownLayerError
from lucidtl.train import fit, recipes
from lucidtl.train import run as runs
from lucidtl.train.__main__ import main as train_main
from conftest import cli_exit, summary_events
from tiny_models import make_image_folder

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = dict(model="tiny_models.tiny_backbone", weights="random", recipe="temporal", image_size=16, batch_size=4,
            progress=False, tensorboard=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp("data")))


def test_temporal_run_saves_exactly_the_requested_iterations(folder, tmp_path, capsys):
    out = str(tmp_path / "run")
    result = fit.train(f"folder:{folder}", iterations=13, save_at="0,1,2,5,13", out=out,
                       visualize="conv2_relu:1,conv1_relu:0", visualize_at="0,5", visualize_steps=3,
                       visualize_size=16, **TINY)
    printed = capsys.readouterr().out.splitlines()
    # the plan first (dataset and sizes, recipe, iterations, save points), then one line per checkpoint
    assert printed[:3] == [
        f"train: folder:{folder}: 15 training + 3 validation images of 16 px, 3 classes",
        "train: recipe temporal (top single, batch 4, learning rate 0.001): 13 iterations (4 a pass)",
        f"train: checkpoints at iterations 0, 1, 2, 5, 13 into {out}"]
    saved_lines = [line for line in printed if line.startswith("saved checkpoint")]
    assert saved_lines == [f"saved checkpoint {k + 1}: iteration {i} -> {out}/iter_{i:06d}.weights.h5"
                           for k, i in enumerate((0, 1, 2, 5, 13))]
    saved = [r["iteration"] for r in result.checkpoints]
    assert saved == [0, 1, 2, 5, 13] and result.iterations == 13
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "iter_*"))) == [
        f"iter_{i:06d}.weights.h5" for i in saved]
    manifest = json.load(open(os.path.join(out, "checkpoints.json")))
    assert manifest["format"] == "weights"
    assert [r["requested"] for r in manifest["checkpoints"]] == saved
    # 15 training images (3 held out), batch 4 -> 4 iterations an epoch
    assert [r["epoch"] for r in manifest["checkpoints"]] == [0, 0, 0, 1, 3]
    assert manifest["checkpoints"][0]["metrics"] == {} and "loss" in manifest["checkpoints"][-1]["metrics"]
    settings = runs.read_settings(out)
    assert settings["complete"] and settings["total_iterations"] == 13 and settings["steps_per_epoch_used"] == 4
    assert not os.path.exists(os.path.join(out, "state"))
    # the final model is the last checkpoint, and iteration 0 is the untouched initial model
    final = runs.load_checkpoint(out, "final")
    last = runs.load_checkpoint(out, 13)
    first = runs.load_checkpoint(out, 0)
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(final.predict(x, verbose=0), last.predict(x, verbose=0), atol=1e-6)
    assert not np.allclose(first.predict(x, verbose=0), last.predict(x, verbose=0), atol=1e-4)
    # live feature visualisations: one image summary per channel at each asked iteration
    events = summary_events(os.path.join(out, "logs", "features"))
    assert sorted((t, s) for t, s, _ in events) == [("conv1_relu:0", 0), ("conv1_relu:0", 5),
                                                   ("conv2_relu:1", 0), ("conv2_relu:1", 5)]
    assert {p for _, _, p in events} == {"images"}


def test_temporal_figure_and_prepost_from_the_run(folder, tmp_path):
    out = str(tmp_path / "run")
    fit.train(f"folder:{folder}", iterations=6, save_at="0,3,6", out=out, **TINY)
    path = figures.temporal(out, "conv2_relu:1,conv1_relu:0", size=16, steps=4, progress=False)
    record = json.load(open(os.path.join(out, "figures", "temporal.json")))
    assert record["rows"] == [0, 3, 6] and record["channels"] == [["conv2_relu", 1], ["conv1_relu", 0]]
    grid = imageio.load_png(path)
    assert grid.shape[0] > 3 * 16 and grid.shape[1] > 2 * 16
    cells = sorted(glob.glob(os.path.join(out, "figures", record["cells"], "*.png")))
    assert len(cells) == 6
    # same seed and settings, different weights: the rows differ
    a, b = (imageio.load_png(p) for p in cells[1::2][:2])
    assert a.shape == (16, 16, 3) and not np.array_equal(a, b)
    # a second call reuses the cells (no model is rendered: the checkpoints may even be gone)
    before = {p: os.path.getmtime(p) for p in cells}
    figures.temporal(out, "conv2_relu:1,conv1_relu:0", size=16, steps=4, progress=False)
    assert {p: os.path.getmtime(p) for p in cells} == before
    pp = figures.prepost(out, "conv2_relu:1", size=16, steps=4, progress=False)
    assert json.load(open(os.path.join(out, "figures", "prepost.json")))["rows"] == [0, 6]
    assert os.path.isfile(pp)
    with pytest.raises(InvalidArgumentError, match="no checkpoint at iteration 4; saved: 0, 3, 6"):
        figures.temporal(out, "conv2_relu:1", checkpoints="0,4", size=16, steps=2)
    with pytest.raises(UnknownLayerError, match="closest"):
        figures.temporal(out, "conv9_relu:1", size=16, steps=2, progress=False)


def test_rerun_resumes_or_refuses(folder, tmp_path):
    out = str(tmp_path / "run")
    fit.train(f"folder:{folder}", iterations=4, save_at="0,4", out=out, **TINY)
    stamp = os.path.getmtime(os.path.join(out, "iter_000004.weights.h5"))
    again = fit.train(f"folder:{folder}", iterations=4, save_at="0,4", out=out, **TINY)  # complete: nothing to do
    assert again.resumed_from == 4 and os.path.getmtime(os.path.join(out, "iter_000004.weights.h5")) == stamp
    # the final model exports as a SavedModel that classifies like it
    from lucidtl.export import export_classifier

    saved = export_classifier(runs.load_checkpoint(out, "final"), str(tmp_path / "saved"))
    x = np.random.default_rng(1).random((2, 16, 16, 3)).astype("float32")
    got = tf.saved_model.load(saved.path).signatures["serving_default"](images=tf.constant(x))["outputs"].numpy()
    np.testing.assert_allclose(got, runs.load_checkpoint(out, 4).predict(x, verbose=0), atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="holds a run with batch_size=4, not 2; pass --overwrite"):
        fit.train(f"folder:{folder}", iterations=4, save_at="0,4", out=out, **dict(TINY, batch_size=2))
    other = tmp_path / "notarun"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    with pytest.raises(InvalidArgumentError, match="not empty and holds no training run"):
        fit.train(f"folder:{folder}", iterations=2, out=str(other), **TINY)
    fresh = fit.train(f"folder:{folder}", iterations=2, save_at="0,2", out=out, overwrite=True,
                      **dict(TINY, batch_size=2))
    assert [r["iteration"] for r in fresh.checkpoints] == [0, 2]


def test_resumed_data_stream_continues_exactly(folder):
    whole = load(f"folder:{folder}", batch_size=4, image_size=8, repeat=5, seed=3)
    later = load(f"folder:{folder}", batch_size=4, image_size=8, repeat=5, seed=3, skip=4 * 5)
    batches = [x for x, _ in whole.train.take(9)]
    for a, (b, _) in zip(batches[5:], later.train.take(4)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_recipes_and_authors_code_model():
    assert recipes.recipe("temporal").iterations == 3000 and recipes.recipe("temporal").batch_size == 10
    assert recipes.recipe("paper").epochs == 200 and recipes.recipe("paper").top == "paper"
    # ../shared/spec/paper.md: batch 32, Adam 1e-3; temporal: one dense layer; authors' code: 299 px (CelebA
    # 224), temporal 10 iterations an epoch at batch 10, saved every second epoch up to 20
    paper, temporal = recipes.recipe("paper"), recipes.recipe("temporal")
    assert (paper.batch_size, paper.learning_rate, paper.optimizer, temporal.top) == (32, 1e-3, "adam", "single")
    code, code_t = recipes.recipe("authors-code"), recipes.recipe("authors-code-temporal")
    assert (code.image_size, code.multi_label_image_size) == (299, 224)
    assert (code_t.batch_size, code_t.steps_per_epoch, code_t.epochs) == (10, 10, 20)
    from lucidtl.train.schedule import parse_schedule

    assert parse_schedule(code_t.save_at, code_t.epochs * code_t.steps_per_epoch) == tuple(range(0, 201, 20))
    with pytest.raises(InvalidArgumentError, match="unknown --recipe 'papr'; closest: paper"):
        recipes.recipe("papr")
    rec = recipes.recipe("authors-code")

    class D:  # what _build reads of a dataset
        num_classes, multi_label = 40, True

    settings = dict(model="inception_v1", seed=0, top="paper", learning_rate=1e-3)
    net, _, kwargs = fit._build(settings, rec, D, "random")
    assert kwargs == {"input_scaling": "unit"}
    scale = net.get_layer("input_scaling")
    assert (scale.scale, scale.offset) == (1.0, 0.0)
    bns = [layer for layer in net.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert len(bns) == 57 and {b.momentum for b in bns} == {0.99}
    assert type(net.optimizer).__name__ == "RMSprop" and type(net.loss).__name__ == "CosineSimilarity"
    assert net.get_layer("predictions").activation.__name__ == "sigmoid"


def test_cli_errors_exit_2(folder, tmp_path, capsys):
    cases = [
        (["--dataset", f"folder:{folder}", "--recipe", "fast"], "unknown --recipe 'fast'"),
        (["--dataset", "mnist", "--weights", "random"], "unknown dataset 'mnist'"),
        (["--dataset", f"folder:{folder}", "--top", "double"], "unknown --top 'double'"),
        (["--dataset", f"folder:{folder}", "--iterations", "0"], "--iterations must be an integer >= 1"),
        (["--dataset", f"folder:{folder}", "--strategy", "tpu"], "unknown --strategy 'tpu'"),
    ]
    for argv, needle in cases:
        code, captured = cli_exit(train_main, argv + ["--out", str(tmp_path / "r")], capsys)
        assert code == 2
        err = captured.err
        assert needle in err and "Traceback" not in err and err.count("\n") == 1, err


def _train_cmd(folder, out):
    return [sys.executable, "-m", "lucidtl.train", "--dataset", f"folder:{folder}", "--model",
            "tiny_models.tiny_backbone", "--weights", "random", "--recipe", "temporal", "--iterations", "40",
            "--save-at", "0,3,7,12,20,29,40", "--image-size", "16", "--batch-size", "2", "--backup-every", "2",
            "--out", out, "--tensorboard", "False", "--progress", "False"]


def _wait_for(out, count, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if len(runs.read_manifest(out)) >= count:
                return
        except (ValueError, OSError):
            pass  # never happens with atomic writes; tolerated while polling
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError("timed out waiting for checkpoints")


@pytest.mark.slow  # four `python -m lucidtl.train` processes; the in-process resume tests above stay quick
def test_sigkill_and_resume_matches_an_uninterrupted_run(folder, tmp_path):
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    killed, whole = str(tmp_path / "killed"), str(tmp_path / "whole")
    for count in (2, 5):  # kill twice, at different points of the run
        proc = subprocess.Popen(_train_cmd(folder, killed), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _wait_for(killed, count, proc)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not runs.read_settings(killed)["complete"]
    done = subprocess.run(_train_cmd(folder, killed), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed at iteration" in done.stdout
    subprocess.run(_train_cmd(folder, whole), env=env, check=True, capture_output=True)
    a, b = runs.read_manifest(killed), runs.read_manifest(whole)
    assert [r["iteration"] for r in a] == [r["iteration"] for r in b] == [0, 3, 7, 12, 20, 29, 40]
    assert sorted(os.listdir(killed)) == sorted(os.listdir(whole))
    assert not glob.glob(os.path.join(killed, "**", ".tmp-*"), recursive=True)
    model = runs.build_run_model(runs.read_settings(whole))
    for r in b:  # same weights at every checkpoint: the resumed run saw the same examples in the same order
        wa = [w.copy() for w in (runs.load_checkpoint(killed, r["iteration"], model).get_weights())]
        wb = runs.load_checkpoint(whole, r["iteration"], model).get_weights()
        for x, y in zip(wa, wb):
            np.testing.assert_allclose(x, y, atol=1e-5, err_msg=f"iteration {r['iteration']}")


@pytest.mark.slow  # InceptionV1 end to end; the tiny temporal run covers the same steps
def test_inception_temporal_run_and_figure(folder, tmp_path):
    """The paper's network end to end: BN-InceptionV1 + one dense layer, saved at chosen iterations, Figure 6."""
    out = str(tmp_path / "inception")
    result = fit.train(f"folder:{folder}", weights="random", recipe="temporal", iterations=3, save_at="0,1,3",
                       image_size=64, batch_size=2, out=out, progress=False, tensorboard=False)
    assert [r["iteration"] for r in result.checkpoints] == [0, 1, 3]
    settings = runs.read_settings(out)
    assert settings["model"] == "inception_v1" and settings["top"] == "single" and settings["num_classes"] == 3
    model = runs.load_checkpoint(out, 3)
    assert len([la for la in model.layers if la.name.startswith("Mixed_")]) > 50
    assert model.get_layer("predictions").kernel.shape == (1024, 3)  # dense(n) straight on the 1024 pool
    path = figures.temporal(out, "Mixed_3b_Branch_3_b_1x1:0,Mixed_4c_Branch_2_a_1x1:5", size=32, steps=2,
                            progress=False)
    assert os.path.isfile(path) and json.load(open(os.path.join(out, "figures", "temporal.json")))["rows"] == [0, 1, 3]


def test_celeb_a_multi_label_run_from_tfds_mock(tmp_path):
    """CelebA through tfds (mock data, no download): 40 sigmoid outputs, mean BCE, binary accuracy."""
    import tensorflow_datasets as tfds

    out = str(tmp_path / "celeba")
    with tfds.testing.mock_data(num_examples=12):
        result = fit.train("celeb_a", iterations=2, save_at="0,2", out=out, **TINY)
    assert [r["iteration"] for r in result.checkpoints] == [0, 2]
    assert set(result.checkpoints[-1]["metrics"]) >= {"binary_accuracy", "loss"}
    assert "val_binary_accuracy" in result.history
    settings = runs.read_settings(out)
    assert settings["multi_label"] and settings["num_classes"] == 40 and settings["class_names"][0] == "5_o_Clock_Shadow"
    model = runs.load_checkpoint(out, 2)
    assert model.get_layer("predictions").activation.__name__ == "sigmoid"
    assert model.output_shape == (None, 40)


def test_mixed_precision_run(folder, tmp_path):
    import keras

    out = str(tmp_path / "mixed")
    result = fit.train(f"folder:{folder}", iterations=3, save_at="0,3", out=out, mixed_precision=True, **TINY)
    assert [r["iteration"] for r in result.checkpoints] == [0, 3]
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the global policy is given back
    final = runs.load_checkpoint(out, "final")
    assert final.get_layer("conv1").dtype_policy.name == "mixed_float16"
    assert final.get_layer("predictions").dtype_policy.name == "float32"
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    y = final.predict(x, verbose=0)
    assert y.dtype == np.float32 and np.allclose(y.sum(1), 1, atol=1e-3)
    model = runs.load_checkpoint(out, 3)  # rebuilt in float32 from run.json: the float32 weights load
    np.testing.assert_allclose(model.predict(x, verbose=0), y, atol=2e-2)
    with pytest.raises(InvalidArgumentError, match="unknown --mixed-precision 'half'"):
        fit.train(f"folder:{folder}", iterations=3, out=str(tmp_path / "x"), mixed_precision="half", **TINY)


def test_killed_before_the_first_checkpoint_restarts_from_the_given_weights(folder, tmp_path):
    """A run folder that holds only run.json (killed before iteration 0 was saved) starts again from the
    requested weights, not from a random network."""
    import keras

    from lucidtl.models import save_weights
    from tiny_models import tiny_backbone

    keras.utils.set_random_seed(5)
    given = save_weights(tiny_backbone(), str(tmp_path / "given.weights.h5"))
    out = str(tmp_path / "run")
    kwargs = dict(TINY, weights=given)
    fit.train(f"folder:{folder}", iterations=2, save_at="0,2", out=out, **kwargs)
    settings = runs.read_settings(out)
    for name in os.listdir(out):
        if name != "run.json":
            path = os.path.join(out, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    settings["complete"] = False
    runs.write_settings(out, settings)
    fit.train(f"folder:{folder}", iterations=2, save_at="0,2", out=out, **kwargs)
    first = runs.load_checkpoint(out, 0)
    want = tiny_backbone()
    want.load_weights(given)
    for layer in ("conv1", "conv2"):
        np.testing.assert_array_equal(first.get_layer(layer).kernel.numpy(), want.get_layer(layer).kernel.numpy())
