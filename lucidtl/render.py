"""`python -m lucidtl.render`: render channels of a layer to PNGs (+ a labelled grid and a JSON record).

    python -m lucidtl.render                                   # 8 channels of Mixed_4c into ./out/
    python -m lucidtl.render --layer Mixed_4c_Branch_2_b_3x3 --channels 0:8 --thresholds 64,512
    python -m lucidtl.render --run runs/pets --checkpoint 10 --layer Mixed_4c --channels 0:8
    python -m lucidtl.render layers [--model keras.applications.InceptionV3]
"""
import dataclasses
import glob
import importlib
import json
import os

from lucidtl import cli
from lucidtl.atomic import clear_stale_pattern
from lucidtl.errors import InvalidArgumentError, LucidtlError
from lucidtl.loading import (  # noqa: F401 (re-exported)
    MAX_SIZE, MIN_SIZE, PARAMS, TRANSFORMS, check_size, load_model, load_run)
from lucidtl.selection import parse_channels

def _thresholds(steps, thresholds):
    from lucidtl.optvis.render import check_thresholds

    steps = cli.integer("steps", steps, minimum=0)
    if thresholds is None:
        return [steps]
    ts = check_thresholds(thresholds)
    if ts[-1] > steps:
        raise InvalidArgumentError(f"threshold {ts[-1]} is beyond --steps {steps}; raise --steps or drop it")
    return sorted(set(ts) | {steps})


def make_param(kind, size, batch, decorrelate=True, channels=3, maco=None):
    """A parameterisation factory for the CLI's --param choice (maco: param.maco's spectrum, mean, std)."""
    from lucidtl.optvis import param

    if kind not in PARAMS:
        raise InvalidArgumentError(f"unknown --param {kind!r}; choose one of {', '.join(PARAMS)}")
    if kind == "maco":
        return lambda: param.maco(size, batch=batch, decorrelate=decorrelate, channels=channels, **(maco or {}))
    if kind in ("fft", "pixel"):
        return lambda: param.image(size, batch=batch, fft=kind == "fft", decorrelate=decorrelate,
                                   channels=channels)
    if kind == "laplacian":
        return lambda: param.to_valid_rgb(param.laplacian_pyramid_image([batch, size, size, channels]),
                                          decorrelate=decorrelate)
    return lambda: param.cppn(size, batch=batch, num_output_channels=channels)


def channel_objective(layer, channels, negative=False, diversity=0.0):
    """One image per channel: sum_i channel(layer, channels[i], batch=i) (minus diversity if asked).

    negative: maximise -channel of the pre-ReLU activation (Lucid's negative visualisation)."""
    from lucidtl.optvis import objectives as obj

    terms = [obj.channel(layer, c, batch=i) for i, c in enumerate(channels)]
    total = sum(terms[1:], terms[0])
    if negative:
        total = -total
    if diversity:
        total = total - diversity * obj.diversity(layer)
    return total


def _resume_values(record_path, settings, overwrite):
    """Objective values (the loop's, and float32 on the saved images) of an earlier run with the same settings;
    an error if the settings differ."""
    if overwrite or not os.path.exists(record_path):
        return {}, {}
    try:
        with open(record_path) as f:
            previous = json.load(f)
    except (OSError, ValueError):
        previous = {}
    previous.setdefault("precision", "float32")  # records from before the setting existed
    if any(previous.get(k) != v for k, v in settings.items()):
        changed = [k for k, v in settings.items() if previous.get(k) != v]
        raise InvalidArgumentError(
            f"{os.path.dirname(record_path) or '.'} holds a render with other settings ({', '.join(changed[:3])}); "
            "use another --out, or --overwrite to replace it"
        )
    return dict(previous.get("objective_values", {})), dict(previous.get("objective_values_float32", {}))


@dataclasses.dataclass
class RenderResult:
    pngs: list
    grid: str
    record: str
    random_weights: bool


