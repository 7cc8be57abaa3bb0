"""File contracts: modes follow the umask, inputs are checked before the first write, the analysis tools read
an atlas through its manifest, and fixed-input-size models see resized images in the atlas."""
import json
import os
import shutil
import stat

import numpy as np
import pytest
from PIL import Image

from lucidtl import analyze, atomic
from lucidtl.analysis import tables
from lucidtl.atlas import job
from lucidtl.atlas.__main__ import main as atlas_main
from lucidtl.atlas.site import site
from lucidtl.errors import InvalidArgumentError
from lucidtl.render import render
from lucidtl.train import fit
from lucidtl.train import run as runs
from lucidtl.train.__main__ import main as train_main
from conftest import cli_exit
from tiny_models import make_image_folder, tiny_backbone

MODEL = "tiny_models.tiny_backbone"
TINY = dict(model=MODEL, weights="random", recipe="temporal", image_size=16, batch_size=4, progress=False,
            tensorboard=False)
FIXED = 24


def fixed_backbone(include_top=False, weights=None):
    """tiny_backbone with a fixed 24 px input (importable as test_file_contracts.fixed_backbone)."""
    return tiny_backbone(input_shape=(FIXED, FIXED, 3))


def _modes(folder):
    """{relative path: permission bits} of everything below folder, itself included."""
    out = {".": stat.S_IMODE(os.stat(folder).st_mode)}
    for root, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = os.path.join(root, n)
            out[os.path.relpath(p, folder)] = stat.S_IMODE(os.stat(p).st_mode)
    return out


@pytest.fixture
def umask():
    """Set the process umask for one test; restored after."""
    saved = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(saved)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    import keras

    from lucidtl.models import save_weights

    base = tmp_path_factory.mktemp("weights")
    paths = []
    for seed, name in ((1, "a"), (2, "b")):
        keras.utils.set_random_seed(seed)
        paths.append(save_weights(tiny_backbone(), str(base / f"{name}.weights.h5")))
    return paths


@pytest.fixture(scope="module")
def atlas_dir(weight_files, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("atlas") / "atlas")
    job.render(weights=",".join(weight_files), model=MODEL, layers="conv1_relu,conv2_relu", channels="0:3", size=16,
               steps=2, batch_size=3, transforms="none", out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    folder = make_image_folder(str(base / "data"))
    out = str(base / "tinyrun")
    fit.train(f"folder:{folder}", iterations=2, save_at="0,2", out=out, **TINY)
    return out


# ---- modes ---------------------------------------------------------------------------------------------

def test_files_and_folders_follow_the_umask(tmp_path, umask, atlas_dir):
    umask(0o022)
    out = tmp_path / "render"
    render(model=MODEL, weights="random", layer="conv2_relu", channels="0:2", size=16, steps=1, transforms="none",
           out=str(out / "deeper"), progress=False)
    modes = _modes(out)
    assert modes["."] == 0o755 and modes["deeper"] == 0o755
    assert {m for p, m in modes.items() if p not in (".", "deeper")} == {0o644}, modes
    site_dir = tmp_path / "site"
    site(atlas=atlas_dir, out=str(site_dir), copy=True)
    modes = _modes(site_dir)  # readable by a web server running as another user
    assert all(m == (0o755 if os.path.isdir(site_dir / p) else 0o644) for p, m in modes.items()), modes
    assert any(p.endswith(".png") for p in modes) and "index.html" in modes
    umask(0o077)
    private = tmp_path / "private"
    site(atlas=atlas_dir, out=str(private), copy=True)
    assert all(m == (0o700 if os.path.isdir(private / p) else 0o600) for p, m in _modes(private).items())


def test_atomic_helpers_modes_and_counting(tmp_path, umask):
    umask(0o027)
    with atomic.recording() as log:
        atomic.write_text(tmp_path / "a" / "x.txt", "hi")
        atomic.append_text(tmp_path / "a" / "y.jsonl", "{}\n")
        tmp = atomic.make_temp_dir(str(tmp_path / "b"))
    assert [w for w, _ in log] == ["mkdir", "create", "rename", "append", "append", "mkdir", "mkdir"]
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "x.txt").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "y.jsonl").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o750 and stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o750
    with atomic.kill_at(2), pytest.raises(atomic.SimulatedKill):
        atomic.write_text(tmp_path / "c.txt", "never")
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] != []  # a kill leaves the temp file
    atomic.clear_stale(tmp_path, "c.txt")
    assert not (tmp_path / "c.txt").exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


