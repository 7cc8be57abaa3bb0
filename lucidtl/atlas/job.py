"""The atlas job: render every planned (checkpoint, layer, channel) to a PNG and a manifest line.

    ATLAS/atlas.json                       the settings (every shard and restart must match them)
    ATLAS/manifest-<i>of<n>.jsonl          one JSON line per rendered channel, appended per finished batch
    ATLAS/<run>/iter_000030/<layer>/0007.png

PNGs are written atomically (temp name + rename), then their manifest lines are appended and fsynced, so a
line always points at a complete PNG. A restart cuts off a torn last line, removes the temporary files of
cut-short writes, skips channels whose line and PNG both exist and re-renders the rest; seeds are per
(layer, channel batch), so the result equals an uninterrupted run.
"""
import dataclasses
import glob
import json
import os
import time

import numpy as np

from lucidtl import imageio
from lucidtl import atomic
from lucidtl.atlas import plan
from lucidtl.errors import InvalidArgumentError
from lucidtl.run import Run

SETTINGS_FILE = "atlas.json"
VOLATILE = ("wall_s", "shard", "finished")  # record keys that differ between equal runs


def manifest_name(shard):
    return f"manifest-{shard[0]}of{shard[1]}.jsonl"


def read_manifest(atlas):
    """Every record of every shard's manifest in the atlas folder, one per (checkpoint, layer, channel): the
    latest where an image was rendered again (its PNG had gone). A torn last line is ignored."""
    records = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(os.fspath(atlas)), "manifest-*.jsonl"))):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidArgumentError(f"cannot read atlas manifest {path}: {e}") from None
        for n, line in enumerate(lines, 1):
            if not line.endswith("\n"):
                continue
            try:
                r = json.loads(line)
                key = (r["checkpoint"], r["layer"], r["channel"])
                newer = key not in records or r["finished"] >= records[key]["finished"]
            except (ValueError, KeyError, TypeError) as e:
                raise InvalidArgumentError(
                    f"atlas manifest {path} line {n} is not a render record ({type(e).__name__}: "
                    f"{' '.join(str(e).split())[:80]}); delete that line and run atlas render again to redo it"
                ) from None
            if newer:
                records[key] = r
    return list(records.values())


def rendered_records(atlas, need_files=False):
    """read_manifest, refusing an atlas with no renders yet; need_files: every listed PNG must exist."""
    records = read_manifest(atlas)
    if not records:
        raise InvalidArgumentError(f"atlas {atlas} has no rendered images yet; run python -m lucidtl.atlas render")
    for r in records if need_files else ():
        if not os.path.isfile(os.path.join(atlas, r["png"])):
            raise InvalidArgumentError(f"atlas {atlas} lists {r['png']} but the file is missing; run "
                                       "python -m lucidtl.atlas render again to redo it")
    return records


def read_settings(atlas):
    path = os.path.join(os.fspath(atlas), SETTINGS_FILE)
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"{atlas} is not an atlas folder (no {SETTINGS_FILE}); make one with "
                                   "python -m lucidtl.atlas render --out FOLDER")
    return _read_json(path)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidArgumentError(f"cannot read {path}: {' '.join(str(e).split())[:120]}; it is corrupt, "
                                   "render the atlas into a new --out") from None


def _check_settings(out, settings):
    path = os.path.join(out, SETTINGS_FILE)
    if not os.path.isfile(path):
        try:
            imageio.save_json(settings, path)
        except FileNotFoundError:  # another shard, having written it, cleared our temporary file
            if not os.path.isfile(path):
                raise
    old = _read_json(path)
    old.setdefault("precision", "float32")  # atlases from before the setting existed
    changed = [k for k in settings if old.get(k) != settings[k]]
    if changed:
        raise InvalidArgumentError(f"{out} holds an atlas with other settings ({', '.join(changed)}: "
                                   f"{old.get(changed[0])!r}, not {settings[changed[0]]!r}); use another --out")
    atomic.clear_stale(out, SETTINGS_FILE)  # a write of it a kill cut short; only once the file is there


