"""Building blocks over a run's checkpoints: attribution to the head's classes, neuron groups, caricatures.

Each job checks every input before its first write, then handles one checkpoint at a time: its results go
to <out>/parts/ (JSON rows last, after any arrays and PNGs), so a killed job resumes at the checkpoint it
was on; <out>/<job>_settings.json holds the settings and a resume with other settings is refused (use
--overwrite). The tables, curves and strips over all checkpoints are (re)written at the end.
"""
import dataclasses
import json
import os
import pickle

import numpy as np

from lucidtl import atomic
from lucidtl import attribution as A
from lucidtl.analysis import groups as G
from lucidtl.analysis import plots, tables
from lucidtl.analysis.examples import enlarged
from lucidtl.analysis.streaming import batches, layer_outputs, load_data, load_into, scale_input
from lucidtl.atomic import atomic_path, write_bytes
from lucidtl.errors import InvalidArgumentError
from lucidtl.imageio import load_png, save_grid, save_json, save_png
from lucidtl.misc.channel_reducer import NON_NEGATIVE
from lucidtl.recipes import accentuation as acc
from lucidtl.recipes import caricature as car
from lucidtl.run import Run

PARTS = "parts"
COLUMNS = {"attribution": ["run", "iteration", "layer", "class", "class_name", "channel", "attribution",
                           "attribution_class", "rank", "n_images"],
           "groups": ["run", "iteration", "layer", "mode", "group", "weight", "cosine", "error", "n_rows"],
           "caricature": ["run", "iteration", "layer", "image", "cosine", "steps", "cossim_pow"],
           "accentuation": ["run", "iteration", "layer", "channel", "image", "regularize_layer", "penalty", "steps",
                            "unit_before", "unit_after", "distance", "tolerance"]}


# ---- inputs ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Inputs:
    checkpoints: list  # [streaming.Checkpoint], ascending
    model_fn: object
    input_range: tuple
    source: object  # what streaming.batches reads
    class_names: list  # or None
    layers: list
    label: str
    model: object  # a built model (the first call of model_fn), the checkpoints are loaded into it
    dataset: str = ""  # what the images are (kept in the settings a resume must match)


def image_side(net, image_size, settings):
    """The side a dataset's images are loaded at: the model's fixed (square) input size where it has one, else
    --image-size, else the run's, else 224."""
    from lucidtl.optvis import features

    fixed = features.fixed_input_size(net)
    if fixed is not None and fixed[0] == fixed[1]:
        return int(fixed[0])
    return image_size or settings.get("image_size") or 224


def inputs(checkpoints, model_fn, input_range, source, class_names, layers, label, batch_size=16, dataset="",
           net=None):
    """Inputs, checked: the model builds (net: already built by model_fn), the layers exist, the dataset yields
    images."""
    from lucidtl.optvis import features

    net = model_fn() if net is None else net
    for layer in layers:
        features.endpoint(net, layer)  # unknown: the nearest names
    first_images(source, batch_size)
    return Inputs(list(checkpoints), model_fn, tuple(input_range), source, class_names, list(layers), label, net,
                  str(dataset))


def run_inputs(run, dataset, layers, image_size=None, batch_size=16, checkpoints=None, split="train",
               skip_bad_images=False):
    """Inputs of a Run (a run folder: its run.json, its .keras checkpoints or the Run's model give the
    architecture) over --dataset, at the saved iterations `checkpoints` (None: all)."""
    run = Run.of(run)
    cps = run.select(checkpoints)
    model_fn, input_range = run.architecture()
    settings = run.settings
    net = model_fn()
    source, names = load_data(dataset, image_side(net, image_size, settings), split, batch_size,
                              skip_bad_images)
    return inputs(cps, model_fn, input_range, source, settings.get("class_names") or names, layers, run.label,
                  batch_size, dataset, net)


def first_images(source, batch_size):
    """The dataset's first batch (an error if it yields no images)."""
    for images, labels, _ in batches(source, batch_size, batch_size):
        return images, labels
    raise InvalidArgumentError("the dataset yielded no images; check --dataset (a folder with one sub-folder of "
                               "images per class, or an .npy / .npz of images)")


