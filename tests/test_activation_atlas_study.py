"""The study's activation atlas stage and pages: two tiny runs through `python -m lucidtl.study
--aligned --activation-atlas`, the files against the recipe's, and the page in headless Chromium (checkpoint slider,
permalinks, every image loads, no console errors)."""
import json
import os

import numpy as np
import pytest

from lucidtl.study import pipeline as P
from lucidtl.study.__main__ import main as study_main
from test_atlas import _chromium

pytest.importorskip("umap")
# the study chain with UMAP's layouts on top: test_study.py is the quick loop's study, test_activation_atlas.py its atlas
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def made(tiny_runs, tmp_path_factory):
    runs, _ = tiny_runs  # the session's two tiny runs ta, tb (conftest.tiny_runs)
    out = str(tmp_path_factory.mktemp("aa_study") / "S")
    study_main(["--runs", ",".join(runs), "--out", out, "--layers", "conv2_relu", "--channels", "0:2", "--size",
                "16", "--steps", "2", "--batch-size", "9", "--aligned", "--activation-atlas", "--grid-size", "3", "--noprogress"])
    return runs, out


def _data(out):
    text = open(os.path.join(out, "data", "activation_atlas.js"), encoding="utf-8").read()
    return json.loads(text.split("=", 1)[1].strip().rstrip(";"))


def test_study_activation_atlas_stage(made):
    runs, out = made
    data = _data(out)
    assert sorted(data["runs"]) == ["ta", "tb"] and data["grid_size"] == 3
    for run in ("ta", "tb"):
        summary = P.read_json(P.activation_atlas_path(out, run, "conv2_relu"))
        assert [c["iteration"] for c in summary["checkpoints"]] == [0, 2, 4]
        # 18 images, 10 positions each (about 20 points per cell of the 3 x 3 grid)
        assert summary["points"] == 180 and summary["images"] == 18
        for ck in summary["checkpoints"]:
            counts = sum(c["count"] for c in ck["cells"])
            assert 0 < counts <= 180 and all(c["count"] > 5 for c in ck["cells"])
            assert all(os.path.isfile(os.path.join(out, "activation_atlas", run, "conv2_relu", ck["atlas"]))
                       for _ in [0])
        site = data["runs"][run]["layers"]["conv2_relu"]["checkpoints"]
        for ck in site:  # every path the page loads exists
            assert os.path.isfile(os.path.join(out, ck["atlas"]))
            for c in ck["cells"]:
                assert os.path.isfile(os.path.join(out, c["icon"])) and os.path.isfile(os.path.join(out, c["patches"]))
    from lucidtl.atlas import job

    assert job.read_settings(os.path.join(out, "atlas"))["aligned"] is True  # the renders as aligned strips
    assert len(job.read_manifest(os.path.join(out, "atlas"))) == 2 * 3 * 2
    assert json.loads(open(os.path.join(out, "data", "index.js")).read().split("=", 1)[1].strip().rstrip(";"))[
        "activation_atlas"] is True


def test_activation_atlas_page_in_headless_chromium(made, tmp_path):
    found, reason = _chromium()
    if found is None:
        pytest.skip(reason)
    sync_playwright, exe = found
    runs, out = made
    data = _data(out)
    cks = data["runs"]["ta"]["layers"]["conv2_relu"]["checkpoints"]
    cell = cks[0]["cells"][0]
    key = f"{cell['x']},{cell['y']}"
    url = "file://" + os.path.join(out, "activation_atlas.html")
    errors = []

    def loaded(page):
        page.wait_for_function("Array.from(document.querySelectorAll('img')).every(i => i.complete)")
        return page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        # the home page links to the activation atlases
        page.goto("file://" + os.path.join(out, "index.html") + "#/")
        page.wait_for_selector("#activation-atlas-link")
        page.click("#activation-atlas-link")
        page.wait_for_function("document.body.getAttribute('data-drawn') !== null")
        assert page.text_content("#atlas-title").startswith("ta / conv2_relu")
        # a permalink to a cell: its facts, its patches, and its icon at every checkpoint
        page.goto(url + f"#/ta/conv2_relu/0/{key}")
        page.wait_for_function(f"document.body.getAttribute('data-drawn') === '#/ta/conv2_relu/0/{key}'")
        facts = page.text_content("#cell-facts")
        assert facts.startswith(f"count {cell['count']} (+0 since the first checkpoint), dominant class "
                                f"class_{cell['dominant_class']} ({cell['dominant_class']})")
        images = loaded(page)
        assert all(w > 0 for _, w in images) and images[0][0] == cks[0]["atlas"]
        assert images[1][0] == cell["patches"]
        assert page.eval_on_selector_all("#atlas a.cell", "els => els.length") == len(cks[0]["cells"])
        strip = page.eval_on_selector_all("#cell-strip figure", "els => els.length")
        assert strip == 3
        # the slider: the same cell, the next checkpoints (one layout: the cell stays where it is)
        for k in (1, 2):
            page.eval_on_selector("#checkpoint", f"e => {{ e.value = '{k}'; e.dispatchEvent(new Event('input')); }}")
            page.wait_for_function(f"document.body.getAttribute('data-drawn') === '#/ta/conv2_relu/{k}/{key}'")
            assert page.eval_on_selector("#atlas-image", "e => e.getAttribute('src')") == cks[k]["atlas"]
            assert all(w > 0 for _, w in loaded(page))
            there = [c for c in cks[k]["cells"] if (c["x"], c["y"]) == (cell["x"], cell["y"])]
            if there:
                box = page.eval_on_selector(f"a.cell[data-cell='{key}']", "e => [e.style.left, e.style.top]")
                assert box == [f"{cell['y'] * 160}px", f"{cell['x'] * 160}px"]
        page.go_back()
        page.wait_for_function(f"document.body.getAttribute('data-drawn') === '#/ta/conv2_relu/1/{key}'")
        # clicking another cell, and the other run's atlas
        other = cks[1]["cells"][-1]
        page.click(f"a.cell[data-cell='{other['x']},{other['y']}']")
        page.wait_for_function(f"document.body.getAttribute('data-drawn') === "
                               f"'#/ta/conv2_relu/1/{other['x']},{other['y']}'")
        assert page.text_content("#cell-facts").startswith(f"count {other['count']}")
        page.goto(url + "#/tb/conv2_relu/2")
        page.wait_for_function("document.body.getAttribute('data-drawn') === '#/tb/conv2_relu/2'")
        assert all(w > 0 for _, w in loaded(page))
        page.screenshot(path=str(tmp_path / "activation_atlas.png"), full_page=True)
        browser.close()
    assert errors == []
