"""`python -m lucidtl.analyze`: a tiny run with 3 checkpoints -> CSVs + PNGs; bad input -> one line, exit 2."""
import json

import numpy as np
import pytest
from PIL import Image

from conftest import build_tiny_cnn, cli_exit
from lucidtl import analyze
from lucidtl.analysis import tables
from lucidtl.imageio import save_png
from lucidtl.models import save_model
from test_analysis import grating, make_head_run, make_run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A run folder (iterations 0, 10, 30 of perturbed weights), the architecture as .keras, images."""
    root = tmp_path_factory.mktemp("analyze")
    model = build_tiny_cnn()
    save_model(model, str(root / "tiny.keras"))
    run = make_run(root / "run", model)
    rng = np.random.default_rng(0)
    np.save(root / "images.npy", rng.uniform(size=(9, 12, 12, 3)).astype(np.float32))
    np.savez(root / "labelled.npz", images=(rng.uniform(size=(6, 12, 12, 3)) * 255).astype(np.uint8),
             labels=np.array([0, 1, 0, 1, 1, 0]))
    return root, run


def run_cli(argv, capsys):
    return cli_exit(analyze.main, argv, capsys)


def test_similarity_then_table(tiny, capsys):
    root, run = tiny
    out = root / "sim"
    analyze.main(["similarity", "--run", str(run), "--model", str(root / "tiny.keras"), "--layers",
                  "conv1_relu,mixed", "--dataset", str(root / "images.npy"), "--batch_size", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Pearson r" in printed and f"wrote {out}/similarity.csv" in printed
    rows = tables.read_csv(str(out / "similarity.csv"))
    assert [(r["iteration"], r["layer"]) for r in rows] == [(i, layer) for i in (0, 10, 30)
                                                             for layer in ("conv1_relu", "mixed")]
    for r in rows:
        assert r["run"] == "run" and r["n_images"] == 9 and r["n_samples"] == 9 * 12 * 12
        assert 0 <= r["procrustes_norm"] <= 1 and 0 <= r["pwsm_theta"] <= np.pi / 2 and 0 <= r["cka"] <= 1
        if r["iteration"] == 0:  # iteration 0 against itself
            assert r["procrustes_norm"] < 1e-9 and r["pwsm_theta"] < 1e-5 and r["cka"] > 1 - 1e-9
        else:
            assert r["procrustes_norm"] > 1e-4
    chans = tables.read_csv(str(out / "similarity_channels.csv"))
    assert len(chans) == 3 * (8 + 10) and {c["channel"] for c in chans if c["layer"] == "mixed"} == set(range(10))
    summary = json.loads((out / "similarity_summary.json").read_text())
    assert summary["reference_iteration"] == 0 and len(summary["checkpoints"]) == 3
    for m in ("pwsm_theta", "procrustes_norm", "cka"):
        png = Image.open(out / f"similarity_{m}.png")
        assert png.size == (640, 420) and np.asarray(png).std() > 0
        assert len(tables.read_csv(str(out / f"similarity_{m}.csv"))) == 6

    analyze.main(["table", "--csv", str(out / "similarity.csv"), "--out", str(out / "reuse")])
    printed = capsys.readouterr().out
    table = tables.read_csv(str(out / "reuse" / "reusability.csv"))
    assert [(t["layer"], t["n"]) for t in table] == [("conv1_relu", 2), ("mixed", 2)]
    mixed = [r["cka"] for r in rows if r["layer"] == "mixed" and r["iteration"] > 0]
    assert table[1]["cka_mean"] == pytest.approx(np.mean(mixed)) and table[1]["cka_std"] == pytest.approx(np.std(mixed))
    assert "| run | mixed | 2 |" in printed and "±" in printed


def test_examples_per_checkpoint(tiny, capsys):
    root, run = tiny
    out = root / "ex"
    analyze.main(["examples", "--run", str(run), "--model", str(root / "tiny.keras"), "--layer", "mixed",
                  "--channels", "0,3", "--k", "3", "--dataset", str(root / "labelled.npz"), "--out", str(out)])
    rows = tables.read_csv(str(out / "examples.csv"))
    assert len(rows) == 3 * 2 * 3 and {r["iteration"] for r in rows} == {0, 10, 30}
    first = [r for r in rows if r["iteration"] == 0 and r["channel"] == 0]
    assert [r["rank"] for r in first] == [0, 1, 2] and first[0]["score"] >= first[1]["score"] >= first[2]["score"]
    for it in ("iter_000000", "iter_000010", "iter_000030"):
        for c in ("0000", "0003"):
            assert (out / it / f"mixed_{c}_top.png").is_file() and (out / it / f"mixed_{c}_classes.png").is_file()
    assert "12 PNGs" in capsys.readouterr().out


def test_scale_and_redundancy_of_a_render_folder(tmp_path, capsys):
    renders = tmp_path / "renders"
    for it, period in ((0, 8), (10, 16)):
        for c in range(3):
            save_png(grating(32, period, 90 * (c % 2)), str(renders / f"iter_{it:06d}" / f"Mixed_4c_{c:04d}_512.png"))
    out = tmp_path / "out"
    analyze.main(["scale", "--images", str(renders), "--out", str(out)])
    assert "period 8.0 ± 0.0 px over 3 channels" in capsys.readouterr().out
    layers = tables.read_csv(str(out / "scale_layers.csv"))
    assert [(r["iteration"], r["layer"], r["period"]) for r in layers] == [(0, "Mixed_4c", 8), (10, "Mixed_4c", 16)]
    assert Image.open(out / "scale_period.png").size == (640, 420)
    analyze.main(["redundancy", "--images", str(renders), "--out", str(out)])
    red = tables.read_csv(str(out / "redundancy.csv"))
    assert [(r["iteration"], r["channels"]) for r in red] == [(0, 3), (10, 3)]
    # channels 0 and 2 are the same grating; 1 is its transpose (orthogonal to both): mean = 1/3
    assert red[0]["redundancy"] == pytest.approx(1 / 3, abs=0.02)
    assert (out / "redundancy.png").is_file()
    with np.load(out / "redundancy_matrices.npz") as z:
        assert z["Mixed_4c|0|512"].shape == (3, 3)


@pytest.mark.parametrize("argv,message", [
    (["similarity", "--run", "RUN", "--model", "ARCH", "--layers", "conv1_rel", "--dataset", "IMAGES"],
     "unknown layer 'conv1_rel'"),
    (["similarity", "--run", "NOWHERE", "--model", "ARCH", "--layers", "mixed", "--dataset", "IMAGES"],
     "does not exist"),
    (["similarity", "--run", "RUN", "--model", "ARCH", "--layers", "mixed", "--dataset", "IMAGES",
      "--metrics", "cka,procrustes"], "unknown metric 'procrustes'"),
    (["similarity", "--run", "RUN", "--layers", "mixed", "--dataset", "IMAGES"], "pass --model"),
    (["similarity", "--run", "RUN", "--model", "ARCH", "--layers", "mixed", "--dataset", "IMAGES", "--samples", "all"],
     "unknown --samples"),
    (["examples", "--run", "RUN", "--model", "ARCH", "--layer", "mixed", "--channels", "12", "--dataset", "IMAGES"],
     "out of range"),
    (["table", "--csv", "NOWHERE"], "cannot read"),
    (["scale", "--images", "NOWHERE"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(tiny, capsys, argv, message):
    root, run = tiny
    subs = {"RUN": str(run), "ARCH": str(root / "tiny.keras"), "IMAGES": str(root / "images.npy"),
            "NOWHERE": str(root / "nowhere")}
    code, captured = run_cli([subs.get(a, a) for a in argv], capsys)
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    if "unknown layer" in message:
        assert "closest: conv1_relu" in lines[0]
    if "unknown metric" in message:
        assert "procrustes_norm" in lines[0]


def test_keras_format_run_needs_no_model(tmp_path, capsys):
    model = build_tiny_cnn()
    run = tmp_path / "krun"
    base = model.get_weights()
    records = []
    for it, s in ((0, 0.0), (5, 0.2)):
        model.set_weights([w + s for w in base])
        save_model(model, str(run / f"iter_{it:06d}.keras"))
        records.append({"iteration": it, "requested": it, "epoch": 0, "path": f"iter_{it:06d}.keras",
                        "metrics": {}, "wall_time": 0.0})
    (run / "checkpoints.json").write_text(json.dumps({"format": "keras", "checkpoints": records}))
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(size=(4, 10, 10, 3)).astype(np.float32))
    analyze.main(["similarity", "--run", str(run), "--layers", "fused", "--dataset", str(tmp_path / "x.npy"),
                  "--out", str(tmp_path / "o"), "--metrics", "cka"])
    rows = tables.read_csv(str(tmp_path / "o" / "similarity.csv"))
    assert [r["iteration"] for r in rows] == [0, 5] and rows[0]["cka"] == pytest.approx(1) and rows[1]["cka"] < 1
    assert (tmp_path / "o" / "similarity_cka.png").is_file()
    assert not (tmp_path / "o" / "similarity_pwsm_theta.png").exists()


def test_run_json_supplies_the_architecture(tmp_path):
    run = make_head_run(tmp_path / "run", iterations=(0, 10, 30))
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(size=(4, 10, 10, 3)).astype(np.float32))
    analyze.main(["similarity", "--run", str(run), "--layers", "mixed", "--dataset", str(tmp_path / "x.npy"),
                  "--out", str(tmp_path / "o")])
    rows = tables.read_csv(str(tmp_path / "o" / "similarity.csv"))
    assert [r["iteration"] for r in rows] == [0, 10, 30] and rows[0]["procrustes_norm"] < 1e-9
    assert rows[1]["procrustes_norm"] > 1e-4
