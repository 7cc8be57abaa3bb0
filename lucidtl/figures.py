"""The paper's figures from a training run folder (`python -m lucidtl.figures temporal|prepost RUN ...`).

- temporal (Figure 6): chosen channels (columns) x saved iterations (rows), one labelled PNG.
- prepost (Figures 2/3): the same channels before (iteration 0) and after fine-tuning (the last checkpoint).
Every cell is rendered with the same seed and settings, so what changes between rows is the weights. Cells
are kept as PNGs beside the figure; a killed job re-renders only the missing checkpoints.
"""
import hashlib
import json
import os

from lucidtl import imageio
from lucidtl.cli import printing, run
from lucidtl.errors import InvalidArgumentError
from lucidtl.train import run as runs
from lucidtl.train.live import parse_channels


def short_name(layer, channel):
    """The paper's labels: Mixed_4c_Branch_2_b_3x3, 5 -> 4c_2_b_3x3:5."""
    return f"{layer.replace('Mixed_', '').replace('Branch_', '')}:{channel}"


def render_channels(model, channels, size=128, steps=512, seed=0, input_range=(0.0, 1.0), transforms="standard"):
    """One Lucid render (FFT + decorrelated image, standard transforms, Adam 0.05) of every (layer, channel)
    in one batch; float32 [len(channels), size, size, 3]."""
    from lucidtl.optvis import objectives, param
    from lucidtl.optvis.render import Renderer

    terms = [objectives.channel(layer, ch, batch=i) for i, (layer, ch) in enumerate(channels)]
    renderer = Renderer(model, sum(terms[1:], terms[0]), param_f=lambda: param.image(size, batch=len(channels)),
                        transforms=transforms, seed=seed, input_range=input_range)
    return renderer.run(thresholds=(steps,), verbose=False)[-1]


def _iterations(records, iterations):
    saved = [r["iteration"] for r in records]
    if iterations is None:
        return saved
    wanted = [int(i) for i in (str(iterations).split(",") if isinstance(iterations, (str, int)) else iterations)]
    missing = [i for i in wanted if i not in saved]
    if missing:
        raise InvalidArgumentError(f"no checkpoint at iteration {missing[0]}; saved: {', '.join(map(str, saved))}")
    return wanted


def _figure(run_dir, channels, rows, row_labels, name, size, steps, seed, out, progress):
    records = runs.checkpoints(run_dir)
    settings = runs.read_settings(run_dir) or {}
    chans = parse_channels(channels)
    if not isinstance(size, int) or size < 16 or not isinstance(steps, int) or steps < 1:
        raise InvalidArgumentError(f"--size must be an integer >= 16 and --steps >= 1 (got {size!r}, {steps!r})")
    input_range = tuple(settings.get("input_range", (0.0, 1.0)))
    out = os.fspath(out or os.path.join(run_dir, "figures"))
    key = json.dumps([chans, size, steps, seed, list(input_range)])
    cells = os.path.join(out, f"{name}-cells-{hashlib.sha1(key.encode()).hexdigest()[:8]}")
    model, grid = None, []
    for n, it in enumerate(rows):
        paths = [os.path.join(cells, f"iter_{it:06d}_{layer}_{ch:04d}.png") for layer, ch in chans]
        if all(os.path.exists(p) for p in paths):
            grid.append([imageio.load_png(p) for p in paths])
            continue
        if progress:
            print(f"{name}: iteration {it} ({n + 1}/{len(rows)})")
        model = runs.load_checkpoint(run_dir, it, model=None if records[0]["path"].endswith(".keras") else model)
        images = render_channels(model, chans, size, steps, seed, input_range)
        for img, p in zip(images, paths):
            imageio.save_png(img, p)
        grid.append([imageio.load_png(p) for p in paths])  # exactly what was saved
    path = os.path.join(out, f"{name}.png")
    imageio.save_grid(grid, path, row_labels=row_labels, col_labels=[short_name(*c) for c in chans])
    imageio.save_json({"run": os.path.abspath(run_dir), "channels": [list(c) for c in chans], "rows": list(rows),
                       "size": size, "steps": steps, "seed": seed, "input_range": list(input_range),
                       "cells": os.path.relpath(cells, out)}, os.path.join(out, f"{name}.json"))
    return path


def temporal(run_dir, channels, iterations=None, size=128, steps=512, seed=0, out=None, progress=True):
    """Figure 6: `channels` ("layer:channel,...") x the run's saved iterations (or `iterations`)."""
    its = _iterations(runs.checkpoints(run_dir), iterations)
    return _figure(run_dir, channels, its, [f"iter {i}" for i in its], "temporal", size, steps, seed, out,
                   progress)


def prepost(run_dir, channels, size=128, steps=512, seed=0, out=None, progress=True):
    """Figures 2/3: `channels` before (first checkpoint) and after (last checkpoint) fine-tuning."""
    records = runs.checkpoints(run_dir)
    pre, post = records[0]["iteration"], records[-1]["iteration"]
    if pre == post:
        raise InvalidArgumentError(f"run {run_dir} has a single checkpoint; pre/post needs two")
    return _figure(run_dir, channels, [pre, post], [f"pre (iter {pre})", f"post (iter {post})"], "prepost",
                   size, steps, seed, out, progress)


def main(argv=None):
    run({"temporal": printing(temporal), "prepost": printing(prepost)}, "temporal", argv)


if __name__ == "__main__":
    main()
