"""Dataset examples of a channel: its top-k activating images, class-average receptive-field crops weighted
by activation, and activation heatmaps, streamed over a dataset in one pass per checkpoint.

- Score of an image for channel c: the maximum (reduce="max", default) or mean ("mean") of its map.
  The top k per channel are kept in a bounded buffer (memory: k images per channel); ties go to the
  earlier image in dataset order, so the result does not depend on the batch size.
- Receptive-field crop: the layer's receptive field (receptive_field: kernel and pool sizes, strides and
  dilations along the graph; the largest over merging branches) centred on the map's argmax, the centre
  mapped proportionally from map to image coordinates (exact for 'same' padding). Each class's crops are
  averaged with weight max(activation at the argmax, 0); pixels of a crop outside the image do not count.
- Heatmap: the channel's map clipped at 0, upsampled bilinearly (tf.image.resize, half-pixel centres) to
  the image, divided by its maximum (or `vmax`) and blended onto the image with a black-red-yellow ramp.
"""
import dataclasses
import os

import numpy as np

from lucidtl.errors import InvalidArgumentError

REDUCES = ("max", "mean")
_NO_INDEX = np.iinfo(np.int64).max


# ---- receptive field ---------------------------------------------------------------------------------

def _pair(v):
    v = tuple(v) if isinstance(v, (list, tuple)) else (v, v)
    return (int(v[0]), int(v[-1]))


def _field(tensor, memo):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return (1, 1), (1, 1)
    op, key = history.operation, (id(history.operation), history.node_index)
    if hasattr(op, "receptive_field"):  # a layer that knows its own (a Lucid graph's tensors)
        return op.receptive_field(history.tensor_index)
    if key in memo:
        return memo[key]
    inputs = op._inbound_nodes[history.node_index].input_tensors
    parts = [_field(t, memo) for t in inputs] or [((1, 1), (1, 1))]
    size = tuple(max(p[0][i] for p in parts) for i in range(2))
    jump = tuple(max(p[1][i] for p in parts) for i in range(2))
    kernel = getattr(op, "kernel_size", None) or getattr(op, "pool_size", None)
    if kernel is not None and inputs and len(inputs[0].shape) == 4:
        k = _pair(kernel)
        s = _pair(getattr(op, "strides", None) or k)
        d = _pair(getattr(op, "dilation_rate", None) or 1)
        size = tuple(size[i] + (k[i] - 1) * d[i] * jump[i] for i in range(2))
        jump = tuple(jump[i] * s[i] for i in range(2))
    memo[key] = (size, jump)
    return size, jump


def receptive_field(model, layer):
    """((height, width), (stride_y, stride_x)) of the layer's receptive field in input pixels."""
    from lucidtl.optvis import features

    return _field(features.endpoint(model, layer), {})


# ---- crops and heatmaps ------------------------------------------------------------------------------

def crop(image, center, size):
    """(crop [h, w, C], mask [h, w, 1]): the size (h, w) window centred at (y, x), zero outside the image."""
    H, W, C = image.shape
    h, w = min(size[0], H), min(size[1], W)
    top, left = int(np.floor(center[0] - (h - 1) / 2 + 0.5)), int(np.floor(center[1] - (w - 1) / 2 + 0.5))
    out, mask = np.zeros((h, w, C)), np.zeros((h, w, 1))
    y0, y1, x0, x1 = max(top, 0), min(top + h, H), max(left, 0), min(left + w, W)
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
        mask[y0 - top:y1 - top, x0 - left:x1 - left] = 1.0
    return out, mask


def map_to_image(position, map_shape, image_shape):
    """Centre (y, x) in image pixels of map cell `position`, mapped proportionally."""
    return tuple((position[i] + 0.5) * image_shape[i] / map_shape[i] - 0.5 for i in range(2))


def ramp(t):
    """Black-red-yellow-white colours for t in [0, 1]: [..., 3]."""
    t = np.clip(np.asarray(t, np.float64), 0, 1)[..., None]
    return np.clip(np.concatenate([3 * t, 3 * t - 1, 3 * t - 2], axis=-1), 0, 1)


def upsample(amap, shape):
    import tensorflow as tf

    a = tf.constant(np.asarray(amap, np.float32)[None, ..., None])
    return tf.image.resize(a, shape, method="bilinear").numpy()[0, ..., 0].astype(np.float64)


