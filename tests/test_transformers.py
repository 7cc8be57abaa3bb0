"""Vision transformers (issue 27): taps on sublayers, tokens as a grid, the patch transform set, keras-hub
presets, and a tiny ViT fine-tuning run through every view. Tiny random-weight configs (32 px, patch 8)."""
import json
import os
import sys

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from lucidtl.errors import InvalidArgumentError, LucidtlError, UnknownLayerError  # noqa: E402
from lucidtl.optvis import features, objectives, param, taps  # noqa: E402
from lucidtl.optvis.render import Renderer  # noqa: E402

SIZE, PATCH = 32, 8
MLP = {"vit": "transformer_block_1/mlp/dense_1", "dinov2": "layers_0/mlp/fc1", "clip": "encoder_block_0/activation",
       "deit": "transformer_block_1/mlp/dense"}


def vit(seed=0, layers=1):
    keras.utils.set_random_seed(seed)
    return keras_hub.models.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=PATCH, num_layers=layers,
                                        num_heads=2, hidden_dim=16, mlp_dim=32)


def backbone(kind):
    keras.utils.set_random_seed(0)
    if kind == "vit":
        return vit()
    if kind == "deit":
        return keras_hub.models.DeiTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=PATCH, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32)
    if kind == "dinov2":
        return keras_hub.models.DINOV2Backbone(patch_size=PATCH, num_layers=1, hidden_dim=16, num_heads=2,
                                               intermediate_dim=32, image_shape=(SIZE, SIZE, 3),
                                               num_register_tokens=2, position_embedding_shape=(SIZE, SIZE, 3))
    return keras_hub.models.CLIPVisionEncoder(patch_size=PATCH, hidden_dim=16, num_layers=1, num_heads=2,
                                              intermediate_dim=32, image_shape=(SIZE, SIZE, 3))


@pytest.fixture(scope="module")
def classifier():
    """Two blocks: block 1's patch tokens reach the class token only through block 2's attention."""
    return keras_hub.models.ViTImageClassifier(backbone=vit(layers=2), num_classes=3)


def images(n=2, seed=0):
    return np.random.RandomState(seed).rand(n, SIZE, SIZE, 3).astype("float32")


def untouched(model):
    """No layer of the model has a wrapped call left behind."""
    return not any("call" in vars(layer) for layer in model._flatten_layers(include_self=True, recursive=True))


# ---- 1. taps --------------------------------------------------------------------------------------------

def test_tap_reads_the_mlp_neurons_of_the_models_own_forward_pass():
    model = vit()
    x = images()
    before = np.asarray(model(x))
    out = features.feature_model(model, ["vit_encoder/transformer_block_1/mlp/dense_1"])(x)
    # independently: the block's layers called as ViTEncoderBlock.call calls them
    enc = model.get_layer("vit_encoder")
    block = enc.encoder_layers[0]
    h = model.get_layer("vit_patching_and_embedding")(x)
    h1 = block.layer_norm_1(h)
    h = block.mha(h1, h1) + h
    neurons = block.mlp.dense_1(block.layer_norm_2(h)).numpy()  # [B, 1 + 16, 32]
    np.testing.assert_allclose(np.asarray(out), neurons[:, 1:].reshape(2, 4, 4, 32), rtol=1e-5, atol=1e-6)
    assert untouched(model)
    np.testing.assert_array_equal(np.asarray(model(x)), before)  # the user's model is unchanged


