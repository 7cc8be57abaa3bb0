"""Models as Keras users build them: keras.applications backbones (random weights) inside a Sequential or a
functional wrapper, fine-tuned with the callbacks in the user's own model.fit, rendered by nested path
(`resnet50/conv3_block1_out`, a bare name where unique, `_pre_relu`), and studied."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from lucidtl.errors import UnknownLayerError
from lucidtl.optvis import features, objectives
from lucidtl.optvis.render import render_vis
from lucidtl.optvis import param
from lucidtl.train.callbacks import IterationCheckpoint
from lucidtl.train.live import FeatureVisualization
from tiny_models import make_image_folder

SIZE = 32
# backbone, wrapper, a nested layer whose channels are rendered, a ReLU inside it (for _pre_relu)
PATTERNS = [
    ("VGG19", "functional", "vgg19/block3_conv1", "block3_conv1"),
    ("ResNet50", "sequential", "resnet50/conv3_block1_out", "conv3_block1_1_relu"),
    ("DenseNet121", "sequential", "densenet121/conv2_block1_1_relu", "conv2_block1_1_relu"),
    ("ResNet50", "functional", "resnet50/conv3_block1_out", "conv3_block1_1_relu"),
]


# VGG19 in a functional wrapper is the quick loop's pattern; the others are slow (a backbone build each)
QUICK = PATTERNS[0]


def patterns(chosen):
    return [pytest.param(*p, marks=() if p == QUICK else pytest.mark.slow) for p in chosen]


@pytest.fixture(scope="module")
def backbones():
    """name -> the keras.applications backbone (random weights, seed 0), built on first use, once."""
    built = {}

    def get(name):
        if name not in built:
            keras.utils.set_random_seed(0)
            built[name] = getattr(keras.applications, name)(weights=None, include_top=False,
                                                            input_shape=(None, None, 3))
        return built[name]

    return get


def wrap(base, kind, classes=3):
    """The two ways Keras users fine-tune: Sequential([base, pool, Dense]) or base(inputs) in a functional."""
    if kind == "sequential":
        return keras.Sequential([keras.Input((SIZE, SIZE, 3)), base, keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(classes, activation="softmax")], name=f"seq_{base.name}")
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(255.0, name="to_255")(inp)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    return keras.Model(inp, keras.layers.Dense(classes, activation="softmax", name="head")(x),
                       name=f"fn_{base.name}")


@pytest.mark.parametrize("name,wrapper,path,relu", patterns(PATTERNS))
def test_nested_paths_bare_names_and_pre_relu(backbones, name, wrapper, path, relu):
    base = backbones(name)
    model = wrap(base, wrapper)
    prefix = path.split("/")[0]
    x = tf.random.stateless_uniform([2, SIZE, SIZE, 3], seed=[1, 2])
    bare = path.split("/", 1)[1]
    pre = f"{prefix}/{relu}{features.PRE_RELU}"
    got = features.feature_model(model, [path, bare, pre, f"{relu}{features.PRE_RELU}", f"{prefix}/{relu}"])(x)
    want_x = x * 255.0 if wrapper == "functional" else x
    inner = base.get_layer(relu)
    want = keras.Model(base.inputs[0], base.get_layer(bare).output)(want_x)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1], got[0])
    np.testing.assert_allclose(got[3], got[2])
    np.testing.assert_allclose(got[4], np.maximum(got[2], 0), rtol=1e-4, atol=1e-4)  # relu(pre) = post
    if not isinstance(inner, keras.layers.Activation):  # VGG: a fused ReLU; its pre-ReLU is the linear conv
        assert (np.asarray(got[2]) < 0).any()
    entries = {e.name: e for e in features.catalogue(model)}
    assert entries[path].channels == features.channel_count(model, path) and entries[f"{prefix}/{relu}"].pre_relu
    with pytest.raises(UnknownLayerError, match=f"{prefix}/"):
        features.endpoint(model, bare + "x")  # the closest names are nested paths


def test_ambiguous_bare_name_asks_for_the_path():
    def block(name):
        inp = keras.Input((None, None, 3))
        return keras.Model(inp, keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inp), name=name)

    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, keras.layers.Concatenate()([block("left")(inp), block("right")(inp)]))
    with pytest.raises(UnknownLayerError, match="ambiguous.*left/conv, right/conv"):
        features.endpoint(model, "conv")
    assert features.endpoint(model, "right/conv_pre_relu").shape[-1] == 2


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp("own") / "data"), size=SIZE)


def fit_with_callbacks(model, out, path):
    """The user's own model.fit with lucidtl's callbacks: checkpoints at 0, 1, 2 and live renders."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 8), 3)
    # run_eagerly: two updates of a full backbone run in seconds eagerly, while tracing its train step takes
    # tens of seconds; the callbacks see the same iterations either way
    model.compile(keras.optimizers.SGD(1e-3), "categorical_crossentropy", run_eagerly=True)
    live = FeatureVisualization(os.path.join(out, "logs"), f"{path}:0:2", at="2", steps=2, size=SIZE)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[IterationCheckpoint(out, save_at="0,2", save_format="keras"), live])
    return live


