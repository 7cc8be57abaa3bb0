"""Every model form through every view (issue 26's matrix). Each cell either works, checked by a property
against a computation made here (a render raises its objective; attribution is activation x gradient from a
split made here, by hooking the layer's call in the model's own forward pass, or by a TF1 session for a frozen
graph; neuron groups reconstruct the activations; ...), or is refused in one line that says why. MATRIX is the
table docs/guide/own-model.md shows (test_docs_table_is_the_matrix compares them).

Forms: the built-in InceptionV1 (random weights; its class score needs 224 px, so its cells are slow), a flat
functional model, a Sequential and a functional wrapper of keras.applications.MobileNet (32 px, alpha 0.25), a
.keras file (the Sequential wrapper saved), an .h5 file and a SavedModel folder (the flat model saved / exported),
a Lucid zoo graph (tests/lucid_graphs.py) and a run folder's checkpoints (the functional wrapper fitted with
IterationCheckpoint)."""
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import lucid_graphs as lg
from lucidtl import attribution
from lucidtl.errors import LucidtlError
from lucidtl.optvis import features, objectives, param
from lucidtl.optvis.render import evaluate, render_vis

FORMS = ["inception_v1", "flat", "sequential", "functional", "keras_file", "h5_file", "saved_model", "lucid_graph",
         "run"]
VIEWS = ["render", "render_checkpoints", "attribution", "groups", "caricature", "activation_atlas", "examples",
         "similarity", "study"]
CHECKPOINT_VIEWS = ("render_checkpoints", "study")  # views over a run's checkpoints
# the refusals: (form, view) -> what the one-line message says (every other cell works)
ONE_SET = "holds one set of weights"
REFUSED = {(form, view): ("its weights are constants" if form == "lucid_graph" else ONE_SET)
           for form in FORMS if form != "run" for view in CHECKPOINT_VIEWS}
MATRIX = {(form, view): REFUSED.get((form, view), "works") for form in FORMS for view in VIEWS}
SLOW_FORMS = ("inception_v1",)  # 224 px for its class score; its views are also covered by their own tests
SLOW_VIEWS = ("study",)  # a whole study (every stage) per cell

SIZE, CLASSES = 32, 3
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "guide", "own-model.md")


# ---- the forms ---------------------------------------------------------------------------------------

def flat_model(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(CLASSES, name="logits")(x)
    return keras.Model(inp, keras.layers.Softmax(name="probs")(x), name="flat")


def backbone(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.applications.MobileNet(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3), alpha=0.25)


def wrapped(kind, seed=0):
    """The fine-tuning tutorials' two patterns: Sequential([Input, base, pool, Dense(softmax)]) and a functional
    wrapper calling base(x, training=False) with a separate Softmax layer."""
    base = backbone(seed)
    if kind == "sequential":
        return keras.Sequential([keras.Input((SIZE, SIZE, 3)), base, keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(CLASSES, activation="softmax", name="head")], name="seq")
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inp)
    x = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    x = keras.layers.Dense(CLASSES, name="head")(x)
    return keras.Model(inp, keras.layers.Softmax(name="probs")(x), name="fn")


NESTED = "mobilenet_0.25_32/conv_pw_3_bn"  # unbounded (a ReLU6 saturates in a few steps)
# form -> (layer, input side of the views that need the class score)
LAYERS = {"inception_v1": ("Mixed_3b", 224), "flat": ("conv2", SIZE), "sequential": (NESTED, SIZE),
          "functional": (NESTED, SIZE), "keras_file": (NESTED, SIZE), "h5_file": ("conv2", SIZE),
          "saved_model": ("conv2", SIZE), "lucid_graph": ("mixed", SIZE), "run": (NESTED, SIZE)}


class Form:
    """A form as the user hands it over (`value`: a model object, a path or a run folder) and what the checks
    here need: the model it loads as, a second model of its architecture with other weights, and the
    independent split (`reference`: images -> (activations, activation x gradient of class k's score))."""

    def __init__(self, name, value, model, other, reference, input_range=(0.0, 1.0)):
        self.name, self.value, self.model, self.other, self.reference = name, value, model, other, reference
        self.input_range = input_range
        self.layer, self.score_size = LAYERS[name]


def _layer(model, path):
    for part in path.split("/"):
        model = model.get_layer(part)
    return model


