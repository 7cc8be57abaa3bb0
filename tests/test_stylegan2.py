"""StyleGAN2: official-layout pickles -> generator == NumPy reference; latent ascent, repeats, ablation, CLI."""
import os
import pickle
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

import stylegan2_reference as ref
from conftest import build_tiny_cnn, cli_exit
from lucidtl.errors import InvalidArgumentError, UnknownLayerError, WeightsError
from lucidtl.stylegan2 import ablation as abl
from lucidtl.stylegan2 import ascent as asc
from lucidtl.stylegan2 import pkl
from lucidtl.stylegan2.networks import Config, Generator

RES, LATENT, DLATENT, MAP_LAYERS, MAP_FMAPS = 16, 16, 16, 2, 24
FMAP = dict(fmap_base=64, fmap_max=16)  # channels: 4x4 16, 8x8 16, 16x16 8
CHANNELS = {4: 16, 8: 16, 16: 8}
NUM_WS = 2 * 4 - 2


# ---- writing pickles in the official layout (independent of lucidtl's name tables) ----------------------

class _Network:
    """Pickles like dnnlib.tflib.network.Network: its __getstate__ state dict."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state

    def __setstate__(self, state):
        self._state = state


def register_dnnlib(monkeypatch):
    """Register _Network as dnnlib.tflib.network.Network so pickle records exactly that global."""
    net_mod = types.ModuleType("dnnlib.tflib.network")
    _Network.__module__, _Network.__qualname__, _Network.__name__ = "dnnlib.tflib.network", "Network", "Network"
    net_mod.Network = _Network
    for name, mod in (("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.tflib", types.ModuleType("dnnlib.tflib")),
                      ("dnnlib.tflib.network", net_mod)):
        monkeypatch.setitem(sys.modules, name, mod)
    return _Network


@pytest.fixture
def dnnlib(monkeypatch):
    return register_dnnlib(monkeypatch)


class _OfficialPickler(pickle._Pickler):
    """Writes numpy globals under numpy 1.x's module paths (numpy.core...), as the official pickles hold them."""

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "") or ""
        if module.startswith("numpy._core"):
            self.save(module.replace("numpy._core", "numpy.core"))
            self.save(name or obj.__name__)
            self.write(pickle.STACK_GLOBAL)
            self.memoize(obj)
            return
        super().save_global(obj, name)


