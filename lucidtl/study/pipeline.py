"""The study's stages, each resumable and skipped once done.

    OUT/study.json                               the settings (every shard and rerun must match them)
    OUT/stages/<stage>-<i>of<n>.json             stage finished by shard i of n (atlas, similarity, examples)
    OUT/stages/<stage>.json                      stage finished (scale, site: done once every shard is)
    OUT/atlas/                                   lucidtl.atlas render's folder (its manifest resumes it)
    OUT/similarity/<run>/iter_000030.json        every layer and channel of the checkpoint vs the run's first
    OUT/similarity/between/<a>~<b>/iter_000030.json   run a vs run b at the same iteration
    OUT/examples/<run>/iter_000030/<layer>.json  top-k dataset images per channel (+ <layer>/0007.png strips)
    OUT/scale/<run>/iter_000030.json             dominant spatial period of every render
    OUT/blocks/<run>/attribution|groups/<layer>|caricature/   building blocks (with --dataset; analysis.building_blocks)
    OUT/index.html, app.js, style.css, data/     the site (lucidtl.study.site)

Within a stage every item (a checkpoint, a checkpoint pair, a checkpoint's layer) is written atomically and
skipped when present, so a kill loses at most the item in progress; a stage's marker is written after its
last item. Items are shared round-robin between shards like the atlas's (item k belongs to shard k % n);
the last shard to finish (or any rerun) computes the scale stage and the site.
"""
import dataclasses
import itertools
import os
import shutil
import sys
import time

import numpy as np

from lucidtl import cli, imageio
from lucidtl.atlas import job, plan
from lucidtl.errors import InvalidArgumentError
from lucidtl.run import Run
from lucidtl.study import site
from lucidtl.study.layout import (  # noqa: F401 (re-exported: the study's file layout)
    SETTINGS_FILE, activation_atlas_path, between_path, blocks_dir, example_png, examples_path, iter_name, read_json,
    scale_path, similarity_path, trust_path)

SHARDED = ("atlas", "similarity", "examples")
THUMB = 64  # px of a dataset example in a strip
TRUST_UNITS = 8  # the most-changed channels of each layer and run drawn with --seeds seeds


@dataclasses.dataclass
class StudyResult:
    out: str
    stages: dict  # stage -> "done", "skipped" (done earlier) or "waiting" (for other shards)
    site: str  # index.html, or None while other shards are unfinished

    def __str__(self):
        lines = [f"study {self.out}: " + ", ".join(f"{k} {v}" for k, v in self.stages.items())]
        lines.append(f"site {self.site}" if self.site else
                     "site not built yet: other shards are unfinished; it is built by the last one to finish "
                     "(or rerun any shard then)")
        return "\n".join(lines)


class _Nets:
    """One model per (slot, run), reloaded only when another checkpoint is asked for (Run.model_at's slots)."""

    def get(self, slot, run, iteration):
        return run.model_at(iteration, slot=slot)


# ---- inputs ------------------------------------------------------------------------------------------

def _runs(runs):
    """[Run] of --runs, each checked to be a run folder (one-line errors), named after its folder."""
    paths = plan.split_list(runs, "runs") if runs is not None else []
    if not paths:
        raise InvalidArgumentError("no runs; pass --runs RUN_FOLDER[,RUN_FOLDER...] (the --out folders of "
                                   "python -m lucidtl.train)")
    out = []
    for path in paths:
        run = Run(os.path.abspath(path))
        run.records  # noqa: B018 (a one-line error for a folder that is not a run)
        out.append(run)
    names = [r.name for r in out]
    if len(set(names)) < len(names):
        raise InvalidArgumentError(f"two runs share the folder name {names[0]!r}; the study names runs after "
                                   "their folders, so rename one")
    if any("~" in n for n in names):
        raise InvalidArgumentError("run folder names may not contain '~'; rename the folder")
    return out