# ---- checks before the first write ---------------------------------------------------------------------

def _atlas_fails(argv, capsys, out, message):
    quiet = ["--progress", "False"] if argv[0] == "render" else []  # site has no --progress
    code, cap = cli_exit(atlas_main, argv + ["--out", str(out)] + quiet, capsys)
    err = cap.err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert message in err, err
    assert not os.path.exists(out), "nothing may be written"
    return err


def test_atlas_render_checks_every_run_file_before_rendering(run_dir, tmp_path, capsys):
    args = ["render", "--layers", "conv2_relu", "--channels", "0:2", "--size", "16", "--steps", "1"]
    for k, (name, damage, message) in enumerate((
            ("checkpoints.json", lambda p: open(p, "w").write("{not json"), "cannot read checkpoint manifest"),
            ("run.json", lambda p: open(p, "w").write("[1, 2"), "cannot read"),
            ("iter_000002.weights.h5", os.remove, "lists iter_000002.weights.h5 (iteration 2) in checkpoints.json, "
                                                  "but the file is missing"),
            ("iter_000002.weights.h5", lambda p: open(p, "wb").write(b"junk"), "cannot read weights file"))):
        broken = str(tmp_path / f"broken{k}")
        shutil.copytree(run_dir, broken)
        damage(os.path.join(broken, name))
        err = _atlas_fails(args + ["--runs", run_dir, "--runs", broken], capsys, tmp_path / "atlas", message)
        assert name in err


def test_atlas_site_refuses_a_corrupt_manifest_and_an_empty_atlas(atlas_dir, tmp_path, capsys):
    broken = str(tmp_path / "broken")
    shutil.copytree(atlas_dir, broken)
    manifest = os.path.join(broken, "manifest-0of1.jsonl")
    lines = open(manifest).read().splitlines(keepends=True)
    lines[2] = '{"checkpoint": "weights/a", "lay\n'
    open(manifest, "w").write("".join(lines))
    err = _atlas_fails(["site", "--atlas", broken], capsys, tmp_path / "site", f"atlas manifest {manifest} line 3 ")
    assert "delete that line" in err
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    shutil.copy(os.path.join(atlas_dir, "atlas.json"), empty)
    _atlas_fails(["site", "--atlas", empty], capsys, tmp_path / "site", "has no rendered images yet")


def test_train_names_an_undecodable_image_before_writing_and_can_skip_it(tmp_path, capsys):
    folder = make_image_folder(str(tmp_path / "data"))
    bad = os.path.join(folder, "class_1", "broken.jpg")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(bad)
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])  # a truncated JPEG
    out = tmp_path / "run"
    argv = ["--dataset", f"folder:{folder}", "--model", MODEL, "--weights", "random", "--recipe", "temporal",
            "--iterations", "1", "--save-at", "0,1", "--image-size", "16", "--batch-size", "4",
            "--tensorboard", "False", "--progress", "False", "--out", str(out)]
    code, cap = cli_exit(train_main, argv, capsys)
    err = cap.err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert f"cannot decode image {bad}" in err and "--skip-bad-images" in err
    assert not out.exists()
    result = fit.train(f"folder:{folder}", iterations=1, save_at="0,1", out=str(out), skip_bad_images=True, **TINY)
    assert [r["iteration"] for r in result.checkpoints] == [0, 1]
    settings = runs.read_settings(str(out))
    assert settings["skipped_images"] == [bad] and "skipped 1 undecodable image(s)" in capsys.readouterr().out


