"""Neuron groups of a layer over a fine-tuning run (Building Blocks' "neuron groups", made temporal).

Rows: each image contributes `positions` spatial positions (drawn once from a seeded generator, the same
positions at every checkpoint; 0 = all), so memory is images x positions x C whatever the layer's size.
- fixed: factorise iteration 0's rows once (ChannelReducer, NMF by default) and project every checkpoint's
  rows onto those factors (components held): the relative reconstruction error ||X - W H|| / ||X|| says how
  far the layer leaves the pretrained basis; the mean of W per group how each group's weight moved.
- refit: factorise each checkpoint anew and match its groups to iteration 0's (Hungarian assignment on the
  cosine similarity of the components, scipy.optimize.linear_sum_assignment), so a group can be followed.
A group renders as a direction in channel space (objectives.direction, batch i = group i; no cosine term,
as the NeuronGroups notebook).
"""
import numpy as np

from lucidtl.errors import InvalidArgumentError
from lucidtl.misc.channel_reducer import ChannelReducer

NMF_SETTINGS = {"init": "nndsvda", "max_iter": 1000}


def reducer(n_groups, reduction_alg="NMF", seed=0):
    kwargs = dict(NMF_SETTINGS) if reduction_alg == "NMF" else {}
    if reduction_alg not in ("PCA",):
        kwargs["random_state"] = seed
    return ChannelReducer(n_groups, reduction_alg, **kwargs)


def sample_rows(acts, positions, rng):
    """[B, H, W, C] -> [B * positions, C] rows at positions drawn without replacement per image (0: all)."""
    acts = np.asarray(acts)
    b, h, w, c = acts.shape
    flat = acts.reshape(b, h * w, c)
    if not positions or positions >= h * w:
        return flat.reshape(-1, c)
    idx = np.stack([rng.choice(h * w, positions, replace=False) for _ in range(b)])
    return np.take_along_axis(flat, idx[..., None], 1).reshape(-1, c)


def layer_rows(model, layer, data, positions=16, batch_size=32, max_images=None, input_range=(0.0, 1.0), seed=0):
    """The sampled rows [n, C] (float32) of `layer` over the dataset, streamed batch by batch."""
    from lucidtl.analysis.streaming import batches, layer_outputs, scale_input
    from lucidtl.optvis import features

    fmodel = features.feature_model(model, [str(layer)])
    rng = np.random.default_rng(seed)
    parts = []
    for images, _, _ in batches(data, batch_size, max_images):
        a = layer_outputs(fmodel, scale_input(images, input_range))[0]
        if a.ndim != 4:
            raise InvalidArgumentError(f"layer {layer!r} has no spatial map (output shape {a.shape[1:]}); pick a "
                                       "convolutional layer")
        parts.append(sample_rows(a, positions, rng).astype(np.float32))
    if not parts:
        raise InvalidArgumentError("the dataset yielded no images")
    return np.concatenate(parts)


def reconstruct(red, weights):
    """W -> the rows the fitted reducer reconstructs (inverse_transform where the estimator has one)."""
    est = red._reducer
    if hasattr(est, "inverse_transform"):
        return est.inverse_transform(weights)
    return weights @ est.components_


def relative_error(red, rows):
    """(||X - reconstruct(transform(X))|| / ||X||, mean weight per group) with the reducer's factors held."""
    rows = np.asarray(rows)
    w = red.transform(rows)
    norm = np.linalg.norm(rows.astype(np.float64))
    err = np.linalg.norm(rows.astype(np.float64) - reconstruct(red, w)) / norm if norm > 0 else 0.0
    return float(err), w.astype(np.float64).mean(0)


def cosine_matrix(a, b):
    """[k, k] cosine similarity of the rows of a and b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    nb = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return na @ nb.T


def match_groups(reference, components):
    """(order, cosines): components[order[i]] is the group matched to reference[i] (Hungarian assignment
    maximising the summed cosine similarity); cosines[i] their similarity."""
    from scipy.optimize import linear_sum_assignment

    reference, components = np.asarray(reference), np.asarray(components)
    if reference.shape != components.shape:
        raise InvalidArgumentError(f"cannot match {components.shape[0]} groups of {components.shape[1]} channels to "
                                   f"{reference.shape[0]} of {reference.shape[1]}")
    cos = cosine_matrix(reference, components)
    rows, cols = linear_sum_assignment(-cos)
    order = cols[np.argsort(rows)]
    return order, cos[np.arange(len(order)), order]


def render_groups(model, layer, components, size=64, steps=128, seed=0, input_range=(0.0, 1.0),
                  transforms="standard"):
    """Each component (a direction in channel space) drawn in one batched render: image i maximises
    direction(layer, components[i], batch=i). float32 [k, size, size, 3]."""
    from lucidtl.optvis import objectives
    from lucidtl.optvis.param import image
    from lucidtl.optvis.render import Renderer

    comps = np.asarray(components, np.float32)
    terms = [objectives.direction(str(layer), comps[i], batch=i) for i in range(len(comps))]
    renderer = Renderer(model, objectives.Objective.sum(terms), param_f=lambda: image(size, batch=len(comps)),
                        transforms=transforms, seed=seed, input_range=input_range)
    return renderer.run(thresholds=(steps,), verbose=False)[-1]


def display_weights(weights):
    """Group weights divided by their 99th percentile and clipped to [0, 1] (the notebook's display)."""
    weights = np.maximum(np.asarray(weights, np.float64), 0)
    top = np.percentile(weights, 99) if weights.size else 0
    return np.clip(weights / top, 0, 1) if top > 0 else weights


def semantic_dictionary(weights, icons):
    """Building Blocks' semantic-dictionary view of one image: each position of the layer ([h, w, k] group
    weights) shows the icon of its dominant group, faded to white by that weight's share of the maximum.
    icons [k, s, s, 3] -> [h * s, w * s, 3]."""
    weights = np.asarray(weights, np.float64)
    icons = np.asarray(icons, np.float64)[..., :3]
    h, w, _ = weights.shape
    s = icons.shape[1]
    best = weights.argmax(-1)
    strength = weights.max(-1)
    strength = strength / strength.max() if strength.max() > 0 else strength
    out = np.ones((h * s, w * s, 3))
    for y in range(h):
        for x in range(w):
            t = strength[y, x]
            out[y * s:(y + 1) * s, x * s:(x + 1) * s] = t * icons[best[y, x]] + (1 - t)
    return out
