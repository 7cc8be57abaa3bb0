"""The `python -m lucidtl.analyze` sub-commands as library functions: same names, arguments and defaults, callable
from a notebook (each returns a Written: the files written and the lines the command prints). The command line
(lucidtl/analyze.py) builds its flags and help from these signatures and docstrings.

    from lucidtl.analysis.commands import similarity
    similarity(run="runs/pets", layers="Mixed_4c", dataset="folder:data/pets", out="analysis/pets")
"""
import dataclasses
import os

import numpy as np

from lucidtl import cli
from lucidtl.errors import InvalidArgumentError
from lucidtl.run import Run

DEFAULT_METRICS = "pwsm_theta,procrustes_norm,cka"


@dataclasses.dataclass
class Written:
    """What a command wrote (files) and the other lines it prints."""
    files: list
    lines: list = dataclasses.field(default_factory=list)  # what to print besides the files


def _run(run, weights=None, model=None, num_classes=None, top="paper", multi_label=False, label=None):
    """The Run of --run (a folder or a Run) / --weights (+ --model and its head); "no checkpoints" when
    neither is given."""
    if run is None and weights is None:
        raise InvalidArgumentError("no checkpoints; pass --run RUN_FOLDER (with checkpoints.json) or "
                                   "--weights FILE[,FILE...]")
    return Run.of(run, weights=weights, model=model, num_classes=num_classes, top=top, multi_label=multi_label,
                  label=label)


# ---- commands ----------------------------------------------------------------------------------------

def similarity(run=None, checkpoints=None, layers=None, dataset=None, skip_bad_images=False, model=None,
               num_classes=None, top="paper", multi_label=False, weights=None, reference="first", alpha=0.0,
               samples="positions", per_channel=True, metrics=DEFAULT_METRICS, split="train", image_size=None,
               batch_size=16, max_images=256, label=None, out="analysis"):
    """Similarity of each checkpoint to a reference checkpoint on the same images, per layer and channel.

    PWSM angle (alpha; 0 = full whitening as the study), Procrustes distance / 2, linear CKA per layer,
    Procrustes and CKA per channel. Writes similarity.csv, similarity_channels.csv, similarity_summary.json
    (Pearson's r between the metrics) and a PNG + CSV curve per metric. The images are read unshuffled.

    Args:
        run (run): the training run folder (its checkpoints.json, and run.json for the model)
        checkpoints: saved iterations of --run (or of --weights), comma separated (default: all)
        weights (weights): checkpoint files of --model instead of --run, comma separated (iteration from iter_<i>)
        model: the architecture of --weights (a run rebuilds its own): registry name, .keras file, dotted builder
        num_classes (int >= 1): classes of the head training added (with --model)
        top (paper|single): the head training added (with --model)
        multi_label (bool): the head has independent sigmoid outputs (with --model)
        layers (list): the layers compared, comma separated
        dataset (dataset): the images: folder:PATH, a dataset name, or an .npy / .npz file
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        reference (any): the checkpoint compared against: first | last | an iteration
        alpha (number in [0, 1]): PWSM regularisation (0: full whitening, as the study)
        samples (positions|pooled): what a sample is: each spatial position, or each image (pooled)
        per_channel (bool): also compare each channel
        metrics (list): comma list of pwsm_theta, procrustes_norm, cka
        split: the dataset split read
        image_size (int >= 1): side the images are resized to (default: the run's, else 224)
        batch_size (int >= 1): images per batch
        max_images (int >= 1): images used at most
        label: the run's name in the tables (default: the run folder's name)
        out (folder): the output folder
    """
    from lucidtl.analysis import plots, streaming, tables
    from lucidtl.imageio import save_json

    chosen = streaming.check_metrics(metrics)
    cli.choice("samples", samples, streaming.SAMPLES)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 <= alpha <= 1:
        raise InvalidArgumentError(f"--alpha must be a number in [0, 1], got {alpha!r}")
    if layers is None:
        raise InvalidArgumentError("no layers; pass --layers NAME[,NAME...] (list them with "
                                   "python -m lucidtl.render layers --run RUN)")
    r = _run(run, weights, model, num_classes, top, multi_label, label)
    cps = r.select(checkpoints)
    model_fn, input_range = r.architecture()
    source, _ = streaming.load_data(dataset, image_size or r.image_size or 224, split, batch_size,
                                    skip_bad_images)
    result = streaming.compare_checkpoints(
        model_fn, cps, layers, source, reference=reference, alpha=float(alpha), samples=samples,
        per_channel=bool(per_channel), batch_size=batch_size, max_images=max_images, input_range=input_range,
        label=r.label, report=print)
    files = [tables.write_csv(result.rows, os.path.join(out, "similarity.csv"))]
    if result.channel_rows:
        files.append(tables.write_csv(result.channel_rows, os.path.join(out, "similarity_channels.csv")))
    files.append(save_json(result.summary, os.path.join(out, "similarity_summary.json")))
    files += plots.write_curves(result.rows, chosen, out, prefix="similarity")
    r = result.summary["pearson"]["pwsm_vs_procrustes"]
    notes = [f"note: {w}" for w in result.summary["warnings"]]
    return Written(files, notes + [f"Pearson r (PWSM vs Procrustes, all layers and checkpoints): {r:.3f}"])


