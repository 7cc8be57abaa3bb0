"""lucidtl.study: two tiny runs -> a study (atlas, similarity, examples, scale, site); values against the
metrics' definitions computed here from activations, resume after an interruption inside every stage, shards,
bad input, and the site in headless Chromium (search, rankings, Back/Forward, permalinks, images, console)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lucidtl import imageio
from lucidtl.analysis import metrics
from lucidtl.analysis.spatial import dominant_period
from lucidtl.atlas import job
from lucidtl.errors import InvalidArgumentError
from lucidtl.optvis import features
from lucidtl.study import pipeline as P
from lucidtl.study import site
from lucidtl.study import study
from lucidtl.study.__main__ import main as study_main
from lucidtl.train import run as runs
from conftest import cli_exit
from test_atlas import _chromium

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
from bench_study import make_synthetic_study  # noqa: E402

# 2 runs x 3 checkpoints x 2 layers x 4 channels = 48 renders (one batch of 4 per layer and checkpoint)
STUDY = dict(layers="conv1_relu,conv2_relu", channels="0:4", size=16, steps=4, batch_size=4, examples=3,
             blocks=0, progress=False)  # the building blocks: test_building_blocks_pages
ITERS = (0, 2, 4)


class Killed(BaseException):
    """Stands in for a kill: nothing in the library catches it."""


@pytest.fixture(scope="module")
def pair(tiny_runs):
    """The session's two tiny runs ta, tb (conftest.tiny_runs) and their image folder."""
    return tiny_runs


@pytest.fixture(scope="module")
def full(pair, tmp_path_factory):
    (a, b), folder = pair
    out = str(tmp_path_factory.mktemp("full") / "S")
    result = study(runs=f"{a},{b}", out=out, dataset=f"folder:{folder}", **STUDY)
    assert result.site == os.path.join(out, "index.html") and set(result.stages.values()) == {"done"}
    return out


def _acts(run, iteration, layer, images):
    net = runs.load_checkpoint(run, iteration)
    lo, hi = runs.read_settings(run)["input_range"]
    return np.asarray(features.feature_model(net, [layer])(lo + (hi - lo) * images, training=False), np.float64)


def test_similarity_examples_scale_against_definitions(pair, full):
    (a, b), folder = pair
    images, labels, specs = P.probe_images(f"folder:{folder}", [P._runs(a)[0]], 256, 4)
    assert images.shape == (18, 16, 16, 3) and specs == [f"folder:{folder}"]
    rec0 = P.read_json(P.similarity_path(full, "ta", 0))
    for layer in ("conv1_relu", "conv2_relu"):  # a checkpoint against itself: distance 0, CKA 1 (the spec)
        s = rec0["layers"][layer]
        assert s["cka"] == pytest.approx(1) and s["procrustes_norm"] == pytest.approx(0, abs=1e-6)
        assert s["channels"]["cka"] == pytest.approx([1] * 4) and s["channels"]["procrustes_norm"] == pytest.approx(
            [0] * 4, abs=1e-6)
    # iteration 4 vs 0: linear CKA of the [N*H*W, C] matrices, and the per-channel map CKA averaged over images
    x0, x4 = _acts(a, 0, "conv2_relu", images), _acts(a, 4, "conv2_relu", images)
    s = P.read_json(P.similarity_path(full, "ta", 4))["layers"]["conv2_relu"]
    assert s["cka"] == pytest.approx(metrics.linear_cka(x0.reshape(-1, 6), x4.reshape(-1, 6)), abs=2e-6)
    assert s["procrustes_norm"] == pytest.approx(
        metrics.procrustes_normalized(x0.reshape(-1, 6), x4.reshape(-1, 6)), abs=2e-6)
    assert 0 < s["procrustes_norm"] and s["cka"] < 1  # training moved it
    for c in range(4):
        cka = [metrics.map_metrics(x0[i, ..., c], x4[i, ..., c])[1] for i in range(len(images))]
        assert s["channels"]["cka"][c] == pytest.approx(np.nanmean(cka), abs=2e-6)
    # between runs at the same iteration
    y2, x2 = _acts(b, 2, "conv1_relu", images), _acts(a, 2, "conv1_relu", images)
    between = P.read_json(P.between_path(full, "ta", "tb", 2))["layers"]["conv1_relu"]
    assert between["cka"] == pytest.approx(metrics.linear_cka(x2.reshape(-1, 8), y2.reshape(-1, 8)), abs=2e-6)
    # dataset examples: the images with the largest maximum activation, best first, and a 2-row strip
    ex = P.read_json(P.examples_path(full, "tb", 4, "conv2_relu"))
    y4 = _acts(b, 4, "conv2_relu", images)
    for c in range(4):
        score = y4[..., c].max(axis=(1, 2))
        want = sorted(range(len(images)), key=lambda i: (-score[i], i))[:3]
        assert [e[0] for e in ex["channels"][str(c)]] == want
        assert [e[2] for e in ex["channels"][str(c)]] == [int(labels[i]) for i in want]
    strip = imageio.load_png(os.path.join(full, P.example_png("tb", 4, "conv2_relu", 1)))
    assert strip.shape == (2 * P.THUMB + 2, 3 * P.THUMB + 4, 3)
    # spatial scale and objective values in the site's data are the renders' own
    records = {(r["run"], r["iteration"], r["layer"], r["channel"]): r for r in job.read_manifest(
        os.path.join(full, "atlas"))}
    assert len(records) == 48
    data = _layer_data(full, "conv2_relu")
    r = records["tb", 2, "conv2_relu", 3]
    assert data["runs"]["tb"]["objective"][1][3] == pytest.approx(r["objective"], abs=1e-5)
    assert data["runs"]["tb"]["period"][1][3] == pytest.approx(
        dominant_period(imageio.load_png(os.path.join(full, "atlas", r["png"]))))
    assert data["runs"]["ta"]["procrustes_norm"][2] == s["channels"]["procrustes_norm"]
    assert data["runs"]["ta"]["examples"][2] == [3, 3, 3, 3]
    index = _index(full)
    assert [r["iterations"] for r in index["runs"]] == [list(ITERS)] * 2
    assert index["layers"][1]["curves"]["ta"]["cka"][2] == s["cka"]


