"""Compare a layer across checkpoints on the same images, streamed in batches with bounded memory.

Layer metrics come from sufficient statistics accumulated in float64: the sums of X, Y and of the products
X^T X, Y^T Y, X^T Y about a shift (the first batch's means, for accuracy), so memory is O((p + q)^2) per
layer whatever the number of images. With samples="positions" (the study's choice) every spatial position
of every image is a row (an [N*H*W, C] matrix); samples="pooled" uses the spatial mean of each image ([N, C]).
Per-channel metrics (map_metrics: each channel's [H, W] map of one image in both models) are averaged
over images with NaN maps (constant in either model) left out: O(C) memory.

Checkpoints: a run folder written by train.callbacks.IterationCheckpoint (checkpoints.json; paths relative
to the folder), one weights file, or a list of files (`.weights.h5` or `.keras`; the iteration is read
from `iter_<i>` in the name, else the list position). `model_fn()` builds the architecture each checkpoint
is loaded into; it is called twice (the reference model and the moving one).
"""
import dataclasses
import os

import numpy as np

from lucidtl.analysis import metrics as M
from lucidtl.errors import InvalidArgumentError, WeightsError, did_you_mean
from lucidtl.run import Checkpoint, resolve_checkpoints  # noqa: F401 (the analyses' names for them)

SAMPLES = ("positions", "pooled")
LAYER_METRICS = ("pwsm_theta", "procrustes_norm", "cka")
CHANNEL_METRICS = ("procrustes_norm", "cka")


# ---- accumulators ------------------------------------------------------------------------------------

class CrossStats:
    """Centred Gram sums of paired rows X [m, p], Y [m, q], accumulated batch by batch in float64."""

    def __init__(self):
        self.n = 0

    def update(self, X, Y):
        X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
        X, Y = X.reshape(len(X), -1), Y.reshape(len(Y), -1)
        if len(X) != len(Y):
            raise ValueError(f"paired batches differ in rows: {len(X)} != {len(Y)}")
        if len(X) == 0:
            return
        if self.n == 0:
            self.kx, self.ky = X.mean(0), Y.mean(0)
            p, q = X.shape[1], Y.shape[1]
            self.sx, self.sy = np.zeros(p), np.zeros(q)
            self.sxx, self.syy, self.sxy = np.zeros((p, p)), np.zeros((q, q)), np.zeros((p, q))
        X, Y = X - self.kx, Y - self.ky
        self.sx += X.sum(0)
        self.sy += Y.sum(0)
        self.sxx += X.T @ X
        self.syy += Y.T @ Y
        self.sxy += X.T @ Y
        self.n += len(X)

    def grams(self):
        """(Xc^T Xc, Yc^T Yc, Xc^T Yc) of everything seen."""
        if self.n == 0:
            raise ValueError("no samples accumulated")
        mx, my = self.sx / self.n, self.sy / self.n
        return (self.sxx - self.n * np.outer(mx, mx), self.syy - self.n * np.outer(my, my),
                self.sxy - self.n * np.outer(mx, my))

    def metrics(self, alpha=0.0):
        return M.metrics_from_grams(*self.grams(), self.n, alpha)


class MapStats:
    """Per-channel means over images of map_metrics for paired activations [b, H, W, C]."""

    def __init__(self):
        self.sums = None

    def update(self, A, B):
        proc, cka = M.map_metrics(np.moveaxis(np.asarray(A), -1, 1), np.moveaxis(np.asarray(B), -1, 1))
        if self.sums is None:
            c = proc.shape[1]
            self.sums = {"procrustes_norm": np.zeros(c), "cka": np.zeros(c)}
            self.counts = {"procrustes_norm": np.zeros(c, int), "cka": np.zeros(c, int)}
        for name, v in (("procrustes_norm", proc), ("cka", cka)):
            self.sums[name] += np.nansum(v, axis=0)
            self.counts[name] += np.isfinite(v).sum(axis=0)

    def means(self):
        """{metric: [C] mean over images (NaN where no image had a non-constant map)}, counts."""
        if self.sums is None:
            return {}, np.zeros(0, int)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {k: np.where(self.counts[k] > 0, self.sums[k] / np.maximum(self.counts[k], 1), np.nan)
                   for k in self.sums}
        return out, self.counts["procrustes_norm"]


