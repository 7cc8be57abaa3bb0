"""lucidtl.analysis: metrics on constructed cases, streaming == in memory, spatial scale, redundancy,
dataset examples, tables and plots."""
import json
import math

import keras
import numpy as np
import pytest

from conftest import build_tiny_cnn
from lucidtl.analysis import examples as ex
from lucidtl.analysis import metrics as M
from lucidtl.analysis import plots, redundancy, spatial, streaming, tables
from lucidtl.errors import ChannelRangeError, InvalidArgumentError, UnknownLayerError

ALPHAS = (0.0, 0.5, 1.0)
RNG = np.random.default_rng(0)


def rotation(p, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(p, p)))
    return q


# Walsh-Hadamard columns of length 8: centred and mutually orthogonal, each of squared norm 8
H8 = np.array([[(-1) ** bin(i & j).count("1") for j in range(8)] for i in range(8)], np.float64)[:, 1:]


# ---- metrics -----------------------------------------------------------------------------------------

def test_identity_gives_zero_distance_and_cka_one():
    X = RNG.normal(size=(60, 6))
    for a in ALPHAS:
        assert M.shape_metric(X, X, a) == pytest.approx(0, abs=1e-6)
    assert M.procrustes_distance(X, X) == pytest.approx(0, abs=1e-12)
    assert M.linear_cka(X, X) == pytest.approx(1, abs=1e-12)


def test_invariant_to_rotation_isotropic_scale_and_translation():
    X = RNG.normal(size=(80, 5)) @ np.diag([3, 2, 1, 0.5, 0.2])
    Y = 2.5 * X @ rotation(5) + 7.0
    for a in ALPHAS:
        assert M.shape_metric(X, Y, a) == pytest.approx(0, abs=1e-6)
    assert M.procrustes_distance(X, Y) == pytest.approx(0, abs=1e-12)
    assert M.linear_cka(X, Y) == pytest.approx(1, abs=1e-12)


def test_partial_whitening_is_the_papers_formula():
    X, Y = RNG.normal(size=(70, 4)) * [4, 2, 1, 0.5], RNG.normal(size=(70, 3))
    Y[:, 0] += X[:, 0]

    def phi(A, a):  # Xc (a I + (1 - a) Xc^T Xc / n)^(-1/2), straight from the definition
        A = A - A.mean(0)
        w, V = np.linalg.eigh(a * np.eye(A.shape[1]) + (1 - a) * A.T @ A / len(A))
        return A @ V @ np.diag(w ** -0.5) @ V.T

    def theta(A, B, a):
        pa, pb = phi(A, a), phi(B, a)
        s = np.linalg.svd(pa.T @ pb, compute_uv=False).sum()
        return math.acos(s / (np.linalg.norm(pa) * np.linalg.norm(pb)))

    for a in ALPHAS:
        assert M.shape_metric(X, Y, a, normalize=False) == pytest.approx(theta(X, Y, a), abs=1e-10)
    # verbatim, 0 < alpha < 1 depends on the scale; normalize=True is the formula on unit-variance inputs
    assert abs(M.shape_metric(X, 5 * Y, 0.5, normalize=False) - M.shape_metric(X, Y, 0.5, normalize=False)) > 1e-3
    unit = [(A - A.mean(0)) / np.sqrt(np.mean(np.var(A, 0))) for A in (X, Y)]
    assert M.shape_metric(X, 5 * Y, 0.5) == pytest.approx(theta(*unit, 0.5), abs=1e-10)


def test_arbitrary_invertible_map_changes_cka_and_procrustes_but_not_full_whitening():
    X = RNG.normal(size=(100, 4))
    A = np.array([[5.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0.2, 0], [1, 0, 0, 0.1]])  # invertible, not orthogonal
    Y = X @ A
    assert M.linear_cka(X, Y) < 0.9
    assert M.procrustes_normalized(X, Y) > 0.05
    assert M.shape_metric(X, Y, alpha=1.0) > 0.2
    assert M.shape_metric(X, Y, alpha=0.0) == pytest.approx(0, abs=1e-6)  # CCA-like: invariant to any GL map


