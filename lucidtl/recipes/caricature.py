"""Lucid's caricature / feature-inversion recipe (lucid.recipes.caricature): images optimised so that
their activations at a layer match a given image's.

Batch 0 is the target image itself and 1..L one optimised image per layer (param.image: FFT, decorrelated,
no alpha); every step transforms the whole batch together (Lucid's standard_transforms + crop_or_pad_to the
image size), so the target's activations are read live under the same transform. The objective is the sum
over layers of objectives.dot_compare(layer, batch=i + 1, cossim_pow): dot * max(0.1, dot / |c|)^pow.
Adam 0.05, no ReLU gradient override (Lucid's make_vis_T). Returns [1 + L, H, W, 3]: [0] the input.

The image is resized (bilinear; Lucid uses scipy's cubic zoom) to the model's fixed input size when it
has one, else kept at its size.
"""
import numpy as np

from lucidtl.errors import InvalidArgumentError


def _layers(layer):
    if isinstance(layer, str):
        return [layer]
    if isinstance(layer, (list, tuple)) and layer and all(isinstance(x, str) for x in layer):
        return list(layer)
    raise InvalidArgumentError(f"layer must be a layer name or a list of them, got {layer!r}")


def _target_param(img, n):
    import tensorflow as tf

    from lucidtl.optvis.param import Param, image

    h, w = img.shape[:2]
    inner = image(w, h, batch=n, fft=True, decorrelate=True, alpha=False)
    target = tf.constant(img[None], tf.float32)
    return Param(lambda: tf.concat([target, inner()], 0), [inner], name="caricature")


def prepare(img, model):
    """The image as float32 [H, W, 3] in [0, 1], resized to the model's fixed input size if it has one."""
    import tensorflow as tf

    from lucidtl.optvis import features

    img = np.asarray(img, np.float32)
    if img.dtype == np.uint8 or img.max() > 1.0 + 1e-6:
        img = img / 255.0
    if img.ndim != 3 or img.shape[-1] != 3:
        raise InvalidArgumentError(f"caricature needs one RGB image [H, W, 3], got shape {img.shape}")
    size = features.fixed_input_size(model)
    if size is not None and tuple(img.shape[:2]) != tuple(size):
        img = tf.image.resize(img[None], size).numpy()[0]
    return np.clip(img, 0, 1)


def caricature(img, model, layer, n_steps=512, cossim_pow=0.0, verbose=True, seed=0, input_range=(0.0, 1.0),
               transforms=None, callback=None):
    """[1 + L, H, W, 3] float32: the input, then one caricature per layer of `layer` (a name or a list)."""
    from lucidtl.optvis import objectives
    from lucidtl.optvis import transform as T
    from lucidtl.optvis.render import Renderer

    layers = _layers(layer)
    img = prepare(img, model)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise InvalidArgumentError(f"n_steps must be a positive integer, got {n_steps!r}")
    objective = objectives.Objective.sum([1.0 * objectives.dot_compare(name, batch=i + 1, cossim_pow=cossim_pow)
                                          for i, name in enumerate(layers)])
    if transforms is None:
        transforms = list(T.standard_transforms) + [T.crop_or_pad_to(*img.shape[:2])]
    renderer = Renderer(model, objective, param_f=lambda: _target_param(img, len(layers)), transforms=transforms,
                        relu_gradient_override=False, seed=seed, input_range=input_range)
    out = renderer.run(thresholds=(int(n_steps) - 1,), verbose=verbose, callback=callback)[-1]
    return out


feature_inversion = caricature  # Lucid's alias


def cosine(model, layer, images, input_range=(0.0, 1.0)):
    """Cosine similarity of each image's activations at `layer` (over H x W x C) to image 0's: [B]."""
    from lucidtl.analysis.streaming import layer_outputs, scale_input
    from lucidtl.optvis import features

    fmodel = features.feature_model(model, [layer])
    a = layer_outputs(fmodel, scale_input(np.asarray(images, np.float32), input_range))[0].astype(np.float64)
    a = a.reshape(len(a), -1)
    norms = np.linalg.norm(a, axis=1)
    return (a @ a[0]) / np.maximum(norms * norms[0], 1e-12)
