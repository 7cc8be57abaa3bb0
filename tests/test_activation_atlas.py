"""lucidtl.recipes.activation_atlas: an activation atlas against its definitions (cell means, Lucid's
binning and normalisation), a planted two-cluster dataset, seeds, and atlases along a run's checkpoints
(one layout, resume after a kill at any write, shards)."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from conftest import build_tiny_cnn
from lucidtl import atomic, imageio
from lucidtl.errors import InvalidArgumentError
from lucidtl.recipes.activation_atlas import activation_atlas, aligned_umap, bin_laid_out_activations
from lucidtl.recipes.activation_atlas import checkpoints as CK
from lucidtl.recipes.activation_atlas import layout as L
from lucidtl.recipes.activation_atlas import main as M
from lucidtl.recipes.activation_atlas.render import make_canvas
from test_analysis import make_run

pytest.importorskip("umap")
UMAP = {"n_neighbors": 10, "min_dist": 0.05}
SMALL = dict(grid_size=3, icon_size=16, n_steps=3, icon_batch_size=9, positions_per_image=2, umap_options=UMAP,
             number_activations=100000)


def planted(n=40, size=16, seed=0):
    """Two well-separated clusters of images: reddish (class 0) and bluish (class 1), plus noise."""
    rng = np.random.default_rng(seed)
    images = np.full((2 * n, size, size, 3), 0.1, np.float32)
    images[:n, ..., 0], images[n:, ..., 2] = 0.9, 0.9
    images = np.clip(images + rng.normal(0, 0.05, images.shape), 0, 1).astype(np.float32)
    labels = np.repeat([0, 1], n)
    order = rng.permutation(2 * n)  # the classes interleaved in the stream
    return images[order], labels[order]


@pytest.fixture(scope="module")
def net():
    return build_tiny_cnn()


@pytest.fixture(scope="module")
def atlas(net):
    return activation_atlas(net, "mixed", planted(), **SMALL)


def _png_bytes(image):
    buf = io.BytesIO()
    Image.fromarray(imageio.to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def test_normalisation_and_binning_follow_lucid():
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(500, 2)) * [1, 5] + [3, -2]
    out = L.normalize_layout(raw)
    for a in range(2):  # Lucid: lo = p1 - 0.1 (p99 - p1), hi = p99 + 0.1 (p99 - lo), clip, min-max scale
        p1, p99 = np.percentile(raw[:, a], 1), np.percentile(raw[:, a], 99)
        lo = p1 - 0.1 * (p99 - p1)
        hi = p99 + 0.1 * (p99 - lo)
        c = np.clip(raw[:, a], lo, hi)
        np.testing.assert_allclose(out[:, a], (c - c.min()) / (c.max() - c.min()), atol=1e-12)
    acts = rng.normal(size=(500, 7))
    means, coords, counts = bin_laid_out_activations(out, acts, 4, threshold=5)
    # the definition, cell by cell: edges linspace(0, 1, 5) with the last one open, count > 5, first axis fastest
    want = []
    for y in range(4):
        for x in range(4):
            inx = (out[:, 0] >= x / 4) & ((out[:, 0] < (x + 1) / 4) | (x == 3))
            iny = (out[:, 1] >= y / 4) & ((out[:, 1] < (y + 1) / 4) | (y == 3))
            m = inx & iny
            if m.sum() > 5:
                want.append(((x, y), m.sum(), acts[m].mean(0)))
    assert [tuple(c) for c in coords] == [w[0] for w in want] and counts == [w[1] for w in want]
    for got, w in zip(means, want):
        np.testing.assert_allclose(got, w[2], rtol=1e-12)
    canvas = make_canvas(np.zeros((2, 2, 3, 3)), [(0, 1), (2, 0)], 3)  # cell (x, y): block row x, column y
    assert canvas.shape == (6, 9, 3) and canvas[0:2, 3:6].max() == 0 and canvas[4:6, 0:3].max() == 0
    assert canvas.sum() == 6 * 9 * 3 - 2 * 2 * 3 * 3


def test_cell_means_counts_and_table_against_numpy(atlas):
    s, cells = atlas.sample, atlas.cells
    assert s.activations.shape == (160, 10) and s.map_shape == (16, 16)
    # the points are the layer's activations at Lucid's positions (randint(1, H) per axis) of those images
    images, _ = planted()
    from lucidtl.optvis import features
    acts = np.asarray(features.feature_model(build_tiny_cnn(), ["mixed"])(images, training=False))
    np.testing.assert_allclose(s.activations, acts[s.image, s.yx[:, 0], s.yx[:, 1]], rtol=1e-5, atol=1e-6)
    assert s.yx.min() >= 1 and s.yx.max() <= 15
    where = np.minimum((atlas.layout * 3).astype(int), 2)
    assert len(cells.coordinates) == len(atlas.icons) == len(atlas.table)
    for coord, count, mean, row in zip(cells.coordinates, cells.counts, cells.means, atlas.table):
        m = (where[:, 0] == coord[0]) & (where[:, 1] == coord[1])
        assert count == m.sum() == row["count"] > 5
        np.testing.assert_allclose(mean, s.activations[m].astype(np.float64).mean(0), rtol=1e-10, atol=1e-12)
        labels = s.labels[m]
        assert row["dominant_class"] == np.bincount(labels, minlength=2).argmax()
        a = s.activations[m].astype(np.float64)
        cos = a @ mean / np.linalg.norm(a, axis=1) / np.linalg.norm(mean)
        nearest = [[int(s.image[j]), int(s.yx[j, 0]), int(s.yx[j, 1])] for j in np.flatnonzero(m)[np.argsort(-cos)[:4]]]
        assert row["nearest"] == nearest
    assert atlas.canvas.shape == (48, 48, 3)
    for coord, icon in zip(cells.coordinates, atlas.icons):
        np.testing.assert_array_equal(atlas.canvas[16 * coord[0]:16 * coord[0] + 16, 16 * coord[1]:16 * coord[1] + 16],
                                      icon)


def test_planted_clusters_land_apart_with_the_right_classes(atlas):
    s, lay = atlas.sample, atlas.layout
    # the two clusters occupy separate regions: a point's nearest neighbours in the layout share its class
    d = ((lay[:, None] - lay[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1)[:, :5]
    assert (s.labels[near] == s.labels[:, None]).mean() > 0.95
    dominant = {r["dominant_class"] for r in atlas.table}
    assert dominant == {0, 1}
    for r in atlas.table:  # each cell is (nearly) one cluster, and its dominant class is that cluster's
        assert r["dominant_share"] >= 0.8 and r["classes"][str(r["dominant_class"])] == max(r["classes"].values())


def test_same_seed_same_layout_and_icons_byte_for_byte(net, atlas):
    again = activation_atlas(net, "mixed", planted(), **SMALL)
    np.testing.assert_array_equal(again.layout, atlas.layout)
    assert [_png_bytes(i) for i in again.icons] == [_png_bytes(i) for i in atlas.icons]
    other = activation_atlas(net, "mixed", planted(), seed=1, **SMALL)
    assert not np.array_equal(other.layout, atlas.layout)


def test_class_filter_and_attribution(net):
    res = activation_atlas(net, "mixed", planted(), class_filter=1, class_logit=2, **dict(SMALL, grid_size=2))
    assert set(res.sample.labels) == {1} and len(res.sample.image) == 80
    from lucidtl.optvis import features
    import tensorflow as tf

    images, _ = planted()
    fm = features.feature_model(net, ["mixed", "logits"])
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        a, logits = fm(x, training=False)
        total = tf.reduce_sum(logits[:, 2])
    g, a = np.asarray(tape.gradient(total, a)), np.asarray(a)
    s = res.sample  # attribution of a point: d logit_2 / d activation there, dotted with the activation
    want = (g[s.image, s.yx[:, 0], s.yx[:, 1]] * a[s.image, s.yx[:, 0], s.yx[:, 1]]).sum(-1)
    np.testing.assert_allclose(s.attributions, want, rtol=1e-4, atol=1e-6)
    for coord, row, idx in zip(res.cells.coordinates, res.table, res.cells.members):
        assert row["attribution"] == pytest.approx(want[idx].mean(), abs=2e-6)


def test_bad_inputs(net):
    with pytest.raises(InvalidArgumentError, match="no spatial positions"):
        activation_atlas(net, "logits", planted(), **SMALL)
    with pytest.raises(InvalidArgumentError, match="fewer than the 10x10 = 100 cells"):
        activation_atlas(net, "mixed", planted(), **dict(SMALL, grid_size=10))
    with pytest.raises(InvalidArgumentError, match="too few for UMAP"):
        aligned_umap(np.ones((5, 3)), UMAP)


# ---- along a run --------------------------------------------------------------------------------------

RUN = dict(SMALL, icon_batch_size=9, n_steps=2)  # one icon batch per checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("aa_run") / "run", build_tiny_cnn(), scales=(0.0, 0.02, 0.05))


def _files(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(root, n)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


@pytest.fixture(scope="module")
def along(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("aa_full")
    with atomic.recording() as log:
        summary = CK.checkpoint_atlases(build_tiny_cnn, str(run), "mixed", planted(), str(out), **RUN)
    return out, summary, len(log)


def test_checkpoints_share_one_layout(run, along):
    out, summary, _ = along
    folder = out / "mixed"
    z = np.load(folder / "layout.npz")
    acts = [np.load(folder / "activations" / f"iter_{i:06d}.npz") for i in (0, 10, 30)]
    for a in acts[1:]:  # the same images and positions at every checkpoint, other weights
        np.testing.assert_array_equal(a["image"], acts[0]["image"])
        np.testing.assert_array_equal(a["yx"], acts[0]["yx"])
        assert not np.array_equal(a["activations"], acts[0]["activations"])
    # iteration 0's points stay where a fit of iteration 0 alone puts them
    np.testing.assert_array_equal(z["raw"][0], aligned_umap(acts[0]["activations"], UMAP, normalize=False))
    np.testing.assert_array_equal(z["layouts"][0], aligned_umap(acts[0]["activations"], UMAP))
    # the others are placed by transform and normalised with iteration 0's numbers
    b = L.Bounds(z["lo"], z["hi"], z["low"], z["high"])
    for k in (1, 2):
        np.testing.assert_array_equal(z["layouts"][k], b.apply(z["raw"][k]))
    assert [c["iteration"] for c in summary["checkpoints"]] == [0, 10, 30]
    density = {}
    for row in imageio_csv(folder / "density.csv"):
        density[row["iteration"], row["x"], row["y"]] = (row["count"], row["change"])
    for k, it in enumerate((0, 10, 30)):
        where = M.grid_cells(z["layouts"][k], 3)
        for x in range(3):
            for y in range(3):
                count = int(((where[:, 0] == x) & (where[:, 1] == y)).sum())
                base = int(((M.grid_cells(z["layouts"][0], 3) == (x, y)).all(1)).sum())
                assert density[it, x, y] == (count, count - base)
        cells = summary["checkpoints"][k]["cells"]
        assert all(c["count"] == density[it, c["x"], c["y"]][0] > 5 for c in cells)
        canvas = imageio.load_png(folder / f"iter_{it:06d}" / "activation_atlas.png")
        assert canvas.shape == (48, 48, 3)
        for c in cells:
            icon = imageio.load_png(folder / f"iter_{it:06d}" / c["icon"])
            np.testing.assert_array_equal(canvas[16 * c["x"]:16 * c["x"] + 16, 16 * c["y"]:16 * c["y"] + 16], icon)
            assert imageio.load_png(folder / f"iter_{it:06d}" / c["patches"]).shape[1] == 4 * 48 + 3 * 2


def imageio_csv(path):
    from lucidtl.analysis import tables

    return tables.read_csv(str(path))


def test_interrupted_run_resumes_to_the_same_files(run, along, tmp_path):
    out, _, writes = along
    for k, fraction in enumerate((0.6,)):  # among the icons (tests/test_kill_resume.py style: at one write)
        folder = str(tmp_path / f"r{k}")
        with pytest.raises(atomic.SimulatedKill), atomic.kill_at(max(1, int(fraction * writes))):
            CK.checkpoint_atlases(build_tiny_cnn, str(run), "mixed", planted(), folder, **RUN)
        with atomic.recording() as again:
            CK.checkpoint_atlases(build_tiny_cnn, str(run), "mixed", planted(), folder, **RUN)
        assert len(again) < writes  # only what was missing
        assert _files(folder) == _files(out)


def test_shards_together_equal_one_run(run, along, tmp_path):
    out, _, _ = along
    folder = str(tmp_path / "s")
    first = CK.checkpoint_atlases(build_tiny_cnn, str(run), "mixed", planted(), folder, shard=(0, 2), **RUN)
    assert first is None  # shard 1's icons are missing
    CK.checkpoint_atlases(build_tiny_cnn, str(run), "mixed", planted(), folder, shard=(1, 2), **RUN)
    assert _files(folder) == _files(out)


# ---- the command line ---------------------------------------------------------------------------------

def _cli(root, run, *extra):
    return ["activation-atlas", "--run", str(run), "--model", str(root / "tiny.keras"), "--layer", "mixed",
            "--dataset", str(root / "planted.npz"), "--grid-size", "3", "--size", "16", "--steps", "1",
            "--icon-batch-size", "9", "--positions-per-image", "2", "--n-neighbors", "10", "--noprogress", *extra]


@pytest.fixture(scope="module")
def cli_root(run):
    from lucidtl.models import save_model

    root = run.parent
    save_model(build_tiny_cnn(), str(root / "tiny.keras"))
    images, labels = planted()
    np.savez(root / "planted.npz", images=images, labels=labels)
    return root


def test_command_line_end_to_end(run, along, cli_root, capsys):
    from lucidtl import analyze

    out = cli_root / "cli_out"
    analyze.main(_cli(cli_root, run, "--out", str(out)))
    printed = capsys.readouterr().out
    assert f"wrote {out}/mixed/iter_000030/activation_atlas.png" in printed and "iteration 0:" in printed
    assert _files(out) == _files(along[0])  # the library call's files, through the command line


@pytest.mark.parametrize("extra, message", [
    (("--grid-size", "10"), "80 images are fewer than the 10x10 = 100 cells"),
    (("--layer", "logits"), "no spatial positions"),
    (("--threshold", "200"), "160 points cannot fill a cell of more than 200"),
    (("--grid-size", "2", "--threshold", "79", "--positions-per-image", "1"), "no cell of the 2x2 grid"),
    (("--grid-size", "0"), "--grid-size must be an integer >= 1"),
    (("--fit", "both"), "unknown --fit 'both'"),
    ((), "needs umap-learn"),
])
def test_bad_inputs_one_line_exit_2_nothing_written(run, cli_root, capsys, tmp_path, monkeypatch, extra, message):
    from conftest import cli_exit
    from lucidtl import analyze

    if message == "needs umap-learn":
        monkeypatch.setitem(__import__("sys").modules, "umap", None)  # import umap raises ImportError
    out = tmp_path / "bad"
    code, captured = cli_exit(analyze.main, _cli(cli_root, run, "--out", str(out), *extra), capsys)
    assert code == 2 and message in captured.err and len(captured.err.strip().splitlines()) == 1, captured.err
    assert not out.exists()
