"""StyleGAN2 network pickles without dnnlib, TF1 or torch, converted once into a cached .npz.

Official TF pickles (stylegan2-ffhq-config-f.pkl, ...): the tuple (G, D, Gs) of dnnlib.tflib.network.Network
objects, each pickling a state dict (version, name, static_kwargs, components, build_module_src, build_func_name,
variables). A restricted unpickler maps that class to a stand-in that only keeps the state; build_module_src is
never executed and any other global is refused. Gs (the moving average) is used.

stylegan2-ada-pytorch pickles: a dict {'G', 'D', 'G_ema', ...} of torch_utils.persistence objects whose tensors
are torch storages serialised with the legacy torch.save stream. Read the same way (no torch, module_src never
executed); G_ema's parameters are renamed to the TF layout.
"""
import collections
import dataclasses
import hashlib
import importlib
import json
import os
import pickle
import re
import struct

import numpy as np

from lucidtl.atomic import atomic_path
from lucidtl.errors import WeightsError
from lucidtl.models import torch_pickle
from lucidtl.stylegan2.networks import Config, Generator

CACHE_VERSION = 1


# ---- stand-ins ----------------------------------------------------------------------------------------

class Network:
    """Stand-in for dnnlib.tflib.network.Network: keeps the pickled state dict, nothing else."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise WeightsError(f"a pickled Network holds a {type(state).__name__}, not a state dict")
        self.state = dict(state)

    name = property(lambda self: self.state.get("name"))
    static_kwargs = property(lambda self: dict(self.state.get("static_kwargs") or {}))
    components = property(lambda self: dict(self.state.get("components") or {}))
    build_func_name = property(lambda self: self.state.get("build_func_name"))

    @property
    def variables(self):
        return [(str(k), np.asarray(v)) for k, v in self.state.get("variables") or []]


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Persistent:
    """Stand-in for a torch_utils.persistence object: its class name and __dict__ (module_src is dropped)."""

    def __init__(self, meta):
        meta = dict(meta)
        self.class_name = meta.get("class_name")
        self.state = dict(meta.get("state") or {})


def _numpy_global(module, name):
    allowed = {"multiarray": ("_reconstruct", "scalar"), "numeric": ("_frombuffer",)}
    sub = module.rsplit(".", 1)[-1]
    if module in ("numpy.core." + sub, "numpy._core." + sub) and name in allowed.get(sub, ()):
        for candidate in ("numpy._core." + sub, "numpy.core." + sub):  # numpy 2 renamed numpy.core
            try:
                return getattr(importlib.import_module(candidate), name)
            except ImportError:
                continue
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    return None


_TORCH = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): Persistent,
    ("torch.storage", "_load_from_bytes"): torch_pickle.storage_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): torch_pickle.rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): torch_pickle.rebuild_parameter,
    ("torch", "Size"): tuple,
}
_COMMON = {
    ("dnnlib.tflib.network", "Network"): Network,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): lambda text, encoding="latin1": text.encode(encoding),
    ("builtins", "set"): set,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module, name):
        found = _COMMON.get((module, name)) or _TORCH.get((module, name)) or _numpy_global(module, name)
        if found is None:
            raise WeightsError(f"{self._path} pickles {module}.{name}, which no StyleGAN2 network pickle holds; "
                               "refusing to load it (only official TF or stylegan2-ada-pytorch pickles are read)")
        return found

    def persistent_load(self, pid):
        raise WeightsError(f"{self._path}: unexpected persistent record {pid!r:.60}; not a StyleGAN2 pickle")


def read_pickle(path):
    """The unpickled object, with stand-ins in place of dnnlib / torch objects."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"StyleGAN2 pickle {path} does not exist; check the path")
    try:
        with open(path, "rb") as f:
            return _Unpickler(f, path).load()
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError,
            struct.error, UnicodeDecodeError, MemoryError) as e:
        raise WeightsError(f"cannot read {path} as a StyleGAN2 pickle: {type(e).__name__}: "
                           f"{' '.join(str(e).split())[:160]}") from e


# ---- official TF layout -------------------------------------------------------------------------------

def _pick_gs(obj, path):
    if isinstance(obj, Network):
        return obj
    if isinstance(obj, (tuple, list)) and obj and all(isinstance(o, Network) for o in obj):
        named = [o for o in obj if o.name == "Gs"]
        return named[0] if named else obj[-1]
    raise WeightsError(f"{path} holds a {type(obj).__name__}, not (G, D, Gs) networks; "
                       "pass an official StyleGAN2 network pickle")


