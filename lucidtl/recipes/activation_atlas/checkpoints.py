"""Activation atlases of every checkpoint of a run in one layout: resumable, shardable.

    OUT/<layer>/settings.json                   the settings (a rerun or another shard must match them)
    OUT/<layer>/activations/iter_000030.npz     the sampled vectors (same images and positions everywhere)
    OUT/<layer>/layout.npz                      every checkpoint's 2-D positions (one normalisation)
    OUT/<layer>/iter_000030/cells.json          per kept cell: count, classes, nearest points, density change
    OUT/<layer>/iter_000030/icons/x03_y07.png   the cell's icon; icons/batch_0002.json marks a finished batch
    OUT/<layer>/iter_000030/activation_atlas.png   the icons tiled at their cells
    OUT/<layer>/iter_000030/cells.csv, patches/x03_y07.png   the table, and each cell's nearest dataset patches
    OUT/<layer>/density.csv, summary.json       points per grid cell at every checkpoint; what the site reads

The layout is fitted on the first checkpoint's points (fit="first", the default: the pretrained network's
space is the reference the others are placed in with UMAP's transform, each after its mean activation is
moved onto the reference's (layout.drift_aligned: a shift all points share would put them in one cell),
so the reference's points stay exactly where
the fit put them, a later checkpoint never moves the map, and the fit costs one checkpoint's points) or on
all checkpoints' points at once (fit="joint": every checkpoint shapes the map equally, for runs that move
far from where they started). Every checkpoint's cells get the same seeds (a cell's seed depends on the
atlas seed and the cell only), so a place of the map is drawn from the same start all along the run.

Each file is written atomically and skipped on a rerun when present; an icon batch counts as done once its
marker is written after its PNGs, so an interrupted atlas renders only the missing batches, exactly as the
uninterrupted run would (the same cells in the same batches from the same seeds).
"""
import csv
import io
import os

import numpy as np

from lucidtl import atomic, imageio
from lucidtl.analysis.streaming import fresh_model, load_into
from lucidtl.errors import InvalidArgumentError
from lucidtl.recipes.activation_atlas import layout as layout_lib
from lucidtl.recipes.activation_atlas import main as M
from lucidtl.recipes.activation_atlas import render as render_lib
from lucidtl.run import Run, resolve_checkpoints

PATCH_THUMB = 48


def iter_name(iteration):
    return f"iter_{int(iteration):06d}"


def cell_name(coord):
    return f"x{coord[0]:02d}_y{coord[1]:02d}"


def _save_npz(path, **arrays):
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


def _load_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _read_json(path):
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_settings(folder, settings, write=True):
    path = os.path.join(folder, "settings.json")
    if os.path.isfile(path):
        old = _read_json(path)
        changed = [k for k in settings if old.get(k) != settings[k]]
        if changed:
            raise InvalidArgumentError(f"{folder} holds an activation atlas with other settings ({changed[0]}: "
                                       f"{old.get(changed[0])!r}, not {settings[changed[0]]!r}); use another --out "
                                       "or --overwrite")
    elif write:
        imageio.save_json(settings, path)


def _sample_arrays(sample):
    arrays = {"activations": sample.activations, "image": sample.image, "yx": sample.yx,
              "map_shape": np.asarray(sample.map_shape), "image_shape": np.asarray(sample.image_shape),
              "n_images": np.asarray(sample.n_images)}
    if sample.labels is not None:
        arrays["labels"] = sample.labels
    if sample.attributions is not None:
        arrays["attributions"] = sample.attributions
    return arrays


def _sample_from(arrays):
    return M.Sample(arrays["activations"], arrays["image"], arrays["yx"], arrays.get("labels"),
                    arrays.get("attributions"), tuple(int(v) for v in arrays["map_shape"]),
                    tuple(int(v) for v in arrays["image_shape"]), int(arrays["n_images"]))


class _Models:
    def __init__(self, model_fn):
        self.model = fresh_model(model_fn)
        self.at = None

    def load(self, ck):
        if self.at != ck.path:
            load_into(self.model, ck.path)
            self.at = ck.path
        return self.model