def _index(out):
    return json.loads(open(os.path.join(out, "data", "index.js")).read().split("=", 1)[1].strip().rstrip(";"))


def _layer_data(out, layer):
    entry = next(e for e in _index(out)["layers"] if e["name"] == layer)
    text = open(os.path.join(out, entry["file"])).read().split("\n")[1]
    return json.loads(text.split("=", 1)[1].strip().rstrip(";"))


def _counting(monkeypatch, module, name, fail_at=None):
    """Count calls of module.name; the fail_at-th call raises Killed (before doing anything)."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if fail_at is not None and len(calls) >= fail_at:
            raise Killed(f"{name} call {len(calls)}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _files(out, sub):
    root = os.path.join(out, sub)
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, fs in os.walk(root) for f in fs}


def test_interrupted_in_every_stage_resumes_without_redoing_work(pair, full, tmp_path):
    from lucidtl.analysis import examples, spatial, streaming
    from lucidtl.optvis import render

    (a, b), folder = pair
    out = str(tmp_path / "S")
    args = dict(runs=f"{a},{b}", out=out, dataset=f"folder:{folder}", **STUDY)
    marks = lambda: sorted(os.listdir(os.path.join(out, "stages")))  # noqa: E731
    with pytest.MonkeyPatch.context() as m:  # 1: killed in the similarity stage, after 2 of its 9 items
        rendered = _counting(m, render, "render_channels")
        compared = _counting(m, streaming, "compare", fail_at=3)
        with pytest.raises(Killed):
            study(**args)
    assert len(rendered) == 12 and marks() == ["atlas-0of1.json"]
    assert len(os.listdir(os.path.join(out, "similarity", "ta"))) == 2
    with pytest.MonkeyPatch.context() as m:  # 2: the atlas is not touched; killed in examples after 3 of 12
        rendered = _counting(m, render, "render_channels", fail_at=1)
        compared = _counting(m, streaming, "compare")
        found = _counting(m, examples, "dataset_examples", fail_at=4)
        with pytest.raises(Killed):
            study(**args)
    assert (len(rendered), len(compared), len(found)) == (0, 7, 4)
    assert marks() == ["atlas-0of1.json", "similarity-0of1.json"]
    with pytest.MonkeyPatch.context() as m:  # 3: killed in the scale stage after one checkpoint's 8 renders
        compared = _counting(m, streaming, "compare", fail_at=1)
        found = _counting(m, examples, "dataset_examples")
        periods = _counting(m, spatial, "dominant_period", fail_at=10)
        with pytest.raises(Killed):
            study(**args)
    assert (len(compared), len(found)) == (0, 9) and "scale.json" not in marks()
    assert not os.path.exists(os.path.join(out, "index.html"))
    with pytest.MonkeyPatch.context() as m:  # 4: killed while writing the site
        found = _counting(m, examples, "dataset_examples", fail_at=1)
        periods = _counting(m, spatial, "dominant_period")
        built = _counting(m, site, "build", fail_at=1)
        with pytest.raises(Killed):
            study(**args)
    assert (len(found), len(periods), len(built)) == (0, 40, 1) and "scale.json" in marks()
    result = study(**args)  # 5: finishes
    assert result.stages == {"atlas": "skipped", "similarity": "skipped", "examples": "skipped", "scale": "skipped",
                             "trust": "skipped", "site": "done"}
    with pytest.MonkeyPatch.context() as m:  # 6: nothing left to do: no stage runs, not even the images' read
        for module, name in ((render, "render_channels"), (streaming, "compare"), (examples, "dataset_examples"),
                             (spatial, "dominant_period"), (site, "build"), (P, "probe_images")):
            _counting(m, module, name, fail_at=1)
        again = study(**args)
    assert set(again.stages.values()) == {"skipped"} and again.site == result.site
    # the interrupted study equals the uninterrupted one, file for file
    for sub in ("similarity", "examples", "scale", "data"):
        assert _files(out, sub) == _files(full, sub), sub
    leftovers = [f for _, _, fs in os.walk(out) for f in fs if f.startswith(".tmp-")]
    assert leftovers == []


def test_trust_stage_checks_the_most_changed_units_against_seed_noise(pair, full):
    """OUT/trust/<run>/<layer>.json: the most-changed channels (by the similarity stage's Procrustes distance of
    the last checkpoint), each drawn with 3 seeds at the first and last checkpoint; the layer data carries them."""
    from lucidtl.analysis import trust

    (a, _), _ = pair
    found = json.load(open(os.path.join(full, "trust", "ta", "conv2_relu.json")))
    assert found["iterations"] == [0, 4] and found["seeds"] == 3
    sim = json.load(open(os.path.join(full, "similarity", "ta", "iter_000004.json")))
    change = sim["layers"]["conv2_relu"]["channels"]["procrustes_norm"]
    want = sorted(range(4), key=lambda j: (-(change[j] if change[j] is not None else -1.0), j))
    assert found["ranked"] == want and sorted(found["units"]) == ["0", "1", "2", "3"]  # 4 < TRUST_UNITS
    for unit in found["units"].values():
        assert unit["beyond"] == (unit["change"] > unit["spread"]) and unit["seeds"] == 3
        assert set(unit["path_similarity"]) == set(trust.layers_below(runs.load_checkpoint(a, 4), "conv2_relu"))
    # the first channel's pictures redrawn here (the same batch, the same seeds): the same change and spread
    from lucidtl.optvis.render import render_channels

    units = [("conv2_relu", c) for c in found["ranked"]]
    nets = [runs.load_checkpoint(a, i) for i in (0, 4)]
    lo_hi = runs.read_settings(a)["input_range"]  # the tiny runs' models take 0..255
    pics = [[render_channels(n, units, size=16, steps=4, seed=s * 1000, input_range=lo_hi)[0] for s in range(3)]
            for n in nets]
    got = trust.seed_spread(*pics)
    assert got["spread"] == pytest.approx(found["units"][str(units[0][1])]["spread"], rel=1e-5)
    assert got["change"] == pytest.approx(found["units"][str(units[0][1])]["change"], rel=1e-5)
    layer_js = open(os.path.join(full, "data", "layer-001.js")).read()
    assert '"trust":' in layer_js and '"beyond":' in layer_js


def _similarity_files(out):
    return [f for _, _, fs in os.walk(os.path.join(out, "similarity")) for f in fs if not f.startswith(".tmp-")]


@pytest.mark.slow  # a SIGKILLed study process; the interrupted-study test above stays in the quick loop
def test_two_shards_one_sigkilled_share_the_work_and_the_last_builds_the_site(pair, full, tmp_path):
    """Shard 0/2 as `python -m lucidtl.study`, SIGKILLed inside its similarity stage, rerun (no render again,
    only its missing comparisons), then shard 1/2, which finds every shard done and writes the site."""
    from lucidtl.analysis import streaming
    from lucidtl.optvis import render

    (a, b), _ = pair
    out = str(tmp_path / "S")
    args = dict(STUDY, runs=f"{a},{b}", out=out, layers="conv2_relu")  # no --dataset: the runs' own images
    cmd = [sys.executable, "-m", "lucidtl.study", "--runs", f"{a},{b}", "--out", out, "--layers", "conv2_relu",
           "--channels", "0:4", "--size", "16", "--steps", "4", "--batch-size", "4", "--examples", "3",
           "--shard", "0/2", "--progress", "False"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.path.dirname(HERE),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if os.path.isdir(os.path.join(out, "similarity")) and _similarity_files(out):
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(_similarity_files(out))
    assert sorted(os.listdir(os.path.join(out, "stages"))) == ["atlas-0of2.json"], "not killed in similarity"
    assert 1 <= done < 5  # shard 0 has items 0, 2, 4, 6, 8 of the 9
    with pytest.MonkeyPatch.context() as m:
        rendered = _counting(m, render, "render_channels", fail_at=1)
        compared = _counting(m, streaming, "compare")
        first = study(shard="0/2", **args)
    assert len(rendered) == 0 and len(compared) == 5 - done and len(_similarity_files(out)) == 5
    assert first.site is None and first.stages == {"atlas": "skipped", "similarity": "done", "site": "waiting"}
    assert "not built yet" in str(first)
    second = study(shard="1/2", **args)
    assert second.site and second.stages == {"atlas": "done", "similarity": "done", "scale": "done", "trust": "done",
                                                 "site": "done"}
    assert len(job.read_manifest(os.path.join(out, "atlas"))) == 24
    for run in ("ta", "tb"):  # the runs trained on the folder given to the full study: the same numbers
        for it in ITERS:
            got = P.read_json(P.similarity_path(out, run, it))["layers"]["conv2_relu"]
            assert got == P.read_json(P.similarity_path(full, run, it))["layers"]["conv2_relu"]
            if run == "ta":
                got = P.read_json(P.between_path(out, "ta", "tb", it))["layers"]["conv2_relu"]
                assert got == P.read_json(P.between_path(full, "ta", "tb", it))["layers"]["conv2_relu"]
    assert _layer_data(out, "conv2_relu")["runs"]["tb"]["procrustes_norm"] == _layer_data(
        full, "conv2_relu")["runs"]["tb"]["procrustes_norm"]
    assert [f for _, _, fs in os.walk(out) for f in fs if f.startswith(".tmp-")] == []


def test_bad_input_is_one_line_exit_2_and_writes_nothing(pair, full, tmp_path, capsys):
    (a, b), folder = pair
    out = str(tmp_path / "never")
    base = ["--runs", f"{a},{b}", "--out", out, "--layers", "conv2_relu", "--progress", "False"]
    cases = [(["--runs", str(tmp_path / "nope"), "--out", out], "run folder .*nope does not exist"),
             (base + ["--channels", "9"], "channel 9 is out of range: the layer has 6 channels"),
             (base + ["--layers", "conv2_rel"], "unknown layer 'conv2_rel'.*closest: conv2_relu"),
             (base + ["--shard", "2/2"], "cannot read --shard '2/2'"),
             (base + ["--size", "4"], "--size must be an integer >= 16"),
             (base + ["--dataset", "folder:" + str(tmp_path / "nodata")], "image folder .*nodata does not exist"),
             (base + ["--dataset", "mnist"], "unknown dataset 'mnist'"),
             (base + ["--runs", f"{a},{a}"], "two runs share the folder name 'ta'")]
    for argv, pattern in cases:
        code, captured = cli_exit(study_main, argv, capsys)
        err = captured.err.strip()
        assert code == 2 and "\n" not in err and "Traceback" not in err, err
        assert __import__("re").search(pattern, err), err
        assert not os.path.exists(out)
    with pytest.raises(InvalidArgumentError, match="other settings .*steps.*--overwrite"):
        study(**dict(STUDY, runs=f"{a},{b}", out=full, dataset=f"folder:{folder}", steps=5))
    with pytest.raises(InvalidArgumentError, match="no runs; pass --runs"):
        study(out=out)
    other = tmp_path / "other"  # a folder that is not a study is never written into, nor deleted
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match="not empty and holds no study"):
        study(**dict(STUDY, runs=f"{a},{b}", out=str(other), layers="conv2_relu", overwrite=True))
    assert os.listdir(other) == ["keep.txt"]


def _loaded(page):
    """Scroll everything into view (thumbnails are lazy), then every image's [src, naturalWidth]."""
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.evaluate("window.scrollTo(0, 0)")
    return page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")


