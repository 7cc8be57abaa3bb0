"""The precision a render's network computes in: float32 (Lucid's numbers), bfloat16 or float16.

Lower precision is a setting of one render, never of the model or the library: the network is rebuilt from
its config under Keras' `mixed_<precision>` policy (variables float32, computation in the lower type) and
given the same weights; the parameterisation, transforms, objective, gradient at the image and Adam stay
float32. In the rebuilt network a BatchNormalization that alone reads a linear Conv2D is folded into it
(kernel * s, bias beta - mean * s, s = gamma / sqrt(var + eps)) and stands as an Identity of the same name, so
`<conv>_pre_relu` endpoints keep their names: Keras computes a batch norm of bfloat16 / float16 inputs in
float32, two casts of a whole activation tensor each way per conv, which the fold removes. One rule for hardware: a lower precision that this machine has no fast path for (bfloat16 needs a
CPU with AMX-BF16 / AVX512-BF16 or a GPU of compute capability >= 8.0; float16 a GPU of capability >= 7.0)
is refused, since it would render several times slower than float32; LUCIDTL_ALLOW_SLOW_PRECISION=1 runs it
anyway (for checking pictures, as the tests do).
"""
import collections
import functools
import os
import weakref

import numpy as np

from lucidtl.errors import InvalidArgumentError

PRECISIONS = ("float32", "bfloat16", "float16")
ALLOW_SLOW = "LUCIDTL_ALLOW_SLOW_PRECISION"
_GPU_CAPABILITY = {"bfloat16": (8, 0), "float16": (7, 0)}
_CPU_FLAGS = {"bfloat16": ("amx_bf16", "avx512_bf16"), "float16": ()}  # oneDNN: no fast float16 conv on CPUs
_lowered = weakref.WeakKeyDictionary()  # model -> {precision: (the rebuilt model, its folds)}


def check(precision):
    """The precision's name, or one line naming the choices."""
    if precision not in PRECISIONS:
        raise InvalidArgumentError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def cpu_flags():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def fast_path(precision):
    """(True, where) if this machine computes `precision` fast, else (False, why not); float32 always."""
    if check(precision) == "float32":
        return True, "float32"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if cc is not None and tuple(cc) >= _GPU_CAPABILITY[precision]:
            return True, f"GPU (compute capability {cc[0]}.{cc[1]})"
    if gpus:
        return False, f"{precision} needs a GPU of compute capability {'.'.join(map(str, _GPU_CAPABILITY[precision]))}+"
    flags = cpu_flags() & set(_CPU_FLAGS[precision])
    if flags:
        return True, f"CPU ({', '.join(sorted(flags))})"
    if precision == "float16":
        return False, "float16 has no fast path on a CPU (oneDNN computes it slowly): it needs a GPU"
    return False, "this CPU has no AMX-BF16 or AVX512-BF16, so bfloat16 would be several times slower than float32"


def require_fast(precision):
    """Refuse a lower precision this machine has no fast path for (one rule; see the module doc)."""
    ok, why = fast_path(precision)
    if not ok and os.environ.get(ALLOW_SLOW) != "1":
        raise InvalidArgumentError(f"precision {precision} refused: {why}; use precision float32 "
                                   f"(or set {ALLOW_SLOW}=1 to run it slowly anyway)")
    return precision


def _policy_config(precision):
    import keras

    return keras.dtype_policies.serialize(keras.dtype_policies.get(f"mixed_{precision}"))


