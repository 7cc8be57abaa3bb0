"""Aligned strips (lucidtl.recipes.aligned_strips, render --aligned): one optimisation for every checkpoint,
each image seen by its own checkpoint's model; neighbouring pictures correlate more than independent
renders from the same start, and every image still raises its own checkpoint's objective."""
import json
import os

import numpy as np
import pytest

from conftest import build_tiny_cnn, cli_exit
from lucidtl.optvis import features
from lucidtl.recipes import aligned_strips as A

SCALES = (0.0, 0.02, 0.04, 0.06)  # checkpoints that differ little


@pytest.fixture(scope="module")
def models():
    base = build_tiny_cnn()
    rng = np.random.default_rng(3)
    out = []
    for s in SCALES:
        m = build_tiny_cnn()
        m.set_weights([w + s * rng.normal(size=w.shape).astype(w.dtype) for w in base.get_weights()])
        out.append(m)
    return out


def test_each_checkpoint_sees_its_own_images(models):
    model = A.per_checkpoint_model(models, "mixed")
    x = np.random.default_rng(0).uniform(size=(2 * len(models), 12, 12, 3)).astype(np.float32)
    got = np.asarray(features.feature_model(model, ["mixed"])(x, training=False))
    for k, m in enumerate(models):  # image c * K + k goes through checkpoint k
        want = np.asarray(features.feature_model(m, ["mixed"])(x[k::len(models)], training=False))
        np.testing.assert_allclose(got[k::len(models)], want, rtol=1e-5, atol=1e-6)


def test_aligned_strips_line_up_and_raise_their_own_objectives(models):
    channels, steps = [0, 5], 48
    strips = {a: A.render_strips(models, "mixed", channels, size=32, steps=steps, aligned=a)[steps]
              for a in (False, True)}
    r_independent, r_aligned = (A.neighbour_correlation(strips[a]) for a in (False, True))
    assert r_aligned > r_independent + 0.05, (r_aligned, r_independent)
    start = A.strip_param(len(channels), len(models), 32, A.strip_seeds(0, channels))().numpy().reshape(
        len(channels), len(models), 32, 32, 3)
    before = A.own_objectives(models, "mixed", channels, start)
    after = A.own_objectives(models, "mixed", channels, strips[True])
    assert (after > before).all(), (before, after)  # every image climbs its own checkpoint's channel


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from lucidtl.train import fit
    from tiny_models import make_image_folder

    base = tmp_path_factory.mktemp("strips")
    folder = make_image_folder(str(base / "data"))
    out = str(base / "run")
    fit.train(f"folder:{folder}", iterations=2, save_at="0,1,2", out=out, model="tiny_models.tiny_backbone",
              weights="random", recipe="temporal", image_size=16, batch_size=4, seed=0, progress=False,
              tensorboard=False)
    return out


def test_render_aligned_command_line(tiny_run, tmp_path, capsys):
    from lucidtl import atomic
    from lucidtl.render import main

    out = tmp_path / "strips"
    argv = ["--run", tiny_run, "--aligned", "--layer", "conv2_relu", "--channels", "0:2", "--size", "24",
            "--steps", "6", "--batch-size", "6", "--noprogress", "--out", str(out)]
    main(argv)
    assert "wrote 6 PNGs" in capsys.readouterr().out
    record = json.loads((out / "conv2_relu_aligned_render.json").read_text())
    assert record["iterations"] == [0, 1, 2] and record["status"] == "complete"
    assert np.asarray(record["objective_values"]["0-1"]).shape == (2, 3)  # own-checkpoint objective per image
    assert sorted(os.listdir(out)) == sorted(["conv2_relu_aligned_grid.png", "conv2_relu_aligned_render.json"] + [
        f"conv2_relu_{c:04d}_iter_{it:06d}_6.png" for c in (0, 1) for it in (0, 1, 2)])
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    with atomic.recording() as log:  # a rerun finds everything done: only the grid and record again
        main(argv)
    assert len(log) == 4 and {p: (out / p).read_bytes() for p in os.listdir(out)} == before
    for bad, message in ((["--checkpoint", "1"], "drop --checkpoint"), (["--param", "pixel"], "drop --param")):
        code, captured = cli_exit(main, argv + bad, capsys)
        assert code == 2 and message in captured.err
    code, captured = cli_exit(main, argv[2:], capsys)
    assert code == 2 and "pass --run" in captured.err


def test_atlas_render_aligned(tiny_run, tmp_path):
    from lucidtl import imageio
    from lucidtl.atlas import job
    from lucidtl.train import run as runs

    out = str(tmp_path / "atlas")
    args = dict(runs=tiny_run, layers="conv2_relu", channels="0:2", size=24, steps=4, batch_size=2, out=out,
                progress=False, aligned=True)
    result = job.render(**args)
    assert result.rendered == 6 and result.total == 6
    records = job.read_manifest(out)
    assert sorted((r["iteration"], r["channel"]) for r in records) == [(i, c) for i in (0, 1, 2) for c in (0, 1)]
    for r in records:  # the recorded objective: the channel's mean in its own checkpoint's model, on the PNG
        net = runs.load_checkpoint(tiny_run, r["iteration"])
        lo, hi = runs.read_settings(tiny_run)["input_range"]
        img = lo + (hi - lo) * imageio.load_png(os.path.join(out, r["png"]))[None]
        acts = np.asarray(features.feature_model(net, ["conv2_relu"])(img, training=False))
        assert r["objective"] == pytest.approx(float(acts[0, ..., r["channel"]].mean()), rel=1e-5, abs=1e-7)
    assert job.render(**args).rendered == 0  # resumed: nothing left to draw
    assert job.read_settings(out)["aligned"] is True  # (study --aligned: tests/test_activation_atlas_study.py)