class _Manifest:
    """This shard's JSON-lines file, appended and fsynced once per batch."""

    def __init__(self, path):
        self.path = path
        if os.path.exists(path):  # a kill during a write leaves a torn last line: cut it off
            with open(path, "rb") as f:
                data = f.read()
            if data and not data.endswith(b"\n"):
                atomic.truncate(path, data.rfind(b"\n") + 1)

    def append(self, records):
        atomic.append_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))

    def append_batch(self, records, t0, shard):
        """One batch's records, stamped with its wall time (from t0), shard and finishing time."""
        wall = round(time.time() - t0, 3)
        self.append([dict(r, wall_s=wall, shard=f"{shard[0]}/{shard[1]}", finished=time.time()) for r in records])


class _Models:
    """The model at the current checkpoint; one architecture per run is reused across its checkpoints."""

    def __init__(self, model):
        self.model_name = model
        self.current = self.net = None
        self.runs = {}  # run folder -> Run (one architecture each, its slot "atlas")
        self.input_range = (0.0, 1.0)

    def load(self, ck):
        from lucidtl.models import build_model

        if ck == self.current:
            return self.net
        if ck.run_path:
            run = self.runs.setdefault(ck.run_path, Run(ck.run_path))
            self.input_range = run.input_range
            self.net = run.model_at(ck.iteration, slot="atlas")
        else:
            import keras

            keras.utils.set_random_seed(0)
            self.net, info = build_model(self.model_name, weights=ck.weights)
            self.input_range = tuple(info.input_range)
        self.current, self.features = ck, {}
        return self.net

    def channel_means(self, layer, images, channels):
        """Lucid's channel objective (mean over H, W of channels[i] on image i), on the images as saved."""
        from lucidtl.optvis import features

        import tensorflow as tf

        if layer not in self.features:
            self.features[layer] = features.feature_model(self.net, [layer])
        lo, hi = self.input_range
        x = tf.constant(lo + (hi - lo) * images, tf.float32)
        x = features.fit_input(self.net, x)  # a fixed input size sees the image resized, as in the render
        acts = np.asarray(self.features[layer](x, training=False))
        return [float(acts[i, ..., c].mean()) for i, c in enumerate(channels)]


@dataclasses.dataclass
class AtlasResult:
    out: str
    manifest: str
    rendered: int  # channels rendered by this call
    skipped: int  # channels of this shard already done
    total: int  # channels in this shard

    def __str__(self):
        return (f"atlas {self.out}: rendered {self.rendered}, already done {self.skipped}, "
                f"shard total {self.total}; manifest {self.manifest}")


def plan_work(runs=None, weights=None, model="inception_v1", layers="all", channels="all", batch=32, seed=0):
    """(checkpoints, the full item list, models) for these arguments; layers are read off each source's
    architecture once."""
    ckpts = plan.checkpoints(plan.split_list(runs, "runs"), plan.split_list(weights, "weights"))
    models, chosen, per_source = _Models(model), {}, {}
    for ck in ckpts:
        source = ck.run_path or ck.weights
        if source not in per_source:
            per_source[source] = plan.selection(models.load(ck), layers, channels)
        chosen[ck.label] = per_source[source]
    return ckpts, plan.items(ckpts, chosen, batch, seed), models