# ---- data --------------------------------------------------------------------------------------------

def _labels(y):
    if y is None:
        return None
    y = np.asarray(y)
    return np.argmax(y, axis=-1) if y.ndim == 2 else y.reshape(len(y)).astype(np.int64)


def _split(element):
    if isinstance(element, dict):
        return element.get("image", element.get("images")), element.get("label", element.get("labels"))
    if isinstance(element, (tuple, list)):
        return element[0], (element[1] if len(element) > 1 else None)
    return element, None


def batches(data, batch_size=32, max_images=None):
    """Yield (images float32 [b, H, W, C], labels int [b] or None, index of the first image).

    data: an array [N, H, W, C], a tuple (images, labels), a tf.data.Dataset or any iterable of batches
    (elements: images, (images, labels, ...) or {"image", "label"}; unbatched [H, W, C] elements are
    batched). One-hot labels become their argmax. Stops after max_images. Give a dataset that yields the
    same images in the same order every pass (no shuffling) when comparing checkpoints."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer))
                                   or max_images < 1):
        raise InvalidArgumentError(f"max_images must be a positive int or None, got {max_images!r}")
    if isinstance(data, np.ndarray) or (isinstance(data, tuple) and data and isinstance(data[0], np.ndarray)):
        every, tags = (data, None) if isinstance(data, np.ndarray) else _split(data)
        source = ((every[i:i + batch_size], None if tags is None else tags[i:i + batch_size])
                  for i in range(0, len(every), batch_size))
    else:
        if hasattr(data, "as_numpy_iterator"):
            spec = _split(data.element_spec)[0]
            if len(spec.shape) == 3:
                data = data.batch(batch_size)
            data = data.as_numpy_iterator()
        source = (_split(e) for e in data)
    seen = 0
    for images, labels in source:
        images = np.asarray(images, np.float32)
        if images.ndim == 3:
            images = images[None]
            labels = None if labels is None else np.asarray(labels)[None]
        if max_images is not None:
            images = images[:max_images - seen]
        if len(images) == 0:
            break
        labels = _labels(labels)
        yield images, (None if labels is None else labels[:len(images)]), seen
        seen += len(images)
        if max_images is not None and seen >= max_images:
            break


def load_data(data, image_size=224, split="train", batch_size=16, skip_bad_images=False):
    """(images source for streaming.batches, class names or None) from --data: an .npy ([N, H, W, C] in
    [0, 1], or uint8), an .npz (arrays 'images' and optional 'labels'), or a lucidtl.data name
    (folder:PATH, a tfds name) loaded unshuffled. skip_bad_images: a folder's undecodable files are left out
    (else the first one is an error naming it)."""
    if data is None or str(data) == "":
        raise InvalidArgumentError("no images; pass --data folder:PATH, a dataset name, or an .npy/.npz file")
    name = str(data)
    if name.endswith((".npy", ".npz")):
        if not os.path.isfile(name):
            raise InvalidArgumentError(f"data file {name} does not exist; check --data")
        arrays = np.load(name)
        images, labels = (arrays, None) if name.endswith(".npy") else (arrays["images"],
                                                                       arrays.get("labels"))
        images = np.asarray(images)
        if images.ndim != 4:
            raise InvalidArgumentError(f"{name} holds shape {images.shape}; expected images [N, H, W, C]")
        images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
        return ((images, np.asarray(labels)) if labels is not None else images), None
    from lucidtl import data as datasets

    d = datasets.load(name, split=split, batch_size=batch_size, image_size=image_size, shuffle=False,
                      validation_split=0, eval_split=None, skip_bad_images=bool(skip_bad_images))
    return d.train, list(d.class_names)


def scale_input(images, input_range):
    """[0, 1] images -> the model's input range."""
    lo, hi = input_range
    return images if (lo, hi) == (0.0, 1.0) else images * (hi - lo) + lo


# ---- checkpoints -------------------------------------------------------------------------------------