def test_symmetry():
    X, Y = RNG.normal(size=(50, 4)), RNG.normal(size=(50, 7))
    for a in ALPHAS:
        assert M.shape_metric(X, Y, a) == pytest.approx(M.shape_metric(Y, X, a), abs=1e-12)
    assert M.procrustes_distance(X, Y) == pytest.approx(M.procrustes_distance(Y, X), abs=1e-12)
    assert M.linear_cka(X, Y) == pytest.approx(M.linear_cka(Y, X), abs=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_shape_metric_triangle_inequality(alpha):
    rng = np.random.default_rng(7)
    base = rng.normal(size=(40, 5))
    for _ in range(30):
        X, Y, Z = (base @ rng.normal(size=(5, 5)) + rng.normal(scale=s, size=(40, 5)) for s in rng.uniform(0, 2, 3))
        dxy, dyz, dxz = M.shape_metric(X, Y, alpha), M.shape_metric(Y, Z, alpha), M.shape_metric(X, Z, alpha)
        assert dxz <= dxy + dyz + 1e-9
        assert 0 <= dxz <= math.pi / 2


def test_one_feature_at_a_known_angle():
    x, z = H8[:, 0], H8[:, 1]
    for phi in (0.3, math.pi / 3, 1.2):
        Y = x * math.cos(phi) + z * math.sin(phi)
        for a in ALPHAS:
            assert M.shape_metric(x, Y, a) == pytest.approx(phi, abs=1e-9)
        assert M.procrustes_normalized(x, Y) == pytest.approx(1 - math.cos(phi), abs=1e-12)
        assert M.procrustes_distance(x, Y) == pytest.approx(2 - 2 * math.cos(phi), abs=1e-12)
        assert M.linear_cka(x, Y) == pytest.approx(math.cos(phi) ** 2, abs=1e-12)


def test_negation_and_orthogonal_subspaces():
    X = H8[:, :2] @ np.array([[2.0, 1], [0, 1]])
    for a in ALPHAS:
        assert M.shape_metric(X, -X, a) == pytest.approx(0, abs=1e-7)
        assert M.shape_metric(H8[:, :2], H8[:, 2:4], a) == pytest.approx(math.pi / 2, abs=1e-12)
    assert M.procrustes_normalized(X, -X) == pytest.approx(0, abs=1e-12)
    assert M.linear_cka(X, -X) == pytest.approx(1, abs=1e-12)
    assert M.linear_cka(H8[:, :2], H8[:, 2:5]) == pytest.approx(0, abs=1e-12)
    assert M.procrustes_normalized(H8[:, :2], H8[:, 2:5]) == pytest.approx(1, abs=1e-12)


def test_scaled_columns_by_hand():
    # X = [x, z], Y = [x, 2z] with x, z orthogonal, |x|^2 = |z|^2 = 8
    X, Y = H8[:, :2], H8[:, :2] * [1, 2]
    assert M.linear_cka(X, Y) == pytest.approx((64 + 256) / math.sqrt(128 * (64 + 1024)), abs=1e-12)
    sim = (8 + 16) / math.sqrt(16 * 40)  # nuclear(X^T Y) / (|X|_F |Y|_F)
    assert M.procrustes_normalized(X, Y) == pytest.approx(1 - sim, abs=1e-12)
    assert M.shape_metric(X, Y, alpha=1.0) == pytest.approx(math.acos(sim), abs=1e-9)
    assert M.shape_metric(X, Y, alpha=0.0) == pytest.approx(0, abs=1e-7)


def test_rank_deficient_and_wide_inputs_stay_finite():
    X = RNG.normal(size=(30, 3))
    Xd = np.concatenate([X, X[:, :1], 2 * X[:, 1:2]], axis=1)  # rank 3 of 5 columns
    assert M.shape_metric(Xd, X, alpha=0.0) == pytest.approx(0, abs=1e-6)
    wide = RNG.normal(size=(6, 20))  # n < p
    for a in ALPHAS:
        v = M.shape_metric(wide, wide @ rotation(20) * 3, a)
        assert v == pytest.approx(0, abs=1e-6)
    assert math.isfinite(M.shape_metric(wide, RNG.normal(size=(6, 9)), 0.0))
    assert math.isnan(M.linear_cka(np.ones((5, 2)), RNG.normal(size=(5, 2))))  # constant: no shape at all


def test_pearson():
    assert M.pearson([1, 2, 3], [2, 4, 6.5]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1])
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert M.pearson([1, 2, np.nan, 4], [2, 4, 5, 8]) == pytest.approx(1)
    assert math.isnan(M.pearson([1, 1, 1], [1, 2, 3]))