def hooked(model, path, squash=None):
    """images, class k -> (activations at `path`, activation x gradient of class k's logit), from the model's own
    forward pass: the layer's call is wrapped to watch its output, and the final softmax is bypassed (a Softmax
    layer called as the identity, or a Dense's fused softmax swapped for linear)."""
    target = _layer(model, path)

    def run(x, k):
        seen = {}
        call = target.call
        held = _layer(model, squash) if squash else None
        with tf.GradientTape() as tape:
            def watched(*args, **kwargs):
                out = call(*args, **kwargs)
                tape.watch(out)
                seen["a"] = out
                return out

            target.call = watched
            if isinstance(held, keras.layers.Softmax):
                held.call = lambda inputs, *a, **kw: inputs
            elif held is not None:
                activation, held.activation = held.activation, keras.activations.linear
            try:
                score = tf.reduce_sum(model(tf.constant(x), training=False)[:, k])
            finally:
                del target.call
                if isinstance(held, keras.layers.Softmax):
                    del held.call
                elif held is not None:
                    held.activation = activation
        a = seen["a"]
        return np.asarray(a, np.float64), np.asarray(tape.gradient(score, a) * a, np.float64)

    return run


def session_split(graph_def, layer, value_range):
    """A frozen graph split at `layer` by a TF1 session: its tensor and d logits / d tensor."""
    def run(x, k):
        graph = tf.Graph()
        with graph.as_default():
            ph = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
            lo, hi = value_range
            tf.compat.v1.import_graph_def(graph_def, {"images": lo + ph * (hi - lo)}, name="g")
            a = graph.get_tensor_by_name(f"g/{layer}:0")
            logits = graph.get_tensor_by_name("g/logits:0")
            grad = tf.compat.v1.gradients(tf.reduce_sum(logits[:, k]), a)[0]
            with tf.compat.v1.Session(graph=graph) as sess:
                av, gv = sess.run([a, grad], {ph: x})
        return av.astype(np.float64), (av * gv).astype(np.float64)

    return run


def _perturbed(model, seed=1):
    rng = np.random.default_rng(seed)
    for v in model.weights:  # multiplicative: a BatchNorm's variance stays positive
        v.assign(np.asarray(v) * (1 + 0.3 * rng.uniform(-1, 1, v.shape)).astype(np.float32))
    return model


def _images(n=4, size=SIZE, seed=2):
    return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("matrix")


@pytest.fixture(scope="module")
def forms(folder):
    """name -> Form, each built on first use (one per module)."""
    from lucidtl.models import build_model

    _made = {}

    def make(name):
        if name in _made:
            return _made[name]
        if name == "inception_v1":
            net, info = build_model("inception_v1", weights="random", include_top=True)
            other = _perturbed(build_model("inception_v1", weights="random", include_top=True)[0])
            form = Form(name, name, net, other, hooked(net, "Mixed_3b"), tuple(info.input_range))
        elif name == "flat":
            net = flat_model()
            form = Form(name, net, net, flat_model(seed=1), hooked(net, "conv2", "probs"))
        elif name in ("sequential", "functional"):
            net = wrapped(name)
            squash = "head" if name == "sequential" else "probs"
            form = Form(name, net, net, _perturbed(wrapped(name)), hooked(net, NESTED, squash))
        elif name in ("keras_file", "h5_file"):
            ext, src = (".keras", wrapped("sequential")) if name == "keras_file" else (".h5", flat_model())
            path, path2 = str(folder / f"m{ext}"), str(folder / f"m2{ext}")
            src.save(path)
            _perturbed(src).save(path2)
            net, info = build_model(path)
            squash = ("head" if name == "keras_file" else "probs")
            form = Form(name, path, net, build_model(path2)[0], hooked(net, LAYERS[name][0], squash),
                        tuple(info.input_range))
        elif name == "saved_model":
            src = flat_model()
            path = str(folder / "exported")
            src.export(path, verbose=False)
            flat_model(seed=1).export(str(folder / "exported2"), verbose=False)
            net, info = build_model(path)
            form = Form(name, path, net, build_model(str(folder / "exported2"))[0], hooked(src, "conv2", "probs"),
                        tuple(info.input_range))
        elif name == "lucid_graph":
            gd = lg.tiny_saved_graph()
            path = lg.write_pb(gd, folder / "tiny.pb")
            other = build_model(lg.write_pb(lg.tiny_saved_graph(seed=1), folder / "tiny2.pb"))[0]
            net, info = build_model(path)
            form = Form(name, path, net, other, session_split(gd, "mixed", lg.TINY_META["image_value_range"]),
                        tuple(info.input_range))
        else:
            form = _run_form(folder)
        _made[name] = form
        return form

    return make