def reference_checkpoint(reference, checkpoints):
    """"first" (lowest iteration), an iteration number, or a weights file (iteration -1)."""
    if reference in (None, "first"):
        return checkpoints[0]
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        for c in checkpoints:
            if c.iteration == reference:
                return c
        raise InvalidArgumentError(f"no checkpoint at iteration {reference}; the run has iterations "
                                   f"{', '.join(str(c.iteration) for c in checkpoints)}")
    path = os.fspath(reference)
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"reference {path!r} is neither 'first', an iteration, nor an existing "
                                   "weights file")
    return Checkpoint(-1, path)


# ---- comparing ---------------------------------------------------------------------------------------

def _check_layers(model, layers):
    from lucidtl.optvis import features

    if isinstance(layers, str):
        layers = [s.strip() for s in layers.split(",") if s.strip()]
    layers = [str(layer) for layer in layers]
    if not layers:
        raise InvalidArgumentError("no layers given; pass --layers NAME[,NAME...]")
    for layer in layers:
        features.endpoint(model, layer)  # unknown: UnknownLayerError naming the nearest ones
    return layers


def layer_outputs(fmodel, x):
    """The outputs of a feature model on images x, as a list of numpy arrays (a fixed input size resizes x)."""
    from lucidtl.optvis import features

    out = fmodel(features.fit_input(fmodel, x), training=False)  # a fixed input size sees the images resized
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


@dataclasses.dataclass
class LayerComparison:
    metrics: dict  # LAYER_METRICS -> float
    features: int  # p: columns of the layer matrix (channels, or all units of a non-spatial layer)
    channels: dict  # CHANNEL_METRICS -> [C] array (empty for non-spatial layers)
    channel_counts: np.ndarray  # images with a usable map, per channel
    n_samples: int  # rows of the layer matrices
    n_images: int


def compare(reference_model, model, layers, data, alpha=0.0, samples="positions", per_channel=True,
            batch_size=32, max_images=None, input_range=(0.0, 1.0)):
    """{layer: LayerComparison} of `model` against `reference_model` on the same images (streamed)."""
    from lucidtl.optvis import features

    if samples not in SAMPLES:
        raise InvalidArgumentError(f"unknown samples {samples!r}; choose one of {', '.join(SAMPLES)}")
    layers = _check_layers(reference_model, layers)
    _check_layers(model, layers)
    fa, fb = features.feature_model(reference_model, layers), features.feature_model(model, layers)
    stats = {layer: CrossStats() for layer in layers}
    maps = {layer: MapStats() for layer in layers}
    n_images = 0
    for images, _, _ in batches(data, batch_size, max_images):
        x = scale_input(images, input_range)
        for layer, a, b in zip(layers, layer_outputs(fa, x), layer_outputs(fb, x)):
            if a.ndim == 4:
                if samples == "positions":
                    stats[layer].update(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]))
                else:
                    stats[layer].update(a.mean(axis=(1, 2), dtype=np.float64), b.mean(axis=(1, 2), dtype=np.float64))
                if per_channel and a.shape == b.shape:
                    maps[layer].update(a, b)
            else:
                stats[layer].update(a.reshape(len(a), -1), b.reshape(len(b), -1))
        n_images += len(images)
    if n_images == 0:
        raise InvalidArgumentError("the dataset yielded no images")
    out = {}
    for layer in layers:
        channels, counts = maps[layer].means()
        out[layer] = LayerComparison(stats[layer].metrics(alpha), stats[layer].sxx.shape[0], channels, counts,
                                     stats[layer].n, n_images)
    return out


@dataclasses.dataclass
class Comparison:
    rows: list  # dicts: run, iteration, epoch, reference, layer, n_images, n_samples, alpha, samples, metrics
    channel_rows: list  # dicts: run, iteration, reference, layer, channel, n_maps, procrustes_norm, cka
    summary: dict  # Pearson's r between the metrics, settings


def fresh_model(model_fn):
    """A new model: model_fn() (a builder), or a clone of model_fn when it is a keras.Model."""
    import keras

    if isinstance(model_fn, keras.Model):
        return keras.models.clone_model(model_fn)
    return model_fn()


def load_into(model, path):
    """Load a checkpoint file into model; a WeightsError hints at the architecture when they do not match."""
    from lucidtl.models.weights import load_weights

    try:
        return load_weights(model, path)
    except WeightsError as e:
        raise WeightsError(f"{e}; build the architecture the run trained (e.g. --num_classes and --top as in "
                           "training)") from e


