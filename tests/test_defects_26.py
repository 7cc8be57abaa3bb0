"""Issue 26, item 7: the defects met along a nested backbone's path (a small functional model nested in a
Sequential, fitted in the user's own model.fit with IterationCheckpoint), each with its test."""
import json
import os

import keras
import numpy as np
import pytest

from tiny_models import make_image_folder

SIZE = 16
NESTED = "inner/conv2_relu"


def nested_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", name="conv2")(x)
    inner = keras.Model(inp, keras.layers.ReLU(name="conv2_relu")(x), name="inner")
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), inner, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(3, activation="softmax")], name="mine")


@pytest.fixture(scope="module")
def nested_run(tmp_path_factory):
    """A user's own fit of a nested model: checkpoints (.keras) at iterations 0 and 2, no run.json."""
    from lucidtl.train.callbacks import IterationCheckpoint

    out = str(tmp_path_factory.mktemp("d26") / "mine")
    model = nested_model()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 8), 3)
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy", run_eagerly=True)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[IterationCheckpoint(out, save_at="0,2", save_format="keras")])
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp("d26img") / "data"), size=SIZE)


def test_aligned_render_of_a_nested_path(nested_run, tmp_path):
    """render --aligned --layer inner/conv2_relu: Keras forbids "/" in the strip model's layer name."""
    from lucidtl.render import main

    out = str(tmp_path / "aligned")
    code, _, err = _exit(main, ["--run", nested_run, "--aligned", "--layer", NESTED, "--channels", "0:2",
                                "--size", str(SIZE), "--steps", "2", "--out", out, "--noprogress"])
    assert code == 0, err
    record = json.load(open(os.path.join(out, "inner_conv2_relu_aligned_render.json")))
    assert record["layer"] == NESTED and len(record["pngs"]) == 2 * 2
    assert np.isfinite(np.array(record["objective_values"]["0-1"])).all()


def test_render_record_names_the_runs_model(nested_run, tmp_path):
    """The record of `render --run` names the run's model, not the default inception_v1."""
    from lucidtl.render import render

    out = str(tmp_path / "r")
    result = render(run=nested_run, layer=NESTED, channels="0", size=SIZE, steps=1, out=out, progress=False)
    record = json.load(open(result.record))
    assert record["model"] == "mine"
    assert record["weights"].endswith("iteration 2")


def _exit(main, argv):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def test_analyze_examples_picks_saved_iterations(nested_run, images, tmp_path):
    """--checkpoints N,N picks saved iterations (it was read as --weights files: "cannot read --weights file 0")."""
    from lucidtl.analyze import main

    out = str(tmp_path / "ex")
    code, _, err = _exit(main, ["examples", "--run", nested_run, "--checkpoints", "2", "--layer", NESTED,
                                "--channels", "0:2", "--dataset", f"folder:{images}", "--max-images", "6",
                                "--k", "2", "--out", out])
    assert code == 0, err
    assert sorted(d for d in os.listdir(out) if d.startswith("iter_")) == ["iter_000002"]
    code, _, err = _exit(main, ["examples", "--run", nested_run, "--checkpoints", "0,48", "--layer", NESTED,
                                "--dataset", f"folder:{images}", "--out", str(tmp_path / "ex2")])
    assert code == 2 and "no checkpoint at iteration 48" in err and "0, 2" in err


def test_unknown_layer_names_the_command_that_lists_this_models_layers(nested_run, images, tmp_path):
    """Without --run, `render layers` lists InceptionV1's layers: the message names the run (or the model)."""
    from lucidtl import models
    from lucidtl.analyze import main as analyze
    from lucidtl.errors import UnknownLayerError
    from lucidtl.optvis import features
    from lucidtl.render import main as render

    code, _, err = _exit(render, ["--run", nested_run, "--layer", "conv9", "--channels", "0", "--out",
                                  str(tmp_path / "r")])
    assert code == 2 and f"python -m lucidtl.render layers --run {nested_run})" in err
    code, _, err = _exit(analyze, ["examples", "--run", nested_run, "--layer", "conv9", "--dataset",
                                   f"folder:{images}", "--out", str(tmp_path / "e")])
    assert code == 2 and f"python -m lucidtl.render layers --run {nested_run})" in err
    path = os.path.join(nested_run, "iter_000000.keras")
    net, _ = models.build_model(path)
    with pytest.raises(UnknownLayerError, match=f"render layers --model {path}\\)"):
        features.endpoint(net, "conv9")
    # and the command it names lists the layer the message is about
    code, out, _ = _exit(render, ["layers", "--run", nested_run])
    assert code == 0 and NESTED in out


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory):
    """An image folder with one undecodable file."""
    root = make_image_folder(str(tmp_path_factory.mktemp("d26bad") / "data"), size=SIZE)
    with open(os.path.join(root, "class_1", "broken.png"), "wb") as f:
        f.write(b"not a png")
    return root


