"""An activation atlas of one model (Lucid's recipes/activation_atlas/main.py): activations sampled at
random positions of dataset images, laid out by UMAP, binned on a grid, each cell's mean drawn as an icon.

Sampling is streamed: images pass through the model a batch at a time and only the sampled vectors are
kept (memory: points x channels, whatever the dataset's size). Positions follow Lucid's collection
notebook: `positions_per_image` per image, each axis drawn from 1..H-1 (randint(1, H): only index 0 left
out); they depend only on (seed, image index, map size), so every checkpoint of a run is sampled at the
same places of the same images.
"""
import dataclasses

import numpy as np

from lucidtl.errors import InvalidArgumentError
from lucidtl.recipes.activation_atlas import layout as layout_lib
from lucidtl.recipes.activation_atlas import render as render_lib


@dataclasses.dataclass
class Sample:
    activations: np.ndarray  # [M, C] float32
    image: np.ndarray  # [M] index of the dataset image each point came from
    yx: np.ndarray  # [M, 2] its position in the layer's map
    labels: np.ndarray | None  # [M] that image's class, when the dataset has labels
    attributions: np.ndarray | None  # [M] attribution to class_logit, when asked
    map_shape: tuple  # (H, W) of the layer on the dataset's images
    image_shape: tuple  # (H, W) of the dataset's images
    n_images: int

    def subset(self, mask):
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return dataclasses.replace(self, activations=self.activations[mask], image=self.image[mask],
                                   yx=self.yx[mask], labels=pick(self.labels), attributions=pick(self.attributions))


def spatial_shape(model, layer):
    """A layer's output must have positions ([B, H, W, C]); else a one-line error."""
    from lucidtl.optvis import features

    shape = tuple(features.endpoint(model, layer).shape)
    if len(shape) != 4:
        raise InvalidArgumentError(f"layer {layer!r} has output shape {shape}: no spatial positions to sample; "
                                   "pick a convolutional layer (python -m lucidtl.render layers lists them)")
    return shape


def positions(seed, index, map_shape, per_image):
    """per_image positions (y, x) of image `index`, Lucid's randint(1, H) per axis (0 where H == 1)."""
    rng = np.random.default_rng([int(seed), int(index)])
    return np.stack([rng.integers(1, d, per_image) if d > 1 else np.zeros(per_image, np.int64)
                     for d in map_shape], axis=1)


