"""Redundancy of a layer's channel visualisations: how alike its channels' images are.

Each visualisation becomes a vector, either
- method="activations": its spatially averaged activations in a fixed layer of a fixed model (what a
  network sees in it), or
- method="pixels": its pixels minus the image's mean colour (the grey level all renders share would
  otherwise make every pair look alike),
and the pairwise cosine similarities form a [n, n] matrix. The layer's redundancy score is the mean
off-diagonal cosine: 1 when all visualisations are the same (up to a positive scale), 0 when they are
orthogonal. A zero vector has cosine 0 with everything (and 1 with itself).
"""
import numpy as np

from lucidtl.errors import InvalidArgumentError

METHODS = ("activations", "pixels")


def cosine_matrix(vectors):
    """[n, d] -> [n, n] cosine similarities (float64)."""
    V = np.asarray(vectors, np.float64).reshape(len(vectors), -1)
    norm = np.linalg.norm(V, axis=1)
    U = V / np.where(norm > 0, norm, 1.0)[:, None]
    S = U @ U.T
    np.fill_diagonal(S, 1.0)
    return np.clip(S, -1.0, 1.0)


def redundancy_score(similarity):
    """Mean of the off-diagonal entries of a similarity matrix (NaN for fewer than two items)."""
    S = np.asarray(similarity, np.float64)
    n = len(S)
    if n < 2:
        return float("nan")
    return float((S.sum() - np.trace(S)) / (n * (n - 1)))


def pixel_vectors(images):
    """[n, H, W, C] -> [n, H*W*C] with each image's mean colour removed."""
    x = np.asarray(images, np.float64)
    return (x - x.mean(axis=(1, 2), keepdims=True)).reshape(len(x), -1)


def activation_vectors(images, model, layer, input_range=(0.0, 1.0), batch_size=32):
    """[n, C]: the spatially averaged activations of `layer` for each image."""
    from lucidtl.analysis.streaming import batches, scale_input
    from lucidtl.optvis import features

    fmodel = features.feature_model(model, [layer])
    out = []
    for x, _, _ in batches(np.asarray(images, np.float32), batch_size):
        x = scale_input(x, input_range)
        x = features.fit_input(model, x)  # a fixed input size sees the images resized
        a = fmodel(x, training=False)
        a = np.asarray(a[0] if isinstance(a, (list, tuple)) else a, np.float64)
        out.append(a.mean(axis=tuple(range(1, a.ndim - 1))) if a.ndim > 2 else a)
    return np.concatenate(out)


def redundancy(images, method="pixels", model=None, layer=None, input_range=(0.0, 1.0)):
    """(cosine matrix, redundancy score) of a layer's channel visualisations [n, H, W, C]."""
    if method not in METHODS:
        raise InvalidArgumentError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "pixels":
        vectors = pixel_vectors(images)
    else:
        if model is None or layer is None:
            raise InvalidArgumentError("method 'activations' needs a model and a layer to embed the images in; "
                                       "pass --model and --embed_layer, or use --compare pixels")
        vectors = activation_vectors(images, model, layer, input_range)
    S = cosine_matrix(vectors)
    return S, redundancy_score(S)


def folder_redundancy(folder, method="pixels", model=None, layer=None, input_range=(0.0, 1.0)):
    """One row per (run, iteration, layer, threshold) group of rendered PNGs in folder (see
    spatial.find_images): n channels and the redundancy score; returns (rows, {group: cosine matrix})."""
    from lucidtl.analysis.spatial import find_images
    from lucidtl.imageio import load_png

    groups = {}
    for r in find_images(folder):
        groups.setdefault((r["run"], r["iteration"], r["layer"], r["threshold"]), []).append(r)
    rows, matrices = [], {}
    for (run, iteration, name, threshold), rs in groups.items():
        if len(rs) < 2:
            continue
        imgs = [load_png(r["path"])[..., :3] for r in rs]
        if len({i.shape for i in imgs}) > 1:
            raise InvalidArgumentError(f"renders of layer {name} differ in size; render them at one --size")
        S, score = redundancy(np.stack(imgs), method, model, layer, input_range)
        rows.append({"run": run, "iteration": iteration, "layer": name, "threshold": threshold,
                     "channels": len(rs), "method": method, "redundancy": score})
        matrices[(run, iteration, name, threshold)] = S
    if not rows:
        raise InvalidArgumentError(f"no layer in {folder} has two or more rendered channels to compare")
    return rows, matrices