def pick_images(source, indices, batch_size=32):
    """{index: [H, W, 3] image} of the dataset images at `indices` (an error past the dataset's end)."""
    want, found, n = set(int(i) for i in indices), {}, 0
    if not want:
        return found
    for images, _, start in batches(source, batch_size, max(want) + 1):
        for j in range(len(images)):
            if start + j in want:
                found[start + j] = images[j]
        n = start + len(images)
    missing = sorted(want - set(found))
    if missing:
        raise InvalidArgumentError(f"--indices {missing[0]} is beyond the dataset's {n} images; pass indices "
                                   f"0..{n - 1}")
    return found


def check_indices(indices):
    if indices is None:
        return []
    items = indices if isinstance(indices, (list, tuple)) else [indices]
    out = []
    for e in items:
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 0:
            raise InvalidArgumentError(f"--indices takes dataset image indices (integers >= 0), got {e!r}")
        out.append(int(e))
    return list(dict.fromkeys(out))


# ---- resumable parts ---------------------------------------------------------------------------------

class Parts:
    """Per-checkpoint results under <out>/parts/, and the job's settings (checked on resume)."""
    def __init__(self, out, job, settings, overwrite=False):
        self.out, self.job, self.overwrite = os.fspath(out), job, bool(overwrite)
        self.settings = json.loads(json.dumps(settings))
        self.settings_path = os.path.join(self.out, f"{job}_settings.json")
        self._started = False
        if not self.overwrite and os.path.isfile(self.settings_path):
            with open(self.settings_path, encoding="utf-8") as f:
                previous = json.load(f)
            changed = [k for k in self.settings if previous.get(k) != self.settings[k]]
            if changed:
                raise InvalidArgumentError(f"{self.out} holds a {job} job with other settings "
                                           f"({', '.join(changed[:3])}); use another --out, or --overwrite to "
                                           "replace it")

    def path(self, key, ext):
        return os.path.join(self.out, PARTS, f"{self.job}_{key}.{ext}")

    def has(self, key):
        return not self.overwrite and os.path.isfile(self.path(key, "json"))

    def load(self, key):
        with open(self.path(key, "json"), encoding="utf-8") as f:
            return json.load(f)

    def over_checkpoints(self, checkpoints, model, rows, bar, report=None):
        """Each checkpoint not done yet, its weights loaded into `model`, as (checkpoint, part): the caller
        appends its rows to `part`, which is saved (and added to `rows`) when the caller asks for the next one;
        a done checkpoint's rows are read back into `rows` instead."""
        for cp in checkpoints:
            key = f"iter_{cp.iteration:06d}"
            if self.has(key):
                rows += self.load(key)
                bar.update(1)
                continue
            if report:
                report(f"iteration {cp.iteration}: {os.path.basename(cp.path)}")
            load_into(model, cp.path)
            part = []
            yield cp, part
            self.save(key, part)
            rows += part
            bar.update(1)

    def start(self):
        """Before the first write: remove what a killed run left half-written, write the settings."""
        if not self._started:
            for root, _, files in os.walk(self.out):
                for f in sorted(files):
                    if f.startswith(".tmp-"):
                        atomic.remove(os.path.join(root, f))
            save_json(self.settings, self.settings_path)
            self._started = True

    def save_arrays(self, key, **arrays):
        self.start()
        with atomic_path(self.path(key, "npz")) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def load_arrays(self, key):
        with np.load(self.path(key, "npz")) as z:
            return {k: z[k] for k in z.files}

    def save_object(self, key, obj):
        self.start()
        write_bytes(self.path(key, "pkl"), pickle.dumps(obj))

    def load_object(self, key):
        if self.overwrite and not self._started:
            return None
        path = self.path(key, "pkl")
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return pickle.load(f)

    def save(self, key, obj):
        self.start()
        save_json(obj, self.path(key, "json"))


def _safe(name):
    return str(name).replace("/", "_").replace(os.sep, "_")


def _iter_dir(out, iteration):
    return os.path.join(out, f"iter_{iteration:06d}")


def _bar(total, progress, desc):
    from lucidtl.optvis.render import progress_bar

    return progress_bar(total, progress, unit="checkpoint", desc=desc, leave=True)