def test_map_metrics_match_the_matrix_metrics_per_map():
    A, B = RNG.normal(size=(3, 4, 6, 6)), RNG.normal(size=(3, 4, 6, 6))
    B[0, 1] = 2 * A[0, 1] + 1  # same map up to scale and shift: distance 0
    B[1, 2] = 5.0  # constant: NaN
    proc, cka = M.map_metrics(A, B)
    for i in range(3):
        for c in range(4):
            if (i, c) == (1, 2):
                assert math.isnan(proc[i, c]) and math.isnan(cka[i, c])
                continue
            assert proc[i, c] == pytest.approx(M.procrustes_normalized(A[i, c], B[i, c]), abs=1e-12)
            assert cka[i, c] == pytest.approx(M.linear_cka(A[i, c], B[i, c]), abs=1e-12)
    assert proc[0, 1] == pytest.approx(0, abs=1e-12)


# ---- streaming ---------------------------------------------------------------------------------------

def test_cross_stats_equal_in_memory_metrics():
    X = RNG.normal(size=(230, 6)) * [1, 2, 3, 4, 5, 6] + 100.0  # large mean: the shift keeps accuracy
    Y = np.tanh(X @ RNG.normal(size=(6, 4)) / 50) + RNG.normal(scale=0.1, size=(230, 4)) - 30
    stats = streaming.CrossStats()
    for i in range(0, 230, 17):
        stats.update(X[i:i + 17], Y[i:i + 17])
    for a in ALPHAS:
        got, want = stats.metrics(a), M.layer_metrics(X, Y, a)
        for k in want:
            assert got[k] == pytest.approx(want[k], abs=1e-10)


def _two_models():
    a = build_tiny_cnn(seed=0)
    b = build_tiny_cnn(seed=0)
    b.set_weights([w + np.random.default_rng(3).normal(scale=0.3, size=w.shape) for w in a.get_weights()])
    return a, b


def test_compare_streams_like_the_all_in_memory_computation():
    from lucidtl.optvis import features

    a, b = _two_models()
    images = np.random.default_rng(4).uniform(size=(10, 12, 12, 3)).astype(np.float32)
    layers = ["conv1_relu", "mixed", "fused", "pool"]
    got = streaming.compare(a, b, layers, images, alpha=0.0, batch_size=3)
    fa, fb = features.feature_model(a, layers)(images), features.feature_model(b, layers)(images)
    for layer, xa, xb in zip(layers, fa, fb):
        xa, xb = np.asarray(xa, np.float64), np.asarray(xb, np.float64)
        rows = xa.reshape(-1, xa.shape[-1]), xb.reshape(-1, xb.shape[-1])
        want = M.layer_metrics(*rows, alpha=0.0)
        for k in want:
            assert got[layer].metrics[k] == pytest.approx(want[k], abs=1e-10)
        assert got[layer].n_samples == len(rows[0]) and got[layer].n_images == 10
        if xa.ndim == 4:
            proc, cka = M.map_metrics(np.moveaxis(xa, -1, 1), np.moveaxis(xb, -1, 1))
            np.testing.assert_allclose(got[layer].channels["procrustes_norm"], np.nanmean(proc, 0), atol=1e-10)
            np.testing.assert_allclose(got[layer].channels["cka"], np.nanmean(cka, 0), atol=1e-10)
    pooled = streaming.compare(a, b, ["mixed"], images, samples="pooled", batch_size=4, per_channel=False)
    xa, xb = (np.asarray(f, np.float64).mean(axis=(1, 2)) for f in
              (features.feature_model(m, ["mixed"])(images) for m in (a, b)))
    assert pooled["mixed"].metrics["cka"] == pytest.approx(M.linear_cka(xa, xb), abs=1e-10)
    assert pooled["mixed"].n_samples == 10


def test_batches_accepts_arrays_and_tf_data():
    import tensorflow as tf

    images = np.arange(7 * 2 * 2 * 1, dtype=np.float32).reshape(7, 2, 2, 1)
    onehot = np.eye(3)[[0, 1, 2, 0, 1, 2, 0]]
    out = list(streaming.batches((images, onehot), batch_size=3, max_images=5))
    assert [len(b[0]) for b in out] == [3, 2] and [b[2] for b in out] == [0, 3]
    assert out[1][1].tolist() == [0, 1]
    ds = tf.data.Dataset.from_tensor_slices((images, onehot))  # unbatched elements: batched here
    got = list(streaming.batches(ds, batch_size=4))
    assert [len(b[0]) for b in got] == [4, 3]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in got]), images)
    assert np.concatenate([b[1] for b in got]).tolist() == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(InvalidArgumentError):
        list(streaming.batches(images, batch_size=0))