def table(csv=None, labels=None, metrics=DEFAULT_METRICS, out="analysis", include_reference=False):
    """Reusability table: mean ± std of each metric over checkpoints, per run and layer (several runs at once).

    Writes <out>/reusability.csv and prints a Markdown table.

    Args:
        csv (files): similarity.csv files of the similarity command, comma separated
        labels (list): each file's run name, comma separated, in the order of --csv
        metrics (list): comma list of pwsm_theta, procrustes_norm, cka
        out (folder): the output folder
        include_reference (bool): count the reference checkpoint (similarity 1) in the means
    """
    from lucidtl.analysis import streaming, tables

    chosen = streaming.check_metrics(metrics)
    if csv is None:
        raise InvalidArgumentError("no input; pass --csv similarity.csv[,other.csv] from the similarity command")
    paths = cli.split_list(csv)
    if labels is not None:
        labels = cli.split_list(labels)
        if len(labels) != len(paths):
            raise InvalidArgumentError(f"--labels has {len(labels)} names for {len(paths)} --csv files")
    rows = []
    for i, path in enumerate(paths):
        part = tables.read_csv(str(path))
        missing = [m for m in chosen if part and m not in part[0]]
        if missing:
            raise InvalidArgumentError(f"{path} has no column {missing[0]!r}; is it a similarity CSV?")
        if labels is not None:
            part = [{**r, "run": labels[i]} for r in part]
        rows += part
    result = tables.reusability_table(rows, chosen, exclude_reference=not include_reference)
    return Written([tables.write_csv(result, os.path.join(out, "reusability.csv"))],
                   [tables.format_table(result, chosen)])


def scale(images=None, out="analysis", window="hann", weighting="mean"):
    """Spatial scale: the dominant period (px) of each rendered channel, per layer, tracked over iterations.

    From each PNG's radially averaged power spectrum; per run and layer mean ± std over channels, tracked
    over iterations. Writes scale.csv, scale_layers.csv and (with several iterations) scale_period.png.

    Args:
        images (str): an atlas folder (read through its manifest) or a folder of the render command's PNGs
        out (folder): the output folder
        window (hann|none): the window applied before the FFT
        weighting (mean|sum): how the radial spectrum is averaged
    """
    from lucidtl.analysis import plots, spatial, tables

    cli.choice("window", window, spatial.WINDOWS)
    cli.choice("weighting", weighting, spatial.WEIGHTINGS)
    if images is None:
        raise InvalidArgumentError("no images; pass --images FOLDER of rendered PNGs")
    rows = spatial.spatial_scale(str(images), window, weighting)
    summary = spatial.summarise(rows)
    files = [tables.write_csv(rows, os.path.join(out, "scale.csv")),
             tables.write_csv(summary, os.path.join(out, "scale_layers.csv"))]
    tracked = [dict(r, curve=_curve(r)) for r in summary if r["iteration"] is not None]
    if len({r["iteration"] for r in tracked}) > 1:
        files.append(plots.plot_curves(tracked, "period", os.path.join(out, "scale_period.png"),
                                       err="period_std", group="curve"))
    return Written(files, [f"{_curve(r)} (iteration {r['iteration']}): period {r['period']:.1f} ± "
                           f"{r['period_std']:.1f} px over {r['n']} channels" for r in summary])