def _at(page, address):
    page.wait_for_function("h => document.body.getAttribute('data-drawn') === h", arg=address)


def test_site_in_headless_chromium(full, tmp_path):
    found, reason = _chromium()
    if found is None:
        pytest.skip(reason)
    sync_playwright, exe = found
    synthetic = str(tmp_path / "synthetic")  # InceptionV1 names at full width: 768 channels x 2 runs x 3
    make_synthetic_study(synthetic, [("Mixed_3b", 256), ("Mixed_4c", 512)], runs=("celeba", "flowers"),
                         iterations=(0, 30, 3000))
    site.build(synthetic)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    url = "file://" + os.path.join(full, "index.html")
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        # a permalink to a unit: both runs' filmstrips and examples, and its curves
        page.goto(url + "#/unit/ta/conv2_relu/1")
        _at(page, "#/unit/ta/conv2_relu/1")
        assert page.text_content("#unit-title").startswith("ta / conv2_relu : 1")
        assert page.eval_on_selector_all("section.run", "els => els.map(e => e.dataset.run)") == ["ta", "tb"]
        images = _loaded(page)
        want = [f"{kind}/{run}/iter_{it:06d}/conv2_relu/0001.png" for run in ("ta", "tb") for it in ITERS
                for kind in ("atlas", "examples")]
        assert [s for s, _ in images] == want
        assert all(w > 0 for _, w in images)
        assert page.eval_on_selector_all("img", "els => els.map(e => e.loading)") == ["lazy"] * 12
        assert page.eval_on_selector_all("svg.chart", "els => els.length") == 4
        paths = page.eval_on_selector_all("svg.chart path", "els => els.map(e => e.getAttribute('d'))")
        assert len(paths) == 3 + 2 + 2 + 2 and all(d.count("L") == 2 for d in paths)  # 3 checkpoints a curve
        page.screenshot(path=str(shots / "unit.png"), full_page=True)
        # keyboard: next channel, next run, layer up; Back/Forward walk those units
        visited = ["#/unit/ta/conv2_relu/2", "#/unit/tb/conv2_relu/2", "#/unit/tb/conv1_relu/2"]
        for key, address in zip(("ArrowRight", "]", "ArrowUp"), visited):
            page.keyboard.press(key)
            _at(page, address)
        for address in ["#/unit/tb/conv2_relu/2", "#/unit/ta/conv2_relu/2", "#/unit/ta/conv2_relu/1"]:
            page.go_back()
            _at(page, address)
        page.go_forward()
        _at(page, "#/unit/ta/conv2_relu/2")
        # search: a full name, a name's tail, a run's layer, a channel of the layer on screen, and nonsense
        for text, address in (("conv1_relu:3", "#/unit/ta/conv1_relu/3"), ("2_relu:0", "#/unit/ta/conv2_relu/0"),
                              ("tb/conv1_relu", "#/layer/conv1_relu/tb"), ("3", "#/unit/tb/conv1_relu/3")):
            page.fill("#search", text)
            page.press("#search", "Enter")
            _at(page, address)
        page.fill("#search", "zzz:1")
        page.press("#search", "Enter")
        assert "no layer matches" in page.text_content("#status")
        # the layer page: channels ranked by how much they changed (Procrustes distance at the last checkpoint)
        page.goto(url + "#/layer/conv2_relu/ta")
        _at(page, "#/layer/conv2_relu/ta")
        last = P.read_json(P.similarity_path(full, "ta", 4))["layers"]["conv2_relu"]["channels"]["procrustes_norm"]
        ranked = sorted(range(4), key=lambda c: -last[c])
        tiles = page.eval_on_selector_all("#ranked a.tile", "els => els.map(e => [e.dataset.channel, "
                                          "e.querySelector('.chan').textContent])")
        assert tiles == [[str(c), f"#{c}"] for c in ranked]
        assert all(w > 0 for _, w in _loaded(page))
        page.screenshot(path=str(shots / "layer.png"), full_page=True)
        page.click(f"#ranked a.tile[data-channel='{ranked[0]}']")
        _at(page, f"#/unit/ta/conv2_relu/{ranked[0]}")
        page.go_back()
        _at(page, "#/layer/conv2_relu/ta")
        page.goto(url + "#/")
        _at(page, "#/")
        assert page.eval_on_selector_all("table.layers a", "els => els.map(e => e.textContent)") == [
            "conv1_relu", "conv2_relu"]
        page.screenshot(path=str(shots / "home.png"), full_page=True)
        # InceptionV1 names: `4c:447` and `Mixed_3b:7` find their units; the 512-channel page loads lazily
        big = "file://" + os.path.join(synthetic, "index.html")
        page.goto(big + "#/")
        _at(page, "#/")
        for text, address in (("4c:447", "#/unit/celeba/Mixed_4c/447"), ("Mixed_3b:7", "#/unit/celeba/Mixed_3b/7"),
                              ("mixed_4c", "#/layer/Mixed_4c/celeba")):
            page.fill("#search", text)
            page.press("#search", "Enter")
            _at(page, address)
        page.wait_for_load_state("load")
        counts = page.evaluate("[document.images.length, Array.from(document.images).filter(i => i.complete && "
                               "i.naturalWidth > 0).length]")
        assert counts[0] == 1024 and counts[1] < counts[0]  # 512 tiles x 2; those far below are not loaded yet
        page.screenshot(path=str(shots / "synthetic-layer.png"))
        browser.close()
    assert errors == []
    assert all(os.path.getsize(shots / f) > 5000 for f in os.listdir(shots))
    print(f"screenshots in {shots}")