def make_run(folder, model, scales=(0.0, 0.05, 0.4), iterations=(0, 10, 30), seed=5):
    """A run folder as IterationCheckpoint writes it: iter_<i>.weights.h5 + checkpoints.json."""
    from lucidtl.models import save_weights

    folder.mkdir(parents=True, exist_ok=True)
    base = model.get_weights()
    rng = np.random.default_rng(seed)
    records = []
    for it, s in zip(iterations, scales):
        model.set_weights([w + s * rng.normal(size=w.shape).astype(w.dtype) for w in base])
        name = f"iter_{it:06d}.weights.h5"
        save_weights(model, str(folder / name))
        records.append({"iteration": it, "requested": it, "epoch": 0, "path": name, "metrics": {},
                        "wall_time": 0.0})
    model.set_weights(base)
    (folder / "checkpoints.json").write_text(json.dumps({"format": "weights", "checkpoints": records}))
    return folder


def make_head_run(folder, tiny=None, **run_kwargs):
    """A run folder as lucidtl.train writes it: run.json (the tiny CNN's backbone, saved beside the folder as
    backbone.keras, + a 3-class single-dense head) and weights-only checkpoints of backbone + head (make_run)."""
    from lucidtl.models import save_model
    from lucidtl.train.heads import add_head

    tiny = tiny or build_tiny_cnn()
    backbone = keras.Model(tiny.input, tiny.get_layer("fused").output, name="backbone")
    arch = folder.parent / "backbone.keras"
    save_model(backbone, str(arch))
    run = make_run(folder, add_head(backbone, 3, top="single"), **run_kwargs)
    (run / "run.json").write_text(json.dumps({"model": str(arch), "model_kwargs": {}, "num_classes": 3,
                                              "top": "single", "multi_label": False, "input_range": [0.0, 1.0]}))
    return run


def test_compare_checkpoints_over_a_run_folder(tmp_path):
    run = make_run(tmp_path / "run", build_tiny_cnn())
    images = np.random.default_rng(2).uniform(size=(8, 10, 10, 3)).astype(np.float32)
    res = streaming.compare_checkpoints(lambda: build_tiny_cnn(), str(run), "conv1_relu,fused", images,
                                        batch_size=3, label="tiny")
    assert [(r["iteration"], r["layer"]) for r in res.rows] == [
        (0, "conv1_relu"), (0, "fused"), (10, "conv1_relu"), (10, "fused"), (30, "conv1_relu"), (30, "fused")]
    for r in res.rows:
        assert r["reference"] == 0 and r["run"] == "tiny" and r["n_images"] == 8
        if r["iteration"] == 0:
            assert r["procrustes_norm"] == pytest.approx(0, abs=1e-9) and r["cka"] == pytest.approx(1, abs=1e-9)
            assert r["pwsm_theta"] == pytest.approx(0, abs=1e-5)
        else:
            assert r["procrustes_norm"] > 1e-4 and r["pwsm_theta"] > 1e-3
    big = {r["layer"]: r["procrustes_norm"] for r in res.rows if r["iteration"] == 30}
    small = {r["layer"]: r["procrustes_norm"] for r in res.rows if r["iteration"] == 10}
    assert all(big[k] > small[k] for k in big)  # a larger perturbation moves the layer further
    assert len(res.channel_rows) == 3 * (8 + 5)
    assert all(c["procrustes_norm"] == pytest.approx(0, abs=1e-9) for c in res.channel_rows if c["iteration"] == 0)
    assert math.isfinite(res.summary["pearson"]["pwsm_vs_procrustes"])
    # against iteration 10 as reference, with another batch size: iteration 10 is now the zero row
    res10 = streaming.compare_checkpoints(lambda: build_tiny_cnn(), str(run), ["fused"], images, reference=10,
                                          batch_size=5)
    assert [r["procrustes_norm"] < 1e-9 for r in res10.rows] == [False, True, False]
    assert res.summary["warnings"] == [] and res10.rows[0]["features"] == 5
    pooled = streaming.compare_checkpoints(build_tiny_cnn(), str(run), ["fused"], images, samples="pooled")
    assert pooled.rows[0]["n_samples"] == 8 and "layer fused: fewer than 10 samples" in pooled.summary["warnings"][0]