def render(runs=None, weights=None, model="inception_v1", layers="all", channels="all", size=128, steps=512,
           batch_size=32, seed=0, transforms="standard", shard="0/1", out="atlas", progress=True,
           precision="float32", aligned=False, dataset=None, max_images=256):
    """Render the atlas (or this process's shard of it): every channel of every checkpoint; resumable.

    Args:
        runs (run): training run folders, comma separated (or --runs repeated): every saved checkpoint
        weights (weights): weight file(s) for --model, comma separated (or --weights repeated)
        model: the architecture for --weights (a run rebuilds its own from run.json)
        layers (list): all (InceptionV1's 57 conv layers; other models: every ReLU) or L1,L2
        channels (channels): the channels of every layer: all | 0:8 | 1,5,9
        size (int in [16, 4096]): side of the rendered images in px
        steps (int >= 1): optimisation steps
        batch_size (int >= 1): channels of one layer optimised together
        seed (int >= 0): random seed (per layer and channel batch)
        transforms (standard|distill|none|patch): the transformation robustness set
        shard (str): i/n: this process renders items k with k % n == i
        out (folder): the atlas folder
        progress (bool): show a progress bar
        precision (float32|bfloat16|float16): what the network computes in; objectives are recorded in float32
        aligned (bool): draw each channel batch at every checkpoint of its run in one optimisation (aligned strips)
        dataset (dataset): real images (folder:PATH, a dataset name, or an .npy / .npz file), read at --size:
            each manifest record gets its picture's reach and path similarity (lucidtl.analysis.trust)
        max_images (int >= 1): --dataset images read at most
    """
    batch = batch_size
    from lucidtl.optvis import precision as precision_lib
    from lucidtl.optvis.render import progress_bar, render_channels
    from lucidtl.cli import integer
    from lucidtl.loading import MIN_SIZE, TRANSFORMS

    shard_t = plan.parse_shard(shard)
    size = integer("size", size, minimum=MIN_SIZE)
    steps = integer("steps", steps)
    batch = integer("batch-size", batch)
    seed = integer("seed", seed, minimum=0)
    if transforms not in TRANSFORMS:
        raise InvalidArgumentError(f"unknown --transforms {transforms!r}; choose one of {', '.join(TRANSFORMS)}")
    precision = precision_lib.require_fast(precision_lib.check(precision))
    out = os.fspath(out)
    _, work, models = plan_work(runs, weights, model, layers, channels, batch, seed)
    for w in work[:1]:  # a model it cannot take: refused before the first write
        precision_lib.lowered(models.load(w.checkpoint), precision)
    settings = {"size": size, "steps": steps, "updates": steps + 1, "batch": batch, "seed": seed,
                "transforms": transforms, "param": "fft", "decorrelate": True, "objective": "channel",
                "png_encoding": "uint8 = round(255 * image)", "precision": precision}
    if aligned:
        if any(not w.checkpoint.run_path for w in work):
            raise InvalidArgumentError("--aligned draws every checkpoint of a run together: pass --runs, not --weights")
        if precision != "float32":
            raise InvalidArgumentError(f"--aligned renders in float32 only; drop --precision {precision}")
        settings["aligned"] = True  # (absent otherwise: atlases made before the option resume unchanged)
    real = None
    if dataset is not None:
        if aligned:
            raise InvalidArgumentError("--aligned records no trust measures yet: drop --dataset (or --aligned)")
        from lucidtl.analysis import trust

        max_images = integer("max-images", max_images)
        real, _ = trust.load_images(dataset, size, max_images)
        settings.update(dataset=str(dataset), max_images=max_images)  # (absent otherwise: older atlases resume)
    _check_settings(out, settings)
    if aligned:
        return _render_aligned(out, work, shard_t, settings, size, steps, transforms, progress)
    hint = precision_lib.hint(precision)
    if hint and progress:
        print(hint)

    mine = plan.shard_items(work, shard_t)
    done = {(r["checkpoint"], r["layer"], r["channel"]) for r in read_manifest(out)}
    pending = [w for w in mine if not all(k in done and os.path.exists(os.path.join(out, plan.png_path(*k)))
                                          for k in w.keys)]
    total = sum(len(w.channels) for w in mine)
    manifest = _Manifest(os.path.join(out, manifest_name(shard_t)))
    bar = progress_bar(sum(len(w.channels) for w in pending), progress, unit="img", desc=f"atlas {shard}",
                       leave=True)
    rendered, stale = 0, {}
    try:
        for w in pending:
            t0 = time.time()
            net = models.load(w.checkpoint)
            layer_chans = [(w.layer, c) for c in w.channels]
            images = render_channels(net, layer_chans, size, steps, w.seed, models.input_range, transforms,
                                     precision)
            images = imageio.as_saved(images)
            values = models.channel_means(w.layer, images, w.channels)
            measures = None
            if real is not None:
                measures = trust.record_trust(net, w.layer, list(w.channels), {steps: images}, real,
                                              input_range=models.input_range)
            records = []
            for c, img, v in zip(w.channels, images, values):
                rel = plan.png_path(w.checkpoint.label, w.layer, c)
                folder, name = os.path.split(os.path.join(out, rel))
                if folder not in stale:  # temporary files of writes a kill cut short: listed once per folder,
                    stale[folder] = atomic.stale(folder)  # removed only for this shard's own PNGs
                for tmp in [t for t in stale[folder] if t.endswith("-" + name)]:
                    atomic.remove(tmp)
                    stale[folder].remove(tmp)
                imageio.save_png(img, os.path.join(out, rel))
                records.append(dict(w.checkpoint.record(), layer=w.layer, channel=c, objective=v, seed=w.seed,
                                    batch_channels=list(w.channels), settings=settings, png=rel))
                if measures is not None:
                    records[-1]["trust"] = {"reach": measures["reach"][str(c)][str(steps)],
                                            "top_objective": measures["top_objective"][str(c)],
                                            "path_similarity": measures["path_similarity"][str(c)]}
            manifest.append_batch(records, t0, shard_t)
            rendered += len(records)
            bar.update(len(records))
    finally:
        bar.close()
    return AtlasResult(out, manifest.path, rendered, total - sum(len(w.channels) for w in pending), total)