def probe_images(dataset, runs, max_images, batch_size, skip_bad_images=False):
    """(images [N, H, W, 3] in [0, 1], labels or None, the dataset specs used): the first max_images of
    --dataset, else an equal share of each run's own training dataset (run.json), unshuffled; at the first
    run's image size. The same images for every checkpoint and run."""
    from lucidtl.analysis.streaming import batches, load_data

    specs = [str(dataset)] if dataset else list(dict.fromkeys(r.dataset for r in runs))
    if None in specs:
        raise InvalidArgumentError("a run's run.json names no dataset; pass --dataset (the same spec as train)")
    size = runs[0].image_size or 224
    share = -(-max_images // len(specs))
    images, labels = [], []
    for spec in specs:
        source, _ = load_data(spec, size, "train", batch_size, skip_bad_images)
        for x, y, _ in batches(source, batch_size, share):
            images.append(x[..., :3])
            labels.append(y)
    if not images:
        raise InvalidArgumentError(f"dataset {specs[0]} yielded no images; check --dataset")
    keep = None if len(specs) > 1 or any(y is None for y in labels) else np.concatenate(labels)[:max_images]
    return np.concatenate(images)[:max_images], keep, specs


# ---- stages ------------------------------------------------------------------------------------------

def _items(all_items, shard):
    i, n = shard
    return [x for k, x in enumerate(all_items) if k % n == i]


def _bar(total, progress, desc):
    from lucidtl.optvis.render import progress_bar

    return progress_bar(total, progress, unit="item", desc=desc, leave=True)


def similarity_stage(out, runs, selection, images, shard, batch_size, progress, nets=None):
    """Each checkpoint vs its run's first (per layer and per channel), and every pair of runs at each
    iteration they share. Returns counts."""
    from lucidtl.analysis import streaming

    work = [("run", r, None, it) for r in runs for it in r.iterations]
    for a, b in itertools.combinations(runs, 2):
        work += [("between", a, b, it) for it in a.iterations if it in b.iterations]
    mine = _items(work, shard)
    path = {w: (similarity_path(out, w[1].name, w[3]) if w[0] == "run" else
                between_path(out, w[1].name, w[2].name, w[3])) for w in mine}
    pending = [w for w in mine if not os.path.isfile(path[w])]
    nets, layers = nets or _Nets(), [layer for layer, _ in selection]
    bar = _bar(len(pending), progress, "similarity")
    try:
        for w in pending:
            kind, a, b, it = w
            if kind == "run":
                ref, ref_it = nets.get("ref", a, a.iterations[0]), a.iterations[0]
                other = nets.get("cur", a, it)
            else:
                ref, ref_it, other = nets.get("ref", a, it), it, nets.get("cur", b, it)
            result = streaming.compare(ref, other, layers, images, per_channel=True, batch_size=batch_size,
                                       input_range=a.input_range)
            record = {"iteration": it, "reference_iteration": ref_it, "runs": [a.name, (b or a).name],
                      "n_images": len(images), "layers": {}}
            for layer, chans in selection:
                res = result[layer]
                record["layers"][layer] = dict(
                    {k: _num(v) for k, v in res.metrics.items()},
                    channels={k: [_num(v[c]) for c in chans] for k, v in res.channels.items()})
            imageio.save_json(record, path[w])
            bar.update(1)
    finally:
        bar.close()
    return {"items": len(mine), "computed": len(pending)}


def _num(v):
    v = float(v)
    return round(v, 6) if np.isfinite(v) else None


def _strip(examples, size=THUMB):
    """Two rows: the top images, and each with its activation map overlaid (one scale per strip)."""
    from PIL import Image

    from lucidtl.analysis.examples import heatmap

    def thumb(img):
        arr = imageio.to_uint8(np.clip(img[..., :3], 0, 1))
        return np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR), np.float32) / 255.0

    vmax = max(max(float(e.amap.max()), 0.0) for e in examples) or None
    rows = []
    for row in ([thumb(e.image) for e in examples], [thumb(heatmap(e.image, e.amap, vmax)) for e in examples]):
        spaced = [x for t in row for x in (t, np.ones((size, 2, 3), np.float32))][:-1]  # 2 px white gaps
        rows.append(np.concatenate(spaced, axis=1))
    return np.concatenate([rows[0], np.ones((2, rows[0].shape[1], 3), np.float32), rows[1]], axis=0)