def test_class_token_and_heads_are_endpoints():
    model = vit()
    x = images()
    names = ["vit_encoder:cls", "vit_encoder", "transformer_block_1/mha:head0", "transformer_block_1/mha:head1",
             "transformer_block_1/mha"]
    cls, grid, h0, h1, mha = (np.asarray(v) for v in features.feature_model(model, names)(x))
    tokens = np.asarray(model(x))
    np.testing.assert_array_equal(cls, tokens[:, 0])
    np.testing.assert_array_equal(grid, tokens[:, 1:].reshape(2, 4, 4, 16))
    assert h0.shape == h1.shape == (2, 4, 4, 8)
    # the heads, stacked and projected by the attention's output layer, are the attention's output
    dense = features.layer_at(model, "vit_encoder/transformer_block_1/mha")._output_dense
    heads = np.stack([h0, h1], axis=3).reshape(2, 16, 2, 8)  # [B, tokens, heads, dim], patch tokens only
    projected = np.asarray(dense(tf.constant(heads))).reshape(2, 4, 4, 16)
    np.testing.assert_allclose(projected, mha, rtol=1e-5, atol=1e-6)
    with pytest.raises(UnknownLayerError, match="2 heads"):
        features.endpoint(model, "transformer_block_1/mha:head2")
    with pytest.raises(UnknownLayerError, match="called 2 times"):
        features.endpoint(model, "transformer_block_1/mlp/dropout")


def test_tokens_are_grids_after_class_and_register_tokens():
    dino = backbone("dinov2")
    assert taps.prefix_tokens(dino) == 3 and taps.patch_size(dino) == PATCH  # class token + 2 registers
    x = images()
    tokens = np.asarray(dino(x))  # [B, 3 + 16, 16]
    assert tokens.shape == (2, 19, 16)
    grid = np.asarray(features.feature_model(dino, ["layernorm"])(x))
    np.testing.assert_array_equal(grid, tokens[:, 3:].reshape(2, 4, 4, 16))
    assert features.endpoint(dino, "layernorm:cls").shape[1:] == (16,)
    deit = backbone("deit")  # a class and a distillation token: the grid from image side / patch size
    grid = np.asarray(features.feature_model(deit, ["deit_encoder/ln"])(x))
    tokens = np.asarray(deit.get_layer("deit_encoder")(deit.get_layer("deit_patching_and_embedding")(x))[0])
    assert tokens.shape == (2, 18, 16)
    np.testing.assert_allclose(grid, tokens[:, 2:].reshape(2, 4, 4, 16), rtol=1e-6, atol=1e-6)


def test_render_layers_lists_sublayers_with_shapes(capsys, tmp_path):
    from lucidtl import render

    model = vit()
    model.save_to_preset(str(tmp_path / "vit"))
    render.main(["layers", "--model", str(tmp_path / "vit"), "--all"])
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["vit_encoder/transformer_block_1/mlp/dense_1"][1:] == ["Dense(gelu)", "32", "4x4x32"]
    assert rows["vit_encoder/transformer_block_1/mha/query"][-1] == "17x2x8"  # not a token grid [T, C]
    from lucidtl.atlas.plan import default_layers

    assert default_layers(vit(layers=2)) == [f"vit_encoder/transformer_block_{i}/mlp/dense_1" for i in (1, 2)]


@pytest.mark.parametrize("kind", ["vit", "dinov2", "clip", "deit"])
def test_mlp_neuron_render_raises_its_activation(kind):
    model = backbone(kind)
    layer = MLP[kind]
    assert features.endpoint(model, layer).shape[1:] == (4, 4, 32)
    r = Renderer(model, objectives.neuron(layer, 3), param_f=lambda: param.image(SIZE), seed=0, transforms="none")
    random = [r.evaluate(images(1, seed)) for seed in range(16)]
    r.run((64,), verbose=False)
    reached = r.evaluate()  # the centre patch's neuron 3 (measured: 9 to 30 standard deviations above, 3 to 11 times the best random image)
    assert reached > 2 * max(random) and reached > np.mean(random) + 6 * np.std(random), (reached, random)
    assert untouched(model)


# ---- 2. attribution over tokens ---------------------------------------------------------------------------