# ---- attribution -------------------------------------------------------------------------------------

def attribution_over_checkpoints(inp, classes, out, method="linear", ig_steps=64, indices=(), batch_size=16,
                                 max_images=256, overwrite=False, progress=False, report=None):
    """Channel attribution of each layer to each class at each checkpoint (mean over the images, and over
    the images labelled with the class), its ranking, and spatial heatmaps of the example images.

    Writes attribution.csv, attribution_summary.json, attribution_<layer>.png (the attribution of each
    class's top channels over iterations) and iter_<i>/<layer>_attribution_<image>.png (the image and a
    heatmap per class: orange for the class, blue against). Returns the files written."""
    model = inp.model
    attributors = {layer: A.Attributor(model, layer, input_range=inp.input_range) for layer in inp.layers}
    num = next(iter(attributors.values())).num_classes
    ks = A.resolve_classes(classes, num, inp.class_names)
    names = [A.class_label(k, inp.class_names) for k in ks]
    if method not in A.METHODS:
        raise InvalidArgumentError(f"unknown --method {method!r}; choose one of {', '.join(A.METHODS)}")
    indices = check_indices(indices)
    pictures = pick_images(inp.source, indices, batch_size)
    settings = {"run": inp.label, "dataset": inp.dataset, "layers": inp.layers, "classes": ks, "method": method,
                "ig_steps": int(ig_steps) if method == "integrated" else None, "max_images": max_images,
                "indices": indices}
    parts = Parts(out, "attribution", settings, overwrite)
    rows = []
    bar = _bar(len(inp.checkpoints), progress, "attribution")
    for cp, part in parts.over_checkpoints(inp.checkpoints, model, rows, bar, report):
        for layer, attr in attributors.items():
            sums, class_sums = np.zeros((len(ks), attr.channels)), np.zeros((len(ks), attr.channels))
            counts, n = np.zeros(len(ks)), 0
            for images, labels, _ in batches(inp.source, batch_size, max_images):
                ch, _ = attr.reduced(images, ks, method, ig_steps)
                sums += ch.sum(1)
                if labels is not None:
                    for j, k in enumerate(ks):
                        mask = labels == k
                        class_sums[j] += ch[j, mask].sum(0)
                        counts[j] += mask.sum()
                n += len(images)
            mean = sums / max(n, 1)
            for j, k in enumerate(ks):
                order = np.argsort(-mean[j], kind="stable")
                rank = np.empty_like(order)
                rank[order] = np.arange(len(order))
                for c in range(attr.channels):
                    part.append({"run": inp.label, "iteration": cp.iteration, "layer": layer, "class": k,
                                 "class_name": names[j], "channel": c, "attribution": float(mean[j, c]),
                                 "attribution_class": float(class_sums[j, c] / counts[j]) if counts[j] else None,
                                 "rank": int(rank[c]), "n_images": n})
            if pictures:
                idx = sorted(pictures)
                imgs = np.stack([pictures[i] for i in idx])
                _, spatial = attr.reduced(imgs, ks, method, ig_steps)
                for e, i in enumerate(idx):
                    vmax = float(np.abs(spatial[:, e]).max()) or None
                    cells = [imgs[e][..., :3]] + [A.heatmap(imgs[e], spatial[j, e], vmax) for j in range(len(ks))]
                    save_grid([[_big(c) for c in cells]],
                              os.path.join(_iter_dir(out, cp.iteration), f"{_safe(layer)}_attribution_{i:05d}.png"),
                              col_labels=["image"] + [s[:12] for s in names])
    bar.close()
    parts.start()
    files = [tables.write_csv(rows, os.path.join(out, "attribution.csv"), COLUMNS["attribution"])]
    top = {}
    for r in rows:
        if r["rank"] < 10:
            top.setdefault(f"{r['layer']}|{r['iteration']}|{r['class']}", []).append((r["rank"], r["channel"]))
    summary = {**settings, "class_names": names, "iterations": [c.iteration for c in inp.checkpoints],
               "top_channels": {k: [c for _, c in sorted(v)] for k, v in sorted(top.items())}}
    files.append(save_json(summary, os.path.join(out, "attribution_summary.json")))
    last = inp.checkpoints[-1].iteration
    for layer in inp.layers:
        curves = []
        for j, k in enumerate(ks[:6]):
            best = [r["channel"] for r in rows if r["layer"] == layer and r["iteration"] == last and r["class"] == k
                    and r["rank"] == 0]
            curves += [dict(r, curve=f"{names[j]}: ch {r['channel']}") for r in rows
                       if r["layer"] == layer and r["class"] == k and r["channel"] in best]
        files.append(plots.plot_curves(curves, "attribution", os.path.join(out, f"attribution_{_safe(layer)}.png"),
                                       group="curve", title=f"{layer}: each class's top channel"))
    files += sorted(os.path.join(root, f) for root, _, fs in os.walk(out) for f in fs
                    if f.endswith(".png") and "_attribution_" in f)
    return files