def examples_stage(out, runs, selection, images, labels, k, shard, batch_size, progress, nets=None):
    """Top-k dataset images of every chosen channel at every checkpoint: a strip PNG per channel and a JSON
    per (run, checkpoint, layer) with the images' indices, scores and labels."""
    from lucidtl.analysis.examples import dataset_examples

    work = [(r, it, layer, chans) for r in runs for it in r.iterations for layer, chans in selection]
    mine = _items(work, shard)
    pending = [w for w in mine if not os.path.isfile(examples_path(out, w[0].name, w[1], w[2]))]
    nets = nets or _Nets()
    data = images if labels is None else (images, labels)
    bar = _bar(len(pending), progress, "examples")
    try:
        for run, it, layer, chans in pending:
            net = nets.get("cur", run, it)
            res = dataset_examples(net, layer, chans, data, k=k, batch_size=batch_size, input_range=run.input_range,
                                   class_crops=False)
            record = {"iteration": it, "layer": layer, "k": k, "channels": {}}
            for c in chans:
                exs = res.top[c]
                if exs:
                    imageio.save_png(_strip(exs), os.path.join(out, example_png(run.name, it, layer, c)))
                record["channels"][str(c)] = [[e.index, round(e.score, 5), e.label] for e in exs]
            imageio.save_json(record, examples_path(out, run.name, it, layer))
            bar.update(1)
    finally:
        bar.close()
    return {"items": len(mine), "computed": len(pending)}


def scale_stage(out, progress):
    """The dominant spatial period (pixels; lucidtl.analysis.spatial) of every atlas render, a JSON per
    checkpoint."""
    from lucidtl.analysis.spatial import dominant_period

    by_ckpt = {}
    for r in job.read_manifest(os.path.join(out, "atlas")):
        by_ckpt.setdefault((r["run"], r["iteration"]), []).append(r)
    pending = {k: v for k, v in by_ckpt.items() if not os.path.isfile(scale_path(out, *k))}
    bar = _bar(sum(len(v) for v in pending.values()), progress, "scale")
    try:
        for (run, it), records in sorted(pending.items()):
            periods = {}
            for r in records:
                img = imageio.load_png(os.path.join(out, "atlas", r["png"]))
                periods.setdefault(r["layer"], {})[str(r["channel"])] = _num(dominant_period(img))
            imageio.save_json({"iteration": it, "periods": periods}, scale_path(out, run, it))
            bar.update(len(records))
    finally:
        bar.close()
    return {"items": len(by_ckpt), "computed": len(pending)}


