"""Lucid model-zoo graphs (frozen GraphDefs) through lucidtl: activations equal a tf.compat.v1.Session run of
the same graph, Lucid's names and `_pre_relu` concatenations, metadata, the render CLI, the redirected-ReLU
warm-up on imported graphs, and one-line errors for bad files. Graphs: tests/lucid_graphs.py."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import lucid_graphs as lg
from lucidtl import render as render_cli
from lucidtl.errors import LucidtlError, UnknownLayerError, WeightsError
from lucidtl.models import build_model
from lucidtl.optvis import features, objectives, param
from lucidtl.optvis.render import Renderer
from conftest import cli_exit

INCEPTION_RANGE = (-117, 138)  # Lucid's InceptionV1.image_value_range = (-117, 255 - 117)


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    graph, _ = lg.inception_v1_graph()
    gd = graph.as_graph_def()
    return lg.write_pb(gd, tmp_path_factory.mktemp("zoo") / "InceptionV1.pb"), gd


@pytest.fixture(scope="module")
def inception_net(inception):
    return build_model(inception[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    gd = lg.tiny_saved_graph()
    return lg.write_pb(gd, tmp_path_factory.mktemp("zoo") / "tiny.pb"), gd


def _towers(block):
    return [f"{block}_{t}_pre_relu" for t in ("1x1", "3x3", "5x5", "pool_reduce")]


def test_inception_activations_equal_session(inception, inception_net):
    path, gd = inception
    net, info = inception_net
    assert info.input_range == (0.0, 1.0) and "(-117, 138)" in info.note and "lucid:InceptionV1" in info.note
    x = np.random.default_rng(1).uniform(size=(2, 72, 88, 3)).astype(np.float32)  # not 224: forget_xy
    names = ["conv2d0", "localresponsenorm0", "localresponsenorm1", "mixed3b", "mixed4a", "mixed4a_pre_relu",
             "mixed4b_pool_reduce_pre_relu"]
    got = features.feature_model(net, names)(x)
    ref = lg.session_run(gd, "input", INCEPTION_RANGE, x, names[:5] + _towers("mixed4a") + names[6:])
    ref = ref[:5] + [np.concatenate(ref[5:9], -1)] + ref[9:]  # Lucid's mixed4a_pre_relu: towers before ReLU
    for name, g, r in zip(names, got, ref):
        assert g.shape == r.shape, name
        np.testing.assert_allclose(np.asarray(g), r, rtol=1e-5, atol=1e-5 * np.abs(r).max(), err_msg=name)
    assert ref[5].shape[-1] == 508 and (ref[5] < 0).any()  # pre-ReLU values: negative ones kept


def test_inception_names_and_catalogue(inception_net):
    net, _ = inception_net
    entries = {e.name: e for e in features.catalogue(net)}
    assert entries["mixed4a"].channels == 508 and entries["mixed4a"].kind == "Concat" and entries["mixed4a"].pre_relu
    assert entries["mixed3a"].channels == 256 and entries["mixed3b"].channels == 480
    assert entries["mixed4b"].channels == 512 and entries["conv2d2"].channels == 192
    assert entries["localresponsenorm0"].kind == "LRN" and entries["conv2d0"].pre_relu
    assert features.channel_count(net, "mixed4a_pre_relu") == 508
    assert features.channel_count(net, "mixed4a_3x3_bottleneck") == 96
    assert "mixed4a_pre_relu" in features.layer_names(net)
    with pytest.raises(UnknownLayerError, match="mixed4a"):
        features.endpoint(net, "mixed4x")


def test_layers_cli_lists_lucid_names(inception, capsys):
    text = render_cli.layers(model=inception[0])  # weights "random": the same graph with fresh weights
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    assert rows["mixed4a"][1:] == ["Concat", "508", "yes", "?x?x508"]  # ..., _pre_relu, the shape objectives see
    assert rows["conv2d0"][1:] == ["Relu", "64", "yes", "?x?x64"]
    assert rows["localresponsenorm1"][1:3] == ["LRN", "192"]
    assert not any(k.endswith("/conv") for k in rows)  # Conv2D ops are hidden as for Keras models


def test_render_cli_end_to_end(inception, tmp_path, capsys):
    out = tmp_path / "x"
    render_cli.main(["--model", inception[0], "--layer", "mixed4a_pre_relu", "--channels", "0:4", "--size", "64",
                     "--steps", "8", "--out", str(out)])
    pngs = sorted(f for f in os.listdir(out) if f.endswith("_8.png"))
    assert pngs == [f"mixed4a_pre_relu_{c:04d}_8.png" for c in range(4)]
    record = json.loads((out / "mixed4a_pre_relu_render.json").read_text())
    assert record["status"] == "complete" and record["random_weights"] is False
    assert record["weights"] == inception[0]


def test_lower_precision_refused_for_graphs_in_one_line(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LUCIDTL_ALLOW_SLOW_PRECISION", "1")  # past the hardware rule, to the model's
    out = tmp_path / "never"
    code, cap = cli_exit(render_cli.main, ["--model", tiny[0], "--layer", "mixed",
                                           "--channels", "0", "--size", "16", "--steps", "1", "--precision",
                                           "bfloat16", "--out", str(out)], capsys)
    assert code == 2 and "not available for Lucid zoo graphs" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not out.exists()


def test_saved_graph_metadata_and_activations(tiny):
    path, gd = tiny
    net, info = build_model(path)
    assert "Model.save metadata" in info.note and "(-1, 1)" in info.note
    assert net.lucid_metadata.input_name == "images" and tuple(net.lucid_metadata.image_shape) == (32, 32, 3)
    x = np.random.default_rng(2).uniform(size=(3, 20, 24, 3)).astype(np.float32)  # the graph says 32x32
    names = ["conv_relu", "mixed", "mixed_pre_relu", "probs"]
    got = features.feature_model(net, names)(x)
    ref = lg.session_run(gd, "images", (-1, 1), x, ["conv_relu", "mixed", "a", "b", "probs"])
    pre = lg.session_run(gd, "images", (-1, 1), x, [n.name for n in gd.node if n.op == "Conv2D"][1:])
    ref = ref[:2] + [np.concatenate(pre, -1)] + ref[4:]  # ConcatV2 towers a, b before their Relu
    for name, g, r in zip(names, got, ref):
        np.testing.assert_allclose(np.asarray(g), r, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np.asarray(net(x)), ref[-1], rtol=1e-5)  # the model's output: probs


def test_gradient_equals_session(tiny):
    path, gd = tiny
    net, _ = build_model(path)
    x = np.random.default_rng(3).uniform(size=(1, 16, 16, 3)).astype(np.float32)
    fm = features.feature_model(net, ["mixed_pre_relu"])

    @tf.function
    def grad(img):
        return tf.gradients(tf.reduce_mean(fm(img)[..., 6]), [img])[0]

    graph = tf.Graph()
    with graph.as_default():
        img = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        tf.compat.v1.import_graph_def(gd, {"images": img * 2.0 - 1.0}, name="import")
        b_pre = graph.get_tensor_by_name("import/b:0").op.inputs[0]  # channel 6 = tower b's channel 1
        g = tf.compat.v1.gradients(tf.reduce_mean(b_pre[..., 1]), [img])[0]
        with tf.compat.v1.Session(graph=graph) as sess:
            ref = sess.run(g, {img: x})
    np.testing.assert_allclose(grad(tf.constant(x)).numpy(), ref, rtol=1e-5, atol=1e-7)
    assert np.abs(ref).max() > 0


@pytest.mark.parametrize("step,expected", [(0, 0.05), (17, 0.0)])
def test_redirected_relu_reaches_graph_relus(tmp_path, step, expected):
    # conv bias -1000: every unit of conv_relu is dead. Warm-up (step < 17): the upward gradient passes and
    # Adam's first update is lr * sign = +0.05 on every pixel variable; from step 17: plain gradient, 0.
    path = lg.write_pb(lg.tiny_saved_graph(bias=-1000.0), tmp_path / "dead.pb")
    net, _ = build_model(path)
    r = Renderer(net, objectives.channel("conv_relu", 0), transforms=[], seed=0,
                 param_f=lambda: param.image(8, fft=False, decorrelate=False))
    r._step.assign(step)
    before = r.variables[0].numpy()
    r.step()
    delta = r.variables[0].numpy() - before
    np.testing.assert_allclose(np.abs(delta).max(), expected, atol=1e-4)
    if expected:
        assert (np.abs(delta) > 0.04).mean() > 0.9  # nearly every pixel variable moves (random kernel signs)


# ../shared/spec/lucid.md, Lucid's InceptionV1: layers and channels, as the spec lists them
SPEC_INCEPTION_V1_LAYERS = {
    "conv2d0": 64, "conv2d1": 64, "conv2d2": 192, "mixed3a": 256, "mixed3b": 480, "mixed4a": 508, "mixed4b": 512,
    "mixed4c": 512, "mixed4d": 528, "mixed4e": 832, "mixed5a": 832, "mixed5b": 1024, "head0_bottleneck": 128,
    "nn0": 1024, "softmax0": 1008, "head1_bottleneck": 128, "nn1": 1024, "softmax1": 1008, "softmax2": 1008}


def test_inception_v1_manifest_is_the_spec_table():
    from lucidtl.models import lucid_zoo

    m = lucid_zoo.zoo_manifest("InceptionV1")
    assert {d["name"]: d["depth"] for d in m["layers"]} == SPEC_INCEPTION_V1_LAYERS
    assert m["input_name"] == "input" and m["image_value_range"] == [-117, 255 - 117]
    assert m["image_shape"] == [224, 224, 3] and m["url"].endswith("/InceptionV1.pb")


def test_zoo_manifests():
    from lucidtl.models import lucid_zoo

    m = lucid_zoo.zoo_manifest("InceptionV1")
    assert m["input_name"] == "input" and m["image_value_range"] == [-117, 138] and m["image_shape"] == [224, 224, 3]
    assert {d["name"]: d["depth"] for d in m["layers"]}["mixed4a"] == 508
    assert lucid_zoo.zoo_manifest("InceptionV1_caffe")["is_BGR"] is True
    with pytest.raises(LucidtlError, match="InceptionV1"):
        build_model("lucid:InceptionV2")  # offline: a one-line download error naming the URL, or unknown name
    with pytest.raises(LucidtlError, match="closest"):
        build_model("lucid:InceptionV11x")


def test_zoo_name_with_local_file_and_manifest_json(inception, tmp_path):
    net, info = build_model("lucid:InceptionV1", weights=inception[0])
    assert info.weights_source == inception[0] and features.channel_count(net, "mixed4a") == 508
    manifest = {"model_path": "./InceptionV1.pb", "input_name": "input", "image_shape": [224, 224, 3],
                "image_value_range": [-117, 138], "layers": [{"name": "mixed4a", "depth": 508, "tags": ["conv"]}]}
    os.link(inception[0], tmp_path / "InceptionV1.pb")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    net2, _ = build_model(str(tmp_path / "manifest.json"))
    x = np.random.default_rng(4).uniform(size=(1, 40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(net2(x)), np.asarray(features.feature_model(net, ["mixed4a"])(x)),
                               rtol=1e-6)


def test_bad_files_are_one_line_errors(inception, tiny, tmp_path, capsys):
    good = open(inception[0], "rb").read()
    (tmp_path / "text.pb").write_bytes(b"\x0a\xff\xff\xff\xff this is not a graph")
    (tmp_path / "truncated.pb").write_bytes(good[: len(good) // 2])
    gd = lg.tiny_saved_graph()
    for node in gd.node:
        if node.name == "lucid_metadata_json":
            node.attr["value"].tensor.string_val[0] = json.dumps(dict(lg.TINY_META, input_name="nope")).encode()
    lg.write_pb(gd, tmp_path / "noinput.pb")
    plain = lg.tiny_saved_graph()
    del plain.node[-1]  # no metadata node, and no zoo model has its names
    lg.write_pb(plain, tmp_path / "nometa.pb")
    cases = [("text.pb", "GraphDef"), ("truncated.pb", "truncated"), ("noinput.pb", "no input op 'nope'"),
             ("nometa.pb", "no Lucid metadata"), ("missing.pb", "does not exist")]
    for name, expected in cases:
        with pytest.raises(WeightsError, match=expected):
            build_model(str(tmp_path / name))
        code, cap = cli_exit(render_cli.main, ["--model", str(tmp_path / name), "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and len(cap.err.strip().splitlines()) == 1 and "Traceback" not in cap.err, name
    code, cap = cli_exit(render_cli.main, ["--model", tiny[0], "--layer", "mixd", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "mixed" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "o")


def test_other_paths_accept_graph_models(inception_net, tiny):
    from lucidtl import export
    from lucidtl.analysis import examples
    from lucidtl.atlas import plan
    from lucidtl.stylegan2 import ascent
    from lucidtl.stylegan2.networks import Config, Generator

    net, _ = inception_net
    # conv2d0 7x7/2; maxpool0 3/2 -> 11, jump 4; conv2d2 3x3 -> 19; maxpool1 3/2 -> 27, jump 8; mixed3a 5x5 -> 59;
    # mixed3b 5x5 -> 91; maxpool4 3/2 -> 107, jump 16; mixed4a 5x5 -> 171
    assert examples.receptive_field(net, "conv2d0") == ((7, 7), (2, 2))
    assert examples.receptive_field(net, "mixed4a_pre_relu") == ((171, 171), (16, 16))
    layers = plan.default_layers(net)
    assert layers[:3] == ["conv2d0", "conv2d1", "conv2d2"] and "mixed4a_1x1" in layers
    small, _ = build_model(tiny[0])
    out = export.render_channel(small, "mixed_pre_relu", 2, 3, 0, size=16)
    assert out["image"].shape == (16, 16, 3) and np.isfinite(out["objective"])
    g = Generator(Config(resolution=8, latent_size=8, dlatent_size=8, mapping_layers=2, mapping_fmaps=8,
                         fmap_base=32, fmap_max=8), seed=1)
    g.estimate_w_avg(20)
    res = ascent.ascent(g, small, layer="mixed", channel=1, steps=2, noise="fixed")
    assert np.all(np.isfinite(res.images))


def test_bgr_per_channel_range_manifest(tiny, tmp_path):
    # Lucid's create_input: reverse RGB -> BGR, then lo + x * (hi - lo) with per-channel (BGR) lo, hi
    lo, hi = np.array([-103.939, -116.779, -123.68]), np.array([151.061, 138.221, 131.32])
    manifest = {"model_path": tiny[0], "input_name": "images", "image_shape": [32, 32, 3], "is_BGR": True,
                "image_value_range": [lo.tolist(), hi.tolist()]}
    (tmp_path / "caffe.json").write_text(json.dumps(manifest))
    net, info = build_model(str(tmp_path / "caffe.json"))
    assert "BGR" in info.note
    x = np.random.default_rng(5).uniform(size=(2, 12, 12, 3)).astype(np.float32)
    ref = lg.session_run(tiny[1], "images", (0.0, 1.0), (lo + x[..., ::-1] * (hi - lo)).astype(np.float32),
                         ["conv_relu"])
    got = features.feature_model(net, ["conv_relu", "images"])(x)
    np.testing.assert_allclose(np.asarray(got[1]), lo + x[..., ::-1] * (hi - lo), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(got[0]), ref[0], rtol=1e-5, atol=1e-4)