def render(model="inception_v1", weights=None, layer="Mixed_4c", channels="0:8", size=128, steps=512,
           thresholds=None, transforms="standard", param="fft", decorrelate=True, negative=False,
           diversity=0.0, seed=0, out="out", batch_size=32, relu_gradient_override=True, progress=True,
           verbose=False, overwrite=False, run=None, checkpoint=None, precision="float32", aligned=False,
           input_range=None, custom_objects=None, dataset=None, spectrum=None, max_images=256):
    """Render channels of a layer: one PNG per channel and threshold, a labelled grid and a JSON record.

    Up to batch_size channels are optimised together. A killed run resumes: batches whose objective values
    are in the record and whose PNGs all exist are not rendered again (each batch has its own seed, so the result equals an uninterrupted run). A
    folder holding a render with other settings is an error unless overwrite=True.

    Args:
        model: inception_v1 | a .keras or .h5 file | a SavedModel folder | keras.applications.X | a dotted builder
        weights: imagenet | random | a weights file; default ImageNet where available, else random
        run (run): a training run folder: render its model (head included) at --checkpoint
        checkpoint (checkpoint): the saved iteration of --run to render, or last (default: last)
        input_range (range): LO,HI the model expects its input in (e.g. 0,255); default: the model's known
            range, else 0,1; recorded in the render record
        custom_objects: module[:Name,...] imported (its Keras classes registered) before a .keras or .h5 model loads
        layer: the layer whose channels are drawn (`python -m lucidtl.render layers` lists them; a layer of a
            nested model by its path, resnet50/conv3_block1_out; class_score: the class scores, channel k being
            class k's score before the final softmax / sigmoid)
        channels (channels): which channels: 7 | 0:8 | 1,5,9 | all
        size (int in [16, 4096]): side of the rendered images in px
        steps (int >= 0): optimisation steps
        thresholds (int list): also save the images after these steps (comma list, e.g. 64,512)
        transforms (standard|distill|none|patch): the transformation robustness set (Lucid's standard_transforms)
        param (fft|pixel|laplacian|cppn|maco): the image parameterisation (maco: MaCo's, phase only; an alpha
            map *_alpha.png beside each picture)
        decorrelate (bool): optimise in decorrelated colour space
        negative (bool): maximise minus the channel (of the pre-ReLU activation): Lucid's negative images
        diversity (number >= 0): weight of Lucid's diversity term (0: none)
        seed (int >= 0): random seed; the same seed gives the same images
        out (folder): the output folder
        batch_size (int >= 1): channels optimised together
        relu_gradient_override (bool): Lucid's redirected ReLU gradient for the first 17 steps (0..16)
        progress (bool): show a progress bar
        verbose (bool): print the objective at every threshold
        overwrite (bool): render everything anew in a folder holding another render
        precision (float32|bfloat16|float16): what the network computes in (float32: Lucid's numbers)
        aligned (bool): with --run: every checkpoint of the run in one optimisation (aligned strips)
        dataset (dataset): real images (folder:PATH, a dataset name, or an .npy / .npz file), read at --size:
            their mean amplitude spectrum is --param maco's, and the record gets each picture's trust
            measures (reach, path similarity; lucidtl.analysis.trust)
        spectrum (file): --param maco's amplitude spectrum, a stored .npy [channels, H, W//2+1] (default: the
            --dataset images' mean spectrum, else 1/f)
        max_images (int >= 1): --dataset images read at most
    """
    from lucidtl import imageio
    from lucidtl.optvis import features, precision as precision_lib
    from lucidtl.optvis.render import Renderer

    size = cli.integer("size", size, minimum=MIN_SIZE)
    if size > MAX_SIZE:
        raise InvalidArgumentError(f"--size {size} is too large: at most {MAX_SIZE} px")
    batch_size = cli.integer("batch-size", batch_size)
    thresholds = _thresholds(steps, thresholds)
    cli.choice("transforms", transforms, TRANSFORMS)
    cli.choice("param", param, PARAMS)
    if not isinstance(diversity, (int, float)) or diversity < 0:
        raise InvalidArgumentError(f"--diversity must be a number >= 0, got {diversity!r}")
    seed = cli.integer("seed", seed, minimum=0)
    max_images = cli.integer("max-images", max_images)
    precision = precision_lib.require_fast(precision_lib.check(precision))
    if spectrum is not None and param != "maco":
        raise InvalidArgumentError("--spectrum is --param maco's amplitude spectrum: add --param maco or drop "
                                   "--spectrum")
    if aligned and (dataset is not None or spectrum is not None):
        raise InvalidArgumentError("--aligned draws with its own FFT parameterisation: drop --dataset / --spectrum")
    if aligned:
        if precision != "float32":
            raise InvalidArgumentError(f"--aligned renders in float32 only; drop --precision {precision}")
        return _aligned(run, checkpoint, model, weights, param, negative, diversity, layer, channels, size, thresholds,
                        transforms, seed, out, batch_size, relu_gradient_override, progress, overwrite)

    layer = str(layer)
    net, info = load_model(model, weights, run=run, checkpoint=checkpoint, layer=layer,
                           custom_objects=custom_objects, input_range=input_range)
    precision_lib.lowered(net, precision)  # a model it cannot take: refused before the first write
    count = features.channel_count(net, layer)
    chans = parse_channels(channels, count)
    target = layer + features.PRE_RELU if negative else layer
    if negative:
        features.endpoint(net, target)  # fails early when there is no pre-ReLU endpoint
    check_size(net, target, size, transforms, info.input_range)

    image_channels = net.inputs[0].shape[-1] or 3
    real, amplitude, spectrum_source = _real_images(dataset, spectrum, param, size, max_images, image_channels)

    tag = (f"{layer}_neg" if negative else layer).replace("/", "_")  # Lucid graph names hold slashes
    settings = {
        "model": str(model) if run is None else info.name,  # a run's own model, by its name
        "weights": info.weights_source, "random_weights": info.random_weights,
        "layer": layer, "objective_layer": target, "channels": chans, "size": size,
        "thresholds": thresholds, "updates_at_threshold": [t + 1 for t in thresholds],
        "transforms": transforms, "param": param, "decorrelate": bool(decorrelate), "negative": bool(negative),
        "diversity": diversity, "seed": seed, "batch_size": batch_size, "input_range": list(info.input_range),
        "relu_gradient_override": bool(relu_gradient_override), "png_encoding": "uint8 = round(255 * image)",
        "precision": precision,
    }
    if param == "maco":
        settings["spectrum"] = spectrum_source
    if dataset is not None:
        settings.update(dataset=str(dataset), max_images=max_images)
    record_path = os.path.join(out, f"{tag}_render.json")
    values, values32 = _resume_values(record_path, settings, overwrite)
    hint = precision_lib.hint(precision)
    if hint and progress:
        print(hint)
    clear_stale_pattern(out, f"{glob.escape(tag)}_*")  # temporary files of writes a kill cut short
    pngs, alpha_pngs, rows = [], [], {t: [] for t in thresholds}
    chunks = [chans[i:i + batch_size] for i in range(0, len(chans), batch_size)]
    for k, chunk in enumerate(chunks):
        paths = {(c, t): os.path.join(out, f"{tag}_{c:04d}_{t}.png") for c in chunk for t in thresholds}
        alphas = {key: p[:-len(".png")] + "_alpha.png" for key, p in paths.items()} if param == "maco" else {}
        keys = [f"{t}:{chunk[0]}-{chunk[-1]}" for t in thresholds]
        if not overwrite and all(key in values for key in keys) and all(
                os.path.exists(p) for p in [*paths.values(), *alphas.values()]):
            for t in thresholds:  # done before a kill: the record holds its values, every PNG exists
                rows[t] += [imageio.load_png(paths[c, t]) for c in chunk]
                pngs += [paths[c, t] for c in chunk]  # the order a render writes them in
                alpha_pngs += [alphas[c, t] for c in chunk] if alphas else []
            continue
        if progress and len(chunks) > 1:
            print(f"batch {k + 1}/{len(chunks)}: channels {chunk[0]}..{chunk[-1]}")
        renderer = Renderer(
            net, channel_objective(target, chunk, negative=negative, diversity=diversity),
            param_f=make_param(param, size, len(chunk), decorrelate, image_channels, amplitude),
            transforms=transforms, relu_gradient_override=relu_gradient_override,
            seed=seed + k * batch_size, input_range=info.input_range, precision=precision,
            transparency=param == "maco")

        kept, kept_alpha = {}, {}

        def keep(i, value, batch, chunk=chunk, kept=kept, kept_alpha=kept_alpha, renderer=renderer):
            values[f"{i}:{chunk[0]}-{chunk[-1]}"] = value
            kept[i] = batch
            if param == "maco":
                kept_alpha[i] = renderer.transparency_map()

        renderer.run(thresholds, verbose=verbose, progress=progress, callback=keep)
        for t in thresholds:  # in float32 on the images as the PNGs hold them: comparable across precisions
            values32[f"{t}:{chunk[0]}-{chunk[-1]}"] = renderer.evaluate(imageio.as_saved(kept[t]))
        # the record first, then the PNGs: a batch counts as done only when both are there, so a kill
        # anywhere in between re-renders it (same seed, same values and bytes) and loses nothing
        imageio.save_json(dict(settings, status="running", objective_values=values,
                               objective_values_float32=values32), record_path)
        for t in thresholds:
            for j, (c, img) in enumerate(zip(chunk, kept[t])):
                if alphas:  # MaCo's transparency first: the picture's PNG marks the pair as written
                    alpha_pngs.append(imageio.save_png(kept_alpha[t][j], alphas[c, t]))
                pngs.append(imageio.save_png(img, paths[c, t]))
                rows[t].append(img)

    title, fill = (imageio.RANDOM_TITLE, (160, 0, 0)) if info.random_weights else (None, (0, 0, 0))
    if run is not None:  # which checkpoint the grid shows
        from lucidtl.run import Run

        title = checkpoint_title(Run.of(run), checkpoint)
    grid = imageio.save_grid([rows[t] for t in thresholds], os.path.join(out, f"{tag}_grid.png"),
                             row_labels=[f"t={t}" for t in thresholds], col_labels=[f"ch {c}" for c in chans],
                             title=title, title_fill=fill)
    done = dict(settings, status="complete", objective_values=values, objective_values_float32=values32,
                pngs=[os.path.basename(p) for p in pngs])
    if alpha_pngs:
        done["alpha_pngs"] = [os.path.basename(p) for p in alpha_pngs]
    if real is not None:
        from lucidtl.analysis import trust

        saved = {t: imageio.as_saved(rows[t]) for t in thresholds}  # the pictures as the PNGs hold them
        done["trust"] = trust.record_trust(net, target, chans, saved, real, negative, info.input_range)
    record = imageio.save_json(done, record_path)
    return RenderResult(pngs, grid, record, info.random_weights)