def activation_atlas_stage(out, runs, selection, images, labels, grid_size, size, steps, batch_size, seed, progress):
    """An activation atlas of every chosen layer at every checkpoint of each run, in one layout per run and
    layer, on the study's images. A study has few images (--max-images), so it samples about 20 points per
    cell (Lucid: one position per image of 100,000), and caps UMAP's n_neighbors (Lucid: 50) at a quarter of
    the points."""
    from lucidtl.recipes.activation_atlas.checkpoints import checkpoint_atlases

    target = 20 * grid_size * grid_size
    per_image = max(1, -(-target // len(images)))
    points = per_image * len(images)
    data = images if labels is None else (images, labels)
    done = 0
    for r in runs:
        for layer, _ in selection:
            if os.path.isfile(activation_atlas_path(out, r.name, layer)):
                continue
            checkpoint_atlases(r.build, r, layer, data,
                               os.path.join(out, "activation_atlas", r.name), grid_size=grid_size, icon_size=size,
                               n_steps=steps + 1, icon_batch_size=batch_size, number_activations=points,
                               positions_per_image=per_image, seed=seed,
                               umap_options={"n_neighbors": max(2, min(50, points // 4))}, batch_size=batch_size,
                               input_range=r.input_range, progress=progress)
            done += 1
    return {"items": len(runs) * len(selection), "computed": done}
BLOCK_GROUPS = 6  # neuron groups per layer (the NeuronGroups notebook's), at most the layer's channels
BLOCK_IMAGES = 2  # --blocks' default with --dataset: the dataset images that get an image page
SIGNED = "signed.json"  # in a layer's groups folder: its activations are signed, its groups PCA's


def blocks_stage(out, runs, selection, dataset, size, steps, seed, batch_size, max_images, progress, images=2,
                 skip_bad_images=False):
    """Building blocks of every run (lucidtl.analysis.building_blocks, each job resumable): attribution of
    the chosen layers to the head's classes, neuron groups per layer, caricatures and feature accentuations
    (toward each layer's most-changed channel) of the first `images` dataset images (which get an image page)."""
    from lucidtl.analysis import building_blocks as bb
    from lucidtl.errors import InvalidArgumentError as Bad
    from lucidtl.optvis import features

    layers = [layer for layer, _ in selection]
    done = {}
    for run in runs:
        inp = bb.run_inputs(run, dataset, layers, batch_size=batch_size, skip_bad_images=skip_bad_images)
        shown = _first_indices(inp.source, images, batch_size)
        bb.attribution_over_checkpoints(inp, "all", blocks_dir(out, run.name, "attribution"), indices=shown,
                                        batch_size=batch_size, max_images=max_images, progress=progress)
        for layer in layers:
            k = min(BLOCK_GROUPS, features.channel_count(inp.model, layer))
            part = dataclasses.replace(inp, layers=[layer])
            folder = os.path.join(blocks_dir(out, run.name, "groups"), layer)
            signed = os.path.join(folder, SIGNED)  # written when NMF met negative values: PCA groups instead
            alg = "PCA" if os.path.isfile(signed) else "NMF"

            def groups(alg, overwrite=False):
                bb.groups_over_checkpoints(part, k, folder, reduction_alg=alg, positions=16, size=size, steps=steps,
                                           seed=seed, indices=shown, batch_size=batch_size, max_images=max_images,
                                           overwrite=overwrite, progress=progress)
            try:
                groups(alg)
            except Bad as e:  # signed activations (a transformer's tokens, GELU neurons, a _pre_relu): PCA groups
                if alg != "NMF" or "non-negative" not in str(e):
                    raise
                imageio.save_json({"reduction_alg": "PCA", "why": str(e)}, signed)
                groups("PCA", overwrite=True)
        bb.caricatures_over_checkpoints(inp, shown, blocks_dir(out, run.name, "caricature"), steps=steps, seed=seed,
                                        batch_size=batch_size, progress=progress)
        accentuations(out, run, inp, selection, shown, steps, seed, batch_size, progress)
        done[run.name] = len(inp.checkpoints)
    return {"runs": len(done), "checkpoints": sum(done.values())}


def accentuations(out, run, inp, selection, shown, steps, seed, batch_size, progress):
    """Feature accentuation of the shown images toward each layer's most-changed channel (ranked_units), at
    every checkpoint, regularised at the nearest layer below; into blocks/<run>/accentuation/<layer>/ (with
    accentuation.json naming the channel and that layer). Layers with nothing below them are left out."""
    from lucidtl.analysis import building_blocks as bb
    from lucidtl.analysis import trust

    if len(run.iterations) < 2:
        return
    for layer, chans in selection:
        below = trust.layers_below(inp.model, layer, 1)
        if not below:
            continue
        channel = ranked_units(out, run, layer, chans, 1)[0]
        folder = os.path.join(blocks_dir(out, run.name, "accentuation"), layer.replace("/", "_"))
        part = dataclasses.replace(inp, layers=[layer])
        bb.accentuations_over_checkpoints(part, [channel], below[-1], shown, folder, steps=steps, seed=seed,
                                          batch_size=batch_size, progress=progress)
        imageio.save_json({"layer": layer, "channel": channel, "regularize_layer": below[-1]},
                          os.path.join(folder, "accentuation.json"))


def ranked_units(out, run, layer, channels, n=TRUST_UNITS):
    """The n channels of `layer` that changed most in `run` (Procrustes distance / 2 of its last checkpoint to
    its first, the layer page's ranking; ties and missing values: lower channel first)."""
    sim = read_json(similarity_path(out, run.name, run.iterations[-1]))
    change = (sim["layers"].get(layer) or {}).get("channels", {}).get("procrustes_norm") or [None] * len(channels)
    order = sorted(range(len(channels)), key=lambda j: (-(change[j] if change[j] is not None else -1.0), j))
    return [channels[j] for j in order[:n]]


def trust_stage(out, runs, selection, images, seeds, size, steps, seed, progress):
    """For each run and layer, the TRUST_UNITS most-changed channels drawn with `seeds` seeds at the run's
    first and last checkpoints: is the change beyond the spread between seeds; with the probe images, reach
    and path similarity (lucidtl.analysis.trust.units_trust). One file per run and layer (trust_path)."""
    from lucidtl.analysis import trust

    done = 0
    items = [(run, layer, chans) for run in runs if len(run.iterations) > 1 for layer, chans in selection]
    bar = _bar(len(items), progress, "trust")
    for run, layer, chans in items:
        path = trust_path(out, run.name, layer)
        if not os.path.isfile(path):
            first, last = run.iterations[0], run.iterations[-1]
            units = ranked_units(out, run, layer, chans)
            found = trust.units_trust(run.model_at(first, slot="trust_first"), run.model_at(last, slot="trust_last"),
                                      layer, units, seeds, size, steps, seed, images, run.input_range)
            imageio.save_json({"run": run.name, "layer": layer, "iterations": [first, last], "seeds": seeds,
                               "ranked": units, "units": {str(c): v for c, v in found.items()}}, path)
            done += len(units)
        bar.update(1)
    bar.close()
    return {"units": done}


def _first_indices(source, n, batch_size):
    from lucidtl.analysis.streaming import batches

    count = sum(len(x) for x, _, _ in batches(source, batch_size, n))
    return list(range(count))


# ---- the study ---------------------------------------------------------------------------------------

def _old_settings(path):
    old = {"blocks": 0, **read_json(path)}  # a study from before --blocks had none
    old.setdefault("precision", "float32")  # studies from before the setting existed
    old.setdefault("seeds", 3)  # studies from before --seeds: the default
    return old


def _default_blocks(out, dataset, overwrite):
    """--blocks left out: the value of the study resumed in `out`, else BLOCK_IMAGES with a dataset."""
    path = os.path.join(out, SETTINGS_FILE)
    if not overwrite and os.path.isfile(path):
        return _old_settings(path)["blocks"]
    return BLOCK_IMAGES if dataset else 0


def _prepare_out(out, settings, overwrite):
    path = os.path.join(out, SETTINGS_FILE)
    if overwrite and os.path.isfile(path):
        shutil.rmtree(out)
    if os.path.isfile(path):
        old = _old_settings(path)
        changed = [k for k in settings if old.get(k) != settings[k]]
        if changed:
            raise InvalidArgumentError(
                f"{out} holds a study with other settings ({changed[0]}: {old.get(changed[0])!r}, not "
                f"{settings[changed[0]]!r}); pass --overwrite to start it again, or another --out")
    elif os.path.isdir(out) and os.listdir(out):
        raise InvalidArgumentError(f"{out} is not empty and holds no study ({SETTINGS_FILE}); pass a new or "
                                   "empty --out")
    else:
        imageio.save_json(settings, path)


def _selection(work):
    """[(layer, [channels])] (the same for every run), from the atlas's work list."""
    per = {}
    for w in work:
        per.setdefault(w.checkpoint.run, {}).setdefault(w.layer, set()).update(w.channels)
    chosen = [[(layer, sorted(c)) for layer, c in v.items()] for v in per.values()]
    if any(c != chosen[0] for c in chosen):
        raise InvalidArgumentError("the runs have different layers or channel counts; a study compares runs "
                                   "of one architecture")
    return chosen[0]


def _marker(out, stage, shard=None):
    name = f"{stage}-{shard[0]}of{shard[1]}.json" if shard else f"{stage}.json"
    return os.path.join(out, "stages", name)


def _stage_done(out, stage, n):
    """Finished by every shard (of this split, or by one unsharded process)."""
    return os.path.isfile(_marker(out, stage, (0, 1))) or all(
        os.path.isfile(_marker(out, stage, (i, n))) for i in range(n))


def study(runs=None, out="study", layers="all", channels="all", size=128, steps=512, batch_size=32, seed=0,
          shard="0/1", dataset=None, max_images=256, examples=6, blocks=None, overwrite=False, progress=True,
          precision="float32", aligned=False, activation_atlas=False, grid_size=10, skip_bad_images=False,
          seeds=3):
    """Run folders -> one browsable study website in `out`; rerun it to resume, finished stages are skipped.

    Stages: atlas renders (as python -m lucidtl.atlas render), similarity of every checkpoint to the run's
    first and between runs at equal iterations (per layer and per channel), dataset examples per channel
    and checkpoint (with --dataset), the dominant spatial period of every render, how far to believe the
    most-changed units (--seeds seeds each: the change beyond seed noise, reach, path similarity), the
    building blocks (with --dataset: attribution to the head's classes, neuron groups, caricatures of --blocks
    images), then the site (out/index.html; open it from disk or any static host).

    Args:
        runs (run): run folders, comma-separated (the --out folders of python -m lucidtl.train).
        out: the study folder (site, renders, measurements).
        layers: "all" (InceptionV1's 57 conv layers) or comma-separated layer names.
        channels: channels of each layer: 7, 0:8, 1,5,9 or all.
        size (int in [16, 4096]): render size in pixels.
        steps (int >= 1): optimisation steps per render.
        batch_size (int >= 1): channels rendered together, and images per batch for similarity and examples.
        seed (int >= 0): the renders' random seed.
        shard: i/n, this process's share of the work (n processes, i = 0..n-1, same --out).
        dataset: dataset examples and similarity images (the same spec as train); default: the runs' own.
        max_images (int >= 1): images for similarity and examples (the first ones, unshuffled).
        examples (int >= 1): dataset examples per channel and checkpoint (top-k).
        blocks (int >= 0): with --dataset, the dataset images that get an image page (semantic dictionary,
            attribution heatmaps, caricatures); 0: no building blocks (attribution, neuron groups, caricatures)
            at all. Default: 2 with --dataset, 0 without; a study resumed keeps the value it was made with.
        overwrite: delete the study in out and start again.
        progress: show a progress line per stage.
        precision (float32|bfloat16|float16): what the network computes in for the renders (float32: Lucid's)
        aligned (bool): draw the renders of each run as aligned strips (every checkpoint in one optimisation).
        activation_atlas (bool): also an activation atlas per run and layer (needs umap-learn), on the
            similarity images, with --size/--steps for its icons; pages activation_atlas.html#/<run>/<layer>.
        grid_size (int >= 1): cells per side of the activation atlases' grid.
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        seeds (int >= 0): seeds each of the 8 most-changed channels of every layer and run is drawn with at the
            first and last checkpoints, to tell changes beyond seed noise (the layer page flags and filters
            its ranking by them); 0 or 1: no such check.
    """
    shard_t = plan.parse_shard(shard)
    size = cli.integer("size", size, minimum=16)
    steps = cli.integer("steps", steps)
    batch_size = cli.integer("batch-size", batch_size)
    seed = cli.integer("seed", seed, minimum=0)
    max_images = cli.integer("max-images", max_images)
    examples = cli.integer("examples", examples)
    from lucidtl.optvis import precision as precision_lib

    precision = precision_lib.require_fast(precision_lib.check(precision))
    blocks = cli.integer("blocks", blocks, minimum=0, optional=True)
    seeds = cli.integer("seeds", seeds, minimum=0)
    out = os.fspath(out)
    if blocks is None:
        blocks = _default_blocks(out, dataset, overwrite)
    run_list = _runs(runs)
    _, work, _ = job.plan_work(runs=[r.path for r in run_list], layers=layers, channels=channels,
                               batch=batch_size, seed=seed)
    selection = _selection(work)
    settings = {"runs": [r.path for r in run_list], "layers": [layer for layer, _ in selection],
                "channels": {layer: c for layer, c in selection}, "size": size, "steps": steps,
                "batch_size": batch_size, "seed": seed, "dataset": dataset, "max_images": max_images,
                "examples": examples, "blocks": blocks if dataset else 0,  # blocks need a dataset
                "precision": precision, "seeds": seeds}
    if aligned:
        if precision != "float32":
            raise InvalidArgumentError(f"--aligned renders in float32 only; drop --precision {precision}")
        settings["aligned"] = True  # (absent otherwise: studies made before the option resume unchanged)
    if activation_atlas:
        from lucidtl.recipes.activation_atlas.layout import require_umap

        require_umap()
        settings.update(activation_atlas=True, grid_size=cli.integer("grid-size", grid_size))
    stages, n = {}, shard_t[1]
    active = [s for s in SHARDED if s != "examples" or dataset]  # the sharded stages this study runs
    need_images = overwrite or not all(_stage_done(out, s, n) or os.path.isfile(_marker(out, s, shard_t))
                                       for s in active if s != "atlas") or (
        activation_atlas and not os.path.isfile(_marker(out, "activation_atlas"))) or (
        seeds > 1 and not os.path.isfile(_marker(out, "trust")))
    images = labels = None
    if need_images:  # read before any work: a bad --dataset fails now
        images, labels, _ = probe_images(dataset, run_list, max_images, batch_size, skip_bad_images)
    _prepare_out(out, settings, overwrite)

    def run_stage(name, fn, sharded=True):
        marker = _marker(out, name, shard_t if sharded else None)
        if os.path.isfile(marker) or (sharded and _stage_done(out, name, n)):
            stages[name] = "skipped"
            _say(progress, f"{name}: done earlier, skipped")
            return
        t0 = time.time()
        counts = fn()
        imageio.save_json(dict(counts, stage=name, shard=list(shard_t) if sharded else None,
                               wall_s=round(time.time() - t0, 3), finished=time.time()), marker)
        stages[name] = "done"
        _say(progress, f"{name}: done in {time.time() - t0:.1f} s " +
             " ".join(f"{k} {v}" for k, v in counts.items()))

    def atlas():
        r = job.render(runs=[x.path for x in run_list], layers=layers, channels=channels, size=size, steps=steps,
                       batch_size=batch_size, seed=seed, shard=shard, out=os.path.join(out, "atlas"),
                       progress=progress, precision=precision, aligned=bool(aligned))
        return {"rendered": r.rendered, "already_done": r.skipped, "shard_total": r.total}

    run_stage("atlas", atlas)
    nets = _Nets()  # one architecture per slot and run for both stages: a big backbone is deserialised once
    run_stage("similarity", lambda: similarity_stage(out, run_list, selection, images, shard_t, batch_size,
                                                     progress, nets))
    if dataset:
        run_stage("examples", lambda: examples_stage(out, run_list, selection, images, labels, examples, shard_t,
                                                     batch_size, progress, nets))
    if not all(_stage_done(out, s, n) for s in active):
        stages["site"] = "waiting"
        return StudyResult(out, stages, None)
    run_stage("scale", lambda: scale_stage(out, progress), sharded=False)
    if seeds > 1:
        if images is None and not os.path.isfile(_marker(out, "trust")):  # the images for this stage alone
            images, labels, _ = probe_images(dataset, run_list, max_images, batch_size, skip_bad_images)
        run_stage("trust", lambda: trust_stage(out, run_list, selection, images, seeds, size, steps, seed, progress),
                  sharded=False)
    if activation_atlas:
        run_stage("activation_atlas", lambda: activation_atlas_stage(
            out, run_list, selection, images, labels, settings["grid_size"], size, steps, batch_size, seed,
            progress), sharded=False)
    if dataset and blocks:
        run_stage("blocks", lambda: blocks_stage(out, run_list, selection, dataset, size, steps, seed, batch_size,
                                                 max_images, progress, blocks, skip_bad_images), sharded=False)
    run_stage("site", lambda: site.build(out, progress=progress), sharded=False)
    return StudyResult(out, stages, os.path.join(out, "index.html"))


def _say(progress, line):
    if progress:
        print(line, file=sys.stderr, flush=True)