def _curve(row):
    """A row's layer, with its run when the images came from an atlas of several runs."""
    return row["layer"] if row.get("run") is None else f"{row['run']} {row['layer']}"


def redundancy(images=None, out="analysis", compare="pixels", model="inception_v1", weights=None,
               embed_layer=None, run=None, checkpoint=None):
    """Redundancy of each layer's rendered channels: mean off-diagonal cosine similarity between them.

    Of their pixels (mean colour removed) or, with --compare activations, of their spatially averaged
    activations in --embed-layer of a model. Writes redundancy.csv, redundancy_matrices.npz and (with
    several iterations) redundancy.png.

    Args:
        images (str): an atlas folder (read through its manifest) or a folder of the render command's PNGs
        out (folder): the output folder
        compare (pixels|activations): compare pixels, or activations of --embed-layer (was --method)
        model: the embedding model of --compare activations
        weights: its weights: imagenet | random | a weights file
        embed_layer: the layer whose activations embed each image (--compare activations)
        run (run): embed with this training run's model instead of --model (at --checkpoint)
        checkpoint (checkpoint): the saved iteration of --run, or last (default: last)
    """
    from lucidtl.analysis import plots, tables
    from lucidtl.analysis import redundancy as red
    from lucidtl.atomic import atomic_path

    cli.choice("compare", compare, red.METHODS)
    if images is None:
        raise InvalidArgumentError("no images; pass --images FOLDER of rendered PNGs")
    net, input_range = None, (0.0, 1.0)
    if compare == "activations":
        from lucidtl.models import build_model
        from lucidtl.optvis import features

        if embed_layer is None:
            raise InvalidArgumentError("--compare activations needs --embed_layer (a layer of --model)")
        if run is not None:
            from lucidtl.run import load_run

            net, info = load_run(run, checkpoint, model, weights)
        else:
            net, info = build_model(model, weights=weights)
        features.endpoint(net, str(embed_layer))
        input_range = tuple(info.input_range)
    rows, matrices = red.folder_redundancy(str(images), compare, net, None if embed_layer is None else
                                           str(embed_layer), input_range)
    files = [tables.write_csv(rows, os.path.join(out, "redundancy.csv"))]
    path = os.path.join(out, "redundancy_matrices.npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{"|".join(map(str, ([run] if run is not None else []) + [layer, it, t])): S
                       for (run, it, layer, t), S in matrices.items()})
    files.append(path)
    tracked = [dict(r, curve=_curve(r)) for r in rows if r["iteration"] is not None]
    if len({r["iteration"] for r in tracked}) > 1:
        files.append(plots.plot_curves(tracked, "redundancy", os.path.join(out, "redundancy.png"), group="curve"))
    return Written(files, [f"{_curve(r)} (iteration {r['iteration']}): redundancy {r['redundancy']:.3f} "
                           f"over {r['channels']} channels" for r in rows])