@pytest.mark.parametrize("name,wrapper,path,relu", patterns(PATTERNS[:3]))
def test_transfer_pattern_fit_render_study(backbones, images, tmp_path, name, wrapper, path, relu):
    from lucidtl.study import study

    model = wrap(backbones(name), wrapper)
    run = str(tmp_path / f"{name.lower()}_{wrapper}")
    live = fit_with_callbacks(model, run, path)
    assert sorted(live.rendered) == [2] and live.rendered[2].shape == (2, SIZE, SIZE, 3)
    bare = path.split("/", 1)[1]  # the trained model, by the bare name (the study renders the saved ones by path)
    img = render_vis(model, objectives.channel(bare, 1), param_f=lambda: param.image(SIZE), thresholds=(2,),
                     verbose=False, seed=0)[0]
    assert img.shape == (1, SIZE, SIZE, 3) and np.isfinite(img).all()
    if name == "DenseNet121" and not os.environ.get("LUCIDTL_SLOW_TESTS"):
        # a study over DenseNet121's 427 layers costs ~50 s here; its saved checkpoint is rendered by path instead
        from lucidtl.train import run as runs

        saved = runs.load_checkpoint(run, 2)
        again = render_vis(saved, objectives.channel(path, 1), param_f=lambda: param.image(SIZE), thresholds=(2,),
                           verbose=False, seed=0)[0]
        np.testing.assert_allclose(again, img, atol=1e-5)  # the saved checkpoint is the trained model
        return
    result = study(runs=run, out=str(tmp_path / "study"), layers=path, channels="0:2", size=SIZE, steps=2,
                   batch_size=2, dataset=f"folder:{images}", max_images=4, examples=1, progress=False)
    assert result.site and set(result.stages.values()) == {"done"}
    sim = json.load(open(os.path.join(result.out, "similarity", os.path.basename(run), "iter_000002.json")))
    layer = sim["layers"][path]
    assert 0 <= layer["cka"] <= 1 + 1e-6 and all(len(v) == 2 for v in layer["channels"].values())
    strips = os.path.join(result.out, "examples", os.path.basename(run), "iter_000002", path)
    assert sorted(os.listdir(strips)) == ["0000.png", "0001.png"]
    assert os.path.isfile(os.path.join(result.out, "atlas", os.path.basename(run), "iter_000002", path, "0001.png"))
    if name == "VGG19":
        _nested_path_site(result.out, os.path.basename(run), path)


def _nested_path_site(out, run, path):
    """The study site routes a nested path (its "/" escaped in the address) and loads its images; a channel
    without a change value is explained, not just shown as "d –"."""
    from test_atlas import _chromium

    found, reason = _chromium()
    if found is None:
        pytest.skip(reason)
    sync_playwright, exe = found
    data = os.path.join(out, "data", "layer-000.js")
    first, line = open(data).read().splitlines()[:2]  # window.STUDY_LAYERS["<layer>"] = {...};
    head, body = line.split(" = ", 1)
    layer = json.loads(body.rstrip().rstrip(";"))
    layer["runs"][run]["procrustes_norm"][-1][1] = None  # as for a dead channel
    open(data, "w").write(f"{first}\n{head} = {json.dumps(layer)};\n")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        address = f"#/layer/{path.replace('/', '%2F')}/{run}"
        page.goto("file://" + os.path.join(out, "index.html") + address)
        page.wait_for_function("h => document.body.getAttribute('data-drawn') === h", arg=address)
        tiles = page.eval_on_selector_all("#ranked a.tile", "els => els.map(e => e.dataset.channel)")
        page.wait_for_function("() => [...document.images].every(i => i.complete)")
        widths = page.eval_on_selector_all("#ranked img", "els => els.map(e => e.naturalWidth)")
        note = page.text_content("#no-change-note")
        browser.close()
    assert tiles == ["0", "1"] and widths == [SIZE] * 4 and not errors
    assert note.startswith("1 of 2 channels have no change value") and "ranked last" in note