def _big(image, min_size=64):
    return enlarged(np.clip(image, 0, 1), min_size)


# ---- neuron groups -----------------------------------------------------------------------------------

def groups_over_checkpoints(inp, n_groups=6, out="analysis/groups", reduction_alg="NMF", positions=16, size=80,
                            steps=512, seed=0, indices=(), batch_size=16, max_images=256, overwrite=False,
                            progress=False, report=None):
    """Neuron groups of each layer at each checkpoint (lucidtl.analysis.groups): fit on the first checkpoint
    and project (fixed), refit and match (refit); renders of the matched groups; the semantic dictionary of
    the example images.

    Writes groups.csv (per iteration, layer, mode and group: mean weight, cosine to the first checkpoint's
    group, the relative reconstruction error), groups_components.npz, groups_<layer>_error.png,
    iter_<i>/<layer>_groups.png and iter_<i>/<layer>_dictionary_<image>.png. Returns the files written."""
    from lucidtl.optvis import features

    model = inp.model
    n_groups = int(n_groups)
    for layer in inp.layers:
        count = features.channel_count(model, layer)
        if n_groups > count:
            raise InvalidArgumentError(f"--groups {n_groups} is more groups than layer {layer}'s {count} channels; "
                                       f"ask for at most {count}")
        if reduction_alg in NON_NEGATIVE and layer.endswith(features.PRE_RELU):
            raise InvalidArgumentError(f"{reduction_alg} factorises non-negative activations, and {layer} is read "
                                       f"before its ReLU (negative values); use {layer[:-len(features.PRE_RELU)]} "
                                       "or --reduction-alg PCA")
    G.reducer(n_groups, reduction_alg, seed)  # an unknown algorithm fails here, before any work
    indices = check_indices(indices)
    pictures = pick_images(inp.source, indices, batch_size)
    settings = {"run": inp.label, "dataset": inp.dataset, "layers": inp.layers, "groups": n_groups,
                "reduction_alg": reduction_alg,
                "positions": positions, "size": size, "steps": steps, "seed": seed, "max_images": max_images,
                "indices": indices, "reference": inp.checkpoints[0].iteration}
    parts = Parts(out, "groups", settings, overwrite)
    fmodels = {layer: features.feature_model(model, [layer]) for layer in inp.layers}
    reference = {layer: parts.load_object(f"reference_{_safe(layer)}") for layer in inp.layers}
    rows, comps = [], {}
    bar = _bar(len(inp.checkpoints), progress, "groups")
    for cp in inp.checkpoints:
        key = f"iter_{cp.iteration:06d}"
        if parts.has(key):
            rows += parts.load(key)
            comps.update(parts.load_arrays(key))
            bar.update(1)
            continue
        if report:
            report(f"iteration {cp.iteration}: {os.path.basename(cp.path)}")
        load_into(model, cp.path)
        part, arrays = [], {}
        for layer in inp.layers:
            X = G.layer_rows(model, layer, inp.source, positions, batch_size, max_images, inp.input_range, seed)
            if reference[layer] is None:
                ref = G.reducer(n_groups, reduction_alg, seed)
                ref.fit(X)
                parts.save_object(f"reference_{_safe(layer)}", ref)
                reference[layer] = ref
            ref = reference[layer]
            err_fixed, w_fixed = G.relative_error(ref, X)
            red = G.reducer(n_groups, reduction_alg, seed)
            red.fit(X)
            order, cos = G.match_groups(ref.components, red.components)
            err_refit, w_refit = G.relative_error(red, X)
            matched = np.asarray(red.components)[order]
            arrays[f"{layer}|{cp.iteration}|fixed"] = np.asarray(ref.components)
            arrays[f"{layer}|{cp.iteration}|refit"] = matched
            for g in range(n_groups):
                part.append({"run": inp.label, "iteration": cp.iteration, "layer": layer, "mode": "fixed", "group": g,
                             "weight": float(w_fixed[g]), "cosine": 1.0, "error": err_fixed, "n_rows": len(X)})
                part.append({"run": inp.label, "iteration": cp.iteration, "layer": layer, "mode": "refit", "group": g,
                             "weight": float(w_refit[order[g]]), "cosine": float(cos[g]), "error": err_refit,
                             "n_rows": len(X)})
            icons = G.render_groups(model, layer, matched, size=size, steps=steps, seed=seed,
                                    input_range=inp.input_range)
            folder = _iter_dir(out, cp.iteration)
            save_grid([[_big(i) for i in icons]], os.path.join(folder, f"{_safe(layer)}_groups.png"),
                      col_labels=[f"group {g}" for g in range(n_groups)])
            for i, img in sorted(pictures.items()):
                a = layer_outputs(fmodels[layer], scale_input(img[None], inp.input_range))[0][0]
                weights = red.transform(np.maximum(a, 0) if reduction_alg in NON_NEGATIVE else a)[..., order]
                view = G.semantic_dictionary(weights, icons)
                save_grid([[_big(img[..., :3], view.shape[0]), view]],
                          os.path.join(folder, f"{_safe(layer)}_dictionary_{i:05d}.png"),
                          col_labels=["image", "semantic dictionary"])
        parts.save_arrays(key, **arrays)
        parts.save(key, part)
        rows += part
        comps.update(arrays)
        bar.update(1)
    bar.close()
    parts.start()
    files = [tables.write_csv(rows, os.path.join(out, "groups.csv"), COLUMNS["groups"])]
    path = os.path.join(out, "groups_components.npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **comps)
    files.append(path)
    for layer in inp.layers:
        curve = [dict(r, curve=r["mode"]) for r in rows if r["layer"] == layer and r["group"] == 0]
        files.append(plots.plot_curves(curve, "error", os.path.join(out, f"groups_{_safe(layer)}_error.png"),
                                       group="curve", title=f"{layer}: reconstruction error (fixed: first checkpoint's "
                                       "groups; refit)"))
    files += sorted(os.path.join(root, f) for root, _, fs in os.walk(out) for f in fs
                    if f.endswith(".png") and ("_groups" in f or "_dictionary_" in f) and root != out)
    return files


# ---- caricatures -------------------------------------------------------------------------------------

def caricatures_over_checkpoints(inp, indices=(0,), out="analysis/caricature", steps=512, cossim_pow=0.0, seed=0,
                                 batch_size=16, overwrite=False, progress=False, report=None):
    """The same dataset images inverted at each checkpoint (lucidtl.recipes.caricature, one caricature per
    layer). Writes caricature.csv (the cosine of the caricature's activations to the image's at the end),
    iter_<i>/caricature_<image>_<layer>.png and one strip per image and layer,
    caricature_<image>_<layer>.png (the image, then each checkpoint). Returns the files written."""
    model = inp.model
    indices = check_indices(indices)
    if not indices:
        raise InvalidArgumentError("no images to invert; pass --indices 0[,3,...] (dataset image indices)")
    pictures = {i: car.prepare(img, model) for i, img in pick_images(inp.source, indices, batch_size).items()}
    settings = {"run": inp.label, "dataset": inp.dataset, "layers": inp.layers, "indices": indices, "steps": steps,
                "cossim_pow": cossim_pow, "seed": seed}
    parts = Parts(out, "caricature", settings, overwrite)
    rows = []
    bar = _bar(len(inp.checkpoints), progress, "caricature")
    for cp, part in parts.over_checkpoints(inp.checkpoints, model, rows, bar, report):
        for i, img in sorted(pictures.items()):
            result = car.caricature(img, model, inp.layers, n_steps=steps, cossim_pow=cossim_pow, verbose=False,
                                    seed=seed, input_range=inp.input_range)
            for j, layer in enumerate(inp.layers):
                save_png(result[j + 1], os.path.join(_iter_dir(out, cp.iteration),
                                                     f"caricature_{i:05d}_{_safe(layer)}.png"))
                cos = car.cosine(model, layer, result[[0, j + 1]], inp.input_range)[1]
                part.append({"run": inp.label, "iteration": cp.iteration, "layer": layer, "image": i,
                             "cosine": float(cos), "steps": steps, "cossim_pow": cossim_pow})
    bar.close()
    parts.start()
    files = [tables.write_csv(rows, os.path.join(out, "caricature.csv"), COLUMNS["caricature"])]
    for i, img in sorted(pictures.items()):
        for layer in inp.layers:
            name = f"caricature_{i:05d}_{_safe(layer)}.png"
            cells = [img] + [load_png(os.path.join(_iter_dir(out, cp.iteration), name)) for cp in inp.checkpoints]
            files.append(save_grid([[_big(c) for c in cells]], os.path.join(out, name),
                                   col_labels=["image"] + [f"iter {cp.iteration}" for cp in inp.checkpoints]))
    return files


# ---- feature accentuation ----------------------------------------------------------------------------

def accentuations_over_checkpoints(inp, channels, regularize_layer, indices=(0,), out="analysis/accentuation",
                                   penalty=acc.DEFAULT_PENALTY, steps=256, seed=0, batch_size=16, overwrite=False,
                                   progress=False, report=None):
    """The same dataset images accentuated toward each channel of inp.layers[0] by every checkpoint's network
    (lucidtl.recipes.accentuation): how each checkpoint sees that image. Writes accentuation.csv (the unit on
    the seed and on the accentuation, the earlier layer's distance and its tolerance),
    iter_<i>/accentuation_<image>_<layer>_<channel>.png and one strip per image and channel,
    accentuation_<image>_<layer>_<channel>.png (the image, then each checkpoint). Returns the files written."""
    model, layer = inp.model, inp.layers[0]
    indices = check_indices(indices)
    if not indices:
        raise InvalidArgumentError("no images to accentuate; pass --indices 0[,3,...] (dataset image indices)")
    pictures = pick_images(inp.source, indices, batch_size)
    settings = {"run": inp.label, "dataset": inp.dataset, "layer": layer, "channels": list(channels),
                "indices": indices, "regularize_layer": regularize_layer, "penalty": penalty, "steps": steps,
                "seed": seed}
    parts = Parts(out, "accentuation", settings, overwrite)
    rows = []
    bar = _bar(len(inp.checkpoints), progress, "accentuation")
    for cp, part in parts.over_checkpoints(inp.checkpoints, model, rows, bar, report):
        for i, img in sorted(pictures.items()):
            for c in channels:
                a = acc.accentuate(model, layer, c, img, regularize_layer, penalty=penalty, steps=steps, seed=seed,
                                   input_range=inp.input_range)
                save_png(a.image, os.path.join(_iter_dir(out, cp.iteration),
                                               f"accentuation_{i:05d}_{_safe(layer)}_{c}.png"))
                part.append({"run": inp.label, "iteration": cp.iteration, "layer": layer, "channel": c, "image": i,
                             "regularize_layer": regularize_layer, "penalty": penalty, "steps": steps,
                             "unit_before": a.unit_before, "unit_after": a.unit_after, "distance": a.distance,
                             "tolerance": a.tolerance})
    bar.close()
    parts.start()
    files = [tables.write_csv(rows, os.path.join(out, "accentuation.csv"), COLUMNS["accentuation"])]
    for i, img in sorted(pictures.items()):
        for c in channels:
            name = f"accentuation_{i:05d}_{_safe(layer)}_{c}.png"
            cells = [img] + [load_png(os.path.join(_iter_dir(out, cp.iteration), name)) for cp in inp.checkpoints]
            files.append(save_grid([[_big(x) for x in cells]], os.path.join(out, name),
                                   col_labels=["image"] + [f"iter {cp.iteration}" for cp in inp.checkpoints]))
    return files