def examples(run=None, checkpoints=None, layer=None, channels="0:4", dataset=None, skip_bad_images=False,
             model=None, num_classes=None, top="paper", multi_label=False, weights=None, k=8, reduce="max",
             split="train", image_size=None, batch_size=16, max_images=1024, out="analysis/examples"):
    """Dataset examples per checkpoint: the top-k images of each channel, heatmaps, class-average crops.

    The top-k activating images of each channel (with heatmaps) and class-average receptive-field crops
    weighted by activation, as PNGs in <out>/iter_<i>/, and examples.csv.

    Args:
        run (run): the training run folder (its checkpoints.json, and run.json for the model)
        checkpoints: saved iterations of --run (or of --weights), comma separated (default: all)
        weights (weights): checkpoint files of --model instead of --run, comma separated (iteration from iter_<i>)
        model: the architecture of --weights (a run rebuilds its own): registry name, .keras file, dotted builder
        num_classes (int >= 1): classes of the head training added (with --model)
        top (paper|single): the head training added (with --model)
        multi_label (bool): the head has independent sigmoid outputs (with --model)
        layer: the layer whose channels are examined
        channels (channels): its channels: 7 | 0:8 | 1,5,9 | all
        dataset (dataset): the images: folder:PATH, a dataset name, or an .npy / .npz file
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        k (int >= 1): images kept per channel
        reduce (max|mean): how a channel's activation map becomes one number per image
        split: the dataset split read
        image_size (int >= 1): side the images are resized to (default: the run's, else 224)
        batch_size (int >= 1): images per batch
        max_images (int >= 1): images read at most
        out (folder): the output folder
    """
    from lucidtl.analysis import examples as ex
    from lucidtl.analysis import tables
    from lucidtl.analysis.streaming import load_data
    from lucidtl.optvis import features
    from lucidtl.selection import parse_channels

    cli.choice("reduce", reduce, ex.REDUCES)
    if layer is None:
        raise InvalidArgumentError("no layer; pass --layer NAME (list them with python -m lucidtl.render layers "
                                   "--run RUN)")
    r = _run(run, weights, model, num_classes, top, multi_label)
    cps = r.select(checkpoints)
    model_fn, input_range = r.architecture()
    chans = parse_channels(channels, features.channel_count(model_fn(), str(layer)))
    source, class_names = load_data(dataset, image_size or r.image_size or 224, split, batch_size, skip_bad_images)
    class_names = class_names or r.class_names
    rows = ex.examples_over_checkpoints(model_fn, cps, str(layer), chans, source, out, k=k, reduce=reduce,
                                        batch_size=batch_size, max_images=max_images, input_range=input_range,
                                        class_names=class_names, report=print)
    pngs = sorted(os.path.join(root, f) for root, _, fs in os.walk(out) for f in fs if f.endswith(".png"))
    return Written([tables.write_csv(rows, os.path.join(out, "examples.csv"))],
                   [f"{len(pngs)} PNGs in {out}/iter_*/"])


