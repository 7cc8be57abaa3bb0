"""Feature accentuation: starts at the seed image; the unit rises while the earlier layer stays within the
regulariser's tolerance of the seed's activations."""
import keras
import numpy as np
import pytest

from lucidtl.errors import InvalidArgumentError
from lucidtl.recipes.accentuation import EPS, accentuate, seeded_image


def test_seeded_image_starts_at_the_seed():
    rng = np.random.default_rng(0)
    for shape in ((12, 16, 3), (11, 13, 3), (10, 10, 1)):
        image = rng.random(shape).astype(np.float32)
        made = np.asarray(seeded_image(image)())[0]
        np.testing.assert_allclose(made, np.clip(image, EPS, 1 - EPS), atol=2e-5)


@pytest.mark.parametrize("penalty", [1.0, 20.0])
def test_unit_rises_within_the_tolerance(tiny_cnn, penalty):
    rng = np.random.default_rng(1)
    image = rng.random((20, 20, 3)).astype(np.float32)
    acc = accentuate(tiny_cnn, "mixed", 3, image, "conv1_relu", penalty=penalty, steps=40, transforms="none", seed=0)
    assert acc.unit_after > acc.unit_before
    assert 0 < acc.distance <= acc.tolerance
    # the distance, independently: relative squared distance of conv1_relu's activations
    sub = keras.Model(tiny_cnn.input, tiny_cnn.get_layer("conv1_relu").output)
    h0, h1 = np.asarray(sub(acc.seed_image[None])), np.asarray(sub(acc.image[None]))
    assert acc.distance == pytest.approx(np.mean((h1 - h0) ** 2) / np.mean(h0 ** 2), rel=1e-3)
    unit = keras.Model(tiny_cnn.input, tiny_cnn.get_layer("mixed").output)
    assert acc.unit_after == pytest.approx(float(np.asarray(unit(acc.image[None]))[..., 3].mean()), rel=1e-4)


def test_a_larger_penalty_keeps_the_image_closer(tiny_cnn):
    image = np.random.default_rng(2).random((20, 20, 3)).astype(np.float32)
    loose = accentuate(tiny_cnn, "mixed", 3, image, "conv1_relu", penalty=0.1, steps=40, transforms="none")
    tight = accentuate(tiny_cnn, "mixed", 3, image, "conv1_relu", penalty=50.0, steps=40, transforms="none")
    assert tight.distance < loose.distance
    with pytest.raises(InvalidArgumentError, match="penalty"):
        accentuate(tiny_cnn, "mixed", 3, image, "conv1_relu", penalty=0)


def test_analyze_accentuation_over_checkpoints(tmp_path, capsys):
    """`analyze accentuation` on a tiny run: one row per checkpoint, image and channel, the tolerance held,
    the strip (image + checkpoints); a checkpoint's row equals accentuate() on that checkpoint's model."""
    from PIL import Image

    from lucidtl import analyze
    from lucidtl.analysis import tables
    from lucidtl.train.run import load_checkpoint
    from test_analysis import make_head_run

    run = make_head_run(tmp_path / "head", scales=(0.0, 0.6))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.uniform(size=(4, 12, 12, 3)).astype(np.float32))
    out = tmp_path / "acc"
    analyze.main(["accentuation", "--run", str(run), "--layer", "mixed", "--channels", "1,3", "--indices", "2",
                  "--steps", "6", "--dataset", str(tmp_path / "images.npy"), "--noprogress", "--out", str(out)])
    assert f"wrote {out}/accentuation.csv" in capsys.readouterr().out
    rows = tables.read_csv(str(out / "accentuation.csv"))
    iterations = sorted({r["iteration"] for r in rows})
    assert [(r["iteration"], r["channel"], r["image"]) for r in rows] == [
        (i, c, 2) for i in iterations for c in (1, 3)]
    # the default earlier layer: the nearest named one the unit is computed from (in graph order)
    assert len(iterations) == 2 and all(r["regularize_layer"] == "branch_b_relu" for r in rows)
    assert all(r["distance"] <= r["tolerance"] + 1e-12 for r in rows)
    last = iterations[-1]
    image = np.load(tmp_path / "images.npy")[2]
    want = accentuate(load_checkpoint(str(run), last), "mixed", 3, image, "branch_b_relu", steps=6)
    got = next(r for r in rows if r["iteration"] == last and r["channel"] == 3)
    assert got["unit_after"] == pytest.approx(want.unit_after, rel=1e-4)
    assert Image.open(out / "accentuation_00002_mixed_3.png").size[0] > 3 * 64  # image + 2 checkpoints