def test_checkpoint_errors(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        streaming.resolve_checkpoints(str(tmp_path / "nope"))
    with pytest.raises(InvalidArgumentError, match="checkpoints.json"):
        streaming.resolve_checkpoints(str(tmp_path))
    cps = [streaming.Checkpoint(0, __file__), streaming.Checkpoint(10, __file__)]
    with pytest.raises(InvalidArgumentError, match="iterations 0, 10"):
        streaming.reference_checkpoint(5, cps)
    with pytest.raises(UnknownLayerError, match="closest"):
        streaming.compare(build_tiny_cnn(), build_tiny_cnn(), ["conv_relu"], np.zeros((1, 8, 8, 3)))
    with pytest.raises(InvalidArgumentError, match="did you mean|closest"):
        streaming.check_metrics("cka,procrustes")


# ---- tables and plots --------------------------------------------------------------------------------

def test_reusability_table_and_csv_round_trip(tmp_path):
    rows = [{"run": "a", "layer": "L", "iteration": it, "reference": 0, "cka": v, "procrustes_norm": 1 - v}
            for it, v in [(0, 1.0), (10, 0.8), (20, 0.6), (30, 0.7)]]
    rows.append({"run": "b", "layer": "L", "iteration": 10, "reference": 0, "cka": 0.5, "procrustes_norm": 0.5})
    path = tables.write_csv(rows, str(tmp_path / "s.csv"))
    back = tables.read_csv(path)
    assert back == rows
    t = tables.reusability_table(back, ["cka", "procrustes_norm"])
    a = next(r for r in t if r["run"] == "a")
    assert a["n"] == 3  # the reference against itself is left out
    assert a["cka_mean"] == pytest.approx(0.7) and a["cka_std"] == pytest.approx(np.std([0.8, 0.6, 0.7]))
    assert a["procrustes_norm_mean"] == pytest.approx(0.3)
    assert next(r for r in t if r["run"] == "b")["cka_std"] == 0
    assert tables.reusability_table(back, ["cka"], exclude_reference=False)[0]["n"] == 4
    assert "0.700 ± 0.082" in tables.format_table(t, ["cka"])


def test_plot_curves_write_png_and_csv(tmp_path):
    from PIL import Image

    rows = [{"iteration": it, "layer": layer, "cka": 1 - it / 100 * k}
            for k, layer in enumerate(["a", "b"], 1) for it in (0, 10, 30)]
    paths = plots.write_curves(rows, ["cka"], str(tmp_path), prefix="sim")
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["sim_cka.csv", "sim_cka.png"]
    assert Image.open(tmp_path / "sim_cka.png").size == (640, 420)
    assert tables.read_csv(str(tmp_path / "sim_cka.csv"))[3] == {"iteration": 0, "layer": "b", "cka": 1.0}


# ---- spatial scale -----------------------------------------------------------------------------------

def grating(size, period, degrees, colour=True):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    t = np.deg2rad(degrees)
    g = 0.5 + 0.4 * np.sin(2 * np.pi * (x * np.cos(t) + y * np.sin(t)) / period + 0.3)
    return np.stack([g, 1 - g, 0.5 * g], -1) if colour else g


@pytest.mark.parametrize("size,period", [(64, 8), (64, 16), (128, 8), (128, 16)])
def test_dominant_period_of_gratings(size, period):
    for window in spatial.WINDOWS:
        for deg in (0, 90):  # on the frequency grid: exact
            assert spatial.dominant_period(grating(size, period, deg), window) == period
    for deg in (30, 45, 60, 120):  # off the grid: within one frequency bin
        k = size / spatial.dominant_period(grating(size, period, deg, colour=False))
        assert abs(k - size / period) <= 1
    # a coarser grating added at lower contrast does not move the peak
    mix = grating(size, period, 0) + 0.3 * grating(size, size / 2, 90)
    assert spatial.dominant_period(mix, weighting="sum") == period


def test_spatial_helpers(tmp_path):
    from lucidtl.imageio import save_png

    assert math.isnan(spatial.dominant_period(np.full((16, 16, 3), 0.5)))
    assert spatial.dominant_period(grating(64, 8, 0)[:48]) == pytest.approx(8, rel=0.15)  # non-square
    assert spatial.describe("iter_000030/Mixed_4c_0007_512.png") == {
        "iteration": 30, "layer": "Mixed_4c", "channel": 7, "threshold": 512}
    assert spatial.describe("x.png")["layer"] == "x"
    for it, period in ((0, 8), (10, 16)):
        for c in range(2):
            save_png(grating(32, period, 90 * c), str(tmp_path / f"iter_{it:06d}" / f"L_{c:04d}_5.png"))
    save_png(grating(32, 4, 0), str(tmp_path / "iter_000000" / "L_grid.png"))  # grids are skipped
    rows = spatial.spatial_scale(str(tmp_path))
    assert [(r["iteration"], r["channel"], r["period"]) for r in rows] == [(0, 0, 8), (0, 1, 8), (10, 0, 16),
                                                                         (10, 1, 16)]
    summary = spatial.summarise(rows)
    assert [(s["iteration"], s["n"], s["period"], s["period_std"]) for s in summary] == [(0, 2, 8, 0), (10, 2, 16, 0)]


# ---- redundancy --------------------------------------------------------------------------------------

def test_redundancy_identical_orthogonal_and_by_hand():
    v = RNG.normal(size=(1, 50))
    assert redundancy.redundancy_score(redundancy.cosine_matrix(np.repeat(v, 4, 0) * [[1], [2], [3], [4]])) == \
        pytest.approx(1)
    assert redundancy.redundancy_score(redundancy.cosine_matrix(np.eye(5))) == pytest.approx(0)
    S = np.array([[1, 0.5, 0.1], [0.5, 1, -0.3], [0.1, -0.3, 1]])
    assert redundancy.redundancy_score(S) == pytest.approx((0.5 + 0.1 - 0.3) / 3)
    img = RNG.uniform(size=(16, 16, 3))
    _, same = redundancy.redundancy(np.stack([img, img, np.clip(img + 0.1, 0, 2)]), method="pixels")
    assert same == pytest.approx(1)  # a shift of the mean colour does not count
    h = np.zeros((2, 4, 4, 1))
    h[0, :2], h[0, 2:], h[1, :, :2], h[1, :, 2:] = 1, -1, 1, -1  # orthogonal after mean removal
    assert redundancy.redundancy(h)[1] == pytest.approx(0, abs=1e-12)


def test_redundancy_by_activations_of_a_fixed_layer():
    from lucidtl.optvis import features

    model = build_tiny_cnn()
    imgs = np.random.default_rng(3).uniform(size=(3, 12, 12, 3)).astype(np.float32)
    want = np.asarray(features.feature_model(model, ["mixed"])(imgs)).mean(axis=(1, 2))
    np.testing.assert_allclose(redundancy.activation_vectors(imgs, model, "mixed"), want, rtol=1e-5)
    S, score = redundancy.redundancy(np.stack([imgs[0]] * 3), "activations", model, "mixed")
    assert score == pytest.approx(1, abs=1e-9)
    with pytest.raises(InvalidArgumentError, match="needs a model"):
        redundancy.redundancy(imgs, "activations")


# ---- dataset examples --------------------------------------------------------------------------------

def hand_model():
    """3x3 'same' conv whose channel 0 is the red pixel (centre tap) and channel 1 the green one; ReLU."""
    x = inp = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name="conv")
    x = keras.layers.ReLU(name="act")(conv(x))
    model = keras.Model(inp, x)
    k = np.zeros((3, 3, 3, 2), np.float32)
    k[1, 1, 0, 0] = k[1, 1, 1, 1] = 1.0
    conv.set_weights([k])
    return model