def activation_atlas(run=None, checkpoints=None, layer=None, dataset=None, skip_bad_images=False, weights=None,
                     model=None, num_classes=None, top="paper", multi_label=False, grid_size=10, size=96, steps=127,
                     icon_batch_size=32, number_activations=100000, positions_per_image=1, threshold=5, attempts=1,
                     fit="first", seed=0, class_filter=None, class_logit=None, patches=4, n_neighbors=50,
                     min_dist=0.05, split="train", image_size=None, batch_size=32, shard="0/1",
                     out="analysis/activation_atlas", progress=True):
    """Activation atlas of a layer at every checkpoint, in one layout (Lucid's activation_atlas recipe).

    Samples the layer's activations at random positions of the dataset's images (the same images and
    positions at every checkpoint), lays them out with UMAP (cosine, seeded) fitted on the first checkpoint
    (--fit first) or on all at once (--fit joint), bins them on a --grid-size grid and draws each cell
    holding more than --threshold points as its mean activation vector (a direction at the centre
    position). Writes OUT/<layer>/iter_<i>/activation_atlas.png, cells.csv, cells.json, icons/, patches/
    (each cell's nearest dataset patches), and OUT/<layer>/density.csv, summary.json. Resumable: a rerun
    renders only the missing icons. Needs umap-learn (pip install 'lucidtl[activation-atlas]').

    Args:
        run (run): the training run folder (its checkpoints.json, and run.json for the model)
        checkpoints: saved iterations of --run (or of --weights), comma separated (default: all)
        weights (weights): checkpoint files of --model instead of --run, comma separated (iteration from iter_<i>)
        model: the architecture of --weights (a run rebuilds its own): registry name, .keras file, dotted builder
        num_classes (int >= 1): classes of the head training added (with --model)
        top (paper|single): the head training added (with --model)
        multi_label (bool): the head has independent sigmoid outputs (with --model)
        layer: the layer whose activations are laid out (it must have spatial positions)
        dataset (dataset): the images: folder:PATH, a dataset name, or an .npy / .npz file
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        grid_size (int >= 1): cells per side of the grid (Lucid: 10)
        size (int >= 16): side of each cell's icon in px (Lucid: 96)
        steps (int >= 0): optimisation steps of the icons (127: Lucid's 128 updates)
        icon_batch_size (int >= 1): icons optimised together (Lucid: 32)
        number_activations (int >= 1): activation vectors sampled at most (Lucid: 100000)
        positions_per_image (int >= 1): random positions sampled per image (Lucid: 1)
        threshold (int >= 0): a cell is drawn when it holds more points than this (Lucid: 5)
        attempts (int >= 1): optimisations per icon, the best kept (Lucid's num_attempts; 1 in activation_atlas)
        fit (first|joint): fit the layout on the first checkpoint and place the others, or on all at once
        seed (int >= 0): seeds the positions, UMAP and the icons: the same seed gives the same atlas
        class_filter (int >= 0): only the points of images of this class
        class_logit (int >= 0): record each cell's attribution to this output unit (Lucid's class atlases)
        patches (int >= 1): nearest dataset patches kept per cell
        n_neighbors (int >= 2): UMAP's n_neighbors (Lucid: 50)
        min_dist (number >= 0): UMAP's min_dist (Lucid: 0.05)
        split: the dataset split read
        image_size (int >= 1): side the images are resized to (default: the run's, else 224)
        batch_size (int >= 1): images per batch when sampling
        shard (str): i/n: this process draws icon batches k with k % n == i (same --out for every shard)
        out (folder): the output folder
        progress (bool): show progress bars
    """
    from lucidtl.analysis.streaming import load_data
    from lucidtl.atlas.plan import parse_shard
    from lucidtl.optvis import features
    from lucidtl.recipes.activation_atlas import checkpoints as ck
    from lucidtl.recipes.activation_atlas.layout import FITS, require_umap

    shard_t = parse_shard(shard)
    cli.choice("fit", fit, FITS)
    size = cli.integer("size", size, minimum=16)
    steps = cli.integer("steps", steps, minimum=0)
    if layer is None:
        raise InvalidArgumentError("no layer; pass --layer NAME (list them with python -m lucidtl.render layers "
                                   "--run RUN)")
    if dataset is None:
        raise InvalidArgumentError("no images; pass --dataset folder:PATH, a dataset name or an .npy/.npz file")
    require_umap()
    r = _run(run, weights, model, num_classes, top, multi_label)
    cps = r.select(checkpoints)
    model_fn, input_range = r.architecture()
    probe = model_fn()
    from lucidtl.recipes.activation_atlas.main import spatial_shape

    features.endpoint(probe, str(layer))
    spatial_shape(probe, str(layer))
    source, _ = load_data(dataset, image_size or r.image_size or 224, split, batch_size, skip_bad_images)
    summary = ck.checkpoint_atlases(
        model_fn, cps, str(layer), source, out, grid_size=grid_size, icon_size=size, n_steps=steps + 1,
        icon_batch_size=icon_batch_size, number_activations=number_activations,
        positions_per_image=positions_per_image, threshold=threshold, num_attempts=attempts, fit=fit, seed=seed,
        batch_size=batch_size, class_filter=class_filter, class_logit=class_logit, patches=patches,
        umap_options={"n_neighbors": n_neighbors, "min_dist": float(min_dist)}, input_range=input_range,
        shard=shard_t, progress=progress, report=print if progress else None)
    folder = os.path.join(out, str(layer).replace("/", "_"))
    if summary is None:
        return Written([], [f"shard {shard} done; the other shards' icons are still missing: rerun any shard "
                            "once they finish to make the canvases"])
    lines = [f"iteration {c['iteration']}: {len(c['cells'])} cells drawn" for c in summary["checkpoints"]]
    files = [os.path.join(folder, c["atlas"]) for c in summary["checkpoints"]]
    return Written(files + [os.path.join(folder, "density.csv"), os.path.join(folder, "summary.json")], lines)