def _variables(net, path):
    """A pickled Network's variables as (name, array) pairs; a one-line error for any other entry."""
    entries = net.state.get("variables") or []
    if not isinstance(entries, (list, tuple)):
        raise WeightsError(f"{path}: network {net.name!r} holds variables as a {type(entries).__name__}, "
                           "not a list of (name, value) pairs; the pickle is damaged")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[0], str):
            raise WeightsError(f"{path}: network {net.name!r} variable entry {i} is a {type(entry).__name__}"
                               f"{f' of {len(entry)}' if isinstance(entry, (list, tuple)) else ''}, not a "
                               "(name, value) pair; the pickle is damaged")
        try:
            out.append((entry[0], np.asarray(entry[1])))
        except Exception as e:
            raise WeightsError(f"{path}: variable {entry[0]} of network {net.name!r} is not an array "
                               f"({type(e).__name__}); the pickle is damaged") from e
    return out


def _tf_arrays(gs, path):
    """{official name: array} with components prefixed (G_mapping/..., G_synthesis/...), and the kwargs."""
    comps = gs.components
    for key in ("mapping", "synthesis"):
        if not isinstance(comps.get(key), Network):
            raise WeightsError(f"{path}: network {gs.name!r} has no {key} component; pass a generator pickle (Gs)")
    arrays = collections.OrderedDict()
    for net, prefix in ((gs, ""), (comps["mapping"], "G_mapping/"), (comps["synthesis"], "G_synthesis/")):
        for name, value in _variables(net, path):
            arrays[prefix + name] = value
    kwargs = dict(gs.static_kwargs)
    kwargs.update(comps["synthesis"].static_kwargs)
    func = comps["synthesis"].build_func_name
    if func not in (None, "G_synthesis_stylegan2"):
        raise WeightsError(f"{path}: synthesis network {func!r} is not StyleGAN2's G_synthesis_stylegan2 "
                           "(configs E-F); other architectures are not supported")
    return arrays, kwargs, comps["mapping"].static_kwargs


def _check_kwargs(kwargs, path):
    checks = {"architecture": "skip", "nonlinearity": "lrelu", "mapping_nonlinearity": "lrelu",
              "label_size": 0, "resample_kernel": [1, 3, 3, 1], "normalize_latents": True}
    for key, want in checks.items():
        if key in kwargs and kwargs[key] != want and not (key == "label_size" and not kwargs[key]):
            raise WeightsError(f"{path}: {key}={kwargs[key]!r} is not supported (only config-e/f StyleGAN2 with "
                               f"{key}={want!r})")