def _manual_logits(model, x, at):
    """The classifier's logits computed block by block (as ViTEncoderBlock.call), with a GradientTape watching
    `at`: "mlp" (block 1's MLP neurons) or "block" (block 1's output): (watched, logits, d logit_1)."""
    bb = model.backbone
    enc = bb.get_layer("vit_encoder")
    with tf.GradientTape() as tape:
        h = bb.get_layer("vit_patching_and_embedding")(x)
        for i, block in enumerate(enc.encoder_layers):
            h1 = block.layer_norm_1(h)
            h = block.mha(h1, h1) + h
            mid = block.mlp.dense_1(block.layer_norm_2(h))
            if at == "mlp" and i == 0:
                tape.watch(mid)
                watched = mid
            h = h + block.mlp.dense_2(mid)
            if at == "block" and i == 0:
                tape.watch(h)
                watched = h
        out = enc.layer_norm(h)
        logits = model.get_layer("predictions")(out[:, 0])
        score = tf.reduce_sum(logits[:, 1])
    return watched, logits, tape.gradient(score, watched)


@pytest.mark.parametrize("layer,at", [("transformer_block_1/mlp/dense_1", "mlp"), ("transformer_block_1", "block")])
def test_token_grid_attribution_is_activation_times_gradient(classifier, layer, at):
    from lucidtl import attribution

    x = images()
    acts, attr = attribution.Attributor(classifier, layer)(x, [1])
    watched, logits, grad = _manual_logits(classifier, x, at)
    np.testing.assert_allclose(np.asarray(classifier(x)), logits.numpy(), rtol=1e-5, atol=1e-6)
    c = watched.shape[-1]
    expected = (watched.numpy() * grad.numpy())[:, 1:].reshape(2, 4, 4, c)
    np.testing.assert_allclose(acts, watched.numpy()[:, 1:].reshape(2, 4, 4, c), rtol=1e-5, atol=1e-6)
    assert np.abs(expected).max() > 1e-4  # patch tokens matter to the score
    np.testing.assert_allclose(attr[0], expected, rtol=1e-4, atol=1e-6)
    spatial = attribution.spatial_attribution(classifier, x, layer, 1)
    assert spatial.shape == (2, 4, 4)  # the patch grid
    assert untouched(classifier)


# ---- 3. the patch transform set ---------------------------------------------------------------------------

def test_patch_transforms_are_sized_to_the_patch():
    from lucidtl.optvis import transform
    from lucidtl.optvis.render import resolve_transforms

    model = vit()
    chain = resolve_transforms("patch", model)
    # pad p, jitter p, scale 0.8..1.2, rotate, jitter p // 2: sizes seen at many seeds lie in that range
    sizes = {int(chain(tf.zeros([1, 64, 64, 3]), tf.constant([s, 1]))[0].shape[0]) for s in range(40)}
    lo, hi = int(0.8 * (64 + PATCH)) - PATCH // 2, int(1.2 * (64 + PATCH))
    assert min(sizes) >= lo and max(sizes) <= hi and len(sizes) > 5, sizes
    assert [type(t).__name__ for t in transform.patch_transforms(16)] == ["Transform"] * 5
    with pytest.raises(InvalidArgumentError, match="patch_size"):
        transform.patch_transforms(0)


# ---- 5. presets and the optional dependency ---------------------------------------------------------------

def test_preset_folder_builds_the_classifier(classifier, tmp_path):
    from lucidtl import models

    folder = str(tmp_path / "vit_clf")
    classifier.save_to_preset(folder)
    net, info = models.build_model(folder, include_top=True)
    assert type(net).__name__ == "ViTImageClassifier" and not info.random_weights
    assert type(models.build_model(folder)[0]).__name__ == "ViTBackbone"  # without its top, as train wants it
    x = images()
    np.testing.assert_array_equal(np.asarray(net(x)), np.asarray(classifier(x)))
    fresh, info = models.build_model(folder, weights="random", include_top=True)
    assert info.random_weights and np.abs(np.asarray(fresh(x)) - np.asarray(classifier(x))).max() > 1e-4


def test_a_preset_that_cannot_be_loaded_says_what_to_do():
    from lucidtl import models

    with pytest.raises(LucidtlError, match="save_to_preset") as e:
        models.build_model("keras_hub:no_such_preset_here")
    assert "\n" not in str(e.value)