def test_blocks_default_on_with_a_dataset_and_old_studies_resume(pair, full, tmp_path):
    """--blocks left out: 2 images (P.BLOCK_IMAGES) with --dataset, 0 without; a study made before the default
    changed (blocks 0, or no "blocks" key at all) resumes as it was made, with every stage skipped."""
    import shutil

    (a, b), folder = pair
    assert P._default_blocks(str(tmp_path / "new"), f"folder:{folder}", False) == P.BLOCK_IMAGES == 2
    assert P._default_blocks(str(tmp_path / "new"), None, False) == 0
    out = str(tmp_path / "S")
    shutil.copytree(full, out)
    settings = P.read_json(os.path.join(out, P.SETTINGS_FILE))
    assert settings["blocks"] == 0
    del settings["blocks"]  # as a study from before --blocks existed wrote it
    imageio.save_json(settings, os.path.join(out, P.SETTINGS_FILE))
    kept = {k: v for k, v in STUDY.items() if k != "blocks"}
    result = study(runs=f"{a},{b}", out=out, dataset=f"folder:{folder}", **kept)
    assert set(result.stages.values()) == {"skipped"} and "blocks" not in result.stages
    assert P._default_blocks(out, f"folder:{folder}", True) == 2  # --overwrite starts a new study


@pytest.mark.slow  # the blocks stage's pages on top of the study; test_building_blocks_cli.py covers the blocks quickly
def test_building_blocks_pages(pair, full, tmp_path):
    """A study killed after its scale stage, resumed with --blocks 1: the building blocks stage (attribution to
    the head's classes, neuron groups, caricatures) and their pages: a unit's attribution to each class, a
    layer's groups and carrying channels, an image page; checked against the definition and in Chromium."""
    import shutil

    from lucidtl import attribution
    from lucidtl.analysis import tables

    (a, b), folder = pair
    out = str(tmp_path / "S")
    shutil.copytree(full, out)
    settings = P.read_json(os.path.join(out, P.SETTINGS_FILE))
    imageio.save_json(dict(settings, blocks=1), os.path.join(out, P.SETTINGS_FILE))
    os.remove(os.path.join(out, "stages", "site.json"))
    result = study(runs=f"{a},{b}", out=out, dataset=f"folder:{folder}", **dict(STUDY, blocks=1))
    assert result.stages == {"atlas": "skipped", "similarity": "skipped", "examples": "skipped", "scale": "skipped",
                             "trust": "skipped", "blocks": "done", "site": "done"}
    rows = tables.read_csv(os.path.join(P.blocks_dir(out, "ta", "attribution"), "attribution.csv"))
    names = runs.read_settings(a)["class_names"]
    images, _, _ = P.probe_images(f"folder:{folder}", P._runs(a), 256, 4)
    net = runs.load_checkpoint(a, 2)
    want = attribution.channel_attribution(net, images, "conv2_relu", list(range(len(names))),
                                           input_range=tuple(runs.read_settings(a)["input_range"])).mean(1)
    got = {(r["class"], r["channel"]): r["attribution"] for r in rows
           if r["iteration"] == 2 and r["layer"] == "conv2_relu"}
    np.testing.assert_allclose([got[k, c] for k in range(len(names)) for c in range(want.shape[1])], want.ravel(),
                               rtol=1e-4, atol=1e-7)
    data = _layer_data(out, "conv2_relu")["runs"]["ta"]
    assert len(data["attribution"]) == 3 and data["attribution"][1][0] == [round(got[0, c], 6) for c in range(4)]
    assert len(data["groups"]["weight"][0]) == min(6, want.shape[1]) and data["groups"]["cosine"][0][0] == 1
    assert [c[1] for c in data["carriers"][1][0]] == sorted(range(want.shape[1]), key=lambda c: -want[0, c])[:5]
    blocks = _index(out)["blocks"]["ta"]
    accent = blocks.pop("accentuation")
    assert blocks == {"classes": names, "images": [0], "no_groups": []}
    # feature accentuation of the image toward conv2_relu's most-changed channel (the trust stage's first), at
    # every checkpoint, regularised at conv1_relu (conv1_relu has no named layer below it: none)
    ranked = json.load(open(os.path.join(out, "trust", "ta", "conv2_relu.json")))["ranked"]
    assert accent == {"conv2_relu": ranked[0]}
    acc_rows = tables.read_csv(os.path.join(P.blocks_dir(out, "ta", "accentuation"), "conv2_relu", "accentuation.csv"))
    assert [(r["iteration"], r["channel"], r["regularize_layer"]) for r in acc_rows] == [
        (i, ranked[0], "conv1_relu") for i in ITERS]
    assert all(r["distance"] <= r["tolerance"] + 1e-12 for r in acc_rows)
    assert os.path.isfile(os.path.join(P.blocks_dir(out, "ta", "accentuation"), "conv2_relu", "iter_000004",
                                       f"accentuation_00000_conv2_relu_{ranked[0]}.png"))
    found, reason = _chromium()
    if found is None:
        pytest.skip(reason)
    sync_playwright, exe = found
    url = "file://" + os.path.join(out, "index.html")
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "#/unit/ta/conv2_relu/1")
        _at(page, "#/unit/ta/conv2_relu/1")
        titles = page.eval_on_selector_all("svg.chart .title", "els => els.map(e => e.textContent)")
        assert "attribution of 1 to each class in ta" in titles
        page.goto(url + "#/layer/conv2_relu/ta")
        _at(page, "#/layer/conv2_relu/ta")
        assert page.eval_on_selector_all(".strip.groups img", "els => els.length") == 3
        classes = page.eval_on_selector_all("table.carriers tr[data-class]", "els => els.map(e => e.dataset.class)")
        assert classes == names
        assert all(w > 0 for _, w in _loaded(page))
        page.goto(url + "#/")
        _at(page, "#/")
        page.click("p.images a")
        _at(page, "#/image/ta/0")
        images_on_page = _loaded(page)
        assert len(images_on_page) == 2 * 3 * 3 and all(w > 0 for _, w in images_on_page)  # 2 layers x 3 its x 3
        page.goto(url + "#/image/ta/7")
        _at(page, "#/image/ta/7")
        assert "not in this study" in page.text_content("#missing-image")
        browser.close()
    assert errors == []