def _render_aligned(out, work, shard_t, settings, size, steps, transforms, progress):
    """render(aligned=True): the items of one (run, layer, channel batch) at all the run's checkpoints form
    one group, drawn as aligned strips (lucidtl.recipes.aligned_strips); groups are shared round-robin
    between shards, and written as the other items are (PNGs, then their manifest lines)."""
    import tensorflow as tf

    from lucidtl.optvis import features
    from lucidtl.optvis.render import progress_bar
    from lucidtl.recipes.aligned_strips import render_strips

    groups = {}
    for w in work:
        groups.setdefault((w.checkpoint.run_path, w.layer, w.channels), []).append(w)
    groups = list(groups.values())
    mine = [g for i, g in enumerate(groups) if i % shard_t[1] == shard_t[0]]
    done = {(r["checkpoint"], r["layer"], r["channel"]) for r in read_manifest(out)}
    pending = [g for g in mine if not all(k in done and os.path.exists(os.path.join(out, plan.png_path(*k)))
                                          for w in g for k in w.keys)]
    total = sum(len(w.channels) for g in mine for w in g)
    manifest = _Manifest(os.path.join(out, manifest_name(shard_t)))
    for folder in {os.path.dirname(os.path.join(out, plan.png_path(*k))) for g in pending for w in g for k in w.keys}:
        for tmp in atomic.stale(folder):  # temporary files of writes a kill cut short (this shard's groups)
            atomic.remove(tmp)
    bar = progress_bar(sum(len(w.channels) for g in pending for w in g), progress, unit="img", desc="atlas aligned",
                       leave=True)
    nets, rendered = {}, 0
    try:
        for g in pending:
            t0 = time.time()
            run_path = g[0].checkpoint.run_path
            if run_path not in nets:
                run = Run(run_path)
                nets = {run_path: ([run.model_at(w.checkpoint.iteration) for w in g], run.input_range)}
            models, input_range = nets[run_path]
            strips = render_strips(models, g[0].layer, g[0].channels, size, steps, g[0].seed, True, transforms,
                                   input_range=input_range)[steps]
            records = []
            for k, (w, net) in enumerate(zip(g, models)):
                images = imageio.as_saved(strips[:, k])
                lo, hi = input_range
                x = features.fit_input(net, tf.constant(lo + (hi - lo) * images))
                acts = np.asarray(features.feature_model(net, [w.layer])(x, training=False))
                for i, (c, img) in enumerate(zip(w.channels, images)):
                    rel = plan.png_path(w.checkpoint.label, w.layer, c)
                    imageio.save_png(img, os.path.join(out, rel))
                    records.append(dict(w.checkpoint.record(), layer=w.layer, channel=c,
                                        objective=float(acts[i, ..., c].mean()), seed=w.seed,
                                        batch_channels=list(w.channels), settings=settings, png=rel))
            manifest.append_batch(records, t0, shard_t)
            rendered += len(records)
            bar.update(len(records))
    finally:
        bar.close()
    return AtlasResult(out, manifest.path, rendered, total - sum(len(w.channels) for g in pending for w in g), total)
