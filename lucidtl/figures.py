"""The paper's figures from a training run folder (`python -m lucidtl.figures temporal|prepost|figure7 --run RUN`).

- temporal (Figure 6): chosen channels (columns) x saved iterations (rows), one labelled PNG.
- prepost (Figures 2/3): the same channels before (iteration 0) and after fine-tuning (the last checkpoint).
- figure7 (Figure 7): the first 4 channels of every 7th conv layer (ending with the deepest), pre vs post.
With --atlas ATLAS the cells are taken from an atlas of the run (python -m lucidtl.atlas) where it has them.
Every cell is rendered with the same seed and settings, so what changes between rows is the weights. Cells
are kept as PNGs beside the figure; a killed job re-renders only the missing checkpoints.
"""
import hashlib
import json
import os

from lucidtl import cli, imageio
from lucidtl.errors import ChannelRangeError, InvalidArgumentError
from lucidtl.run import Run
from lucidtl.selection import needs_sizes, parse_channels, parse_layer_channels


def short_name(layer, channel):
    """The paper's labels: Mixed_4c_Branch_2_b_3x3, 5 -> 4c_2_b_3x3:5."""
    return f"{layer.replace('Mixed_', '').replace('Branch_', '')}:{channel}"


FIGURE7_LAYERS = ("Conv2d_2b_1x1", "Mixed_3b_Branch_3_b_1x1", "Mixed_4b_Branch_1_a_1x1", "Mixed_4c_Branch_2_a_1x1",
                  "Mixed_4d_Branch_0_a_1x1", "Mixed_4e_Branch_1_b_3x3", "Mixed_4f_Branch_2_b_3x3",
                  "Mixed_5b_Branch_3_b_1x1")  # the paper's: every 7th conv layer, ending with the deepest


def atlas_cells(atlas, run, size, steps):
    """{(iteration, layer, channel): PNG path} of the atlas images of this run at this size and step count
    (matched by the run folder's path, else by its name)."""
    from lucidtl.atlas import read_manifest, read_settings

    settings = read_settings(atlas)
    if settings.get("size") != size or settings.get("steps") != steps:
        return {}
    records = [r for r in read_manifest(atlas) if r.get("iteration") is not None]
    here = os.path.realpath(run)
    mine = [r for r in records if r.get("run_path") and os.path.realpath(r["run_path"]) == here]
    if not mine:
        mine = [r for r in records if r.get("run") == os.path.basename(os.path.normpath(run))]
    return {(r["iteration"], r["layer"], r["channel"]): os.path.join(atlas, r["png"]) for r in mine
            if os.path.isfile(os.path.join(atlas, r["png"]))}


def _size_steps(atlas, size, steps):
    """None means: the atlas's settings when an atlas is given, else Lucid's 128 px and 512 steps."""
    if atlas is not None:
        from lucidtl.atlas import read_settings

        settings = read_settings(atlas)
        size = settings["size"] if size is None else size
        steps = settings["steps"] if steps is None else steps
    return (128 if size is None else size), (512 if steps is None else steps)


def _figure(run, rows, col_labels, name, size, steps, seed, out, progress, atlas=None):
    """rows: [(iteration, row label, [(layer, channel), ...])]. Cells come from the atlas when it holds them
    (same run, size and steps), else from the figure's cell cache, else are rendered: all missing cells of
    one checkpoint in one batch."""
    settings = run.settings
    size, steps = _size_steps(atlas, size, steps)
    if not isinstance(size, int) or size < 16 or not isinstance(steps, int) or steps < 1:
        raise InvalidArgumentError(f"--size must be an integer >= 16 and --steps >= 1 (got {size!r}, {steps!r})")
    chans = list(dict.fromkeys(c for _, _, cells in rows for c in cells))
    input_range = run.input_range
    out = os.fspath(out or os.path.join(run, "figures"))
    key = json.dumps([chans, size, steps, seed, list(input_range)])
    cells = os.path.join(out, f"{name}-cells-{hashlib.sha1(key.encode()).hexdigest()[:8]}")
    found = atlas_cells(atlas, run, size, steps) if atlas is not None else {}
    paths = {(it, layer, ch): found.get((it, layer, ch), os.path.join(cells, f"iter_{it:06d}_{layer}_{ch:04d}.png"))
             for it, _, row in rows for layer, ch in row}
    model, order = None, list(dict.fromkeys(it for it, _, _ in rows))
    for n, it in enumerate(order):
        missing = [(layer, ch) for (i, layer, ch), p in paths.items() if i == it and not os.path.exists(p)]
        if not missing:
            continue
        from lucidtl.optvis.render import render_channels

        if progress:
            print(f"{name}: iteration {it} ({n + 1}/{len(order)})")
        first = model is None
        model = run.model_at(it, slot="figure")
        if first:
            _check_channels(model, chans)  # before the first render
        images = render_channels(model, missing, size, steps, seed, input_range)
        for img, (layer, ch) in zip(images, missing):
            imageio.save_png(img, paths[it, layer, ch])
    grid = [[imageio.load_png(paths[it, layer, ch]) for layer, ch in row] for it, _, row in rows]  # as saved
    path = os.path.join(out, f"{name}.png")
    imageio.save_grid(grid, path, row_labels=[label for _, label, _ in rows], col_labels=col_labels,
                      title=imageio.RANDOM_TITLE.replace("an untrained network", "training started from random "
                                                         "weights") if settings.get("weights") == "random" else None)
    imageio.save_json({"run": os.path.abspath(run), "channels": [list(c) for c in chans],
                       "rows": [it for it, _, _ in rows], "row_labels": [label for _, label, _ in rows],
                       "size": size, "steps": steps, "seed": seed, "input_range": list(input_range),
                       "cells": os.path.relpath(cells, out),
                       "atlas": None if atlas is None else os.path.abspath(atlas),
                       "from_atlas": sorted(os.path.relpath(p, atlas) for p in set(paths.values())
                                            if atlas is not None and p in found.values())},
                      os.path.join(out, f"{name}.json"))
    return path