def infer_config(arrays, kwargs=None, path="pickle"):
    """The Config whose variables these arrays are: sizes from the shapes, fmap_* and lrmul from the kwargs
    when given (else inferred from the channel counts); verified against every shape."""
    kwargs = dict(kwargs or {})
    if any(re.search(r"ToRGB_lod\d+/", k) for k in arrays):
        raise WeightsError(f"{path}: ToRGB_lod* variables belong to configs A-D (progressive growing); only "
                           "StyleGAN2 config-e/f (skip generator) is supported")
    if any("LabelConcat" in k or "LabelEmbed" in k for k in arrays):
        raise WeightsError(f"{path}: a conditional (label) generator is not supported")
    dense = sorted(int(m.group(1)) for k in arrays if (m := re.fullmatch(r"G_mapping/Dense(\d+)/weight", k)))
    res = sorted(int(m.group(1)) for k in arrays if (m := re.fullmatch(r"G_synthesis/(\d+)x\1/ToRGB/bias", k)))
    if not dense or dense != list(range(len(dense))):
        raise WeightsError(f"{path} lacks the mapping variables G_mapping/Dense0/weight ...; not a StyleGAN2 generator")
    if not res or "G_synthesis/4x4/Const/const" not in arrays:
        raise WeightsError(f"{path} lacks G_synthesis/4x4/Const/const or ToRGB variables; not a StyleGAN2 generator")
    first, last = arrays["G_mapping/Dense0/weight"], arrays[f"G_mapping/Dense{dense[-1]}/weight"]
    for r in res:  # each ToRGB's weight gives that resolution's channel count: [1, 1, channels, rgb]
        name = f"G_synthesis/{r}x{r}/ToRGB/weight"
        if name not in arrays:
            raise WeightsError(f"{path} lacks the variable {name} (its ToRGB/bias is there); not a complete "
                               "StyleGAN2 generator")
        if np.ndim(arrays[name]) != 4:
            raise WeightsError(f"{path}: variable {name} has shape {list(np.shape(arrays[name]))}, expected a 4-D "
                               "[1, 1, channels, 3] kernel")
    channels = {r: np.shape(arrays[f"G_synthesis/{r}x{r}/ToRGB/weight"])[2] for r in res}
    top = max(res)
    if "fmap_base" in kwargs:
        fmap = {k: kwargs[k] for k in ("fmap_base", "fmap_max", "fmap_min", "fmap_decay") if k in kwargs}
    else:  # channel_base / res in stylegan2-ada = nf(log2(res) - 1) with fmap_base = channel_base / 2
        fmap = dict(fmap_base=int(channels[top] * top // 2), fmap_max=int(max(channels.values())),
                    fmap_min=int(min(channels.values())))
    try:
        cfg = Config(resolution=top, latent_size=int(np.shape(first)[0]), dlatent_size=int(np.shape(last)[1]),
                     mapping_layers=len(dense), mapping_fmaps=int(np.shape(first)[1]),
                     mapping_lrmul=float(kwargs.get("mapping_lrmul", 0.01)),
                     num_channels=int(np.shape(arrays[f"G_synthesis/{top}x{top}/ToRGB/bias"])[0]),
                     conv_clamp=kwargs.get("conv_clamp"), **fmap)
    except (ValueError, TypeError, IndexError) as e:
        raise WeightsError(f"{path}: cannot infer the generator's configuration ({e})") from e
    for name, shape in cfg.variable_shapes().items():
        if name == "dlatent_avg" and name not in arrays:
            continue  # estimated from the mapping network instead
        if name not in arrays:
            raise WeightsError(f"{path} lacks the variable {name} of a {top}px StyleGAN2 generator")
        if tuple(np.shape(arrays[name])) != tuple(shape):
            raise WeightsError(f"{path}: variable {name} has shape {list(np.shape(arrays[name]))}, expected "
                               f"{list(shape)}")
    return cfg


# ---- stylegan2-ada-pytorch layout ---------------------------------------------------------------------

def _state_dict(obj, prefix=""):
    """{dotted name: array} of a Persistent module's parameters and buffers, recursively."""
    out = collections.OrderedDict()
    for group in ("_parameters", "_buffers"):
        for k, v in (obj.state.get(group) or {}).items():
            if v is not None:
                out[prefix + k] = np.asarray(v)
    for k, child in (obj.state.get("_modules") or {}).items():
        if isinstance(child, Persistent):
            out.update(_state_dict(child, prefix + k + "."))
    return out


def _ada_arrays(g, path):
    """G_ema (a Persistent Generator) -> ({official TF name: array}, kwargs)."""
    sd = _state_dict(g)
    init = dict(g.state.get("_init_kwargs") or {})
    synth = dict(init.get("synthesis_kwargs") or {})
    if synth.get("architecture", "skip") != "skip":
        raise WeightsError(f"{path}: architecture {synth['architecture']!r} is not supported (only 'skip')")
    if init.get("c_dim"):
        raise WeightsError(f"{path}: a conditional (label) generator is not supported")
    tf = collections.OrderedDict()
    if "mapping.w_avg" in sd:
        tf["dlatent_avg"] = sd["mapping.w_avg"]
    i = 0
    while f"mapping.fc{i}.weight" in sd:
        tf[f"G_mapping/Dense{i}/weight"] = sd[f"mapping.fc{i}.weight"].T
        tf[f"G_mapping/Dense{i}/bias"] = sd[f"mapping.fc{i}.bias"]
        i += 1
    blocks = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"synthesis\.b(\d+)\.torgb\.weight", k)))
    if not blocks or "synthesis.b4.const" not in sd:
        raise WeightsError(f"{path}: G_ema has no synthesis.b4.const / torgb weights; not a StyleGAN2 generator")
    try:
        tf["G_synthesis/4x4/Const/const"] = sd["synthesis.b4.const"][None]
        for r in blocks:
            k = r.bit_length() - 1
            layers = [("conv1", "Conv", 0)] if r == 4 else [("conv0", "Conv0_up", 2 * k - 5), ("conv1", "Conv1", 2 * k - 4)]
            for torch_name, tf_name, n in layers + [("torgb", "ToRGB", None)]:
                src, dst = f"synthesis.b{r}.{torch_name}.", f"G_synthesis/{r}x{r}/{tf_name}/"
                if np.ndim(sd.get(src + "weight")) != 4:
                    raise WeightsError(f"{path}: G_ema parameter {src}weight has shape "
                                       f"{list(np.shape(sd.get(src + 'weight')))}, expected a 4-D conv kernel")
                w = sd[src + "weight"].transpose(2, 3, 1, 0)
                tf[dst + "weight"] = w[::-1, ::-1] if torch_name == "conv0" else w
                tf[dst + "mod_weight"] = sd[src + "affine.weight"].T
                tf[dst + "mod_bias"] = sd[src + "affine.bias"] - 1.0
                if n is not None:
                    tf[dst + "noise_strength"] = sd[src + "noise_strength"]
                    tf[f"G_synthesis/noise{n}"] = sd[src + "noise_const"][None, None]
                tf[dst + "bias"] = sd[src + "bias"]
    except KeyError as e:
        raise WeightsError(f"{path}: G_ema lacks the parameter {e.args[0]}") from e
    kwargs = {"mapping_lrmul": float((init.get("mapping_kwargs") or {}).get("lr_multiplier", 0.01)),
              "conv_clamp": synth.get("conv_clamp")}
    return collections.OrderedDict((k, np.array(v, np.float32, order="C")) for k, v in tf.items()), kwargs


