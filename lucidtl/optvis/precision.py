"""The precision a render's network computes in: float32 (Lucid's numbers), bfloat16 or float16.

Lower precision is a setting of one render, never of the model or the library: the network is rebuilt from
its config under Keras' `mixed_<precision>` policy (variables float32, computation in the lower type) and
given the same weights; the parameterisation, transforms, objective, gradient at the image and Adam stay
float32. One rule for hardware: a lower precision that this machine has no fast path for (bfloat16 needs a
CPU with AMX-BF16 / AVX512-BF16 or a GPU of compute capability >= 8.0; float16 a GPU of capability >= 7.0)
is refused, since it would render several times slower than float32; LUCIDTL_ALLOW_SLOW_PRECISION=1 runs it
anyway (for checking pictures, as the tests do).
"""
import functools
import os
import weakref

from lucidtl.errors import InvalidArgumentError

PRECISIONS = ("float32", "bfloat16", "float16")
ALLOW_SLOW = "LUCIDTL_ALLOW_SLOW_PRECISION"
_GPU_CAPABILITY = {"bfloat16": (8, 0), "float16": (7, 0)}
_CPU_FLAGS = {"bfloat16": ("amx_bf16", "avx512_bf16"), "float16": ()}  # oneDNN: no fast float16 conv on CPUs
_lowered = weakref.WeakKeyDictionary()  # model -> {precision: the rebuilt model}


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
    if isinstance(config, list):
        return [_relabel(v, policy) for v in config]
    return config


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
        config = model.get_config()
        with keras.saving.custom_object_scope(classes):
            rebuilt = model.__class__.from_config(_relabel(config, _policy_config(precision)))
    except Exception as e:  # noqa: BLE001 - custom layers without get_config/from_config and the like
        from lucidtl.errors import one_line

        raise InvalidArgumentError(f"precision {precision}: model {model.name!r} cannot be rebuilt from its config "
                                   f"({one_line(e, 150)}); render it with precision float32") from None
    if [w.shape for w in rebuilt.weights] != [w.shape for w in model.weights]:
        raise InvalidArgumentError(f"precision {precision}: model {model.name!r} rebuilt from its config has "
                                   f"other weights than the original; render it with precision float32")
    return rebuilt


def lowered(model, precision):
    """`model` computing in `precision` with its current weights (the model itself for float32).

    The rebuilt model is kept per (model, precision) and its weights are copied in again on every call, so a
    model that trains between renders (a callback) is rendered with the weights it has now."""
    if check(precision) == "float32":
        return model
    per_model = _lowered.setdefault(model, {})
    if precision not in per_model:
        per_model[precision] = _rebuild(model, precision)
    low = per_model[precision]
    for target, source in zip(low.weights, model.weights):
        target.assign(source)
    return low


# Measured speed-ups of bfloat16 over float32 renders (render image-steps/s, batch 8, 128 px, Mixed_4c), by
# where the fast path is; from one run of ../shared/peers on a Xeon with AMX-BF16 (issue 19's figures:
# 142.5 / 100.8 image-steps/s). Only hardware that was measured gets a figure.
MEASURED_SPEEDUP = {"cpu": 1.4}


def hint(precision):
    """For a float32 render on hardware with a measured bfloat16 fast path: one line saying so, else None."""
    if precision != "float32":
        return None
    ok, where = fast_path("bfloat16")
    factor = MEASURED_SPEEDUP.get("gpu" if where.startswith("GPU") else "cpu") if ok else None
    if factor is None:
        return None
    return (f"note: this {where} computes bfloat16 fast: --precision bfloat16 renders about {factor:.1f}x faster "
            "here (README, 'Precision')")
