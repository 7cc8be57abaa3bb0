"""The atlas: plan and shards, resumable rendering (SIGKILL), figures from the manifest, the static site in
headless Chromium. A tiny run (3 checkpoints) and tiny renders keep it fast."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lucidtl import figures, imageio
from lucidtl.atlas import job, plan
from lucidtl.atlas.__main__ import main as atlas_main
from lucidtl.atlas.__main__ import merge_repeated
from lucidtl.atlas.site import site
from lucidtl.errors import InvalidArgumentError, UnknownLayerError
from lucidtl.optvis import objectives
from lucidtl.optvis.render import evaluate
from lucidtl.train import fit
from lucidtl.train import run as runs
from tiny_models import make_image_folder

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# 3 checkpoints x 2 layers x 4 channels, 2 channels a batch: 12 items, 24 images
ATLAS = dict(layers="conv1_relu,conv2_relu", channels="0:4", size=16, steps=6, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("atlas")
    folder = make_image_folder(str(base / "data"))
    out = str(base / "tinyrun")
    fit.train(f"folder:{folder}", iterations=6, save_at="0,3,6", out=out, model="tiny_models.tiny_backbone",
              weights="random", recipe="temporal", image_size=16, batch_size=4, progress=False, tensorboard=False)
    return out


@pytest.fixture(scope="module")
def full(run_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("full") / "atlas")
    result = job.render(runs=run_dir, out=out, **ATLAS)
    assert (result.rendered, result.skipped, result.total) == (24, 0, 24)
    return out


def _records(atlas):
    """The manifest as a set of records without the keys that differ between equal runs."""
    return {json.dumps({k: v for k, v in r.items() if k not in job.VOLATILE}, sort_keys=True)
            for r in job.read_manifest(atlas)}


def _pngs(atlas):
    return {r["png"]: open(os.path.join(atlas, r["png"]), "rb").read() for r in job.read_manifest(atlas)}


def test_plan_is_deterministic_and_shards_partition_it(run_dir):
    ckpts, work, _ = job.plan_work(runs=run_dir, layers="conv1_relu,conv2_relu", channels="all", batch=3)
    assert [c.label for c in ckpts] == [f"tinyrun/iter_{i:06d}" for i in (0, 3, 6)]
    # conv1_relu has 8 channels (3+3+2), conv2_relu 6 (3+3): 5 items a checkpoint
    assert len(work) == 15 and [w.channels for w in work[:5]] == [(0, 1, 2), (3, 4, 5), (6, 7), (0, 1, 2),
                                                                   (3, 4, 5)]
    # the seed depends on (layer, batch) only: the same start at every checkpoint
    assert [w.seed for w in work[:5]] == [w.seed for w in work[5:10]] == [w.seed for w in work[10:]]
    assert len({w.seed for w in work[:5]}) == 5
    for n in (1, 2, 4, 7):
        parts = [plan.shard_items(work, (i, n)) for i in range(n)]
        indices = sorted(w.index for p in parts for w in p)
        assert indices == list(range(15))  # every item once, none twice
        assert all(abs(len(p) - 15 / n) < 1 for p in parts)  # balanced
    assert plan.parse_shard("1/2") == (1, 2) and plan.parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("2/2", "1", "a/b", "0/0", "-1/2"):
        with pytest.raises(InvalidArgumentError, match="write i/n"):
            plan.parse_shard(bad)
    _, work2, _ = job.plan_work(runs=run_dir, layers="conv1_relu,conv2_relu", channels="all", batch=3)
    assert work2 == work
    assert merge_repeated(["render", "--runs", "a", "--size", "16", "--runs=b"]) == ["render", "--size", "16",
                                                                                   "--runs=a,b"]


def test_atlas_pngs_manifest_and_objective_values(run_dir, full):
    records = job.read_manifest(full)
    assert len(records) == 24 and len(_records(full)) == 24
    keys = {(r["iteration"], r["layer"], r["channel"]) for r in records}
    assert keys == {(i, layer, c) for i in (0, 3, 6) for layer in ("conv1_relu", "conv2_relu") for c in range(4)}
    r = next(r for r in records if (r["iteration"], r["layer"], r["channel"]) == (3, "conv2_relu", 3))
    assert r["png"] == "tinyrun/iter_000003/conv2_relu/0003.png" and r["checkpoint"] == "tinyrun/iter_000003"
    assert r["settings"]["size"] == 16 and r["settings"]["steps"] == 6 and r["batch_channels"] == [2, 3]
    assert r["seed"] == plan.batch_seed(0, "conv2_relu", 2)
    # the recorded value is Lucid's channel objective on the saved image, checked through optvis.evaluate
    model = runs.load_checkpoint(run_dir, 3)
    img = imageio.load_png(os.path.join(full, r["png"]))
    assert img.shape == (16, 16, 3)
    want = evaluate(model, objectives.channel("conv2_relu", 3), img[None],
                    input_range=runs.read_settings(run_dir)["input_range"])  # (0, 255) for this builder
    assert r["objective"] == pytest.approx(want, rel=1e-4, abs=1e-6)
    # the same seed at every checkpoint, different weights: the images differ along the run
    a, b = (open(os.path.join(full, f"tinyrun/iter_{i:06d}/conv2_relu/0003.png"), "rb").read() for i in (0, 6))
    assert a != b
    # optimised images are not the grey start: the render did something
    assert np.std(img) > 0.01
    # a rerun with the same settings finds everything done; other settings in the same folder are refused
    again = job.render(runs=run_dir, out=full, **ATLAS)
    assert (again.rendered, again.skipped) == (0, 24)
    # a lost PNG is rendered again (its whole batch), identically, and the manifest keeps one line per image
    before = _pngs(full)
    os.remove(os.path.join(full, r["png"]))
    again = job.render(runs=run_dir, out=full, **ATLAS)
    assert (again.rendered, again.skipped) == (2, 22)
    assert _pngs(full) == before and len(job.read_manifest(full)) == 24
    with pytest.raises(InvalidArgumentError, match="other settings .*steps"):
        job.render(runs=run_dir, out=full, **dict(ATLAS, steps=7))


def test_two_shards_equal_one_full_run(run_dir, full, tmp_path):
    out = str(tmp_path / "sharded")
    a = job.render(runs=run_dir, out=out, shard="0/2", **ATLAS)
    b = job.render(runs=run_dir, out=out, shard="1/2", **ATLAS)
    assert (a.total, b.total) == (12, 12) and a.rendered + b.rendered == 24
    assert sorted(os.listdir(out)) == ["atlas.json", "manifest-0of2.jsonl", "manifest-1of2.jsonl", "tinyrun"]
    assert _records(out) == _records(full)
    assert _pngs(out) == _pngs(full)  # byte for byte


@pytest.mark.slow  # a SIGKILLed atlas process; tests/test_kill_resume.py's killed render stays in the quick loop
def test_killed_job_resumes_to_the_uninterrupted_result(run_dir, full, tmp_path):
    out = str(tmp_path / "killed")
    cmd = [sys.executable, "-m", "lucidtl.atlas", "render", "--runs", run_dir, "--out", out,
           "--layers", ATLAS["layers"], "--channels", ATLAS["channels"], "--size", "16", "--steps", "6",
           "--batch-size", "2", "--progress", "False"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = os.path.join(out, "manifest-0of1.jsonl")
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(manifest) and open(manifest).read().count("\n") >= 2:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(job.read_manifest(out))
    assert 2 <= done < 24, f"the job was not killed mid-way ({done} of 24 lines)"
    result = job.render(runs=run_dir, out=out, **ATLAS)
    assert result.rendered == 24 - done and result.skipped == done
    assert _records(out) == _records(full)
    assert _pngs(out) == _pngs(full)
    leftovers = [f for _, _, files in os.walk(out) for f in files if f.startswith(".tmp-")]
    assert leftovers == []


def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys):
    for args, message in ((["--layers", "conv9_relu"], "unknown layer 'conv9_relu'.*closest: conv"),
                          (["--shard", "2/2"], "cannot read --shard '2/2'"),
                          (["--size", "4"], "--size must be an integer >= 16")):
        with pytest.raises(SystemExit) as e:
            atlas_main(["render", "--runs", run_dir, "--out", str(tmp_path / "x"), "--progress", "False"] + args)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and "\n" not in err and "Traceback" not in err
        assert __import__("re").search(message, err), err
    with pytest.raises(InvalidArgumentError, match="nothing to render"):
        job.render(out=str(tmp_path / "y"))
    with pytest.raises(UnknownLayerError, match="closest"):
        job.plan_work(runs=run_dir, layers="conv1_rel")


def test_figures_come_from_the_atlas_without_rendering(run_dir, full, tmp_path, monkeypatch):
    def no_render(*a, **k):
        raise AssertionError("a model was loaded although the atlas has every cell")

    monkeypatch.setattr("lucidtl.run.load_checkpoint", no_render)
    out = str(tmp_path / "figs")
    path = figures.temporal(run_dir, "conv2_relu:1,conv1_relu:0", atlas=full, out=out, progress=False)
    record = json.load(open(os.path.join(out, "temporal.json")))
    assert record["rows"] == [0, 3, 6] and (record["size"], record["steps"]) == (16, 6)
    assert len(record["from_atlas"]) == 6
    grid = imageio.load_png(path)
    # the cell at (row iter 3, column conv1_relu:0) is exactly the atlas PNG
    cell = imageio.load_png(os.path.join(full, "tinyrun/iter_000003/conv1_relu/0000.png"))
    assert any(np.array_equal(grid[y:y + 16, x:x + 16], cell) for y in range(grid.shape[0] - 15)
               for x in range(grid.shape[1] - 15))
    f7 = figures.figure7(run_dir, layers="conv1_relu,conv2_relu", channels="0:4", atlas=full, out=out, progress=False)
    rec7 = json.load(open(os.path.join(out, "figure7.json")))
    assert rec7["rows"] == [0, 6, 0, 6] and rec7["row_labels"] == ["conv1_relu pre", "conv1_relu post",
                                                                   "conv2_relu pre", "conv2_relu post"]
    assert len(rec7["from_atlas"]) == 16 and os.path.isfile(f7)
    pp = figures.prepost(run_dir, "conv2_relu:2", atlas=full, out=out, progress=False)
    assert json.load(open(os.path.join(out, "prepost.json")))["rows"] == [0, 6] and os.path.isfile(pp)
    # a cell the atlas lacks (channel 5) is rendered: here that needs a model, which is refused
    with pytest.raises(AssertionError, match="a model was loaded"):
        figures.prepost(run_dir, "conv2_relu:5", atlas=full, out=out, progress=False)
    assert figures.FIGURE7_LAYERS == (  # ../shared/spec/paper.md, Figure 7
        "Conv2d_2b_1x1", "Mixed_3b_Branch_3_b_1x1", "Mixed_4b_Branch_1_a_1x1", "Mixed_4c_Branch_2_a_1x1",
        "Mixed_4d_Branch_0_a_1x1", "Mixed_4e_Branch_1_b_3x3", "Mixed_4f_Branch_2_b_3x3", "Mixed_5b_Branch_3_b_1x1")


def _chromium():
    """(playwright's sync API, a Chromium executable) or a skip reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, "playwright is not installed (pip install playwright)"
    exe = os.environ.get("LUCIDTL_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        return None, "no Chromium executable (apt install chromium, or set LUCIDTL_CHROMIUM)"
    return (sync_playwright, exe), None


def test_site_in_headless_chromium(full, tmp_path):
    out = str(tmp_path / "site")
    index = site(atlas=full, out=out)
    assert sorted(os.listdir(out)) == ["app.js", "data.js", "index.html", "style.css"]
    data = json.loads(open(os.path.join(out, "data.js")).read().split("=", 1)[1].rstrip().rstrip(";"))
    assert [c["iteration"] for c in data["checkpoints"]] == [0, 3, 6] and data["layers"] == ["conv1_relu",
                                                                                            "conv2_relu"]
    root = os.path.relpath(full, out).replace(os.sep, "/")
    assert data["root"] == root  # the pages link the atlas's PNGs relatively
    copied = site(atlas=full, out=str(tmp_path / "copied"), copy=True)  # or carry their own copies
    pngs = _pngs(full)
    assert pngs == {k: open(os.path.join(os.path.dirname(copied), "img", k), "rb").read() for k in pngs}
    found, reason = _chromium()
    if found is None:
        pytest.skip(reason)
    sync_playwright, exe = found
    url = "file://" + os.path.abspath(index)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        def shown(selector):
            page.wait_for_function(f"Array.from(document.querySelectorAll('{selector}')).every(i => i.complete)")
            return page.eval_on_selector_all(
                selector, "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")

        page.goto(url)
        assert shown("#main-img") == [[f"{root}/tinyrun/iter_000000/conv1_relu/0000.png", 16]]
        page.keyboard.press("ArrowRight")  # next channel
        page.keyboard.press("ArrowDown")  # next layer
        page.keyboard.press("]")  # next checkpoint
        assert page.evaluate("location.hash") == "#ckpt=tinyrun%2Fiter_000003&layer=conv2_relu&channel=1"
        assert shown("#main-img") == [[f"{root}/tinyrun/iter_000003/conv2_relu/0001.png", 16]]
        assert shown("#temporal img") == [[f"{root}/tinyrun/iter_{i:06d}/conv2_relu/0001.png", 16]
                                          for i in (0, 3, 6)]
        assert shown("#prepost img") == [[f"{root}/tinyrun/iter_{i:06d}/conv2_relu/0001.png", 16]
                                         for i in (0, 6)]
        assert [s for s, _ in shown("#grid img")] == [f"{root}/tinyrun/iter_000003/conv2_relu/{c:04d}.png"
                                                      for c in range(4)]
        assert set(page.eval_on_selector_all("#grid img, #temporal img", "els => els.map(e => e.loading)")) == {
            "lazy"}
        page.click("#grid img[data-channel='3']")
        page.click("#temporal img[data-ckpt='tinyrun/iter_000006']")
        assert shown("#main-img") == [[f"{root}/tinyrun/iter_000006/conv2_relu/0003.png", 16]]
        page.select_option("#layer", "conv1_relu")
        assert page.evaluate("location.hash") == "#ckpt=tinyrun%2Fiter_000006&layer=conv1_relu&channel=3"
        page.screenshot(path=str(tmp_path / "site.png"), full_page=True)
        # a permalink opens the same view in a fresh page
        other = browser.new_page()
        other.goto(url + "#ckpt=tinyrun%2Fiter_000003&layer=conv2_relu&channel=2")
        other.wait_for_function("document.getElementById('main-img').complete")
        assert other.eval_on_selector("#main-img", "e => [e.getAttribute('src'), e.naturalWidth]") == [
            f"{root}/tinyrun/iter_000003/conv2_relu/0002.png", 16]
        assert other.input_value("#channel") == "2"
        browser.close()
    assert errors == []
    assert os.path.getsize(tmp_path / "site.png") > 1000