def official_variables(rng, scale=1.0):
    """(Gs vars, mapping vars, synthesis vars) with the spec's names, order and shapes, random values."""
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    gs = [("lod", np.float32(0.0)), ("dlatent_avg", f32(rng.standard_normal(DLATENT)))]
    mapping, fan_in = [], LATENT
    for i in range(MAP_LAYERS):
        out = DLATENT if i == MAP_LAYERS - 1 else MAP_FMAPS
        mapping += [(f"Dense{i}/weight", f32(rng.standard_normal((fan_in, out)) * 100 * scale)),
                    (f"Dense{i}/bias", f32(rng.standard_normal(out) * 10))]
        fan_in = out
    synth = [(f"noise{i}", f32(rng.standard_normal((1, 1, r, r)))) for i, r in enumerate([4, 8, 8, 16, 16])]

    def modconv(prefix, k, cin, cout, noise):
        v = [(f"{prefix}/weight", f32(rng.standard_normal((k, k, cin, cout)) * scale)),
             (f"{prefix}/mod_weight", f32(rng.standard_normal((DLATENT, cin)))),
             (f"{prefix}/mod_bias", f32(rng.standard_normal(cin) * 0.2))]
        if noise:
            v.append((f"{prefix}/noise_strength", np.float32(rng.uniform(0.1, 0.5))))
        return v + [(f"{prefix}/bias", f32(rng.standard_normal(cout) * 0.2))]

    synth.append(("4x4/Const/const", f32(rng.standard_normal((1, 16, 4, 4)))))
    synth += modconv("4x4/Conv", 3, 16, 16, True) + modconv("4x4/ToRGB", 1, 16, 3, False)
    for r in (8, 16):
        cin, c = CHANNELS[r // 2], CHANNELS[r]
        synth += modconv(f"{r}x{r}/Conv0_up", 3, cin, c, True) + modconv(f"{r}x{r}/Conv1", 3, c, c, True)
        synth += modconv(f"{r}x{r}/ToRGB", 1, c, 3, False)
    return gs, mapping, synth


def write_official_pickle(path, seed=0, edit=None, extra=None):
    """(G, D, Gs) like stylegan2-*-config-f.pkl at 16 px; returns Gs's variables with full TF names.
    edit(gs, mapping, synth) may change the variable lists before writing."""
    rng = np.random.default_rng(seed)
    gs, mapping, synth = official_variables(rng)
    if edit:
        edit(gs, mapping, synth)
    common = dict(num_channels=3, resolution=RES, label_size=0, architecture="skip", **FMAP)
    if extra:
        common.update(extra)

    def network(name, variables, kwargs, components, func):
        return _Network(dict(version=4, name=name, static_kwargs=kwargs, components=components,
                             build_module_src="raise SystemExit('never executed')\n", build_func_name=func,
                             variables=variables))

    def generator(name, gs_vars, map_vars, syn_vars):
        syn = network("G_synthesis", syn_vars, dict(common), {}, "G_synthesis_stylegan2")
        mp = network("G_mapping", map_vars, dict(common, latent_size=LATENT, dlatent_size=DLATENT,
                                                  mapping_layers=MAP_LAYERS, mapping_fmaps=MAP_FMAPS,
                                                  dlatent_broadcast=NUM_WS), {}, "G_mapping")
        return network(name, gs_vars, dict(common, latent_size=LATENT, mapping_layers=MAP_LAYERS,
                                           mapping_fmaps=MAP_FMAPS), {"synthesis": syn, "mapping": mp}, "G_main")

    other = official_variables(np.random.default_rng(seed + 100))  # G: different (non-averaged) values
    G = generator("G", *other)
    Gs = generator("Gs", gs, mapping, synth)
    D = network("D", [("4x4/Dense0/weight", np.zeros((4, 4), np.float32))], dict(common), {}, "D_stylegan2")
    with open(path, "wb") as f:
        _OfficialPickler(f, protocol=4).dump((G, D, Gs))
    pairs = lambda vs: [e for e in vs if isinstance(e, tuple) and len(e) == 2]  # noqa: E731 (edits may break some)
    full = {k: np.asarray(v) for k, v in pairs(gs)}
    full.update({"G_mapping/" + k: np.asarray(v) for k, v in pairs(mapping)})
    full.update({"G_synthesis/" + k: np.asarray(v) for k, v in pairs(synth)})
    return full


@pytest.fixture
def official(tmp_path, dnnlib):
    path = tmp_path / "tiny-config-f.pkl"
    arrays = write_official_pickle(path)
    return path, arrays


# ---- the generator against the NumPy reference ----------------------------------------------------------

def test_pickle_has_official_globals(official):
    path, _ = official
    data = path.read_bytes()
    assert b"dnnlib.tflib.network" in data and b"numpy.core.multiarray" in data and b"numpy._core" not in data


def test_loaded_generator_matches_numpy_reference(official, tmp_path):
    path, v = official
    g = pkl.load_generator(path, cache_dir=tmp_path / "cache")
    assert g.config.resolution == RES and g.config.num_ws == NUM_WS and g.config.mapping_layers == MAP_LAYERS
    assert g.config.channels(16) == 8 and g.config.mapping_fmaps == MAP_FMAPS
    z = np.random.default_rng(1).standard_normal((3, LATENT)).astype(np.float32)
    w = g.mapping(z).numpy()
    w_ref = ref.mapping(v, z, MAP_LAYERS)
    np.testing.assert_allclose(w, w_ref, atol=1e-4 * np.abs(w_ref).max())
    ws = (w_ref[:, None] + np.random.default_rng(2).standard_normal((3, NUM_WS, DLATENT))).astype(np.float32)
    blocks = {}
    img = g.synthesis(ws, noise="const", blocks=blocks).numpy()
    img_ref, blocks_ref = ref.synthesis(v, ws, RES)
    for name in ("4x4", "4x4/rgb", "8x8", "8x8/rgb", "16x16"):
        got = np.transpose(blocks[name].numpy(), [0, 3, 1, 2])
        np.testing.assert_allclose(got, blocks_ref[name], atol=1e-4, err_msg=name)
    assert img.shape == (3, 3, RES, RES)
    np.testing.assert_allclose(img, img_ref, atol=1e-4)
    np.testing.assert_array_equal(g.w_avg.numpy(), v["dlatent_avg"])  # from Gs, not G
    assert "dlatent_avg" in g.w_avg_source


def test_conversion_is_cached_by_sha256(official, tmp_path, monkeypatch):
    path, v = official
    cache = tmp_path / "cache"
    g1 = pkl.load_generator(path, cache_dir=cache)
    cached = cache / f"{pkl.sha256(path)}.npz"
    assert cached.is_file() and not [f for f in os.listdir(cache) if f.startswith(".tmp")]
    monkeypatch.setattr(pkl, "convert", lambda p: pytest.fail("converted twice"))
    g2 = pkl.load_generator(path, cache_dir=cache)
    g3 = pkl.load_generator(cached)
    for k, var in g1.vars.items():
        np.testing.assert_array_equal(var.numpy(), g2.vars[k].numpy())
        np.testing.assert_array_equal(var.numpy(), g3.vars[k].numpy())
    assert g2.config == g1.config and g2.w_avg_source == g1.w_avg_source


def test_w_avg_estimated_when_pickle_has_none(tmp_path, dnnlib):
    path = tmp_path / "no-avg.pkl"
    v = write_official_pickle(path, edit=lambda gs, m, s: gs.pop(1))
    g = pkl.load_generator(path, cache_dir=tmp_path, w_avg_samples=300, seed=7)
    z = np.random.RandomState(7).randn(300, LATENT)
    np.testing.assert_allclose(g.w_avg.numpy(), ref.mapping(v, z, MAP_LAYERS).mean(0), rtol=1e-4, atol=1e-3)
    assert "300 samples" in g.w_avg_source


def test_truncation_and_noise_modes():
    g = Generator(Config(resolution=8, latent_size=8, dlatent_size=8, mapping_layers=2, mapping_fmaps=8,
                         fmap_base=32, fmap_max=8), seed=3)
    g.w_avg.assign(np.arange(8, dtype=np.float32))
    for key in g.vars:
        if key.endswith("noise_strength"):
            g.vars[key].assign(0.5)
    w = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    ws = g.truncate(w, psi=0.5, cutoff=2).numpy()
    want = np.arange(8) + 0.5 * (w[:, None] - np.arange(8))
    np.testing.assert_allclose(ws[:, :2], np.broadcast_to(want, (2, 2, 8)), rtol=1e-6)
    np.testing.assert_allclose(ws[:, 2:], np.broadcast_to(w[:, None], (2, 2, 8)), atol=1e-6)  # lerp, psi 1
    a, b = g.synthesis(w, noise="const").numpy(), g.synthesis(w, noise="const").numpy()
    np.testing.assert_array_equal(a, b)
    c, d = g.synthesis(w, noise="random").numpy(), g.synthesis(w, noise="random").numpy()
    assert np.abs(c - d).max() > 1e-3 and np.abs(a - c).max() > 1e-3
    seed = tf.constant([1, 2])
    np.testing.assert_array_equal(g.synthesis(w, noise=g.noise_maps(2, seed)).numpy(),
                                  g.synthesis(w, noise=g.noise_maps(2, seed)).numpy())


# ---- bad pickles --------------------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_pickle_naming_other_globals_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps((_Evil(),), protocol=4))
    with pytest.raises(WeightsError, match=r"pickles (posix|os|nt)\.system.*refusing") as e:
        pkl.read_pickle(path)
    assert "\n" not in str(e.value) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda gs, m, s: s.pop(next(i for i, (k, _) in enumerate(s) if k == "8x8/ToRGB/bias")),
     r"lacks the variable G_synthesis/8x8/ToRGB/bias"),
    (lambda gs, m, s: s.__setitem__(next(i for i, (k, _) in enumerate(s) if k == "8x8/Conv1/weight"),
                                    ("8x8/Conv1/weight", np.zeros((3, 3, 16, 12), np.float32))),
     r"variable G_synthesis/8x8/Conv1/weight has shape \[3, 3, 16, 12\], expected \[3, 3, 16, 16\]"),
    (lambda gs, m, s: s.append(("ToRGB_lod0/weight", np.zeros((1, 1, 8, 3), np.float32))), r"configs A-D"),
    (lambda gs, m, s: s.pop(next(i for i, (k, _) in enumerate(s) if k == "16x16/ToRGB/weight")),
     r"lacks the variable G_synthesis/16x16/ToRGB/weight"),
    (lambda gs, m, s: s.__setitem__(next(i for i, (k, _) in enumerate(s) if k == "8x8/ToRGB/weight"),
                                    ("8x8/ToRGB/weight", np.zeros((16, 3), np.float32))),
     r"variable G_synthesis/8x8/ToRGB/weight has shape \[16, 3\], expected a 4-D"),
    (lambda gs, m, s: s.insert(3, ("8x8/Conv1/weight",)),
     r"network 'G_synthesis' variable entry 3 is a tuple of 1, not a \(name, value\) pair"),
    (lambda gs, m, s: m.append("Dense9/weight"), r"network 'G_mapping' variable entry \d+ is a str, not a \(name"),
])
def test_mismatched_pickle_names_the_problem(tmp_path, dnnlib, edit, message):
    path = tmp_path / "bad.pkl"
    write_official_pickle(path, edit=edit)
    with pytest.raises(WeightsError, match=message) as e:
        pkl.load_generator(path, cache_dir=tmp_path)
    assert "\n" not in str(e.value)