def _csv_text(rows, fields):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def checkpoint_atlases(model_fn, checkpoints, layer, data, out, grid_size=10, icon_size=96, n_steps=128,
                       icon_batch_size=32, number_activations=100000, positions_per_image=1, threshold=5,
                       num_attempts=1, fit="first", seed=0, batch_size=32, class_filter=None, class_logit=None,
                       patches=4, umap_options=None, input_range=(0.0, 1.0), shard=(0, 1), progress=False,
                       report=None):
    """One layout for all checkpoints (see the module doc), an activation atlas per checkpoint in
    OUT/<layer>/. model_fn() builds the architecture each checkpoint is loaded into; checkpoints: a
    lucidtl.run.Run, a run folder, weight files or lucidtl.run.Checkpoints (ascending; the first is the
    reference). model_fn None: the Run's own architecture and input range.
    Returns the summary (what summary.json holds), or None while other shards still have icons to draw."""
    from lucidtl.optvis.render import progress_bar

    say = report or (lambda line: None)
    layout_lib.require_umap()
    if fit not in layout_lib.FITS:
        raise InvalidArgumentError(f"unknown --fit {fit!r}; choose one of {', '.join(layout_lib.FITS)}")
    if model_fn is None:
        if not isinstance(checkpoints, Run):
            raise InvalidArgumentError("pass model_fn (the architecture), or the checkpoints as a Run")
        model_fn, input_range = checkpoints.architecture()
    cps = resolve_checkpoints(checkpoints)
    models = _Models(model_fn)
    folder = os.path.join(os.fspath(out), str(layer).replace("/", "_"))
    acts_path = lambda ck: os.path.join(folder, "activations", iter_name(ck.iteration) + ".npz")  # noqa: E731
    settings = {"layer": str(layer), "iterations": [c.iteration for c in cps], "grid_size": grid_size,
                "icon_size": icon_size, "n_steps": n_steps, "icon_batch_size": icon_batch_size,
                "number_activations": number_activations, "positions_per_image": positions_per_image,
                "threshold": threshold, "num_attempts": num_attempts, "fit": fit, "seed": seed,
                "class_filter": class_filter, "class_logit": class_logit, "patches": patches,
                "umap_options": umap_options or {}, "input_range": list(input_range)}

    def sample(ck):
        if os.path.isfile(acts_path(ck)):
            return _sample_from(_load_npz(acts_path(ck)))
        say(f"sampling {layer} at iteration {ck.iteration}")
        return M.sample_activations(models.load(ck), layer, data, number_activations, positions_per_image,
                                    batch_size, seed, input_range, class_logit, progress=progress)

    # the checks, before anything is written: same settings as before, a layer with positions, enough
    # images and points, at least one cell at every checkpoint
    _check_settings(folder, settings, write=False)
    M.spatial_shape(models.load(cps[0]), layer)
    first = sample(cps[0])
    keep = np.ones(len(first.image), bool)
    if class_filter is not None:
        if first.labels is None:
            raise InvalidArgumentError("--class-filter needs a dataset with labels")
        keep = first.labels == int(class_filter)
    M.check_grid(len(np.unique(first.image[keep])), int(keep.sum()), grid_size, threshold)
    layout_lib.check_points(int(keep.sum()), umap_options)
    full = [first] + [sample(ck) for ck in cps[1:]]
    samples = [s.subset(keep) for s in full]
    layout_path = os.path.join(folder, "layout.npz")
    laid = None
    if os.path.isfile(layout_path):
        layouts = list(_load_npz(layout_path)["layouts"])
    else:
        say(f"UMAP layout ({fit}) of {len(samples[0].image)} points x {len(cps)} checkpoints")
        laid = layout_lib.checkpoint_layout([s.activations for s in samples], fit, umap_options, seed, report=say)
        layouts = laid.layouts
    cells = [M.bin_cells(lay, s.activations, grid_size, threshold) for lay, s in zip(layouts, samples)]

    # every check passed: from here on, files (each skipped when a rerun finds it)
    _check_settings(folder, settings)
    for root, _, _ in list(os.walk(folder)):  # temporary files of writes a kill cut short
        atomic.clear_stale(root)
    for ck, s in zip(cps, full):
        if not os.path.isfile(acts_path(ck)):
            _save_npz(acts_path(ck), **_sample_arrays(s))
    if laid is not None:
        _save_npz(layout_path, layouts=np.stack(layouts), raw=np.stack(laid.raw), lo=laid.bounds.lo,
                  hi=laid.bounds.hi, low=laid.bounds.low, high=laid.bounds.high,
                  iterations=np.asarray([c.iteration for c in cps]))

    density = []  # [K] G x G point counts (every cell, kept or not)
    for lay in layouts:
        where = M.grid_cells(lay, grid_size)
        grid = np.zeros((grid_size, grid_size), np.int64)
        np.add.at(grid, (where[:, 0], where[:, 1]), 1)
        density.append(grid)

    # per-cell tables, then the icons batch by batch (this shard's share)
    for k, (ck, c, s) in enumerate(zip(cps, cells, samples)):
        path = os.path.join(folder, iter_name(ck.iteration), "cells.json")
        if not os.path.isfile(path):
            rows = M.cell_table(c, s, patches)
            for row in rows:
                row["icon"] = f"icons/{cell_name((row['x'], row['y']))}.png"
                row["patches"] = f"patches/{cell_name((row['x'], row['y']))}.png"
                row["change"] = int(density[k][row["x"], row["y"]] - density[0][row["x"], row["y"]])
            imageio.save_json({"iteration": ck.iteration, "grid_size": grid_size, "cells": rows}, path)
    work = [(k, b) for k, c in enumerate(cells) for b in range(-(-len(c.coordinates) // icon_batch_size))]
    mine = [w for i, w in enumerate(work) if i % shard[1] == shard[0]]

    def marker(k, b):
        return os.path.join(folder, iter_name(cps[k].iteration), "icons", f"batch_{b:04d}.json")

    def icon_path(k, coord):
        return os.path.join(folder, iter_name(cps[k].iteration), "icons", cell_name(coord) + ".png")

    def batch_coords(k, b):
        return cells[k].coordinates[b * icon_batch_size:(b + 1) * icon_batch_size]

    def done(k, b):
        return os.path.isfile(marker(k, b)) and all(os.path.isfile(icon_path(k, c)) for c in batch_coords(k, b))

    pending = [w for w in mine if not done(*w)]
    bar = progress_bar(len(pending), progress, unit="batch", desc=f"icons {layer}", leave=True)
    try:
        for k, b in pending:
            icons, scores = M.render_cells(models.load(cps[k]), layer, cells[k], grid_size, icon_size, n_steps,
                                           icon_batch_size, num_attempts, seed, input_range, batches={b})
            for coord, icon in zip(batch_coords(k, b), icons[b]):
                imageio.save_png(icon, icon_path(k, coord))
            imageio.save_json({"cells": [cell_name(c) for c in batch_coords(k, b)],
                               "scores": [round(float(v), 6) for v in scores[b]]}, marker(k, b))
            bar.update(1)
    finally:
        bar.close()
    if not all(done(*w) for w in work):
        return None
    return _finish(folder, cps, cells, density, samples, data, models, layer, grid_size, icon_size, icon_batch_size,
                   batch_size, settings)


def _finish(folder, cps, cells, density, samples, data, models, layer, grid_size, icon_size, icon_batch_size,
            batch_size, settings):
    """Canvases, tables, patch strips, density and the summary, from what the stages wrote."""
    from PIL import Image

    wanted, tables = set(), []
    for ck in cps:
        table = _read_json(os.path.join(folder, iter_name(ck.iteration), "cells.json"))["cells"]
        tables.append(table)
        wanted |= {tuple(p) for row in table for p in row["nearest"]}
    size = M.patch_size(models.model, layer, samples[0].image_shape)
    crops = None
    for k, ck in enumerate(cps):
        it = os.path.join(folder, iter_name(ck.iteration))
        scores = {}
        for b in range(-(-len(cells[k].coordinates) // icon_batch_size)):
            rec = _read_json(os.path.join(it, "icons", f"batch_{b:04d}.json"))
            scores.update(zip(rec["cells"], rec["scores"]))
        for row in tables[k]:
            row["score"] = scores[cell_name((row["x"], row["y"]))]
        canvas_path = os.path.join(it, "activation_atlas.png")
        if not os.path.isfile(canvas_path):
            icons = [imageio.load_png(os.path.join(it, row["icon"])) for row in tables[k]]
            canvas = render_lib.make_canvas(np.stack(icons), [(r["x"], r["y"]) for r in tables[k]], grid_size)
            imageio.save_png(canvas, canvas_path)
        for row in tables[k]:
            path = os.path.join(it, row["patches"])
            if os.path.isfile(path):
                continue
            if crops is None:
                crops = M.crop_patches(data, wanted, samples[0].map_shape, size, batch_size)
            thumbs = [np.asarray(Image.fromarray(imageio.to_uint8(crops[tuple(p)])).resize(
                (PATCH_THUMB, PATCH_THUMB), Image.NEAREST), np.float32) / 255.0 for p in row["nearest"]]
            gap = np.ones((PATCH_THUMB, 2, 3), np.float32)
            imageio.save_png(np.concatenate([x for t in thumbs for x in (t, gap)][:-1], axis=1), path)
        fields = ["x", "y", "count", "change", "dominant_class", "dominant_share", "attribution", "score", "icon",
                  "patches"]
        atomic.write_text(os.path.join(it, "cells.csv"), _csv_text(tables[k], [f for f in fields if any(
            f in r for r in tables[k])]))
    rows = [{"iteration": ck.iteration, "x": x, "y": y, "count": int(d[x, y]), "change": int(d[x, y] - density[0][x, y])}
            for ck, d in zip(cps, density) for y in range(grid_size) for x in range(grid_size)]
    atomic.write_text(os.path.join(folder, "density.csv"), _csv_text(rows, ["iteration", "x", "y", "count", "change"]))
    summary = {"layer": str(layer), "grid_size": grid_size, "icon_size": icon_size, "fit": settings["fit"],
               "points": int(len(samples[0].image)), "images": int(len(np.unique(samples[0].image))),
               "checkpoints": [{"iteration": ck.iteration, "atlas": f"{iter_name(ck.iteration)}/activation_atlas.png",
                                "cells": tables[k]} for k, ck in enumerate(cps)]}
    imageio.save_json(summary, os.path.join(folder, "summary.json"))
    return summary