SPOTS = [(0.3, (2, 2)), (0.9, (5, 3)), (0.5, (4, 4)), (0.1, (6, 6)), (0.5, (3, 5)), (0.7, (1, 6))]


def spot_images():
    imgs = np.zeros((len(SPOTS), 8, 8, 3), np.float32)
    for i, (v, (y, x)) in enumerate(SPOTS):
        imgs[i, y, x, 0] = v
        imgs[i, :, :, 2] = 0.25  # blue background the model ignores
    return imgs


def test_receptive_field():
    tiny = build_tiny_cnn()
    assert ex.receptive_field(tiny, "conv1_relu") == ((3, 3), (1, 1))
    assert ex.receptive_field(tiny, "branch_b") == ((3, 3), (1, 1))
    assert ex.receptive_field(tiny, "mixed") == ((5, 5), (1, 1))  # the larger branch
    assert ex.receptive_field(tiny, "fused") == ((7, 7), (2, 2))
    x = inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(1, 3, dilation_rate=2, name="d")(x)
    x = keras.layers.MaxPooling2D(2, name="p")(x)
    x = keras.layers.Conv2D(1, 3, strides=2, name="s")(x)
    m = keras.Model(inp, x)
    assert ex.receptive_field(m, "d") == ((5, 5), (1, 1))
    assert ex.receptive_field(m, "p") == ((6, 6), (2, 2))
    assert ex.receptive_field(m, "s") == ((10, 10), (4, 4))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_top_k_images_known_by_construction(batch_size):
    imgs, labels = spot_images(), np.array([0, 1, 0, 1, 0, 1])
    res = ex.dataset_examples(hand_model(), "act", [0, 1], (imgs, labels), k=4, batch_size=batch_size)
    top = res.top[0]
    assert [e.index for e in top] == [1, 5, 2, 4]  # 0.9, 0.7, then the 0.5 tie in dataset order
    assert [e.score for e in top] == pytest.approx([0.9, 0.7, 0.5, 0.5])
    assert [e.position for e in top] == [(5, 3), (1, 6), (4, 4), (3, 5)]
    assert [e.label for e in top] == [1, 1, 0, 0]
    np.testing.assert_array_equal(top[0].image, imgs[1])
    assert [e.index for e in res.top[1]] == [0, 1, 2, 3]  # green is 0 everywhere: all tie
    assert res.field == ((3, 3), (1, 1)) and res.n_images == 6
    # class-average crops: 3x3 around each image's spot, weighted by its activation (the red value)
    want = {}
    for lbl in (0, 1):
        num, den = np.zeros((3, 3, 3)), 0.0
        for i in np.flatnonzero(labels == lbl):
            v, (y, x) = SPOTS[i]
            num += v * imgs[i, y - 1:y + 2, x - 1:x + 2]
            den += v
        want[lbl] = num / den
        np.testing.assert_allclose(res.class_crops[0][lbl], want[lbl], atol=1e-6)
    assert res.class_weights[0][1] == pytest.approx(0.9 + 0.1 + 0.7)
    with pytest.raises(ChannelRangeError):
        ex.dataset_examples(hand_model(), "act", [2], imgs)
    mean = ex.dataset_examples(hand_model(), "act", "0", imgs, k=2, reduce="mean", class_crops=False)
    assert [e.index for e in mean.top[0]] == [1, 5] and mean.top[0][0].score == pytest.approx(0.9 / 64)


