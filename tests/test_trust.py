"""Trust measures: path similarity on a trained network, the seed-spread statistic on a planted case, reach
in a render record (checked against an independent computation)."""
import json
import os

import keras
import numpy as np
import pytest

from lucidtl.analysis import trust
from lucidtl.optvis import objectives, param
from lucidtl.optvis.render import Renderer


@pytest.fixture(scope="module")
def digits_net():
    """A tiny CNN trained on scikit-learn's digits (8x8 upsampled to 16x16, one channel); held-out half."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.repeat(np.repeat(d.images / 16.0, 2, 1), 2, 2)[..., None].astype(np.float32)
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.MaxPooling2D(name="pool")(h)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="unit")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(h))
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:1200], d.target[:1200], epochs=8, batch_size=32, verbose=0)
    assert model.evaluate(x[1200:], d.target[1200:], verbose=0)[1] > 0.8
    return model, x[:1200], x[1200:]


def test_path_similarity_natural_top_images_above_random_images(digits_net):
    model, train, test = digits_net
    below = trust.layers_below(model, "unit")
    assert below == ["c1", "c2", "pool"]
    scores_train = trust.unit_scores(model, "unit", range(16), train)
    unit = int(np.argmax(scores_train.std(0)))
    top = train[np.argsort(-scores_train[:, unit])[:trust.TOP_K]]
    scores_test = trust.unit_scores(model, "unit", [unit], test)[:, 0]
    held_out = test[np.argsort(-scores_test)[:trust.TOP_K]]  # natural top images the reference never saw
    floor = trust.random_images(test, 64)
    sims = trust.path_similarity(model, below, held_out, top, floor, reference=train)
    for layer in below:
        assert np.mean(sims[layer]["picture"]) > sims[layer]["floor"] + 0.1, (layer, sims[layer])
    # the independent check of one number: cosine of centred means, by hand
    pool = keras.Model(model.input, model.get_layer("pool").output)
    acts = {k: np.asarray(pool(v)).mean((1, 2)) for k, v in (("top", top), ("held", held_out), ("ref", train))}
    mu = acts["ref"].mean(0)
    want = [np.dot(a - mu, acts["top"].mean(0) - mu) / np.linalg.norm(a - mu) / np.linalg.norm(acts["top"].mean(0) - mu)
            for a in acts["held"]]
    got = trust.path_similarity(model, ["pool"], held_out, top, floor, reference=train)["pool"]["picture"]
    np.testing.assert_allclose(got, want, rtol=1e-4)


def _two_checkpoints():
    """Checkpoint B: unit 0's weights as in A, unit 1's replaced by their negative."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    out = keras.layers.Conv2D(2, 3, padding="same", name="units")(h)
    a = keras.Model(inp, out)
    b = keras.models.clone_model(a)
    b.set_weights(a.get_weights())
    kernel, bias = b.get_layer("units").get_weights()
    kernel[..., 1] = -kernel[..., 1]
    bias[1] = -bias[1]
    b.get_layer("units").set_weights([kernel, bias])
    return a, b


def _pictures(model, unit, seeds):
    return [Renderer(model, objectives.channel("units", unit), param_f=lambda: param.image(16), seed=s,
                     transforms="none").run((40,), verbose=False)[0][0] for s in seeds]


def test_seed_spread_planted_case():
    a, b = _two_checkpoints()
    seeds = (0, 1, 2)
    same = trust.seed_spread(_pictures(a, 0, seeds), _pictures(b, 0, seeds))
    replaced = trust.seed_spread(_pictures(a, 1, seeds), _pictures(b, 1, seeds))
    assert not same["beyond"] and np.isclose(same["change"], 2 / 3 * same["spread"])
    assert replaced["beyond"] and replaced["change"] > replaced["spread"]
    kept, not_beyond = trust.rank_beyond({"units:0": same, "units:1": replaced})
    assert kept == ["units:1"] and not_beyond == 1


def test_seed_spread_needs_matching_seeds():
    from lucidtl.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="K >= 2"):
        trust.seed_spread([np.zeros(3)], [np.zeros(3)])


def test_render_record_reach_and_path_similarity(tmp_path, digits_net):
    from lucidtl import imageio
    from lucidtl.render import render

    model, train, _ = digits_net
    path, data = str(tmp_path / "digits.keras"), str(tmp_path / "digits.npy")
    model.save(path)
    np.save(data, train[:200])
    r = render(model=path, layer="unit", channels="0:2", size=16, steps=12, thresholds=[4], param="maco",
               dataset=data, out=str(tmp_path / "out"), progress=False)
    rec = json.load(open(r.record))
    assert rec["spectrum"].startswith("mean amplitude of 200 images")
    assert rec["alpha_pngs"] == [f"unit_{c:04d}_{t}_alpha.png" for t in (4, 12) for c in (0, 1)]
    sub = keras.Model(model.input, model.get_layer("unit").output)
    assert any(v is not None for v in (rec["trust"]["reach"][str(c)]["12"] for c in (0, 1)))
    for c in (0, 1):
        top = np.asarray(sub(train[:200]))[..., c].mean((1, 2)).max()
        pic = imageio.load_png(str(tmp_path / "out" / f"unit_{c:04d}_12.png"))
        value = np.asarray(sub(pic[None]))[0, ..., c].mean()
        want = value / top if top > 0 else None  # a unit no dataset image drives has no reach
        assert rec["trust"]["reach"][str(c)]["12"] == (pytest.approx(want, rel=1e-4) if want is not None else None)
        assert set(rec["trust"]["path_similarity"][str(c)]) == {"c1", "c2", "pool"}
        alpha = imageio.load_png(str(tmp_path / "out" / f"unit_{c:04d}_12_alpha.png"))
        assert alpha.shape == (16, 16, 1) and alpha.max() == 1.0


def test_atlas_manifest_records_trust(tmp_path, tiny_cnn):
    """atlas render --dataset: each manifest record carries its picture's reach (checked here from the PNG and
    the dataset) and path similarity; without --dataset the records are as before."""
    from lucidtl import imageio
    from lucidtl.atlas import job

    model = tiny_cnn
    arch, weights, data = str(tmp_path / "t.keras"), str(tmp_path / "t.weights.h5"), str(tmp_path / "d.npy")
    model.save(arch)
    model.save_weights(weights)
    real = np.random.default_rng(4).random((30, 16, 16, 3)).astype(np.float32)
    np.save(data, real)
    out = str(tmp_path / "atlas")
    job.render(weights=weights, model=arch, layers="mixed", channels="0:4", size=16, steps=4, batch_size=2,
               dataset=data, max_images=30, progress=False, out=out)
    records = job.read_manifest(out)
    assert len(records) == 4
    sub = keras.Model(model.input, model.get_layer("mixed").output)
    for r in records:
        top = np.asarray(sub(real))[..., r["channel"]].mean((1, 2)).max()
        pic = imageio.load_png(os.path.join(out, r["png"]))
        value = np.asarray(sub(pic[None]))[0, ..., r["channel"]].mean()
        want = value / top if top > 0 else None
        assert r["trust"]["reach"] == (pytest.approx(want, rel=1e-4) if want is not None else None)
        assert set(r["trust"]["path_similarity"]) == {"conv1_relu", "branch_a_relu", "branch_b_relu"}
    plain = str(tmp_path / "plain")
    job.render(weights=weights, model=arch, layers="mixed", channels="0:2", size=16, steps=4, batch_size=2,
               progress=False, out=plain)
    assert all("trust" not in r for r in job.read_manifest(plain))