def correlations(rows, channel_rows, reference_iteration=None):
    """Pearson's r between the metrics: across all (layer, checkpoint) rows, per layer across checkpoints,
    and across per-channel rows (Procrustes vs CKA). Rows of the reference against itself are left out."""
    rows = [r for r in rows if r["iteration"] != reference_iteration]
    chans = [r for r in channel_rows if r["iteration"] != reference_iteration]

    def r(rs, a, b):
        return M.pearson([x[a] for x in rs], [x[b] for x in rs]) if len(rs) > 1 else float("nan")

    by_layer = {}
    for layer in dict.fromkeys(x["layer"] for x in rows):
        sub = [x for x in rows if x["layer"] == layer]
        by_layer[layer] = r(sub, "pwsm_theta", "procrustes_norm")
    return {"pwsm_vs_procrustes": r(rows, "pwsm_theta", "procrustes_norm"),
            "pwsm_vs_cka": r(rows, "pwsm_theta", "cka"),
            "procrustes_vs_cka": r(rows, "procrustes_norm", "cka"),
            "pwsm_vs_procrustes_by_layer": by_layer,
            "channels_procrustes_vs_cka": r(chans, "procrustes_norm", "cka")}


def compare_checkpoints(model_fn, checkpoints, layers, data, reference="first", alpha=0.0, samples="positions",
                        per_channel=True, batch_size=32, max_images=None, input_range=(0.0, 1.0), label="",
                        report=None):
    """Each checkpoint against the reference (default: the first) on the same images.

    model_fn: a callable returning a fresh Keras model of the run's architecture (or a model to clone).
    checkpoints: see resolve_checkpoints. Returns a Comparison; report(str), if given, hears progress."""
    cps = resolve_checkpoints(checkpoints)
    ref = reference_checkpoint(reference, cps)
    ref_model = load_into(fresh_model(model_fn), ref.path)
    model = fresh_model(model_fn)
    layers = _check_layers(ref_model, layers)
    rows, channel_rows = [], []
    for cp in cps:
        if report:
            report(f"iteration {cp.iteration}: {os.path.basename(cp.path)}")
        load_into(model, cp.path)
        result = compare(ref_model, model, layers, data, alpha=alpha, samples=samples, per_channel=per_channel,
                         batch_size=batch_size, max_images=max_images, input_range=input_range)
        for layer, res in result.items():
            rows.append({"run": label, "iteration": cp.iteration, "epoch": cp.epoch, "reference": ref.iteration,
                         "layer": layer, "n_images": res.n_images, "n_samples": res.n_samples,
                         "features": res.features, "alpha": alpha,
                         "samples": samples, **res.metrics})
            for c in range(len(res.channel_counts)):
                channel_rows.append({"run": label, "iteration": cp.iteration, "reference": ref.iteration,
                                     "layer": layer, "channel": c, "n_maps": int(res.channel_counts[c]),
                                     **{k: float(v[c]) for k, v in res.channels.items()}})
    thin = sorted({r["layer"] for r in rows if alpha < 1 and r["n_samples"] < 10 * r["features"]})
    warnings = [f"layer {layer}: fewer than 10 samples per feature; the whitened PWSM angle is unreliable (use "
                "more images, samples='positions', or a larger alpha)" for layer in thin]
    summary = {"pearson": correlations(rows, channel_rows, ref.iteration), "warnings": warnings,
               "reference": ref.path,
               "reference_iteration": ref.iteration, "alpha": alpha, "samples": samples, "layers": layers,
               "checkpoints": [dataclasses.asdict(c) for c in cps]}
    return Comparison(rows, channel_rows, summary)


def check_metrics(names, options=LAYER_METRICS):
    """A list of metric names (or a comma-separated string) checked against options."""
    if isinstance(names, str):
        names = [s.strip() for s in names.split(",") if s.strip()]
    names = list(names)
    for name in names:
        if name not in options:
            raise InvalidArgumentError(f"unknown metric {name!r}{did_you_mean(str(name), options)}; "
                                       f"choose from {', '.join(options)}")
    if not names:
        raise InvalidArgumentError(f"no metrics given; choose from {', '.join(options)}")
    return names