def test_crop_mask_and_heatmap():
    img = np.arange(5 * 5 * 1, dtype=np.float64).reshape(5, 5, 1)
    piece, mask = ex.crop(img, (0, 0), (3, 3))
    assert mask[..., 0].tolist() == [[0, 0, 0], [0, 1, 1], [0, 1, 1]]
    assert piece[1:, 1:, 0].tolist() == [[0, 1], [5, 6]]
    assert ex.map_to_image((1, 2), (4, 4), (8, 8)) == (2.5, 4.5)
    image = np.full((8, 8, 3), 0.5)
    np.testing.assert_allclose(ex.heatmap(image, np.zeros((4, 4))), image)
    amap = np.zeros((4, 4))
    amap[0, 0] = 2.0
    out = ex.heatmap(image, amap)
    change = np.abs(out - image).sum(-1)
    assert np.unravel_index(change.argmax(), change.shape) == (0, 0) and change[7, 7] == 0


def test_examples_over_checkpoints_write_pngs(tmp_path):
    from PIL import Image

    model = hand_model()
    run = make_run(tmp_path / "run", model, scales=(0.0, 0.0), iterations=(0, 20))
    rows = ex.examples_over_checkpoints(hand_model, str(run), "act", [0], (spot_images(), np.arange(6) % 2),
                                        str(tmp_path / "out"), k=3, class_names=["cat", "dog"])
    assert [(r["iteration"], r["index"]) for r in rows] == [(0, 1), (0, 5), (0, 2), (20, 1), (20, 5), (20, 2)]
    for it in ("iter_000000", "iter_000020"):
        top = Image.open(tmp_path / "out" / it / "act_0000_top.png")
        assert top.width > 3 * 8 and top.height > 2 * 8
        assert (tmp_path / "out" / it / "act_0000_classes.png").is_file()