# ---- building blocks (attribution, neuron groups, caricatures) ---------------------------------------

def _blocks_inputs(run, checkpoints, dataset, layers, model, num_classes, top, multi_label, split, image_size,
                   skip_bad_images, batch_size, label):
    """Everything a building-blocks job reads, checked before any work (lucidtl.analysis.building_blocks)."""
    from lucidtl.analysis import building_blocks as bb

    if run is None:
        raise InvalidArgumentError("no run; pass --run RUN_FOLDER (with checkpoints.json)")
    if layers is None:
        raise InvalidArgumentError("no layers; pass --layers NAME[,NAME...] (list them with "
                                   "python -m lucidtl.render layers --run RUN)")
    return bb.run_inputs(_run(run, None, model, num_classes, top, multi_label, label), dataset,
                         cli.split_list(layers), image_size, batch_size, checkpoints, split, skip_bad_images)


def attribution(run=None, checkpoints=None, dataset=None, skip_bad_images=False, layers=None, classes="all",
                method="linear", ig_steps=64, indices=(0, 1), model=None, num_classes=None, top="paper",
                multi_label=False, split="train", image_size=None, batch_size=16, max_images=256, label=None,
                out="analysis/attribution", overwrite=False, progress=True):
    """Attribution of each layer's channels to the head's classes at every checkpoint, with heatmaps.

    Lucid's linear approximation (activation x gradient of the class logit) or integrated gradients along
    the layer's activations; per class a channel ranking (mean over the images, and over the images of
    that class) and spatial heatmaps of the --indices images. Writes attribution.csv,
    attribution_summary.json, attribution_<layer>.png and iter_<i>/<layer>_attribution_<image>.png.

    Args:
        run (run): the training run folder (its checkpoints.json, and run.json for the model)
        checkpoints: saved iterations of --run, comma separated (default: all)
        dataset (dataset): the images: folder:PATH, a dataset name, or an .npy / .npz file
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        layers (list): the layers attributed, comma separated
        classes (list): the output's classes: all, indices (0,2) or names (tabby,pug), comma separated
        method (linear|integrated): activation x gradient, or integrated gradients from a zero baseline
        ig_steps (int >= 1): integration steps of --method integrated
        indices (int list): the dataset images (their indices) that get heatmaps
        model: the architecture, where the run has no run.json (see similarity)
        num_classes (int >= 1): classes of the head training added (with --model)
        top (paper|single): the head training added (with --model)
        multi_label (bool): the head has independent sigmoid outputs (with --model)
        split: the dataset split read
        image_size (int >= 1): side the images are resized to (default: the run's, else 224)
        batch_size (int >= 1): images per batch
        max_images (int >= 1): images used at most
        label: the run's name in the tables (default: the run folder's name)
        out (folder): the output folder
        overwrite (bool): replace what --out holds instead of resuming it
        progress (bool): show a progress bar
    """
    from lucidtl.analysis import building_blocks as bb

    cli.choice("method", method, ("linear", "integrated"))
    inp = _blocks_inputs(run, checkpoints, dataset, layers, model, num_classes, top, multi_label, split, image_size,
                         skip_bad_images, batch_size, label)
    files = bb.attribution_over_checkpoints(inp, classes, out, method=method, ig_steps=ig_steps, indices=indices,
                                            batch_size=batch_size, max_images=max_images, overwrite=overwrite,
                                            progress=progress, report=None if progress else print)
    return Written(files)