def test_skip_bad_images_in_similarity_and_study(nested_run, bad_images, tmp_path):
    """Their corrupt-image message says "pass --skip-bad-images": analyze similarity and study take it."""
    from lucidtl.analyze import main as analyze
    from lucidtl.study.__main__ import main as study

    argv = ["similarity", "--run", nested_run, "--layers", NESTED, "--dataset", f"folder:{bad_images}",
            "--max-images", "8", "--batch-size", "4", "--out", str(tmp_path / "sim")]
    code, _, err = _exit(analyze, argv)
    assert code == 2 and "broken.png" in err and "--skip-bad-images" in err
    code, _, err = _exit(analyze, argv + ["--skip-bad-images"])
    assert code == 0, err
    rows = open(tmp_path / "sim" / "similarity.csv").read().splitlines()
    assert len(rows) == 1 + 2  # a header, the two checkpoints
    out = str(tmp_path / "study")
    argv = ["--runs", nested_run, "--layers", NESTED, "--channels", "0", "--size", str(SIZE), "--steps", "1",
            "--batch-size", "4", "--dataset", f"folder:{bad_images}", "--max-images", "4", "--examples", "1",
            "--out", out, "--noprogress"]
    code, _, err = _exit(study, argv)
    assert code == 2 and "broken.png" in err
    code, _, err = _exit(study, argv + ["--skip-bad-images"])
    assert code == 0, err
    assert os.path.isfile(os.path.join(out, "index.html"))


def _killed_then_rerun(fn, kwargs, out, after, monkeypatch):
    """fn(**kwargs, out=out) killed at its `after`+1-th PNG write, then rerun; its record's bytes."""
    from lucidtl import imageio

    real, count = imageio.save_png, [0]

    def save_png(*args, **kw):
        count[0] += 1
        if count[0] > after:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(imageio, "save_png", save_png)
    with pytest.raises(KeyboardInterrupt):
        fn(out=out, **kwargs)
    monkeypatch.setattr(imageio, "save_png", real)
    fn(out=out, **kwargs)
    return {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out) if f.endswith(".json")}


def test_record_after_a_kill_and_rerun_is_byte_identical(nested_run, tmp_path, monkeypatch):
    """The resumed batches' PNGs were listed channel-major, the rendered ones threshold-major."""
    from lucidtl.recipes.aligned_strips import aligned_render
    from lucidtl.render import render

    kwargs = dict(run=nested_run, layer=NESTED, channels="0:4", size=SIZE, steps=2, thresholds=[1],
                  batch_size=2, progress=False)
    whole = str(tmp_path / "whole")
    render(out=whole, **kwargs)
    want = {f: open(os.path.join(whole, f), "rb").read() for f in os.listdir(whole) if f.endswith(".json")}
    assert _killed_then_rerun(render, kwargs, str(tmp_path / "killed"), 4, monkeypatch) == want
    kwargs = dict(run=nested_run, layer=NESTED, channels="0:2", size=SIZE, steps=2, thresholds=(1, 2),
                  batch_size=2, progress=False)  # one channel of 2 checkpoints per batch
    aligned_render(out=whole, **kwargs)
    want = {f: open(os.path.join(whole, f), "rb").read() for f in os.listdir(whole)
            if f.endswith("aligned_render.json")}
    got = _killed_then_rerun(aligned_render, kwargs, str(tmp_path / "killed2"), 4, monkeypatch)
    assert {f: v for f, v in got.items() if "aligned" in f} == want and want