def _real_images(dataset, spectrum, param, size, max_images, channels):
    """(dataset images or None, param.maco's spectrum options or None, where the spectrum comes from), read
    and checked before anything is written."""
    maco_lib = importlib.import_module("lucidtl.optvis.param.maco")
    real = None
    if dataset is not None:
        from lucidtl.analysis import trust

        real, _labels = trust.load_images(dataset, size, max_images)
        if real.shape[-1] != channels:
            raise InvalidArgumentError(f"--dataset images have {real.shape[-1]} channels but the model takes "
                                       f"{channels}")
    if param != "maco":
        return real, None, None
    if spectrum is not None:
        return real, {"spectrum": maco_lib.load_spectrum(spectrum)}, f"file {spectrum}"
    if real is not None:
        mean, std = maco_lib.natural_statistics(real)
        options = {"spectrum": maco_lib.natural_spectrum(real), "mean": mean, "std": std}
        return real, options, f"mean amplitude of {len(real)} images of {dataset} (their mean colour and contrast)"
    return real, None, f"1/f^{maco_lib.DEFAULT_ALPHA:g}"


def checkpoint_title(run, checkpoint):
    """The grid title of a run's checkpoint: `<run folder name>, iteration N`."""
    return f"{run.name}, iteration {run.last(checkpoint)}"


