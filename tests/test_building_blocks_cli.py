"""`python -m lucidtl.analyze attribution|groups|caricature` on two tiny runs: CSV + PNG + JSON keyed by
run / iteration / layer, resumable; bad input -> one line, exit 2, nothing written."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import build_tiny_cnn, cli_exit
from lucidtl import analyze, attribution
from lucidtl.analysis import tables
from lucidtl.models import save_model
from test_analysis import make_head_run, make_run

NAMES = ["tabby", "beagle", "pug"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A head run (run.json with class names, a 3-class softmax head on the tiny CNN's `fused`), a plain run of
    the tiny CNN (4 logits; --model tiny.keras), 6 labelled images."""
    root = tmp_path_factory.mktemp("blocks")
    head = make_head_run(root / "head", scales=(0.0, 0.3, 0.6))
    settings = json.loads((head / "run.json").read_text())
    (head / "run.json").write_text(json.dumps({**settings, "class_names": NAMES}))
    tiny = build_tiny_cnn()
    save_model(tiny, str(root / "tiny.keras"))
    plain = make_run(root / "plain", tiny, iterations=(0, 10, 30))
    rng = np.random.default_rng(0)
    np.savez(root / "images.npz", images=(rng.uniform(size=(6, 12, 12, 3)) * 255).astype(np.uint8),
             labels=np.array([0, 1, 2, 0, 1, 2]))
    np.save(root / "empty.npy", np.zeros((0, 12, 12, 3), np.float32))
    return root, head, plain


def test_attribution_over_checkpoints(runs, capsys):
    root, head, _ = runs
    out = root / "attr"
    argv = ["attribution", "--run", str(head), "--layers", "fused", "--dataset", str(root / "images.npz"),
            "--indices", "0,4", "--noprogress", "--out", str(out)]
    analyze.main(argv)
    printed = capsys.readouterr().out
    assert "iteration 30" in printed and f"wrote {out}/attribution.csv" in printed
    rows = tables.read_csv(str(out / "attribution.csv"))
    assert len(rows) == 3 * 3 * 5 and {r["run"] for r in rows} == {"head"}
    assert {(r["iteration"], r["class_name"]) for r in rows} == {(i, n) for i in (0, 10, 30) for n in NAMES}
    # the mean over the images is the definition: activation x gradient summed over positions
    from lucidtl.train.run import load_checkpoint

    images = np.load(root / "images.npz")["images"].astype(np.float32) / 255
    net = load_checkpoint(str(head), 10)
    want = attribution.channel_attribution(net, images, "fused", [0, 1, 2]).mean(1)
    for r in rows:
        if r["iteration"] == 10:
            assert r["attribution"] == pytest.approx(want[r["class"], r["channel"]], rel=1e-4, abs=1e-7)
    labelled = attribution.channel_attribution(net, images[[1, 4]], "fused", 1).mean(0)  # beagle's images
    beagle = sorted((r for r in rows if r["iteration"] == 10 and r["class"] == 1), key=lambda r: r["channel"])
    np.testing.assert_allclose([r["attribution_class"] for r in beagle], labelled, rtol=1e-4, atol=1e-7)
    ranks = sorted(beagle, key=lambda r: r["rank"])
    assert [r["attribution"] for r in ranks] == sorted((r["attribution"] for r in beagle), reverse=True)
    summary = json.loads((out / "attribution_summary.json").read_text())
    assert summary["class_names"] == NAMES and summary["top_channels"]["fused|10|1"][0] == ranks[0]["channel"]
    png = Image.open(out / "iter_000030" / "fused_attribution_00004.png")
    assert png.size[0] > 4 * 64 and np.asarray(png).std() > 0
    assert (out / "attribution_fused.png").is_file()
    # a second run resumes: nothing recomputed, the same table
    before = (out / "parts" / "attribution_iter_000010.json").stat().st_mtime_ns
    analyze.main(argv)
    assert "iteration" not in capsys.readouterr().out
    assert (out / "parts" / "attribution_iter_000010.json").stat().st_mtime_ns == before
    assert tables.read_csv(str(out / "attribution.csv")) == rows
    code, captured = cli_exit(analyze.main, argv[:-2] + ["--classes", "pug", "--out", str(out)], capsys)
    assert code == 2 and "other settings (classes)" in captured.err and "--overwrite" in captured.err


def test_integrated_attribution_of_a_plain_run(runs, capsys):
    root, _, plain = runs
    out = root / "ig"
    analyze.main(["attribution", "--run", str(plain), "--model", str(root / "tiny.keras"), "--layers", "mixed",
                  "--classes", "0,3", "--method", "integrated", "--ig-steps", "4", "--checkpoints", "0,30",
                  "--dataset", str(root / "images.npz"), "--indices", "1", "--noprogress", "--out", str(out)])
    rows = tables.read_csv(str(out / "attribution.csv"))
    assert {(r["iteration"], r["class"]) for r in rows} == {(0, 0), (0, 3), (30, 0), (30, 3)} and len(rows) == 40
    assert {r["class_name"] for r in rows} == {0, 3}  # no class names: the index
    assert (out / "iter_000000" / "mixed_attribution_00001.png").is_file()