def _relabel(config, policy):
    """A model config with every float32 layer policy replaced by `policy` (nested models too)."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and config.get("config", {}).get("name") == "float32":
            return policy
        return {k: _relabel(v, policy) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return type(config)(_relabel(v, policy) for v in config)
    return config


def _histories(node):
    """The keras_history triples (layer, node, tensor) an inbound node of a functional config reads."""
    if isinstance(node, dict):
        if "keras_history" in node:
            yield node["keras_history"]
        for v in node.values():
            yield from _histories(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _histories(v)


def foldable(config):
    """{batch norm: conv} of a functional config: last-axis BatchNormalization layers whose one input is a
    linear Conv2D read by nothing else."""
    layers = config.get("layers") if isinstance(config, dict) else None
    if not layers or "output_layers" not in config:
        return {}
    by_name = {layer["name"]: layer for layer in layers}
    readers = collections.Counter(h[0] for layer in layers for h in _histories(layer.get("inbound_nodes", [])))
    readers.update(h[0] for h in _histories(config["output_layers"]))
    folds = {}
    for layer in layers:
        cfg = layer["config"]
        if layer["class_name"] != "BatchNormalization" or cfg.get("axis") not in (-1, 3, [-1], [3]):
            continue
        nodes = layer.get("inbound_nodes", [])
        sources = list(_histories(nodes))
        conv = by_name.get(sources[0][0]) if len(nodes) == 1 and len(sources) == 1 else None
        if (conv is not None and conv["class_name"] == "Conv2D" and conv["config"].get("activation") == "linear"
                and readers[conv["name"]] == 1 and len(conv.get("inbound_nodes", [])) == 1):
            folds[layer["name"]] = conv["name"]
    return folds


def _folded(config, folds, policy):
    """The config with each folded conv given a bias and its batch norm replaced by an Identity."""
    convs = set(folds.values())
    layers = []
    for layer in config["layers"]:
        if layer["name"] in folds:
            layer = {"module": "keras.layers", "class_name": "Identity", "registered_name": None,
                     "name": layer["name"], "config": {"name": layer["name"], "trainable": True, "dtype": policy},
                     "inbound_nodes": [{"args": layer["inbound_nodes"][0]["args"], "kwargs": {}}]}
        elif layer["name"] in convs:
            layer = dict(layer, config=dict(layer["config"], use_bias=True))
        layers.append(layer)
    return dict(config, layers=layers)


def _all_layers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


def _rebuild(model, precision):
    import keras

    if getattr(model, "named_endpoints", None):  # a frozen GraphDef: its ops are float32 constants
        raise InvalidArgumentError(f"precision {precision} is not available for Lucid zoo graphs (frozen float32 "
                                   "GraphDefs); render them with precision float32")
    try:
        functional = isinstance(model, keras.Model) and bool(model.inputs)
    except (AttributeError, ValueError):  # subclassed: no symbolic inputs
        functional = False
    if not functional:
        raise InvalidArgumentError(f"precision {precision} needs a functional or Sequential Keras model (it is "
                                   "rebuilt from its config); render this one with precision float32")
    classes = {type(layer).__name__: type(layer) for layer in _all_layers(model)}  # custom layers included
    try:
        policy = _policy_config(precision)
        config = _relabel(model.get_config(), policy)
        folds = foldable(config)
        with keras.saving.custom_object_scope(classes):
            rebuilt = model.__class__.from_config(_folded(config, folds, policy) if folds else config)
    except Exception as e:  # noqa: BLE001 - custom layers without get_config/from_config and the like
        from lucidtl.errors import one_line

        raise InvalidArgumentError(f"precision {precision}: model {model.name!r} cannot be rebuilt from its config "
                                   f"({one_line(e, 150)}); render it with precision float32") from None
    try:
        _copy_weights(model, rebuilt, folds)
    except ValueError as e:
        raise InvalidArgumentError(f"precision {precision}: model {model.name!r} rebuilt from its config has "
                                   f"other weights than the original ({str(e)[:100]}); render it with precision "
                                   "float32") from None
    return rebuilt, folds


def _fold(conv, bn):
    """(kernel, bias) of conv followed by the inference-mode batch norm bn."""
    scale = 1.0 / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    if bn.scale:
        scale = scale * bn.gamma.numpy()
    shift = -bn.moving_mean.numpy() * scale + (bn.beta.numpy() if bn.center else 0.0)
    bias = conv.bias.numpy() * scale + shift if conv.use_bias else shift
    return (conv.kernel.numpy() * scale).astype(np.float32), bias.astype(np.float32)


def _copy_weights(model, low, folds):
    """The weights of `model` into its rebuilt copy `low`, folding the batch norms `folds` names."""
    if not folds:
        if [w.shape for w in low.weights] != [w.shape for w in model.weights]:
            raise ValueError("the weight shapes differ")
        for target, source in zip(low.weights, model.weights):
            target.assign(source)
        return
    convs = {conv: bn for bn, conv in folds.items()}
    for layer in low.layers:
        if layer.name in folds:
            continue
        source = model.get_layer(layer.name)
        if layer.name in convs:
            layer.set_weights(list(_fold(source, model.get_layer(convs[layer.name]))))
        else:
            layer.set_weights(source.get_weights())


def lowered(model, precision):
    """`model` computing in `precision` with its current weights (the model itself for float32).

    The rebuilt model is kept per (model, precision) and its weights are copied in again on every call, so a
    model that trains between renders (a callback) is rendered with the weights it has now."""
    if check(precision) == "float32":
        return model
    per_model = _lowered.setdefault(model, {})
    if precision not in per_model:
        per_model[precision] = _rebuild(model, precision)
    else:
        _copy_weights(model, *per_model[precision])
    return per_model[precision][0]


# Measured speed-ups of bfloat16 over float32 renders, by where the fast path is: the factor, the machine and
# the render it was measured on (issue 19: one run of ../shared/peers, 142.5 / 100.8 image-steps/s). Only
# hardware that was measured gets a figure, and the hint says what it was measured on: another CPU or model
# gains another factor (a MobileNetV2 at 64 px on an AMD CPU: 1.09x).
Measurement = collections.namedtuple("Measurement", "factor machine render")
MEASURED_SPEEDUP = {"cpu": Measurement(1.4, "a Xeon with AMX-BF16", "InceptionV1 Mixed_4c, 128 px, batch 8")}
DOCS_PAGE = "docs/guide/precision.md"


def hint(precision):
    """For a float32 render on hardware with a measured bfloat16 fast path: one line saying so, with what the
    speed-up was measured on (machine, model, size), else None."""
    if precision != "float32":
        return None
    ok, where = fast_path("bfloat16")
    m = MEASURED_SPEEDUP.get("gpu" if where.startswith("GPU") else "cpu") if ok else None
    if m is None:
        return None
    return (f"note: this {where} computes bfloat16 fast: --precision bfloat16 rendered {m.factor:.1f}x faster "
            f"than float32 on {m.machine} ({m.render}); other machines, models and sizes differ ({DOCS_PAGE})")