def _aligned(run, checkpoint, model, weights, param, negative, diversity, layer, channels, size, thresholds,
             transforms, seed, out, batch_size, relu_gradient_override, progress, overwrite):
    """render --aligned: lucidtl.recipes.aligned_strips.aligned_render, after its own checks."""
    from lucidtl.recipes.aligned_strips import aligned_render

    if run is None:
        raise InvalidArgumentError("--aligned renders every checkpoint of a run: pass --run RUN_FOLDER")
    if checkpoint is not None or model not in (None, "inception_v1") or weights is not None:
        raise InvalidArgumentError("--aligned renders every checkpoint of --run: drop --checkpoint / --model / "
                                   "--weights")
    if param != "fft" or negative or diversity:
        raise InvalidArgumentError("--aligned draws positive channel images with its own FFT parameterisation: "
                                   "drop --param / --negative / --diversity")
    pngs, grid, record = aligned_render(run, str(layer), channels, size, thresholds[-1], thresholds, transforms,
                                        seed, out, batch_size, relu_gradient_override, progress, overwrite)
    return RenderResult(pngs, grid, record, False)


def layers(model="inception_v1", weights="random", all=False, run=None, custom_objects=None):  # noqa: A002
    """The layer catalogue: name (a path `model/layer` inside nested models and into layers' sublayers, as
    `vit_encoder/transformer_block_1/mlp/dense_1`), class (with a fused activation, e.g. Conv2D(relu)),
    channels, whether `<name>_pre_relu` exists, and the shape an objective sees (tokens as their patch grid).

    Args:
        model: inception_v1 | a .keras or .h5 file | a SavedModel folder | keras.applications.X | a dotted builder
        weights: imagenet | random | a weights file (they do not change the catalogue)
        all (bool): list every layer; by default only activations (fused ones too), concatenations and pooling
        run (run): list the layers of this training run's model (head included)
        custom_objects: module[:Name,...] imported (its Keras classes registered) before a .keras or .h5 model loads
    """
    from lucidtl import models
    from lucidtl.optvis import features

    if run is not None:
        net, _ = load_run(run, None, model)
    else:
        net, _ = models.build_model(model, weights=weights, custom_objects=custom_objects)
    rows = []
    for e in features.catalogue(net):
        if not all and e.kind in ("InputLayer", "Conv2D", "Rescaling", "Dropout") and not e.activation:
            continue
        kind = f"{e.kind}({e.activation})" if e.activation else e.kind
        shape = "x".join("?" if d is None else str(d) for d in e.shape[1:]) or "-"
        rows.append((e.name, kind, "-" if e.channels is None else str(e.channels), "yes" if e.pre_relu else "",
                     shape))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'layer'.ljust(width)}  {'kind':<20} {'channels':>8}  pre_relu  shape"]
    lines += [f"{n.ljust(width)}  {k:<20} {c:>8}  {p:<8}  {h}" for n, k, c, p, h in rows]
    return "\n".join(lines)


def _report(result):
    folder = os.path.dirname(result.grid) or "."
    n = len(result.pngs)
    print(f"wrote {n} PNG{'' if n == 1 else 's'} to {folder}/"
          + (" (RANDOM weights: an untrained network)" if result.random_weights else ""))
    print(f"grid:   {result.grid}")
    print(f"record: {result.record}")


def main(argv=None):
    cli.run({"render": cli.printing(render, _report), "layers": cli.printing(layers)}, default="render",
            argv=argv)


if __name__ == "__main__":
    main()

__all__ = ["render", "layers", "parse_channels", "channel_objective", "LucidtlError"]
