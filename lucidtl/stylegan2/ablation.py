"""Weight ablation (paper, Figure 5): negate a channel's k largest filter weights, re-visualise, for k = 0..K.

The model is changed in place while it runs and restored bit-exactly afterwards, also on error or interrupt.
"""
import contextlib

import keras
import numpy as np

from lucidtl.errors import InvalidArgumentError, UnknownLayerError
from lucidtl.optvis import features
from lucidtl.stylegan2.ascent import DEFAULT_LAMBDA, DEFAULT_LR, DEFAULT_STEPS, Ascent

DEFAULT_K = 39


def conv_layer(model, name):
    """The Conv2D that computes layer `name`: the layer itself, or the first Conv2D reached walking back through
    single-input layers (ReLU <- BatchNormalization <- Conv2D in InceptionV1; `X_pre_relu` works too)."""
    features.endpoint(model, name)  # unknown names: the nearest-name error
    if hasattr(model, "named_endpoints"):
        raise InvalidArgumentError(f"weight ablation needs a Keras model with Conv2D layers; {model.name!r} is a "
                                   "frozen graph whose weights are constants")
    base = name[: -len(features.PRE_RELU)] if name.endswith(features.PRE_RELU) and name not in \
        features.layer_names(model) else name
    layer = model.get_layer(base)
    while not isinstance(layer, keras.layers.Conv2D):
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        history = getattr(inputs[0], "_keras_history", None) if len(inputs) == 1 else None
        if history is None or isinstance(layer, keras.layers.InputLayer):
            raise UnknownLayerError(f"layer {name!r} is not computed by a single conv layer (reached "
                                    f"{layer.name!r}); pick a conv layer or its BN/ReLU output")
        layer = history.operation
    return layer


def ranked_indices(kernel, channel):
    """Flat indices of kernel[..., channel] ordered by |weight|, largest first (stable for ties)."""
    filt = np.asarray(kernel)[..., channel].ravel()
    return np.argsort(-np.abs(filt), kind="stable")


def ablated_kernel(kernel, channel, k):
    """kernel with the k largest-magnitude weights of output channel `channel` negated."""
    kernel = np.array(kernel, copy=True)
    filt = kernel[..., channel].ravel()  # a copy (non-contiguous slice)
    idx = ranked_indices(kernel, channel)[:k]
    filt[idx] = -filt[idx]
    kernel[..., channel] = filt.reshape(kernel.shape[:-1])
    return kernel


@contextlib.contextmanager
def restored(variables):
    """Snapshot the variables' values; put them back on exit (also after an exception)."""
    saved = [np.array(v.numpy(), copy=True) for v in variables]
    try:
        yield
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)


def ablation(generator, model, layer, channel, max_k=DEFAULT_K, lam=DEFAULT_LAMBDA, steps=DEFAULT_STEPS,
             lr=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear", size=None, seed=0,
             input_range=(0.0, 1.0), callback=None):
    """For k = 0..max_k: negate the k largest |weights| of `channel`'s filter in the conv computing `layer`,
    then draw that channel with the generator (same seed for every k). Returns (images [max_k+1, R, R, 3],
    AscentResult per k). callback(k, result) after each k. The model's weights are restored afterwards."""
    conv = conv_layer(model, layer)
    kernel = conv.kernel
    count = kernel.shape[-1]
    if not 0 <= int(channel) < count:
        raise InvalidArgumentError(f"channel {channel} is out of range: {conv.name} has {count} filters")
    size_filter = int(np.prod(kernel.shape[:-1]))
    if isinstance(max_k, bool) or not isinstance(max_k, (int, np.integer)) or not 0 <= max_k <= size_filter:
        raise InvalidArgumentError(f"--max-k must be an integer in 0..{size_filter} (the filter's weight count), "
                                   f"got {max_k!r}")
    run = Ascent(generator, model, layer=layer, channel=channel, lam=lam, lr=lr, w_plus=w_plus, noise=noise,
                 resize=resize, size=size, seed=seed, input_range=input_range)
    results = []
    with restored([kernel]):
        original = kernel.numpy()
        for k in range(int(max_k) + 1):
            kernel.assign(ablated_kernel(original, int(channel), k))
            results.append(run.run(steps, 1))
            if callback is not None:
                callback(k, results[-1])
    return np.concatenate([r.images for r in results]), results