def test_missing_keras_hub_names_the_extra(monkeypatch, tmp_path, capsys):
    from conftest import cli_exit

    from lucidtl import render

    folder = tmp_path / "preset"
    folder.mkdir()
    for name in ("config.json", "metadata.json"):
        (folder / name).write_text(json.dumps({}))
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import keras_hub now fails
    code, out = cli_exit(render.main, ["layers", "--model", str(folder)], capsys)
    assert code == 2 and out.err.strip().splitlines() == [
        'error: keras-hub is not installed; install the transformers extra: pip install "lucidtl[transformers]"']
    assert os.listdir(folder) == ["config.json", "metadata.json"] or sorted(os.listdir(folder)) == [
        "config.json", "metadata.json"]


# ---- 4. fine-tuning a ViT and every view over its checkpoints ---------------------------------------------

BLOCKS = "transformer_block_1,transformer_block_2/mlp/dense_1"  # a block's output; a block's MLP neurons


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    """`python -m lucidtl.train` on a keras-hub ViT preset folder: 4 iterations, checkpoints 0, 2, 4."""
    from tiny_models import make_image_folder

    from lucidtl.train import fit

    base = tmp_path_factory.mktemp("vit_run")
    preset = str(base / "preset")
    vit(layers=2).save_to_preset(preset)
    folder = make_image_folder(str(base / "data"))
    out = str(base / "run")
    fit.train(f"folder:{folder}", iterations=4, save_at="0,2,4", out=out, model=preset, weights="preset",
              recipe="temporal", image_size=SIZE, batch_size=4, seed=0, progress=False, tensorboard=False)
    return out, folder, preset