def test_unsupported_architecture_and_not_a_pickle(tmp_path, dnnlib):
    path = tmp_path / "resnet.pkl"
    write_official_pickle(path, extra={"architecture": "resnet"})
    with pytest.raises(WeightsError, match="architecture='resnet' is not supported"):
        pkl.convert(path)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError, match="cannot read .*junk.pkl as a StyleGAN2 pickle"):
        pkl.convert(junk)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="not \\(G, D, Gs\\) networks"):
        pkl.convert(plain)


# ---- stylegan2-ada-pytorch pickles (no torch) -----------------------------------------------------------

def _legacy_storage_bytes(array):
    """What torch.storage._load_from_bytes receives: a legacy torch.save stream of one FloatStorage."""
    import io
    import struct

    from lucidtl.models.torch_pickle import LEGACY_MAGIC, LEGACY_PROTOCOL

    class FloatStorage:  # recorded as the global torch.FloatStorage
        pass

    FloatStorage.__module__ = "torch"

    class P(pickle._Pickler):
        def persistent_id(self, obj):
            if obj is array:
                return ("storage", FloatStorage, "0", "cpu", array.size)
            return None

        def save_global(self, obj, name=None):
            if obj is FloatStorage:
                self.save("torch")
                self.save("FloatStorage")
                self.write(pickle.STACK_GLOBAL)
                return
            super().save_global(obj, name)

    f = io.BytesIO()
    for head in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True, "protocol_version": 1001}):
        pickle.dump(head, f, protocol=2)
    P(f, protocol=2).dump(array)
    pickle.dump(["0"], f, protocol=2)
    f.write(struct.pack("<q", array.size) + array.astype("<f4").tobytes())
    return f.getvalue()