def test_train_resumes_a_run_killed_during_its_first_run_json(tmp_path):
    folder = make_image_folder(str(tmp_path / "data"))
    out = tmp_path / "run"
    out.mkdir()
    (out / ".tmp-abc123-run.json").write_text('{"dataset": "fol')  # what a kill mid-write leaves
    fit.train(f"folder:{folder}", iterations=1, save_at="0,1", out=str(out), **TINY)
    assert runs.read_settings(str(out))["complete"]
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    (out / "notes.txt").write_text("mine")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InvalidArgumentError, match="is not empty and holds no training run"):
        fit.train(f"folder:{folder}", iterations=1, save_at="0,1", out=str(other), **TINY)


# ---- the atlas read through its manifest ---------------------------------------------------------------

def test_scale_and_redundancy_read_an_atlas_through_its_manifest(atlas_dir, tmp_path, capsys):
    out = tmp_path / "analysis"
    analyze.main(["scale", "--images", atlas_dir, "--out", str(out)])
    layers = tables.read_csv(str(out / "scale_layers.csv"))
    # one group per (weights file, layer), 3 channels each: never pooled across layers or checkpoints
    assert sorted((r["run"], r["layer"], r["n"]) for r in layers) == [
        ("weights/a", "conv1_relu", 3), ("weights/a", "conv2_relu", 3), ("weights/b", "conv1_relu", 3),
        ("weights/b", "conv2_relu", 3)]
    rows = tables.read_csv(str(out / "scale.csv"))
    assert sorted({(r["layer"], r["channel"]) for r in rows}) == [(la, c) for la in ("conv1_relu", "conv2_relu")
                                                                   for c in range(3)]
    analyze.main(["redundancy", "--images", atlas_dir, "--out", str(out)])
    red = tables.read_csv(str(out / "redundancy.csv"))
    assert sorted((r["run"], r["layer"], r["channels"]) for r in red) == [(la[0], la[1], 3) for la in (
        ("weights/a", "conv1_relu"), ("weights/a", "conv2_relu"), ("weights/b", "conv1_relu"),
        ("weights/b", "conv2_relu"))]
    capsys.readouterr()
    unknown = tmp_path / "pictures"
    unknown.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(unknown / "holiday.png")
    for command in ("scale", "redundancy"):
        code, cap = cli_exit(analyze.main, [command, "--images", str(unknown), "--out", str(tmp_path / "x")], capsys)
        err = cap.err.strip()
        assert code == 2 and "\n" not in err and "cannot tell the layer and channel of" in err and "holiday.png" in err
        assert not (tmp_path / "x").exists()


def test_atlas_of_a_fixed_input_size_model_resizes_as_the_render_does(tmp_path):
    import tensorflow as tf

    from lucidtl.imageio import load_png
    from lucidtl.models import build_model, save_weights
    from lucidtl.optvis import features

    weights = save_weights(fixed_backbone(), str(tmp_path / "fixed.weights.h5"))
    out = str(tmp_path / "atlas")
    result = job.render(weights=weights, model="test_file_contracts.fixed_backbone", layers="conv2_relu",
                        channels="0:2", size=16, steps=2, batch_size=2, transforms="none", out=out, progress=False)
    assert result.rendered == 2
    net, info = build_model("test_file_contracts.fixed_backbone", weights=weights)
    lo, hi = info.input_range  # (0, 255) assumed for a builder
    for r in job.read_manifest(out):
        image = load_png(os.path.join(out, r["png"]))
        assert image.shape == (16, 16, 3)
        x = tf.image.resize(lo + (hi - lo) * image[None], (FIXED, FIXED))
        acts = features.feature_model(net, ["conv2_relu"])(x)
        assert r["objective"] == pytest.approx(float(np.mean(np.asarray(acts)[0, ..., r["channel"]])), rel=1e-5)
    assert json.load(open(os.path.join(out, "atlas.json")))["size"] == 16