def heatmap(image, amap, vmax=None, opacity=0.6):
    """The image with its activation map overlaid: [H, W, 3] in [0, 1]."""
    image = np.asarray(image, np.float64)[..., :3]
    heat = np.maximum(upsample(amap, image.shape[:2]), 0)
    top = heat.max() if vmax is None else float(vmax)
    t = heat / top if top > 0 else np.zeros_like(heat)
    a = opacity * t[..., None]
    return np.clip(image * (1 - a) + ramp(t) * a, 0, 1)


# ---- streaming ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class Example:
    index: int  # position in the dataset
    score: float
    label: int  # None without labels
    image: np.ndarray  # [H, W, C] in [0, 1]
    amap: np.ndarray  # [h, w] the channel's activation map
    position: tuple  # (y, x) of the map's maximum


@dataclasses.dataclass
class ExamplesResult:
    layer: str
    channels: list
    top: dict  # channel -> [Example], best first
    class_crops: dict  # channel -> {label: [h, w, C] weighted mean crop}
    class_weights: dict  # channel -> {label: total weight}
    field: tuple  # ((h, w), (stride_y, stride_x))
    n_images: int


def merge_top(scores, indices, new_scores, new_indices, k):
    """Top k per row of the union: highest score first, ties to the lower index. [C, k] arrays."""
    s = np.concatenate([scores, new_scores], axis=1)
    i = np.concatenate([indices, new_indices], axis=1)
    order = np.lexsort((i, -s), axis=-1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def dataset_examples(model, layer, channels, data, k=8, reduce="max", batch_size=32, max_images=None,
                     input_range=(0.0, 1.0), class_crops=True):
    """Top-k images and class-average crops of `channels` of `layer` over `data` (see batches())."""
    from lucidtl.analysis.streaming import batches, scale_input
    from lucidtl.optvis import features

    if reduce not in REDUCES:
        raise InvalidArgumentError(f"unknown reduce {reduce!r}; choose one of {', '.join(REDUCES)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidArgumentError(f"k must be a positive int, got {k!r}")
    from lucidtl.selection import parse_channels

    channels = parse_channels(channels, features.channel_count(model, layer))  # "0:4", [1, 5], 3, "all"
    fmodel = features.feature_model(model, [layer])
    field = receptive_field(model, layer)
    C = len(channels)
    scores, indices = np.full((C, k), -np.inf), np.full((C, k), _NO_INDEX, np.int64)
    kept = {}  # dataset index -> (image, label, maps [h, w, C])
    sums, weights = {}, {}  # (channel slot, label) -> weighted crop sum, weight mask sum
    totals = {}
    n = 0
    for images, labels, start in batches(data, batch_size, max_images):
        if features.fixed_input_size(model) is not None:  # a fixed-size model: the images as it sees them
            images = np.asarray(features.fit_input(model, images), np.float32)
        out = fmodel(scale_input(images, input_range), training=False)
        a = np.asarray(out[0] if isinstance(out, (list, tuple)) else out, np.float64)
        if a.ndim != 4:
            raise InvalidArgumentError(f"layer {layer!r} has no spatial map (output shape {a.shape[1:]}); "
                                       "pick a convolutional layer")
        a = a[..., channels]
        batch_scores = a.max(axis=(1, 2)) if reduce == "max" else a.mean(axis=(1, 2))
        idx = start + np.arange(len(images))
        scores, indices = merge_top(scores, indices, batch_scores.T, np.broadcast_to(idx, (C, len(idx))), k)
        wanted = set(indices.ravel().tolist())
        for j, i in enumerate(idx.tolist()):
            if i in wanted:
                kept[i] = (images[j], None if labels is None else int(labels[j]), a[j])
        kept = {i: v for i, v in kept.items() if i in wanted}
        if class_crops:
            _accumulate_crops(images, labels, a, field[0], sums, weights, totals)
        n += len(images)
    if n == 0:
        raise InvalidArgumentError("the dataset yielded no images")
    top, crops, cw = {}, {}, {}
    for slot, c in enumerate(channels):
        top[c] = []
        for s, i in zip(scores[slot], indices[slot]):
            if i == _NO_INDEX:
                continue
            image, label, maps = kept[int(i)]
            amap = maps[..., slot]
            pos = np.unravel_index(int(np.argmax(amap)), amap.shape)
            top[c].append(Example(int(i), float(s), label, image, amap, tuple(int(p) for p in pos)))
        labels_seen = sorted(lbl for (sl, lbl) in sums if sl == slot)
        crops[c] = {lbl: sums[slot, lbl] / np.maximum(weights[slot, lbl], 1e-12) for lbl in labels_seen}
        cw[c] = {lbl: totals[slot, lbl] for lbl in labels_seen}
    return ExamplesResult(str(layer), channels, top, crops, cw, field, n)


def _accumulate_crops(images, labels, a, size, sums, weights, totals):
    b, h, w, C = a.shape
    flat = a.reshape(b, h * w, C)
    best = flat.argmax(axis=1)  # [b, C]
    for j in range(b):
        label = -1 if labels is None else int(labels[j])
        for slot in range(C):
            weight = max(float(flat[j, best[j, slot], slot]), 0.0)
            pos = divmod(int(best[j, slot]), w)
            piece, mask = crop(images[j].astype(np.float64), map_to_image(pos, (h, w), images.shape[1:3]), size)
            key = (slot, label)
            if key not in sums:
                sums[key], weights[key], totals[key] = np.zeros_like(piece), np.zeros_like(mask), 0.0
            if piece.shape != sums[key].shape:
                continue  # an image of another size: crops are defined per image size
            sums[key] += weight * piece
            weights[key] += weight * mask
            totals[key] += weight


# ---- writing -----------------------------------------------------------------------------------------

def enlarged(image, min_size=64):
    """Small images repeated (nearest neighbour) to at least min_size px, so grid labels fit."""
    image = np.asarray(image)
    f = max(1, -(-min_size // max(1, min(image.shape[:2]))))
    return image.repeat(f, 0).repeat(f, 1) if f > 1 else image


def _safe(name):
    return str(name).replace("/", "_").replace(os.sep, "_")


def write_examples(result, out, class_names=None, heatmaps=True):
    """PNG grids in `out`: <layer>_<cccc>_top.png (top-k images; a second row of heatmaps with one vmax per
    channel so the rows compare) and <layer>_<cccc>_classes.png (class-average crops); images under 64 px
    are enlarged (nearest neighbour) for display. Returns CSV rows."""
    from lucidtl.imageio import save_grid

    rows = []
    for c in result.channels:
        exs = result.top[c]
        base = os.path.join(out, f"{_safe(result.layer)}_{c:04d}")
        if exs:
            grid = [[enlarged(e.image[..., :3]) for e in exs]]
            if heatmaps:
                vmax = max(max(float(e.amap.max()), 0.0) for e in exs) or None
                grid.append([enlarged(heatmap(e.image, e.amap, vmax)) for e in exs])
            save_grid(grid, base + "_top.png", row_labels=["image", "heat"][:len(grid)],
                      col_labels=[f"#{e.index} {e.score:.2f}" for e in exs])
        for rank, e in enumerate(exs):
            rows.append({"layer": result.layer, "channel": c, "rank": rank, "index": e.index, "score": e.score,
                         "label": e.label, "y": e.position[0], "x": e.position[1]})
        crops = result.class_crops.get(c, {})
        if crops:
            labels = list(crops)
            names = [str(class_names[lbl]) if class_names and 0 <= lbl < len(class_names) else
                     ("all" if lbl == -1 else str(lbl)) for lbl in labels]
            save_grid([[enlarged(np.clip(crops[lbl], 0, 1)[..., :3]) for lbl in labels]], base + "_classes.png",
                      col_labels=[n[:12] for n in names])
    return rows


def examples_over_checkpoints(model_fn, checkpoints, layer, channels, data, out, k=8, reduce="max",
                              batch_size=32, max_images=None, input_range=(0.0, 1.0), class_names=None,
                              report=None):
    """dataset_examples + write_examples for each checkpoint, into <out>/iter_<i:06d>/. Returns CSV rows."""
    from lucidtl.analysis.streaming import fresh_model, load_into, resolve_checkpoints
    from lucidtl.optvis import features

    cps = resolve_checkpoints(checkpoints)
    model = fresh_model(model_fn)
    features.endpoint(model, str(layer))
    rows = []
    for cp in cps:
        if report:
            report(f"iteration {cp.iteration}: {os.path.basename(cp.path)}")
        load_into(model, cp.path)
        res = dataset_examples(model, str(layer), channels, data, k, reduce, batch_size, max_images, input_range)
        folder = os.path.join(out, f"iter_{cp.iteration:06d}")
        rows += [{"iteration": cp.iteration, **r} for r in write_examples(res, folder, class_names)]
    return rows