def test_groups_over_checkpoints(runs, capsys):
    root, _, plain = runs
    out = root / "groups"
    analyze.main(["groups", "--run", str(plain), "--model", str(root / "tiny.keras"), "--layers", "mixed",
                  "--groups", "3", "--positions", "8", "--size", "16", "--steps", "2", "--indices", "2",
                  "--dataset", str(root / "images.npz"), "--noprogress", "--out", str(out)])
    rows = tables.read_csv(str(out / "groups.csv"))
    assert len(rows) == 3 * 2 * 3 and {r["n_rows"] for r in rows} == {6 * 8}
    at = {(r["iteration"], r["mode"], r["group"]): r for r in rows}
    for g in range(3):  # at the first checkpoint, refit = fixed: matched to itself
        assert at[0, "refit", g]["cosine"] == pytest.approx(1, abs=1e-6)
        assert at[0, "refit", g]["error"] == pytest.approx(at[0, "fixed", g]["error"])
    # the first checkpoint's groups describe its own activations best
    assert at[30, "fixed", 0]["error"] > at[0, "fixed", 0]["error"]
    assert at[30, "fixed", 0]["error"] >= at[30, "refit", 0]["error"] - 1e-9
    with np.load(out / "groups_components.npz") as z:
        assert z["mixed|0|fixed"].shape == (3, 10) and np.allclose(z["mixed|30|fixed"], z["mixed|0|fixed"])
    for it in ("iter_000000", "iter_000010", "iter_000030"):
        assert (out / it / "mixed_groups.png").is_file() and (out / it / "mixed_dictionary_00002.png").is_file()
    assert (out / "groups_mixed_error.png").is_file()


def test_caricatures_over_checkpoints(runs, capsys):
    root, head, _ = runs
    out = root / "car"
    analyze.main(["caricature", "--run", str(head), "--layers", "mixed,fused", "--indices", "3", "--steps", "3",
                  "--checkpoints", "0,30", "--dataset", str(root / "images.npz"), "--noprogress", "--out", str(out)])
    rows = tables.read_csv(str(out / "caricature.csv"))
    assert [(r["iteration"], r["layer"], r["image"]) for r in rows] == [
        (0, "mixed", 3), (0, "fused", 3), (30, "mixed", 3), (30, "fused", 3)]
    assert all(-1 <= r["cosine"] <= 1 for r in rows)
    strip = Image.open(out / "caricature_00003_fused.png")
    assert strip.size[0] > 3 * 64  # image + 2 checkpoints
    assert (out / "iter_000030" / "caricature_00003_mixed.png").is_file()


@pytest.mark.parametrize("argv,message", [
    (["attribution", "--run", "HEAD", "--layers", "fused", "--classes", "3"], "class 3 is out of range"),
    (["attribution", "--run", "HEAD", "--layers", "fused", "--classes", "zebra"],
     "'zebra' is not a class of the output; its classes are tabby, beagle, pug"),
    (["attribution", "--run", "HEAD", "--layers", "fused", "--checkpoints", "5"], "no checkpoint at iteration 5"),
    (["attribution", "--run", "HEAD", "--layers", "fused", "--indices", "6"], "beyond the dataset's 6 images"),
    (["attribution", "--run", "HEAD", "--layers", "fused", "--dataset", "EMPTY"], "the dataset yielded no images"),
    (["attribution", "--run", "HEAD", "--layers", "fuse"], "unknown layer 'fuse'"),
    (["groups", "--run", "HEAD", "--layers", "mixed_pre_relu"], "read before its ReLU"),
    (["groups", "--run", "HEAD", "--layers", "branch_b", "--groups", "2"],
     "`_pre_relu` endpoint (taken before its ReLU)"),
    (["groups", "--run", "HEAD", "--layers", "mixed", "--groups", "11"], "more groups than layer mixed's 10 channels"),
    (["groups", "--run", "HEAD", "--layers", "mixed", "--reduction-alg", "NFM"], "unknown reduction_alg 'NFM'"),
    (["caricature", "--run", "HEAD", "--layers", "mixed", "--dataset", "EMPTY"], "the dataset yielded no images"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(runs, capsys, argv, message):
    root, head, _ = runs
    subs = {"HEAD": str(head), "EMPTY": str(root / "empty.npy")}
    argv = [subs.get(a, a) for a in argv]
    if "--dataset" not in argv:
        argv += ["--dataset", str(root / "images.npz")]
    out = root / "bad"
    code, captured = cli_exit(analyze.main, argv + ["--size", "16", "--steps", "1"] * (argv[0] == "groups")
                              + ["--noprogress", "--out", str(out)], capsys)
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert not os.path.exists(out)


def _files(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.relpath(os.path.join(root, f), folder)] = fh.read()
    return out


@pytest.mark.parametrize("job", ["attribution", pytest.param("groups", marks=pytest.mark.slow)])  # one job quick
def test_killed_at_every_write_resumes_to_the_same_files(runs, tmp_path, job):
    """Killed before each file operation (lucidtl.atomic.kill_at), run again: the same files as an
    uninterrupted run (tables, parts, PNGs), no temporary file left."""
    from lucidtl import atomic

    root, _, plain = runs
    common = dict(run=str(plain), model=str(root / "tiny.keras"), checkpoints=[0, 30], dataset=str(root / "images.npz"),
                  indices=(1,), progress=False, max_images=4)
    if job == "attribution":
        def make(out):
            analyze.attribution(layers="mixed", classes="1,2", out=out, **common)
    else:
        def make(out):
            analyze.groups(layers="mixed", groups=2, positions=4, size=8, steps=1, out=out, **common)
    whole = str(tmp_path / "whole")
    with atomic.recording() as log:
        make(whole)
    assert len(log) >= 10
    points = 6 if job == "attribution" else 3  # spread over the job, to stay fast
    for k in sorted(set(np.linspace(1, len(log), points).astype(int))):
        out = str(tmp_path / f"k{k:02d}")
        with atomic.kill_at(k), pytest.raises(atomic.SimulatedKill):
            make(out)
        make(out)
        files = _files(out)
        assert not [f for f in files if os.path.basename(f).startswith(".tmp-")], log[k - 1]
        assert files == _files(whole), f"killed before {log[k - 1]}"
