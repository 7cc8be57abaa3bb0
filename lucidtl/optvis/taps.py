"""Taps: any sublayer of a Keras model, read (or replaced) during the model's own forward pass.

A layer that is not a node of a functional graph (the MLP of a keras-hub transformer block inside its
`vit_encoder` layer) has no symbolic output of its own. A `Tap` calls the graph node that holds it (the
`vit_encoder` layer, on that node's own inputs) with the sublayer's `call` wrapped for the duration of the
call: the wrapper records the sublayer's output (or its input: `input=True`), or returns a given tensor in
its place (`replace`). Called on symbolic tensors, Keras traces the call once for the output shapes, so a
tapped sublayer is a symbolic tensor of a functional model like any layer's; nothing of the wrapped layers
is changed after a call returns.

Token sequences [B, T, C] of patch models (ViT, DeiT, DINOv2, CLIP vision) are seen as [B, H, W, C]: the
`prefix` tokens before the patches (a class token, register tokens) are dropped and the rest reshaped to its
square grid (`TokenView`); `:cls` reads the class token [B, C], `:head<k>` head k of an attention layer."""
import math
import weakref

import keras

from lucidtl.errors import UnknownLayerError

SEP = "/"


def sublayers(layer):
    """The direct sublayers of a layer (attributes that are layers), in creation order."""
    flatten = getattr(layer, "_flatten_layers", None)
    return list(flatten(include_self=False, recursive=False)) if flatten else []


def walk(layer, prefix):
    """(path, sublayer) of every sublayer under `layer`, depth first; `prefix` is the layer's own path."""
    for sub in sublayers(layer):
        path = prefix + SEP + sub.name
        yield path, sub
        yield from walk(sub, path)


def find(layer, rest):
    """The sublayer of `layer` at the relative path `rest` ("mlp/dense_1"), or None."""
    for name in rest.split(SEP):
        layer = next((s for s in sublayers(layer) if s.name == name), None)
        if layer is None:
            return None
    return layer


class _Wrapped:
    """Wraps sublayers' `call` for the duration of a `with` block (an instance attribute shadowing the
    class's method, removed on exit)."""

    def __init__(self, wrappers):
        self.wrappers = wrappers  # [(layer, fn(original_call) -> call)]

    def __enter__(self):
        for layer, make in self.wrappers:
            if "call" in vars(layer):
                raise UnknownLayerError(f"sublayer {layer.name!r} is already tapped (a tap inside a tap)")
            object.__setattr__(layer, "call", make(layer.call))
        return self

    def __exit__(self, *exc):
        for layer, _ in self.wrappers:
            vars(layer).pop("call", None)


class Tap(keras.layers.Layer):
    """Calls `node` (a layer of a functional graph) as the graph does, with `subs` (sublayers under it,
    `paths` their full paths) wrapped: returns what each outputs (its first input with input=True), a list;
    with replace=True (one sublayer) it takes the replacement as its last input and returns the node's
    outputs with the sublayer's output replaced by it. `template`: the node's (args, kwargs) with None where
    its tensors go (see structure). lenient: a sublayer called several times gives its first call's value,
    one never called None (for listing shapes)."""

    def __init__(self, node, subs, paths, template, input=False, replace=False, lenient=False, **kwargs):
        super().__init__(trainable=False, name=kwargs.pop("name", None) or _layer_name(paths[0], replace), **kwargs)
        self._parts = (node, list(subs), list(paths), template)  # a tuple: not tracked as sublayers
        self._input, self._replace, self._lenient = input, replace, lenient

    def call(self, tensors):
        node, subs, paths, template = self._parts
        tensors = list(tensors)
        given = tensors.pop() if self._replace else None
        args, kwargs = fill(template, tensors)
        seen = [[] for _ in subs]

        def maker(i):
            def make(original):
                def call(*a, **k):
                    if given is not None:
                        seen[i].append(given)
                        return keras.ops.cast(given, subs[i].compute_dtype)
                    out = original(*a, **k)
                    seen[i].append(a[0] if self._input else out)
                    return out
                return call
            return make

        with _Wrapped([(sub, maker(i)) for i, sub in enumerate(subs)]):
            outs = node(*args, **kwargs)
        if self._lenient:
            return [s[0] if s else None for s in seen]
        for path, s in zip(paths, seen):
            if len(s) != 1:
                why = "never called" if not s else f"called {len(s)} times"
                raise UnknownLayerError(f"sublayer {path!r} is {why} in one forward pass; tap a layer called "
                                        "once")
        return outs if self._replace else [s[0] for s in seen]


def _layer_name(path, replace):
    return path.replace(SEP, "_").replace(":", "_") + ("_replaced" if replace else "_tap")