def _run_form(folder):
    from lucidtl.run import Run
    from lucidtl.train.callbacks import IterationCheckpoint

    net = wrapped("functional")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, SIZE, SIZE, 3)).astype("float32")
    net.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy", run_eagerly=True)
    out = str(folder / "run")
    net.fit(x, keras.utils.to_categorical([0, 1, 2, 0], CLASSES), batch_size=2, epochs=1, verbose=0,
            callbacks=[IterationCheckpoint(out, save_at="0,2", save_format="keras")])
    run = Run(out)
    last, first = run.model_at(2), run.model_at(0)
    return Form("run", out, last, first, hooked(last, NESTED, "probs"))


@pytest.fixture(scope="module")
def dataset(folder):
    """Labelled images as a .npz (the analyses' --dataset), and the same as arrays."""
    images = (np.random.default_rng(5).uniform(size=(6, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    labels = np.arange(6) % CLASSES
    np.savez(folder / "images.npz", images=images, labels=labels)
    return str(folder / "images.npz"), images.astype(np.float32) / 255, labels


def _cells():
    for (form, view), expected in MATRIX.items():
        marks = [pytest.mark.slow] if form in SLOW_FORMS or view in SLOW_VIEWS else []
        yield pytest.param(form, view, expected, marks=marks, id=f"{form}-{view}")


# ---- the cells -----------------------------------------------------------------------------------------

def _data(form, dataset):
    """The dataset's images at the size the form's checks run at (InceptionV1: 224 px), and their labels."""
    x = dataset[1]
    if form.score_size != x.shape[1]:
        x = tf.image.resize(x, (form.score_size, form.score_size)).numpy()
    return x, dataset[2]


def _render(form, dataset):
    obj = objectives.channel(form.layer, 1)
    start, end = render_vis(form.model, obj, param_f=lambda: param.image(SIZE), thresholds=(0, 12), verbose=False,
                            seed=0, input_range=form.input_range, transforms="none")  # at 32 px Lucid's jitter
    # and scaling cost the untransformed image some objective in the first steps: measured without them
    assert evaluate(form.model, obj, end, form.input_range) > evaluate(form.model, obj, start, form.input_range)


def _attribution(form, dataset):
    x = _images(2, form.score_size)
    for k in (0, 2):
        a_want, attr_want = form.reference(x, k)
        a, attr = attribution.Attributor(form.model, form.layer, input_range=form.input_range)(x, [k])
        scale = np.abs(attr_want).max()
        assert scale > 0
        np.testing.assert_allclose(a, a_want, rtol=1e-4, atol=1e-4 * np.abs(a_want).max())
        np.testing.assert_allclose(attr[0], attr_want, rtol=1e-3, atol=1e-3 * scale)


def _groups(form, dataset):
    """As many PCA groups as channels reconstruct the sampled rows, which are the layer's activations."""
    from lucidtl.analysis import groups

    x = _images(2, form.score_size)
    rows = groups.layer_rows(form.model, form.layer, x, positions=0, input_range=form.input_range)
    acts = form.reference(x, 0)[0]
    np.testing.assert_allclose(rows, acts.reshape(-1, acts.shape[-1]), rtol=1e-4, atol=1e-4 * np.abs(acts).max())
    red = groups.reducer(rows.shape[1], "PCA")
    red.fit(rows)
    err, _ = groups.relative_error(red, rows)
    assert err < 1e-4
    icons = groups.render_groups(form.model, form.layer, red.components[:2], size=SIZE, steps=2,
                                 input_range=form.input_range)
    assert icons.shape == (2, SIZE, SIZE, 3) and np.isfinite(icons).all()


def _caricature(form, dataset):
    """The caricature raises its objective (the dot product of its activations with the image's) over its start."""
    from lucidtl.recipes import caricature

    img = _data(form, dataset)[0][0]
    start, end = (caricature.caricature(img, form.model, form.layer, n_steps=n, verbose=False, seed=0,
                                        input_range=form.input_range, transforms=[]) for n in (1, 12))
    obj = objectives.dot_compare(form.layer, batch=1)
    assert np.allclose(start[0], end[0]) and not np.allclose(start[1], end[1])
    assert evaluate(form.model, obj, end, form.input_range) > evaluate(form.model, obj, start, form.input_range)


def _activation_atlas(form, dataset):
    """The atlas' sample and each point's attribution to class 1's score (activation x gradient there)."""
    from lucidtl.recipes.activation_atlas.main import sample_activations

    x = _images(3, form.score_size)
    s = sample_activations(form.model, form.layer, x, number_activations=6, positions_per_image=2,
                           class_logit=1, input_range=form.input_range)
    a, attr = form.reference(x, 1)
    y, xx = s.yx[:, 0], s.yx[:, 1]
    np.testing.assert_allclose(s.activations, a[s.image, y, xx], rtol=1e-4, atol=1e-4 * np.abs(a).max())
    np.testing.assert_allclose(s.attributions, attr[s.image, y, xx].sum(-1), rtol=1e-3,
                               atol=1e-3 * np.abs(attr).max())


def _examples(form, dataset):
    from lucidtl.analysis.examples import dataset_examples

    x, labels = _data(form, dataset)
    result = dataset_examples(form.model, form.layer, [0, 1], (x, labels), k=3,
                              input_range=form.input_range)
    a = form.reference(x, 0)[0]
    for c in (0, 1):
        best = a[..., c].max(axis=(1, 2))
        want = np.lexsort((np.arange(len(best)), -best))[:3]
        assert [e.index for e in result.top[c]] == list(want)


def _cka(a, b):
    a = a.reshape(-1, a.shape[-1]) - a.reshape(-1, a.shape[-1]).mean(0)
    b = b.reshape(-1, b.shape[-1]) - b.reshape(-1, b.shape[-1]).mean(0)
    return np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))


def _similarity(form, dataset):
    """Linear CKA of the layer between two weight sets of the form, against the formula on their activations."""
    from lucidtl.analysis import streaming

    x = _data(form, dataset)[0]
    got = streaming.compare(form.model, form.other, [form.layer], x, input_range=form.input_range)[form.layer]
    fa, fb = (features.feature_model(m, [form.layer]) for m in (form.model, form.other))
    scaled = streaming.scale_input(x, form.input_range)
    a, b = (np.asarray(f(scaled, training=False), np.float64) for f in (fa, fb))
    np.testing.assert_allclose(a, form.reference(x, 0)[0], rtol=1e-4, atol=1e-4 * np.abs(a).max())
    want = _cka(a, b)
    assert 0 < want < 0.999  # two different weight sets
    assert got.metrics["cka"] == pytest.approx(want, rel=1e-4)


def _render_checkpoints(form, dataset, tmp_path):
    """The atlas over the run's checkpoints: each checkpoint's render raises its own channel objective (12 steps
    against 1 step, the same seeds)."""
    from lucidtl.atlas import job
    from lucidtl.imageio import load_png
    from lucidtl.run import Run

    found = {}
    for steps in (1, 12):
        out = str(tmp_path / f"atlas{steps}")
        job.render(runs=form.value, layers=form.layer, channels="1", size=SIZE, steps=steps, batch_size=1,
                   out=out, transforms="none", progress=False)
        found[steps] = {r["iteration"]: load_png(os.path.join(out, r["png"]))[None, ..., :3]
                        for r in job.rendered_records(out, need_files=True)}
    assert sorted(found[12]) == [0, 2]
    obj = objectives.channel(form.layer, 1)
    for iteration, img in found[12].items():
        net = Run(form.value).model_at(iteration)
        assert evaluate(net, obj, img) > evaluate(net, obj, found[1][iteration])


def _study(form, dataset, tmp_path):
    """The study with a dataset: every stage, the building blocks by default, at the nested layer."""
    from lucidtl.analysis import tables
    from lucidtl.study import study

    result = study(runs=form.value, out=str(tmp_path / "study"), layers=form.layer, channels="0:2", size=SIZE,
                   steps=2, batch_size=2, dataset=dataset[0], max_images=6, examples=1, progress=False)
    assert set(result.stages.values()) == {"done"} and "blocks" in result.stages
    name = os.path.basename(form.value)
    rows = tables.read_csv(os.path.join(result.out, "blocks", name, "attribution", "attribution.csv"))
    assert {r["layer"] for r in rows} == {form.layer} and {r["iteration"] for r in rows} == {0, 2}


def _refused(form, view, tmp_path):
    if view == "render_checkpoints":
        from lucidtl.atlas import job

        job.render(runs=form.value, layers=form.layer, channels="1", size=SIZE, steps=2, out=str(tmp_path / "a"),
                   progress=False)
    else:
        from lucidtl.study import study

        study(runs=form.value, out=str(tmp_path / "s"), layers=form.layer, channels="0:2", size=SIZE, steps=2)


CHECKS = {"render": _render, "attribution": _attribution, "groups": _groups, "caricature": _caricature,
          "activation_atlas": _activation_atlas, "examples": _examples, "similarity": _similarity}


@pytest.mark.parametrize("form_name,view,expected", list(_cells()))
def test_cell(forms, dataset, tmp_path, form_name, view, expected):
    form = forms(form_name)
    if expected != "works":
        with pytest.raises(LucidtlError) as e:
            _refused(form, view, tmp_path)
        message = str(e.value)
        assert expected in message and "\n" not in message
        assert not os.listdir(tmp_path)  # refused before anything is written
        return
    if view in CHECKPOINT_VIEWS:
        (_render_checkpoints if view == "render_checkpoints" else _study)(form, dataset, tmp_path)
    else:
        CHECKS[view](form, dataset)


@pytest.mark.parametrize("form_name", ["inception_v1", "keras_file", "saved_model", "lucid_graph"])
def test_refusals_on_the_command_line(forms, tmp_path, capsys, form_name):
    """`python -m lucidtl.study --runs X` and `python -m lucidtl.atlas render --runs X`: one line, exit 2."""
    from conftest import cli_exit
    from lucidtl.atlas.__main__ import main as atlas_main
    from lucidtl.study.__main__ import main as study_main

    value = "inception_v1" if form_name == "inception_v1" else forms(form_name).value  # a name: nothing to build
    for main, argv, view in ((study_main, [], "study"), (atlas_main, ["render"], "render_checkpoints")):
        code, cap = cli_exit(main, argv + ["--runs", value, "--out", str(tmp_path / view)], capsys)
        assert code == 2 and len(cap.err.strip().splitlines()) == 1 and "Traceback" not in cap.err
        assert MATRIX[form_name, view] in cap.err and not os.path.exists(tmp_path / view)


@pytest.mark.slow
def test_activation_atlas_cli_on_a_nested_run(forms, dataset, tmp_path):
    """The whole activation atlas (UMAP layout, icons) of the run's nested layer, with class attribution."""
    pytest.importorskip("umap")
    from lucidtl.analysis import commands

    form = forms("run")
    written = commands.activation_atlas(run=form.value, layer=form.layer, dataset=dataset[0], grid_size=2, size=16,
                                        steps=1, number_activations=24, positions_per_image=4, threshold=0,
                                        n_neighbors=4, class_logit=1, progress=False, out=str(tmp_path / "a"))
    assert written.lines and all(os.path.isfile(f) for f in written.files)


# ---- the docs table ------------------------------------------------------------------------------------

def docs_table(text):
    """The matrix table of the page: {(form, view): "works" | the refusal text}, and its footnotes."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    start = next(i for i, line in enumerate(lines) if "render over checkpoints" in line)
    head = [c.strip() for c in lines[start].strip("|").split("|")]
    cells = {}
    for line in lines[start + 2:]:
        row = [c.strip() for c in line.strip("|").split("|")]
        if len(row) != len(head):
            break
        for view, cell in zip(head[1:], row[1:]):
            cells[row[0], view] = cell
    notes = dict(re.findall(r"^- \((\w+)\): (.+)$", text, re.M))
    return head, cells, notes


FORM_LABELS = {"inception_v1": "built-in InceptionV1", "flat": "flat functional model",
               "sequential": "Sequential wrapper of a keras.applications backbone",
               "functional": "functional wrapper of a keras.applications backbone", "keras_file": "`.keras` file",
               "h5_file": "`.h5` file", "saved_model": "SavedModel folder", "lucid_graph": "Lucid zoo graph (`.pb`)",
               "run": "run folder (its checkpoints)"}
VIEW_LABELS = {"render": "render", "render_checkpoints": "render over checkpoints", "attribution": "attribution",
               "groups": "neuron groups", "caricature": "caricature", "activation_atlas": "activation atlas",
               "examples": "dataset examples", "similarity": "similarity", "study": "study"}


def test_docs_table_is_the_matrix():
    head, cells, notes = docs_table(open(DOCS, encoding="utf-8").read())
    assert head[1:] == [VIEW_LABELS[v] for v in VIEWS]
    assert {row for row, _ in cells} == set(FORM_LABELS.values())
    for (form, view), expected in MATRIX.items():
        cell = cells[FORM_LABELS[form], VIEW_LABELS[view]]
        if expected == "works":
            assert cell == "✓", (form, view)
        else:
            note = re.fullmatch(r"✗ \((\w+)\)", cell)
            assert note and expected in notes[note.group(1)], (form, view, cell)