def test_train_fine_tunes_the_preset_and_checkpoints_rebuild(vit_run):
    from lucidtl.run import Run

    out, folder, preset = vit_run
    run = Run(out)
    assert list(run.iterations) == [0, 2, 4]
    first, last = run.model_at(0), run.model_at(4, slot=1)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    x = images()
    # iteration 0 is the preset's backbone under a fresh head: its tokens are the preset's
    tokens = np.asarray(backbone(x))
    grid = np.asarray(features.feature_model(first, ["vit_encoder"])(x))
    np.testing.assert_allclose(grid, tokens[:, 1:].reshape(2, 4, 4, 16), rtol=1e-5, atol=1e-6)
    moved = np.asarray(features.feature_model(last, ["vit_encoder"])(x))
    assert np.abs(moved - grid).max() > 1e-3  # fine-tuning changed the encoder
    # a graph node's tokens split out of the graph: attribution = activation x gradient (a tape, here)
    from lucidtl import attribution

    acts, attr = attribution.Attributor(last, "vit_encoder")(x, [2])
    with tf.GradientTape() as tape:
        enc = last.get_layer("vit_encoder")(last.get_layer("vit_patching_and_embedding")(x))
        tape.watch(enc)
        dense = last.get_layer("predictions")  # Dense(softmax): the score is its pre-activation
        logits = tf.matmul(last.get_layer("head_pool")(enc), dense.kernel) + dense.bias
        score = tf.reduce_sum(logits[:, 2])
    expected = (enc * tape.gradient(score, enc)).numpy()[:, 1:].reshape(2, 4, 4, 16)
    assert np.abs(expected).max() > 1e-4
    np.testing.assert_allclose(attr[0], expected, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_study_of_a_vit_run_shows_transformer_blocks(vit_run, tmp_path):
    """Render over checkpoints (atlas), similarity, examples, activation atlas, attribution and neuron groups
    (the building blocks) and the site, with transformer blocks as the layers."""
    pytest.importorskip("umap")
    from lucidtl.study import study

    out, folder, _ = vit_run
    site = str(tmp_path / "S")
    result = study(runs=out, out=site, layers=BLOCKS, channels="0:2", size=SIZE, steps=3, batch_size=4,
                   examples=2, blocks=1, activation_atlas=True, grid_size=2, max_images=6,
                   dataset=f"folder:{folder}", progress=False)
    assert set(result.stages.values()) == {"done"}
    data = (tmp_path / "S" / "data" / "index.js").read_text()
    index = json.loads(data[data.index("{"):data.rindex("}") + 1])
    assert [layer["name"] for layer in index["layers"]] == BLOCKS.split(",")
    assert index["blocks"]["run"]["no_groups"] == []  # signed token activations get PCA groups
    for layer in index["layers"]:
        cka = layer["curves"]["run"]["cka"]
        assert cka[0] == pytest.approx(1.0) and len(cka) == 3  # iteration 0 against itself, then 2 and 4
    renders = sorted(p.relative_to(tmp_path / "S" / "atlas") for p in (tmp_path / "S" / "atlas").rglob("*.png"))
    assert {p.parts[1] for p in renders} == {"iter_000000", "iter_000002", "iter_000004"}
    summary = json.loads((tmp_path / "S" / "blocks" / "run" / "attribution" / "attribution_summary.json").read_text())
    assert set(BLOCKS.split(",")) <= set(json.dumps(summary).replace("\\/", "/").split('"'))
    groups = tmp_path / "S" / "blocks" / "run" / "groups" / "transformer_block_1" / "signed.json"
    assert json.loads(groups.read_text())["reduction_alg"] == "PCA"
    assert (tmp_path / "S" / "activation_atlas.html").exists()


def test_own_fit_with_iteration_checkpoints(tmp_path):
    """The user's own model.fit of a keras-hub ViTImageClassifier with IterationCheckpoint (.keras files):
    the run folder's checkpoints load (keras-hub's classes registered on the way) and attribute over tokens."""
    from lucidtl import attribution
    from lucidtl.run import Run
    from lucidtl.train.callbacks import IterationCheckpoint

    keras.utils.set_random_seed(0)
    model = keras_hub.models.ViTImageClassifier(backbone=vit(layers=2), num_classes=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    x, y = images(8), np.arange(8) % 3
    model.fit(x, y, batch_size=4, epochs=1, verbose=0,
              callbacks=[IterationCheckpoint(str(tmp_path / "own"), save_at="0,2", save_format="keras")])
    run = Run(str(tmp_path / "own"))
    assert list(run.iterations) == [0, 2]
    net = run.model_at(2)
    np.testing.assert_allclose(np.asarray(net(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    spatial = attribution.spatial_attribution(net, x[:2], "transformer_block_1/mlp/dense_1", [0, 1])
    assert spatial.shape == (2, 2, 4, 4) and np.abs(spatial).max() > 0


def test_aligned_strips_of_an_mlp_neuron_over_the_checkpoints(vit_run, tmp_path):
    """render --run --aligned: one strip per channel, a picture per checkpoint; each picture's recorded value
    is that checkpoint's channel mean on it (recomputed here from the saved PNG and the checkpoint)."""
    from lucidtl import imageio, render
    from lucidtl.run import Run

    out, _, _ = vit_run
    layer = "transformer_block_1/mlp/dense_1"
    render.main(["--run", out, "--layer", layer, "--channels", "0:2", "--size", str(SIZE), "--steps", "6",
                 "--aligned", "--transforms", "patch", "--noprogress", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "transformer_block_1_mlp_dense_1_aligned_render.json").read_text())
    assert record["iterations"] == [0, 2, 4] and record["layer"] == layer
    run = Run(out)
    for k, it in enumerate((0, 2, 4)):
        fm = features.feature_model(run.model_at(it), [layer])
        for c in (0, 1):
            png = imageio.load_png(str(tmp_path / f"transformer_block_1_mlp_dense_1_{c:04d}_iter_{it:06d}_6.png"))
            acts = np.asarray(fm(np.asarray(png, np.float32)[None]))  # load_png: [0, 1]
            assert record["objective_values"]["0-1"][c][k] == pytest.approx(acts[..., c].mean(), rel=1e-4, abs=1e-5)