def groups(run=None, checkpoints=None, dataset=None, skip_bad_images=False, layers=None, groups=6,
           reduction_alg="NMF", positions=16, size=80, steps=512, seed=0, indices=(0,), model=None,
           num_classes=None, top="paper", multi_label=False, split="train", image_size=None, batch_size=16,
           max_images=256, label=None, out="analysis/groups", overwrite=False, progress=True):
    """Neuron groups (matrix factorisation of a layer's activations) at every checkpoint, rendered.

    Fit once on the first checkpoint and project the others onto its groups (reconstruction error: how far
    the layer leaves the pretrained basis), and refit at each checkpoint with the groups matched to the
    first's (Hungarian assignment on cosine similarity). Each group renders as a direction in channel space;
    the --indices images get a semantic dictionary. Writes groups.csv, groups_components.npz,
    groups_<layer>_error.png, iter_<i>/<layer>_groups.png and iter_<i>/<layer>_dictionary_<image>.png.

    Args:
        run (run): the training run folder (its checkpoints.json, and run.json for the model)
        checkpoints: saved iterations of --run, comma separated (default: all)
        dataset (dataset): the images: folder:PATH, a dataset name, or an .npy / .npz file
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        layers (list): the layers factorised, comma separated
        groups (int >= 1): the number of groups (components)
        reduction_alg: a sklearn.decomposition class: NMF (Lucid's default), PCA, FastICA, ...
        positions (int >= 0): spatial positions drawn per image (the same at every checkpoint; 0: all)
        size (int >= 1): side of each group's render in px
        steps (int >= 0): optimisation steps of each group's render
        seed (int >= 0): random seed of the positions, the factorisation and the renders
        indices (int list): the dataset images (their indices) that get a semantic dictionary
        model: the architecture, where the run has no run.json (see similarity)
        num_classes (int >= 1): classes of the head training added (with --model)
        top (paper|single): the head training added (with --model)
        multi_label (bool): the head has independent sigmoid outputs (with --model)
        split: the dataset split read
        image_size (int >= 1): side the images are resized to (default: the run's, else 224)
        batch_size (int >= 1): images per batch
        max_images (int >= 1): images used at most
        label: the run's name in the tables (default: the run folder's name)
        out (folder): the output folder
        overwrite (bool): replace what --out holds instead of resuming it
        progress (bool): show a progress bar
    """
    from lucidtl.analysis import building_blocks as bb

    inp = _blocks_inputs(run, checkpoints, dataset, layers, model, num_classes, top, multi_label, split, image_size,
                         skip_bad_images, batch_size, label)
    files = bb.groups_over_checkpoints(inp, groups, out, reduction_alg=reduction_alg, positions=positions, size=size,
                                       steps=steps, seed=seed, indices=indices, batch_size=batch_size,
                                       max_images=max_images, overwrite=overwrite, progress=progress,
                                       report=None if progress else print)
    return Written(files)


def caricature(run=None, checkpoints=None, dataset=None, skip_bad_images=False, layers=None, indices=(0,),
               steps=512, cossim_pow=0.0, seed=0, model=None, num_classes=None, top="paper", multi_label=False,
               split="train", image_size=None, batch_size=16, label=None, out="analysis/caricature",
               overwrite=False, progress=True):
    """Caricatures (feature inversion) of the same dataset images at every checkpoint, one strip each.

    Lucid's recipe: an image optimised so that its activations at each layer match the dataset image's
    (dot x cosine^power). Writes caricature.csv (the final cosine to the image's activations),
    iter_<i>/caricature_<image>_<layer>.png and caricature_<image>_<layer>.png (the image, then each checkpoint).

    Args:
        run (run): the training run folder (its checkpoints.json, and run.json for the model)
        checkpoints: saved iterations of --run, comma separated (default: all)
        dataset (dataset): the images: folder:PATH, a dataset name, or an .npy / .npz file
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        layers (list): the layers inverted (one caricature each), comma separated
        indices (int list): the dataset images (their indices) inverted
        steps (int >= 1): optimisation steps of each caricature
        cossim_pow (number >= 0): the cosine term's power (0: Lucid's default, the dot product alone)
        seed (int >= 0): random seed of the renders
        model: the architecture, where the run has no run.json (see similarity)
        num_classes (int >= 1): classes of the head training added (with --model)
        top (paper|single): the head training added (with --model)
        multi_label (bool): the head has independent sigmoid outputs (with --model)
        split: the dataset split read
        image_size (int >= 1): side the images are resized to (default: the run's, else 224)
        batch_size (int >= 1): images per batch
        label: the run's name in the tables (default: the run folder's name)
        out (folder): the output folder
        overwrite (bool): replace what --out holds instead of resuming it
        progress (bool): show a progress bar
    """
    from lucidtl.analysis import building_blocks as bb

    inp = _blocks_inputs(run, checkpoints, dataset, layers, model, num_classes, top, multi_label, split, image_size,
                         skip_bad_images, batch_size, label)
    files = bb.caricatures_over_checkpoints(inp, indices, out, steps=steps, cossim_pow=float(cossim_pow), seed=seed,
                                            batch_size=batch_size, overwrite=overwrite, progress=progress,
                                            report=None if progress else print)
    return Written(files)