def _torch_global(module, name):
    fn = lambda *a: None  # noqa: E731
    fn.__module__, fn.__qualname__, fn.__name__ = module, name, name
    return fn


_REBUILD = _torch_global("torch._utils", "_rebuild_tensor_v2")
_LOAD = _torch_global("torch.storage", "_load_from_bytes")


class _Tensor:
    """Pickles like a torch tensor: _rebuild_tensor_v2(_load_from_bytes(bytes), 0, size, stride, False, {})."""

    def __init__(self, array):
        self.array = np.array(array, np.float32, order="C")  # 0-d stays 0-d

    def __reduce__(self):
        a = self.array
        strides = tuple(s // 4 for s in a.strides)
        storage = _Reduced(_LOAD, (_legacy_storage_bytes(a.ravel()),))
        return _REBUILD, (storage, 0, tuple(a.shape), strides, False, {})


class _Reduced:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


_RECONSTRUCT = _torch_global("torch_utils.persistence", "_reconstruct_persistent_obj")


def _ada_module(class_name, params=None, buffers=None, modules=None, init_kwargs=None):
    state = {"training": False, "_parameters": {k: _Tensor(v) for k, v in (params or {}).items()},
             "_buffers": {k: _Tensor(v) for k, v in (buffers or {}).items()}, "_modules": modules or {},
             "_init_kwargs": init_kwargs or {}}
    return _Reduced(_RECONSTRUCT, ({"type": "class", "version": 6, "module_src": "raise SystemExit", "class_name": class_name,
                             "state": state},))


def test_stylegan2_ada_pickle_converts_to_the_same_generator(tmp_path, monkeypatch, official):
    """An ADA-layout pickle of the same weights (renamed as stylegan2-ada-pytorch's legacy.py does) loads to the
    same variables as the TF pickle."""
    path, v = official
    fake = {}
    for mod in ("torch", "torch._utils", "torch.storage", "torch_utils", "torch_utils.persistence"):
        fake[mod] = types.ModuleType(mod)
        monkeypatch.setitem(sys.modules, mod, fake[mod])
    fake["torch._utils"]._rebuild_tensor_v2 = _REBUILD
    fake["torch.storage"]._load_from_bytes = _LOAD
    fake["torch_utils.persistence"]._reconstruct_persistent_obj = _RECONSTRUCT

    mapping = {f"fc{i}": _ada_module("FullyConnectedLayer", {"weight": v[f"G_mapping/Dense{i}/weight"].T,
                                                             "bias": v[f"G_mapping/Dense{i}/bias"]})
               for i in range(MAP_LAYERS)}
    blocks = {}
    for r in (4, 8, 16):
        k = r.bit_length() - 1
        layers = [("conv1", "Conv", 0)] if r == 4 else [("conv0", "Conv0_up", 2 * k - 5), ("conv1", "Conv1", 2 * k - 4)]
        mods = {}
        for tname, name, n in layers + [("torgb", "ToRGB", None)]:
            p = f"G_synthesis/{r}x{r}/{name}/"
            w = v[p + "weight"][::-1, ::-1] if tname == "conv0" else v[p + "weight"]
            params = {"weight": w.transpose(3, 2, 0, 1), "bias": v[p + "bias"]}
            buffers = {}
            if n is not None:
                params["noise_strength"] = np.asarray(v[p + "noise_strength"])
                buffers = {"noise_const": v[f"G_synthesis/noise{n}"][0, 0], "resample_filter": np.ones((4, 4))}
            affine = _ada_module("FullyConnectedLayer", {"weight": v[p + "mod_weight"].T, "bias": v[p + "mod_bias"] + 1})
            mods[tname] = _ada_module("SynthesisLayer", params, buffers, {"affine": affine})
        params = {"const": v["G_synthesis/4x4/Const/const"][0]} if r == 4 else {}
        blocks[f"b{r}"] = _ada_module("SynthesisBlock", params, {"resample_filter": np.ones((4, 4))}, mods)
    g_ema = _ada_module("Generator", modules={
        "synthesis": _ada_module("SynthesisNetwork", modules=blocks),
        "mapping": _ada_module("MappingNetwork", buffers={"w_avg": v["dlatent_avg"]}, modules=mapping)},
        init_kwargs={"z_dim": LATENT, "c_dim": 0, "synthesis_kwargs": {"architecture": "skip", "conv_clamp": None}})
    ada = tmp_path / "network-snapshot.pkl"
    with open(ada, "wb") as f:
        pickle._Pickler(f, protocol=4).dump({"G": None, "D": None, "G_ema": g_ema, "augment_pipe": None})
    for mod in fake:  # the reader must not need these modules
        monkeypatch.delitem(sys.modules, mod)
    config, arrays, source = pkl.convert(ada)
    assert "ada" in source and config.resolution == RES and config.channels(16) == 8
    for name, value in arrays.items():
        np.testing.assert_allclose(value, v[name], rtol=1e-6, atol=1e-5, err_msg=name)
    assert set(arrays) == set(config.variable_shapes())


# ---- latent ascent ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_g():
    g = Generator(Config(resolution=16, latent_size=16, dlatent_size=16, mapping_layers=2, mapping_fmaps=16,
                         fmap_base=64, fmap_max=16), seed=4)
    for key in g.vars:
        if key.endswith("noise_strength"):
            g.vars[key].assign(0.3)
    g.estimate_w_avg(200)
    return g


@pytest.fixture(scope="module")
def classifier():
    return build_tiny_cnn(seed=1)


def test_resize_area_is_box_mean_and_differentiable():
    x = tf.constant(np.random.default_rng(0).random((1, 16, 16, 3)), tf.float32)
    got = asc.resize_image(x, 4, "area").numpy()
    np.testing.assert_allclose(got, x.numpy().reshape(1, 4, 4, 4, 4, 3).mean((2, 4)), rtol=1e-6)
    for method in ("area", "bilinear"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(asc.resize_image(x, 6, method))
        assert tape.gradient(y, x) is not None


def test_ascent_raises_the_objective(tiny_g, classifier):
    run = asc.Ascent(tiny_g, classifier, "fused:1", lam=1e-3, lr=0.05, noise="fixed", seed=0)
    start = run.run(0).final_values[0]
    res = run.run(15)
    assert res.final_values[0] > start + 0.05 and res.values[0, -1] > res.values[0, 0]
    assert run.traces == 1 and res.images.shape == (1, 16, 16, 3) and res.w.shape == (1, 16)
    assert 0.0 <= res.images.min() and res.images.max() <= 1.0
    assert res.penalties[0, 0] == pytest.approx(0.0, abs=1e-9) and res.penalties[0, -1] > 0  # starts at w_avg


def test_ascent_targets_the_class_score_behind_a_softmax_layer(tiny_g, classifier):
    """layer features.SCORE: the logit of class k, also where the classifier ends in a Softmax layer."""
    import keras

    from lucidtl.optvis import features

    probs = keras.Model(classifier.inputs[0], keras.layers.Softmax()(classifier.output), name="probs")
    run = asc.Ascent(tiny_g, probs, layer=features.SCORE, channel=2, lam=1e-3, lr=0.05, noise="fixed", seed=0)
    for steps in (0, 4):
        res = run.run(steps)
        want = float(classifier(res.images, training=False)[0, 2])  # the linear head's logit of that image
        assert res.final_values[0] == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert res.values[0, -1] > res.values[0, 0]


def test_repeats_differ_only_through_noise(tiny_g, classifier):
    fixed = asc.ascent(tiny_g, classifier, layer="fused", channel=2, steps=4, noise="fixed", repeats=2)
    np.testing.assert_array_equal(fixed.images[0], fixed.images[1])
    np.testing.assert_array_equal(fixed.w[0], fixed.w[1])
    fresh = asc.ascent(tiny_g, classifier, layer="fused", channel=2, steps=4, noise="resample", repeats=2, seed=3)
    assert np.abs(fresh.w[0] - fresh.w[1]).max() > 0 and np.abs(fresh.images[0] - fresh.images[1]).max() > 1e-3
    again = asc.ascent(tiny_g, classifier, layer="fused", channel=2, steps=4, noise="resample", repeats=2, seed=3)
    np.testing.assert_array_equal(fresh.w, again.w)  # seeded


def test_w_plus_and_bad_arguments(tiny_g, classifier):
    res = asc.ascent(tiny_g, classifier, layer="fused", channel=0, steps=2, w_plus=True, noise="fixed")
    assert res.w.shape == (1, tiny_g.config.num_ws, 16) and np.abs(res.w[0, 0] - res.w[0, -1]).max() > 0
    with pytest.raises(InvalidArgumentError, match="--lam"):
        asc.ascent(tiny_g, classifier, layer="fused", lam=-1)
    with pytest.raises(UnknownLayerError, match="closest: fused"):
        asc.ascent(tiny_g, classifier, layer="fusde", steps=1)


# ---- weight ablation ----------------------------------------------------------------------------------

def test_ablated_kernel_negates_the_top_k_by_magnitude():
    kernel = np.random.default_rng(0).standard_normal((3, 3, 4, 5)).astype(np.float32)
    out = abl.ablated_kernel(kernel, 2, 5)
    flat, new = kernel[..., 2].ravel(), out[..., 2].ravel()
    top = set(np.argsort(-np.abs(flat))[:5])
    for i in range(flat.size):
        assert new[i] == (-flat[i] if i in top else flat[i])
    np.testing.assert_array_equal(np.delete(out, 2, -1), np.delete(kernel, 2, -1))


def test_ablation_restores_weights_also_after_an_error(tiny_g, classifier):
    before = [w.numpy().copy() for w in classifier.weights]
    images, results = abl.ablation(tiny_g, classifier, "fused", 1, max_k=2, steps=2, noise="fixed")
    assert images.shape == (3, 16, 16, 3) and len(results) == 3
    assert not np.array_equal(images[0], images[2])  # the ablation changed the picture
    for a, b in zip(before, classifier.weights):
        np.testing.assert_array_equal(a, b.numpy())

    def boom(k, result):
        if k == 1:
            assert not np.array_equal(classifier.get_layer("fused").kernel.numpy(), before_kernel)
            raise RuntimeError("stop")

    before_kernel = classifier.get_layer("fused").kernel.numpy().copy()
    with pytest.raises(RuntimeError):
        abl.ablation(tiny_g, classifier, "fused", 1, max_k=3, steps=1, noise="fixed", callback=boom)
    for a, b in zip(before, classifier.weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert abl.conv_layer(classifier, "conv1_relu").name == "conv1"


# ---- CLI ----------------------------------------------------------------------------------------------

@pytest.fixture
def cli_files(tmp_path, dnnlib):
    pk = tmp_path / "g.pkl"
    write_official_pickle(pk)
    model = tmp_path / "tiny.keras"
    build_tiny_cnn(seed=2).save(model)
    return ["--pickle", str(pk), "--model", str(model), "--cache-dir", str(tmp_path / "cache"), "--layer", "fused",
            "--noise", "fixed", "--out", str(tmp_path / "out")], tmp_path / "out"


def _run(argv, capsys):
    from lucidtl import stylegan

    return cli_exit(stylegan.main, argv, capsys)


def test_cli_writes_ascent_repeats_side_by_side_and_ablation(cli_files, capsys):
    from PIL import Image

    from lucidtl import stylegan

    base, out = cli_files
    stylegan.main(["ascent", *base, "--channel", "2", "--steps", "2"])
    assert {"fused_0002_stylegan2.png", "fused_0002_stylegan2_w.npy", "fused_0002_stylegan2.json"} <= set(os.listdir(out))
    assert np.asarray(Image.open(out / "fused_0002_stylegan2.png")).shape == (16, 16, 3)
    assert np.load(out / "fused_0002_stylegan2_w.npy").shape == (1, DLATENT)
    stylegan.main(["repeats", *base, "--channel", "2", "--steps", "1", "--repeats", "2"])
    assert Image.open(out / "fused_0002_stylegan2_repeats.png").width > 2 * 16
    stylegan.main(["side-by-side", *base, "--channels", "0,3", "--steps", "1", "--lucid-steps", "1", "--size", "20"])
    grid = Image.open(out / "fused_side_by_side.png")
    assert grid.width > 2 * 20 and grid.height > 2 * 20
    stylegan.main(["ablation", *base, "--channel", "1", "--steps", "1", "--max-k", "4", "--cols", "2"])
    grid = Image.open(out / "fused_0001_ablation.png")
    assert grid.height > 3 * 16 and grid.width > 2 * 16  # 5 pictures, 2 per row -> 3 rows
    printed = capsys.readouterr().out
    assert "wrote" in printed and "fused_0001_ablation.png" in printed


def test_cli_convert_and_errors(cli_files, tmp_path, capsys):
    from lucidtl import stylegan

    base, out = cli_files
    npz = tmp_path / "converted" / "g.npz"  # --out is a folder; the file is named after the pickle
    stylegan.main(["convert", "--pickle", base[1], "--cache-dir", str(tmp_path / "cache"), "--out", str(npz.parent)])
    assert npz.is_file() and "16px" in capsys.readouterr().out
    code, io = _run(["ascent", *base, "--lam", "-1"], capsys)
    assert code == 2 and io.err.startswith("error: --lam") and io.err.count("\n") == 1
    code, io = _run(["ascent", *base, "--layer", "fusde"], capsys)
    assert code == 2 and "unknown layer 'fusde'" in io.err and "fused" in io.err and io.err.count("\n") == 1
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04garbage")
    code, io = _run(["ascent", *[a if a != base[1] else str(bad) for a in base]], capsys)
    assert code == 2 and "bad.pkl" in io.err and io.err.count("\n") == 1


def test_config_f_layout_matches_the_spec():
    """Config-f at 1024 px, numbers from ../shared/spec/stylegan2.md: channels 512 up to 64 px, 256 at 128,
    128 at 256, 64 at 512, 32 at 1024; 18 ws; 8 mapping layers 512 -> 512; a [1, 512, 4, 4] constant; one noise
    input [1, 1, r, r] per modulated 3x3 conv."""
    from lucidtl.stylegan2.networks import Config

    c = Config()
    assert (c.resolution, c.fmap_base, c.fmap_max, c.num_ws) == (1024, 16384, 512, 18)
    assert [c.channels(r) for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024)] == [512] * 5 + [256, 128, 64, 32]
    shapes = c.variable_shapes()
    assert [shapes[f"G_mapping/Dense{i}/weight"] for i in range(8)] == [[512, 512]] * 8
    assert shapes["G_synthesis/4x4/Const/const"] == [1, 512, 4, 4]
    assert shapes["G_synthesis/1024x1024/Conv0_up/weight"] == [3, 3, 64, 32]
    assert shapes["G_synthesis/1024x1024/ToRGB/weight"] == [1, 1, 32, 3]
    assert shapes["G_synthesis/8x8/Conv0_up/mod_weight"] == [512, 512] and shapes["dlatent_avg"] == [512]
    noises = [shapes[f"G_synthesis/noise{i}"] for i in range(17)]
    assert f"G_synthesis/noise{17}" not in shapes
    assert noises[0] == [1, 1, 4, 4] and noises[1:3] == [[1, 1, 8, 8]] * 2 and noises[-1] == [1, 1, 1024, 1024]