def test_a_ctrl_c_swallowed_by_a_weakref_callback_still_stops_the_command():
    """SIGINT's KeyboardInterrupt raised inside a weakref callback (WeakKeyDictionary's remove) is only printed
    by Python ("Exception ignored in ..."); the command went on and exited 0."""
    import subprocess
    import sys

    script = (
        "import time, weakref\n"
        "from lucidtl import cli\n"
        "def work():\n"
        "    '''Work during which a Ctrl-C lands in a weakref callback.'''\n"
        "    class K: pass\n"
        "    def remove(ref):\n"
        "        raise KeyboardInterrupt\n"
        "    k = K(); r = weakref.ref(k, remove); del k\n"
        "    for _ in range(300): time.sleep(0.01)\n"
        "    print('finished')\n"
        "cli.run({'work': work}, default='work', argv=[])\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                                       os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 130 and "interrupted" in done.stderr, done.stderr[-500:]
    assert "finished" not in done.stdout


def test_atlas_places_a_drifted_checkpoint_without_collapsing_it():
    """Fine-tuning shifts a layer's activations by one shared vector (BatchNorm statistics and biases move):
    in a fine-tuned MobileNetV2 the mean vector was 99.9 % of a vector's norm, any two points' cosine 0.998.
    With the cosine metric, every such point then has the same nearest neighbours among the reference's
    points, and UMAP's transform put them all on those: one cell. Each checkpoint is placed by its
    variation around its own mean, moved to the reference's mean."""
    pytest.importorskip("umap")
    from lucidtl.recipes.activation_atlas import layout as L
    from lucidtl.recipes.activation_atlas import main as M

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16)) * 3
    ref = np.maximum(centres[rng.integers(0, 6, 400)] + rng.normal(size=(400, 16)), 0)
    drift = 40.0 * np.abs(rng.normal(size=16))
    later = ref + drift + rng.normal(scale=0.05, size=ref.shape)
    laid = L.checkpoint_layout([ref.astype(np.float32), later.astype(np.float32)], "first", {"n_neighbors": 15}, 0)
    cells = [len(M.bin_cells(lay, np.zeros((len(lay), 1)), 10, 5).coordinates) for lay in laid.layouts]
    assert cells[0] > 10 and cells[1] >= cells[0] // 2, cells
    # the same points, hardly changed but for the drift, stay near where the reference's are
    assert np.median(np.linalg.norm(laid.layouts[1] - laid.layouts[0], axis=1)) < 0.1


def test_figures_temporal_columns_are_as_wide_as_their_cells(nested_run, tmp_path):
    """A nested path's label (inner/conv2_relu:0) made each column as wide as its text: wide white gaps."""
    from PIL import Image

    from lucidtl.figures import main

    out = str(tmp_path / "fig")
    code, _, err = _exit(main, ["temporal", "--run", nested_run, "--channels", f"{NESTED}:0:3", "--size", "64",
                                "--steps", "1", "--out", out, "--noprogress"])
    assert code == 0, err
    width, _ = Image.open(os.path.join(out, "temporal.png")).size
    left = len("iter 2") * 7 + 4  # the row labels' column
    assert width == left + 3 * (64 + 4) + 4


def test_plot_title_stays_inside_the_figure(tmp_path):
    """The groups plot's title (a layer path and "reconstruction error (fixed: ...)") ran off both edges."""
    from PIL import Image

    from lucidtl.analysis import plots

    rows = [{"iteration": i, "error": 1.0 / (i + 1), "curve": m} for i in (0, 10) for m in ("fixed", "refit")]
    title = ("mobilenetv2_1.00_96/block_6_expand_relu: reconstruction error (fixed: first checkpoint's groups; "
             "refit)")
    path = plots.plot_curves(rows, "error", str(tmp_path / "g.png"), group="curve", title=title)
    img = np.asarray(Image.open(path).convert("L"), np.float64)
    band = img[: img.shape[0] // 8]  # the title's rows
    assert (band < 128).any()  # the title is drawn
    assert band[:, :3].min() > 200 and band[:, -3:].min() > 200  # and touches neither edge


def test_render_grid_of_a_run_says_which_checkpoint(nested_run, tmp_path):
    """The grid PNG of `render --run --checkpoint N` carries the run and the iteration as its title."""
    from lucidtl import imageio
    from lucidtl.render import render

    for checkpoint, iteration in ((0, 0), (None, 2)):
        out = str(tmp_path / f"r{checkpoint}")
        result = render(run=nested_run, checkpoint=checkpoint, layer=NESTED, channels="0:2", size=SIZE, steps=1,
                        out=out, progress=False)
        cells = [[imageio.load_png(p) for p in result.pngs]]
        want = imageio.labelled_grid(cells, ["t=1"], ["ch 0", "ch 1"], title=f"mine, iteration {iteration}",
                                     title_fill=(0, 0, 0))
        untitled = imageio.labelled_grid(cells, ["t=1"], ["ch 0", "ch 1"])
        got = np.asarray(imageio.Image.open(result.grid).convert("RGB"))
        assert got.shape != np.asarray(untitled).shape
        np.testing.assert_array_equal(got, np.asarray(want))