# ---- conversion and cache -----------------------------------------------------------------------------

def convert(path):
    """(Config, {official name: float32 array}, source note) from an official TF or stylegan2-ada pickle."""
    path = os.fspath(path)
    obj = read_pickle(path)
    if isinstance(obj, dict) and isinstance(obj.get("G_ema"), Persistent):
        arrays, kwargs = _ada_arrays(obj["G_ema"], path)
        source = "stylegan2-ada-pytorch G_ema"
    else:
        gs = _pick_gs(obj, path)
        arrays, kwargs, mapping_kwargs = _tf_arrays(gs, path)
        _check_kwargs({**kwargs, **mapping_kwargs}, path)
        kwargs.setdefault("mapping_lrmul", mapping_kwargs.get("mapping_lrmul", 0.01))
        source = f"TF pickle network {gs.name!r}"
    config = infer_config(arrays, kwargs, path)
    arrays = collections.OrderedDict((k, np.asarray(arrays[k], np.float32)) for k in config.variable_shapes()
                                     if k in arrays)
    return config, arrays, source


def sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir():
    from lucidtl.models.resources import keras_cache_dir

    return os.path.join(keras_cache_dir(), "lucidtl", "stylegan2")


def save_npz(generator, path, source=""):
    """The generator's variables (official names) + its config as JSON, written atomically."""
    meta = {"config": dataclasses.asdict(generator.config), "source": source, "w_avg_source": generator.w_avg_source,
            "version": CACHE_VERSION}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **generator.arrays())
    return path


def load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
        config = Config(**meta["config"])
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise WeightsError(f"cannot read converted StyleGAN2 weights {path}: {e}; delete it to convert again") from e
    g = Generator(config).assign(arrays, source=path)
    g.w_avg_source = meta.get("w_avg_source", "stored")
    return g


def load_generator(path, cache_dir=None, w_avg_samples=10000, seed=123):
    """A Generator from an official pickle (converted once, cached as <cache_dir>/<sha256>.npz) or from a
    converted .npz. w_avg: the pickle's dlatent_avg, else the mean of mapping(z) over w_avg_samples z drawn
    from RandomState(seed)."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        if not os.path.isfile(path):
            raise WeightsError(f"converted StyleGAN2 weights {path} do not exist; check the path")
        return load_npz(path)
    if not os.path.isfile(path):
        raise WeightsError(f"StyleGAN2 pickle {path} does not exist; check the path")
    cached = os.path.join(cache_dir or default_cache_dir(), f"{sha256(path)}.npz")
    if os.path.isfile(cached):
        return load_npz(cached)
    config, arrays, source = convert(path)
    g = Generator(config)
    stored_avg = "dlatent_avg" in arrays
    if not stored_avg:
        arrays["dlatent_avg"] = np.zeros([config.dlatent_size], np.float32)
    g.assign(arrays, source=path)
    if stored_avg:
        g.w_avg_source = f"dlatent_avg of {source}"
    else:
        g.estimate_w_avg(w_avg_samples, seed)
    try:
        save_npz(g, cached, source=f"{source} in {os.path.basename(path)}")
    except OSError as e:  # a read-only cache is not fatal
        print(f"note: cannot cache converted weights at {cached}: {e}")
    return g
