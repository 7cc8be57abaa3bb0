"""SavedModel export: signatures loaded by plain TensorFlow (lucidtl unimportable) match lucidtl in process."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from lucidtl import export
from lucidtl.errors import InvalidArgumentError, UnknownLayerError
from lucidtl.models import save_model
from lucidtl.optvis import objectives, param
from lucidtl.optvis.render import Renderer

from conftest import build_tiny_cnn

LAYER = "branch_a_relu"
SIZE = 32


def run_without_lucidtl(script, **paths):
    """Run `script` in a fresh Python where any import of lucidtl fails; `paths` become globals."""
    head = "import sys\nsys.modules['lucidtl'] = None\nimport numpy as np\nimport tensorflow as tf\n"
    head += "".join(f"{k} = {str(v)!r}\n" for k, v in paths.items())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", head + textwrap.dedent(script)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".tmp-")]


# ---- classifier ---------------------------------------------------------------------------------------

def test_classifier_signatures_match_keras(tmp_path):
    fixed = build_tiny_cnn(fixed_size=24, seed=1)  # input (24, 24, 3): resized to that by default
    anysize = build_tiny_cnn(seed=2)  # any input size; expects 0..255 images
    r1 = export.export_classifier(fixed, tmp_path / "fixed")
    r2 = export.export_classifier(anysize, tmp_path / "range", input_range=(0, 255), image_size=(20, 28))
    assert r1.signatures["serving_uint8"] == ("(images: uint8 [None, None, None, 3]) -> {outputs: float32 [None, 4], "
                                              "probabilities: float32 [None, 4]}")
    assert set(r2.signatures) == {"serving_default", "serving_uint8"} and not leftovers(tmp_path)

    rng = np.random.default_rng(0)
    x = rng.random((2, 30, 17, 3), dtype=np.float32)
    u = rng.integers(0, 256, (3, 13, 40, 3), dtype=np.uint8)
    np.savez(tmp_path / "in.npz", x=x, u=u)
    run_without_lucidtl("""
        data = np.load(inputs)
        out = {}
        for name in ("fixed", "range"):
            m = tf.saved_model.load(f"{root}/{name}")
            out[name + "_f"] = m.signatures["serving_default"](images=tf.constant(data["x"]))["outputs"].numpy()
            out[name + "_u"] = m.signatures["serving_uint8"](images=tf.constant(data["u"]))["outputs"].numpy()
            out[name + "_p"] = m.signatures["serving_default"](images=tf.constant(data["x"]))["probabilities"].numpy()
        np.savez(result, **out)
    """, root=tmp_path, inputs=tmp_path / "in.npz", result=tmp_path / "out.npz")
    out = np.load(tmp_path / "out.npz")

    def keras_ref(model, images, size, lo, hi):
        return model(tf.image.resize(images, size) * (hi - lo) + lo, training=False).numpy()

    uf = u.astype(np.float32) / 255.0
    np.testing.assert_allclose(out["fixed_f"], keras_ref(fixed, x, (24, 24), 0, 1), atol=1e-5)
    np.testing.assert_allclose(out["fixed_u"], keras_ref(fixed, uf, (24, 24), 0, 1), atol=1e-5)
    np.testing.assert_allclose(out["range_f"], keras_ref(anysize, x, (20, 28), 0, 255), atol=1e-5 * 255)
    np.testing.assert_allclose(out["range_u"], keras_ref(anysize, uf, (20, 28), 0, 255), atol=1e-5 * 255)
    # the range mapping matters: the same images in [0,1] give other outputs
    assert np.abs(out["range_f"] - keras_ref(anysize, x, (20, 28), 0, 1)).max() > 1e-2
    # the tiny model ends in logits: probabilities are their softmax
    e = np.exp(out["fixed_f"] - out["fixed_f"].max(-1, keepdims=True))
    np.testing.assert_allclose(out["fixed_p"], e / e.sum(-1, keepdims=True), atol=1e-6)


def test_classifier_of_a_run_returns_probabilities_and_class_names(tmp_path):
    """A fine-tuned head ends in softmax: its output is the probabilities; the class names travel along."""
    import keras

    from lucidtl.train.heads import add_head

    tiny = build_tiny_cnn(seed=3)
    net = add_head(keras.Model(tiny.input, tiny.get_layer("fused").output), 3, top="single")
    export.export_classifier(net, tmp_path / "c", class_names=["cat", "dog", "fox"])
    m = tf.saved_model.load(str(tmp_path / "c"))
    out = m.signatures["serving_default"](images=tf.random.uniform([2, 20, 20, 3], seed=1))
    np.testing.assert_allclose(out["probabilities"].numpy(), out["outputs"].numpy())
    np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1, atol=1e-5)
    assert [n.decode() for n in m.class_names.numpy()] == ["cat", "dog", "fox"]
    with pytest.raises(InvalidArgumentError, match="2 class names for 3 outputs"):
        export.export_classifier(net, tmp_path / "d", class_names=["cat", "dog"])


# ---- renderer -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    return build_tiny_cnn(seed=0)


@pytest.fixture(scope="module")
def renders(tiny, tmp_path_factory):
    """The exported renderer run in a lucidtl-free process: (channel, steps, seed) -> outputs."""
    root = tmp_path_factory.mktemp("renderer")
    export.export_renderer(tiny, LAYER, root / "saved", size=SIZE)
    run_without_lucidtl("""
        m = tf.saved_model.load(saved)
        out = {}
        for c, n, s in [(2, 20, 7), (2, 20, 8), (2, 1, 7)]:
            r = m.signatures["render"](channel=tf.constant(c), steps=tf.constant(n), seed=tf.constant(s))
            for k, v in r.items():
                out[f"{c}_{n}_{s}_{k}"] = v.numpy()
        again = m.render(tf.constant(2), tf.constant(20), tf.constant(7))  # the restored tf.function
        out["again"] = again["image"].numpy()
        np.savez(result, **out)
    """, saved=root / "saved", result=root / "out.npz")
    return dict(np.load(root / "out.npz"))  # "<channel>_<steps>_<seed>_<output>" -> array


def test_renderer_matches_in_process_call(tiny, renders):
    image, uint8 = renders["2_20_7_image"], renders["2_20_7_image_uint8"]
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32 and uint8.dtype == np.uint8
    np.testing.assert_array_equal(uint8, np.rint(image * 255).astype(np.uint8))
    ours = export.render_channel(tiny, LAYER, 2, 20, 7, size=SIZE)
    np.testing.assert_allclose(image, ours["image"], atol=1e-5)
    np.testing.assert_allclose(renders["2_20_7_objective"], ours["objective"], rtol=1e-5)


def test_renderer_matches_render_vis(tiny, renders):
    """Same loop as Renderer (render_vis) given the same initial spectrum. Both run the same float32 ops and
    agree bit for bit here; atol 1e-4 leaves room for another op fusion or summation order (oneDNN, XLA),
    which Adam amplifies (its first steps move every coefficient by ~lr whatever the gradient's size), without
    hiding a real mismatch: another seed, step or transform moves pixels by >1e-2."""
    def param_f():
        p = param.image(SIZE)
        (spectrum,) = p.trainable_variables
        spectrum.assign(tf.random.stateless_normal(spectrum.shape, seed=tf.constant([7, 0], tf.int32)) * 0.01)
        return p

    r = Renderer(tiny, objectives.channel(LAYER, 2), param_f=param_f, seed=7)
    (image,) = r.run(thresholds=(19,), verbose=False)
    np.testing.assert_allclose(renders["2_20_7_image"], image[0], atol=1e-4)
    np.testing.assert_allclose(renders["2_20_7_objective"], r.objective_value(), rtol=1e-4)


def test_renderer_is_a_function_of_its_inputs(renders):
    np.testing.assert_array_equal(renders["again"], renders["2_20_7_image"])
    assert np.abs(renders["2_20_8_image"] - renders["2_20_7_image"]).max() > 1e-2
    assert renders["2_20_7_objective"] > renders["2_1_7_objective"] + 1e-3


def test_renderer_checks_channel_and_steps(tiny):
    r = export.ChannelRenderer(tiny, LAYER, size=SIZE)  # branch_a_relu has 6 channels
    with pytest.raises(tf.errors.InvalidArgumentError, match="channel out of range"):
        r(6, 2, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="channel must be >= 0"):
        r(-1, 2, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="steps must be >= 1"):
        r(0, 0, 0)


# ---- errors and the command line ----------------------------------------------------------------------

def test_unknown_layer_names_close_ones(tiny, tmp_path):
    with pytest.raises(UnknownLayerError, match="closest: branch_a_relu"):
        export.export_renderer(tiny, "branch_a_rel", tmp_path / "r", size=SIZE)
    assert os.listdir(tmp_path) == []


def test_existing_folder_is_refused_then_replaced(tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidArgumentError, match="--overwrite"):
        export.export_classifier(tiny, out)
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    export.export_classifier(tiny, out, overwrite=True)
    assert "saved_model.pb" in os.listdir(out) and not (out / "keep.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_failed_export_leaves_nothing_behind(tiny, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_classifier(tiny, tmp_path / "new")
    assert os.listdir(tmp_path) == []
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x").write_text("old")
    with pytest.raises(RuntimeError):
        export.export_classifier(tiny, tmp_path / "old", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["old"] and (tmp_path / "old" / "x").read_text() == "old"


@pytest.fixture(scope="module")
def keras_file(tiny, tmp_path_factory):
    return str(save_model(tiny, tmp_path_factory.mktemp("model") / "tiny.keras"))


def cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        export.main(argv)
    return e.value.code, capsys.readouterr()


@pytest.mark.parametrize("argv,expected", [
    (["renderer", "--layer", "branch_a_rel"], "closest: branch_a_relu"),
    (["renderer", "--layer", LAYER, "--size", "8"], "--size must be an integer >= 16"),
    (["renderer", "--layer", LAYER, "--transforms", "fancy"], "choose one of standard, distill, none"),
    (["classifier", "--image-size", "0"], "--image-size must be an integer >= 1, got 0"),
])
def test_cli_errors_are_one_line_exit_2(keras_file, tmp_path, capsys, argv, expected):
    code, captured = cli([*argv, "--model", keras_file, "--out", str(tmp_path / "o")], capsys)
    err = captured.err.strip()
    assert code == 2 and err.startswith("error: ") and expected in err
    assert "\n" not in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # a fresh process; test_bad_inputs.py's real entry points stay in the quick loop
def test_cli_existing_out_and_module_entry_point(keras_file, tmp_path):
    """The real `python -m lucidtl.export`: a non-empty --out is refused with exit code 2, one line."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "f").write_text("x")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "lucidtl.export", "classifier", "--model", keras_file, "--out",
                           str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "--overwrite" in last
    assert os.listdir(out) == ["f"] and leftovers(tmp_path) == []


def test_cli_renderer_happy_path(keras_file, tiny, tmp_path, capsys):
    out = tmp_path / "r"
    export.main(["renderer", "--model", keras_file, "--layer", LAYER, "--size", str(SIZE), "--out", str(out)])
    printed = capsys.readouterr().out
    assert f"wrote SavedModel to {out}" in printed
    assert "render(channel: int32 [], steps: int32 [], seed: int32 [])" in printed
    loaded = tf.saved_model.load(str(out))
    got = loaded.render(tf.constant(1), tf.constant(3), tf.constant(0))
    ours = export.render_channel(tiny, LAYER, 1, 3, 0, size=SIZE)
    np.testing.assert_allclose(got["image"].numpy(), ours["image"], atol=1e-5)