def _check_channels(model, chans):
    from lucidtl.optvis import features

    counts = {}
    for layer, ch in chans:
        if layer not in counts:
            counts[layer] = features.channel_count(model, layer)  # unknown layer: the closest names
        if not 0 <= ch < counts[layer]:
            raise ChannelRangeError(f"channel {layer}:{ch} is out of range: {layer} has {counts[layer]} channels "
                                    f"(0..{counts[layer] - 1}); check --channels")


def _layer_channels(run, channels, iteration):
    """--channels (layer-qualified) as [(layer, channel)]; `all` and open ranges read the layer's size from
    the run's model."""
    if not needs_sizes(channels):
        return parse_layer_channels(channels)
    from lucidtl.optvis import features

    model = run.model_at(iteration)
    return parse_layer_channels(channels, lambda layer: features.channel_count(model, layer))


def temporal(run, channels, checkpoints=None, size=None, steps=None, seed=0, out=None, progress=True,
             atlas=None):
    """Figure 6: channels (columns) x the run's saved iterations (rows), one labelled PNG.

    Args:
        run (run): the training run folder
        channels (layer channels): layer-qualified channels, e.g. Mixed_4c_Branch_2_b_3x3:5,Mixed_4d:0:4
        checkpoints (int list): the saved iterations to show, comma separated (default: all)
        size (int in [16, 4096]): side of each cell in px (default: the atlas's, else 128)
        steps (int >= 1): render steps of each cell (default: the atlas's, else 512)
        seed (int >= 0): the same starting image in every cell
        out (folder): where the figure goes (default: <run>/figures)
        progress (bool): print one line per checkpoint rendered
        atlas (str): an atlas folder of this run; its images are used instead of rendering
    """
    run = Run.of(run)
    its = run.saved(checkpoints)
    chans = _layer_channels(run, channels, its[0])
    return _figure(run, [(i, f"iter {i}", chans) for i in its], [short_name(*c) for c in chans], "temporal",
                   size, steps, seed, out, progress, atlas)


def _pre_post(run):
    records = run.records
    pre, post = records[0]["iteration"], records[-1]["iteration"]
    if pre == post:
        raise InvalidArgumentError(f"run {run.path} has a single checkpoint; pre/post needs two")
    return pre, post


def prepost(run, channels, size=None, steps=None, seed=0, out=None, progress=True, atlas=None):
    """Figures 2/3: channels before (the first checkpoint) and after (the last checkpoint) fine-tuning.

    Args:
        run (run): the training run folder
        channels (layer channels): layer-qualified channels, e.g. Mixed_4c_Branch_2_a_1x1:0:2
        size (int in [16, 4096]): side of each cell in px (default: the atlas's, else 128)
        steps (int >= 1): render steps of each cell (default: the atlas's, else 512)
        seed (int >= 0): the same starting image in every cell
        out (folder): where the figure goes (default: <run>/figures)
        progress (bool): print one line per checkpoint rendered
        atlas (str): an atlas folder of this run; its images are used instead of rendering
    """
    run = Run.of(run)
    pre, post = _pre_post(run)
    chans = _layer_channels(run, channels, pre)
    return _figure(run, [(pre, f"pre (iter {pre})", chans), (post, f"post (iter {post})", chans)],
                   [short_name(*c) for c in chans], "prepost", size, steps, seed, out, progress, atlas)


def figure7(run, layers=FIGURE7_LAYERS, channels="0:4", size=None, steps=None, seed=0, out=None, progress=True,
            atlas=None):
    """Figure 7: the same channels of each of several layers, one row before and one after fine-tuning per layer.

    Args:
        run (run): the training run folder
        layers (list): the layers (default: the paper's eight, every 7th conv layer)
        channels (channels): the channels shown of every layer: 0:4 | 1,5,9 (a range or list, not all)
        size (int in [16, 4096]): side of each cell in px (default: the atlas's, else 128)
        steps (int >= 1): render steps of each cell (default: the atlas's, else 512)
        seed (int >= 0): the same starting image in every cell
        out (folder): where the figure goes (default: <run>/figures)
        progress (bool): print one line per checkpoint rendered
        atlas (str): an atlas folder of this run; its images are used instead of rendering
    """
    run = Run.of(run)
    pre, post = _pre_post(run)
    names = cli.split_list(layers)
    chosen = parse_channels(channels, None)
    if not names or not chosen:
        raise InvalidArgumentError(f"--layers must name layers and --channels be a range or list such as 0:4 "
                                   f"(got {layers!r}, {channels!r})")
    rows = []
    for layer in names:
        label = short_name(layer, 0).rsplit(":", 1)[0]
        cells = [(layer, c) for c in chosen]
        rows += [(pre, f"{label} pre", cells), (post, f"{label} post", cells)]
    return _figure(run, rows, [f"ch {c}" for c in chosen], "figure7", size, steps, seed, out,
                   progress, atlas)


def main(argv=None):
    cli.run({"temporal": cli.printing(temporal), "prepost": cli.printing(prepost), "figure7": cli.printing(figure7)},
            "temporal", argv)


if __name__ == "__main__":
    main()