def structure(args, kwargs):
    """(template, tensors): the node's (args, kwargs) with its symbolic tensors taken out."""
    flat = keras.tree.flatten((args, kwargs))
    tensors = [t for t in flat if isinstance(t, keras.KerasTensor)]
    template = keras.tree.pack_sequence_as((args, kwargs), [None if isinstance(t, keras.KerasTensor) else t
                                                            for t in flat])
    return template, tensors


def fill(template, tensors):
    """The inverse of structure: the template with its None slots filled by tensors, in order."""
    it = iter(tensors)
    flat = [next(it) if t is None else t for t in keras.tree.flatten(template)]
    return keras.tree.pack_sequence_as(template, flat)


# ---- tokens as a grid ----------------------------------------------------------------------------------

def prefix_tokens(model):
    """How many tokens come before the patches: a class token (unless a config says use_class_token=False)
    plus num_register_tokens, read from the configs of the model and the layers and models in it; None
    when no config names a patch size (not a patch model)."""
    found = _token_config(model)
    if "patch_size" not in found:
        return None
    return (1 if found.get("use_class_token", True) else 0) + int(found.get("num_register_tokens") or 0)


def patch_size(model):
    """The patch size a config of the model (or a layer or model in it) names, else None."""
    size = _token_config(model).get("patch_size")
    if size is None:
        return None
    return int(size[0] if isinstance(size, (list, tuple)) else size)


MAX_PREFIX = 16  # at most this many tokens before the patches (class, distillation, register tokens)


def token_prefix(model, tokens):
    """How many of `tokens` tokens come before a square patch grid, for a patch model: image side / patch
    size gives the grid where the config names both (DeiT's class + distillation tokens, DINOv2's registers),
    else the class and register tokens of prefix_tokens; None where they form no grid (not tokens of the
    patches: an attention query of one probe token, a merged Swin stage of another size...)."""
    found = _token_config(model)
    if tokens is None or "patch_size" not in found:
        return None
    shape, size = found.get("image_shape"), patch_size(model)
    if isinstance(shape, (list, tuple)) and len(shape) == 3 and shape[0] == shape[1] and shape[0] and size:
        side = int(shape[0]) // size
        if 0 <= tokens - side * side <= MAX_PREFIX:
            return tokens - side * side
    prefix = prefix_tokens(model)
    return prefix if grid_side(tokens, prefix) else None


_KEYS = ("patch_size", "use_class_token", "num_register_tokens", "image_shape")
_token_configs = weakref.WeakKeyDictionary()  # model -> {key: the first config's value}


def _token_config(model):
    if model not in _token_configs:
        found = {}
        for config in _configs(model):
            for key in _KEYS:
                if key in config and key not in found:
                    found[key] = config[key]
        _token_configs[model] = found
    return _token_configs[model]


def _configs(model, depth=0):
    """The configs of the model and of the layers in it (nested models' layers, two levels down)."""
    try:
        config = model.get_config()
    except Exception:  # noqa: BLE001 - layers without a config
        config = None
    if isinstance(config, dict):
        yield config
        if isinstance(config.get("backbone"), dict):
            yield config["backbone"].get("config", {})
    if depth < 3:
        for layer in getattr(model, "layers", None) or []:
            yield from _configs(layer, depth + 1)
        backbone = getattr(model, "backbone", None)
        if isinstance(backbone, keras.Model):
            yield from _configs(backbone, depth + 1)


def grid_side(tokens, prefix):
    """The side n of the square patch grid of `tokens` tokens after `prefix` ones, else None."""
    if tokens is None or prefix is None or tokens <= prefix:
        return None
    n = math.isqrt(tokens - prefix)
    return n if n * n == tokens - prefix else None


class TokenView(keras.layers.Layer):
    """[B, T, C] tokens (or [B, T, heads, C] per head) seen as a grid [B, n, n, C] (the tokens after
    `prefix`), or one token [B, C] (`index`); `head`: that head's slice first."""

    def __init__(self, prefix, index=None, head=None, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.prefix, self.index, self.head = int(prefix), index, head

    def call(self, x):
        if self.head is not None:
            x = x[:, :, self.head]
        if self.index is not None:
            return x[:, self.index]
        n = math.isqrt(x.shape[1] - self.prefix)
        return keras.ops.reshape(x[:, self.prefix:], (-1, n, n, x.shape[-1]))

    def get_config(self):
        return {**super().get_config(), "prefix": self.prefix, "index": self.index, "head": self.head}


def as_grid(values, prefix):
    """A numpy array [..., T, C] of tokens as its patch grid [..., n, n, C]."""
    tokens = values.shape[-2]
    n = grid_side(tokens, prefix)
    return values[..., prefix:, :].reshape(values.shape[:-2] + (n, n, values.shape[-1]))