def sample_activations(model, layer, data, number_activations=100000, positions_per_image=1, batch_size=32,
                       seed=0, input_range=(0.0, 1.0), class_logit=None, max_images=None, progress=False):
    """Sample a layer's activation vectors: images of `data` (see analysis.streaming.batches) until
    number_activations points are taken (or the data ends). class_logit k: also each point's attribution
    to class k's score (features.class_score; Lucid's collection: the forward-mode derivative of the logit along the
    activation at that position, = gradient . activation there)."""
    import tensorflow as tf

    from lucidtl.analysis.streaming import batches, scale_input
    from lucidtl.optvis import features
    from lucidtl.optvis.render import progress_bar

    spatial_shape(model, layer)
    per = int(positions_per_image)
    need_images = -(-int(number_activations) // per)
    if max_images is not None:
        need_images = min(need_images, int(max_images))
    attributor = None
    if class_logit is not None:  # the layer split on the path to the class score (lucidtl.attribution)
        from lucidtl.attribution import Attributor

        attributor = Attributor(model, layer, input_range=input_range)
        if not 0 <= int(class_logit) < attributor.num_classes:
            raise InvalidArgumentError(f"--class-logit {class_logit} is not an output unit of the model "
                                       f"(output shape {(None, attributor.num_classes)})")
    fm = features.feature_model(model, [layer])
    acts_all, img_all, yx_all, lab_all, att_all = [], [], [], [], []
    map_shape = image_shape = None
    seen = 0
    bar = progress_bar(need_images, progress, unit="img", desc=f"sampling {layer}")
    try:
        for x, y, first in batches(data, batch_size, need_images):
            x = x[..., :3] if x.shape[-1] > 3 else x
            if attributor is None:
                x = features.fit_input(model, tf.constant(scale_input(x, input_range)))
                a = fm(x, training=False)
                a = a[0] if isinstance(a, (list, tuple)) else a
                grad_a = None
            else:  # the attributor scales the [0, 1] images itself
                x = features.fit_input(model, tf.constant(x, tf.float32))
                a, attr = attributor(np.asarray(x), [int(class_logit)])
                grad_a = np.asarray(attr[0], np.float32)  # gradient x activation at every position
            image_shape = image_shape or tuple(x.shape[1:3])
            a = np.asarray(a, np.float32)
            map_shape = tuple(a.shape[1:3])
            for i in range(len(a)):
                pos = positions(seed, first + i, map_shape, per)
                acts_all.append(a[i, pos[:, 0], pos[:, 1]])
                img_all.append(np.full(per, first + i))
                yx_all.append(pos)
                if y is not None:
                    lab_all.append(np.full(per, y[i]))
                if grad_a is not None:
                    att_all.append(grad_a[i, pos[:, 0], pos[:, 1]].sum(-1))
            seen += len(a)
            bar.update(len(a))
    finally:
        bar.close()
    if not seen:
        raise InvalidArgumentError("the dataset yielded no images; check --dataset")
    m = min(int(number_activations), seen * per)
    cat = lambda parts: np.concatenate(parts)[:m] if parts else None  # noqa: E731
    labels = cat(lab_all) if len(lab_all) == len(acts_all) else None
    return Sample(cat(acts_all), cat(img_all), cat(yx_all), labels, cat(att_all), map_shape, image_shape, seen)


def bin_laid_out_activations(layout, activations, grid_size, threshold=5):
    """Lucid's binning: edges linspace(0, 1, G + 1) with the last one infinite; a cell is kept when it holds
    more than `threshold` points; its value is the plain mean of their activations. Cells in order of the
    grid coordinates with the first coordinate varying fastest. Returns (means, coordinates, counts)."""
    cells = bin_cells(layout, activations, grid_size, threshold)
    return list(cells.means), [np.asarray(c) for c in cells.coordinates], list(cells.counts)


@dataclasses.dataclass
class Cells:
    coordinates: list  # [(x, y)] grid coordinates of the kept cells
    counts: np.ndarray  # [n] points in each
    means: np.ndarray  # [n, C] float64 mean activation of each
    members: list  # [n] indices of the points in each
    assignment: np.ndarray  # [M, 2] the grid cell of every point


def grid_cells(layout, grid_size):
    """[M, 2] grid coordinates of each point (np.digitize on Lucid's edges)."""
    bins = np.linspace(0, 1, num=grid_size + 1)
    bins[-1] = np.inf
    return np.digitize(np.asarray(layout), bins) - 1


def bin_cells(layout, activations, grid_size, threshold=5):
    layout, activations = np.asarray(layout), np.asarray(activations)
    if len(layout) != len(activations):
        raise InvalidArgumentError(f"layout has {len(layout)} points but there are {len(activations)} activations")
    where = grid_cells(layout, grid_size)
    flat = where[:, 1] * grid_size + where[:, 0]  # first coordinate fastest
    order = np.argsort(flat, kind="stable")
    keys, starts, counts = np.unique(flat[order], return_index=True, return_counts=True)
    coords, means, members, kept = [], [], [], []
    for key, start, count in zip(keys, starts, counts):
        if count > threshold:
            idx = np.sort(order[start:start + count])
            coords.append((int(key % grid_size), int(key // grid_size)))
            means.append(activations[idx].astype(np.float64).mean(axis=0))
            members.append(idx)
            kept.append(int(count))
    if not coords:
        raise InvalidArgumentError(
            f"no cell of the {grid_size}x{grid_size} grid holds more than {threshold} of the {len(layout)} points; "
            "use a smaller --grid-size, a lower --threshold or more images")
    return Cells(coords, np.asarray(kept), np.stack(means), members, where)


def cell_table(cells, sample, patches=4):
    """Per cell: count, class counts and the dominant class of its points' images, mean attribution, and
    the `patches` points nearest its mean (cosine), as (image, y, x)."""
    rows = []
    for coord, count, mean, idx in zip(cells.coordinates, cells.counts, cells.means, cells.members):
        row = {"x": coord[0], "y": coord[1], "count": int(count)}
        if sample.labels is not None:
            classes, n = np.unique(sample.labels[idx], return_counts=True)
            row["dominant_class"] = int(classes[np.argmax(n)])  # ties: the smallest class index
            row["dominant_share"] = round(float(n.max() / count), 6)
            row["classes"] = {str(int(c)): int(k) for c, k in zip(classes, n)}
        if sample.attributions is not None:
            row["attribution"] = round(float(sample.attributions[idx].mean()), 6)
        a = sample.activations[idx].astype(np.float64)
        cos = a @ mean / (np.linalg.norm(a, axis=1) * np.linalg.norm(mean) + 1e-12)
        near = idx[np.argsort(-cos, kind="stable")[:patches]]
        row["nearest"] = [[int(sample.image[j]), int(sample.yx[j, 0]), int(sample.yx[j, 1])] for j in near]
        rows.append(row)
    return rows


def check_grid(n_images, n_points, grid_size, threshold):
    """The bad inputs the issue lists, before the layout or any icon."""
    if isinstance(grid_size, bool) or not isinstance(grid_size, (int, np.integer)) or grid_size < 1:
        raise InvalidArgumentError(f"--grid-size must be an integer >= 1, got {grid_size!r}")
    if n_images < grid_size * grid_size:
        raise InvalidArgumentError(f"{n_images} images are fewer than the {grid_size}x{grid_size} = "
                                   f"{grid_size * grid_size} cells; use more images or a smaller --grid-size")
    if n_points <= threshold:
        raise InvalidArgumentError(f"{n_points} points cannot fill a cell of more than {threshold}; sample more "
                                   "points (--positions-per-image, more images) or lower --threshold")


def patch_size(model, layer, image_shape):
    """The side of a nearest-patch crop: the layer's receptive field, at most the image."""
    from lucidtl.analysis.examples import receptive_field

    try:
        (h, w), _ = receptive_field(model, layer)
    except Exception:  # noqa: BLE001 - an architecture the estimate cannot follow: a quarter of the image
        h, w = image_shape[0] // 4, image_shape[1] // 4
    return int(max(4, min(h, image_shape[0]))), int(max(4, min(w, image_shape[1])))


def crop_patches(data, wanted, map_shape, size, batch_size=32):
    """{(image, y, x): crop [h, w, 3]} of the dataset images, centred on each map position (a second pass
    over the data, keeping only the images asked for)."""
    from lucidtl.analysis.examples import crop, map_to_image
    from lucidtl.analysis.streaming import batches

    by_image = {}
    for key in wanted:
        by_image.setdefault(key[0], []).append(key)
    out, last = {}, max(by_image) if by_image else -1
    for x, _, first in batches(data, batch_size, last + 1):
        for i in range(len(x)):
            for key in by_image.get(first + i, ()):
                image = x[i, ..., :3]
                centre = map_to_image(key[1:], map_shape, image.shape[:2])
                out[key] = crop(image, centre, size)[0].astype(np.float32)
    return out


@dataclasses.dataclass
class ActivationAtlas:
    canvas: np.ndarray  # [G * size, G * size, 3] float32 in [0, 1], white where no cell is kept
    icons: np.ndarray  # [n, size, size, 3]
    scores: np.ndarray  # [n] each icon's objective
    cells: Cells
    table: list  # cell_table rows
    layout: np.ndarray  # [M, 2] in [0, 1]
    sample: Sample


def cell_seed(seed, coord, grid_size):
    """An icon's seed: the atlas seed and its cell only (the same cell starts from the same image in every
    atlas of a run)."""
    return (int(seed) * 1_000_003 + int(coord[1]) * grid_size + int(coord[0])) % (2**31 - 1)


def render_cells(model, layer, cells, grid_size, icon_size=96, n_steps=128, icon_batch_size=32, num_attempts=1,
                 seed=0, input_range=(0.0, 1.0), verbose=False, batches=None):
    """Icons of the cells, icon_batch_size per optimisation; batches: which batch numbers to render (all)."""
    icons, scores = {}, {}
    n = len(cells.coordinates)
    for b, start in enumerate(range(0, n, icon_batch_size)):
        if batches is not None and b not in batches:
            continue
        part = slice(start, min(start + icon_batch_size, n))
        seeds = [cell_seed(seed, c, grid_size) for c in cells.coordinates[part]]
        got, s = render_lib.render_icons(cells.means[part], model, layer, size=icon_size, n_steps=n_steps,
                                         verbose=verbose, num_attempts=num_attempts, seeds=seeds,
                                         input_range=input_range)
        icons[b], scores[b] = got, s
    return icons, scores


def activation_atlas(model, layer, data, grid_size=10, icon_size=96, number_activations=100000,
                     icon_batch_size=32, verbose=False, n_steps=128, threshold=5, num_attempts=1,
                     positions_per_image=1, seed=0, input_range=(0.0, 1.0), class_filter=None, class_logit=None,
                     batch_size=32, umap_options=None, patches=4):
    """Lucid's activation_atlas on a dataset: sample, lay out (UMAP, seeded), bin, render every kept cell
    (Lucid's defaults: grid 10, icons of 96 px, 128 steps, 1 attempt, threshold 5).

    class_filter: keep the points of images of that class only. class_logit: record each cell's mean
    attribution to that output unit (Lucid's class atlases)."""
    sample = sample_activations(model, layer, data, number_activations, positions_per_image, batch_size, seed,
                                input_range, class_logit)
    if class_filter is not None:
        if sample.labels is None:
            raise InvalidArgumentError("--class-filter needs a dataset with labels")
        sample = sample.subset(sample.labels == int(class_filter))
    check_grid(len(np.unique(sample.image)), len(sample.activations), grid_size, threshold)
    laid = layout_lib.aligned_umap(sample.activations, umap_options, seed=seed, verbose=verbose)
    cells = bin_cells(laid, sample.activations, grid_size, threshold)
    icons, scores = render_cells(model, layer, cells, grid_size, icon_size, n_steps, icon_batch_size, num_attempts,
                                 seed, input_range, verbose)
    icons = np.concatenate([icons[b] for b in sorted(icons)])
    scores = np.concatenate([scores[b] for b in sorted(scores)])
    canvas = render_lib.make_canvas(icons, cells.coordinates, grid_size)
    return ActivationAtlas(canvas, icons, scores, cells, cell_table(cells, sample, patches), laid, sample)