def accentuation(run=None, checkpoints=None, dataset=None, skip_bad_images=False, layer=None, channels="0",
                 indices=(0,),
                 regularize_layer=None, penalty=1.0, steps=256, seed=0, model=None, num_classes=None, top="paper",
                 multi_label=False, split="train", image_size=None, batch_size=16, label=None,
                 out="analysis/accentuation", overwrite=False, progress=True):
    """Feature accentuation of the same dataset images at every checkpoint: how each checkpoint sees them.

    Hamblin et al. (2024): each image is the start; a channel of --layer is maximised while the image's
    activations at --regularize-layer stay near the image's own (squared distance, relative, times
    --penalty). Writes accentuation.csv (the channel on the image and on its accentuation, the distance and
    its tolerance), iter_<i>/accentuation_<image>_<layer>_<channel>.png and one strip per image and channel
    (the image, then each checkpoint).

    Args:
        run (run): the training run folder (its checkpoints.json, and run.json for the model)
        checkpoints: saved iterations of --run, comma separated (default: all)
        dataset (dataset): the images: folder:PATH, a dataset name, or an .npy / .npz file
        skip_bad_images (bool): leave out a folder dataset's undecodable image files (else the first is an error)
        layer: the layer whose channels are accentuated
        channels (channels): its channels: 7 | 0:8 | 1,5,9 | all
        indices (int list): the dataset images (their indices) accentuated
        regularize_layer: the earlier layer kept near the image's activations (default: the nearest layer the
            unit is computed from)
        penalty (number > 0): the regulariser's weight (1: the public implementation's default)
        steps (int >= 1): optimisation steps of each accentuation
        seed (int >= 0): random seed of the transforms
        model: the architecture, where the run has no run.json (see similarity)
        num_classes (int >= 1): classes of the head training added (with --model)
        top (paper|single): the head training added (with --model)
        multi_label (bool): the head has independent sigmoid outputs (with --model)
        split: the dataset split read
        image_size (int >= 1): side the images are resized to (default: the run's, else 224)
        batch_size (int >= 1): images per batch
        label: the run's name in the tables (default: the run folder's name)
        out (folder): the output folder
        overwrite (bool): replace what --out holds instead of resuming it
        progress (bool): show a progress bar
    """
    from lucidtl.analysis import building_blocks as bb
    from lucidtl.analysis import trust
    from lucidtl.optvis import features
    from lucidtl.selection import parse_channels

    if layer is None:
        raise InvalidArgumentError("no layer; pass --layer NAME (list them with python -m lucidtl.render layers)")
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty <= 0:
        raise InvalidArgumentError(f"--penalty must be a number > 0, got {penalty!r}")
    inp = _blocks_inputs(run, checkpoints, dataset, str(layer), model, num_classes, top, multi_label, split,
                         image_size, skip_bad_images, batch_size, label)
    chans = parse_channels(channels, features.channel_count(inp.model, str(layer)))
    if regularize_layer is None:
        below = trust.layers_below(inp.model, str(layer), 1)
        if not below:
            raise InvalidArgumentError(f"layer {layer!r} has no named layer below it to regularise; pass "
                                       "--regularize-layer")
        regularize_layer = below[-1]
    features.endpoint(inp.model, str(regularize_layer))
    files = bb.accentuations_over_checkpoints(inp, chans, str(regularize_layer), indices, out, penalty=float(penalty),
                                              steps=steps, seed=seed, batch_size=batch_size, overwrite=overwrite,
                                              progress=progress, report=None if progress else print)
    return Written(files)
