"""`python -m lucidtl.stylegan`: a classifier's channel drawn by StyleGAN2 (latent ascent from w_avg).

    python -m lucidtl.stylegan ascent --pickle stylegan2-ffhq-config-f.pkl --weights celeba.weights.h5 \
        --layer Mixed_5c_Branch_3_b_1x1 --channel 7 --out out/
    python -m lucidtl.stylegan repeats --pickle ... --channel 7 --repeats 4          # Figure 4
    python -m lucidtl.stylegan side-by-side --pickle ... --channels 0,1,2,3          # Figure 1
    python -m lucidtl.stylegan ablation --pickle ... --channel 7 --max-k 39          # Figure 5
    python -m lucidtl.stylegan convert --pickle stylegan2-ffhq-config-f.pkl --out ffhq.npz
"""
import dataclasses
import os

import numpy as np

from lucidtl import cli
from lucidtl.atomic import atomic_path
from lucidtl.errors import InvalidArgumentError
from lucidtl.stylegan2.ascent import (DEFAULT_LAMBDA, DEFAULT_LAYER, DEFAULT_LR, DEFAULT_STEPS, NOISE_MODES,
                                      RESIZE_METHODS)


@dataclasses.dataclass
class Written:
    files: list
    note: str = ""


def _check(lam, steps, noise, resize):
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0:
        raise InvalidArgumentError(f"--lam must be a number >= 0, got {lam!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidArgumentError(f"--steps must be an integer >= 0, got {steps!r}")
    cli.choice("noise", noise, NOISE_MODES)
    cli.choice("resize", resize, RESIZE_METHODS)


def _setup(pickle, model, weights, layer, cache_dir):
    """(generator, classifier, ModelInfo), checking the layer before anything slow runs."""
    from lucidtl.optvis import features
    from lucidtl.render import load_model
    from lucidtl.stylegan2.pkl import load_generator

    if pickle is None:
        raise InvalidArgumentError("--pickle is required: an official StyleGAN2 .pkl or a converted .npz")
    net, info = load_model(model, weights)
    features.endpoint(net, str(layer))  # unknown layer: one line with the nearest names
    return load_generator(pickle, cache_dir=cache_dir), net, info


def _save_w(w, path):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, w)
    return path


def _record(path, **fields):
    from lucidtl import imageio

    return imageio.save_json(fields, path)


def ascent(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channel=0, lam=DEFAULT_LAMBDA,
           steps=DEFAULT_STEPS, lr=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear", size=None,
           seed=0, repeats=1, out="out", cache_dir=None):
    """Draw `channel` of `layer` with StyleGAN2: writes <layer>_<channel>_stylegan2[_r<i>].png, w* (.npy) and
    a JSON record (with --repeats K: K runs differing only in their noise, and a one-row grid)."""
    from lucidtl import imageio
    from lucidtl.stylegan2 import ascent as lib

    _check(lam, steps, noise, resize)
    gen, net, info = _setup(pickle, model, weights, layer, cache_dir)
    res = lib.ascent(gen, net, layer=str(layer), channel=int(channel), lam=lam, steps=steps, lr=lr,
                     w_plus=bool(w_plus), noise=noise, resize=resize, size=size, seed=seed, repeats=repeats,
                     input_range=info.input_range)
    tag = f"{layer}_{int(channel):04d}_stylegan2"
    files = []
    for r, img in enumerate(res.images):
        suffix = f"_r{r}" if repeats > 1 else ""
        files.append(imageio.save_png(img, os.path.join(out, f"{tag}{suffix}.png")))
    if repeats > 1:
        files.append(imageio.save_grid([list(res.images)], os.path.join(out, f"{tag}_repeats.png"),
                                       col_labels=[f"run {r}" for r in range(repeats)]))
    files.append(_save_w(res.w, os.path.join(out, f"{tag}_w.npy")))
    files.append(_record(os.path.join(out, f"{tag}.json"), pickle=str(pickle), model=str(model),
                         weights=info.weights_source, layer=str(layer), channel=int(channel), lam=lam, steps=steps,
                         lr=lr, w_plus=bool(w_plus), noise=noise, resize=resize, seed=seed, repeats=repeats,
                         w_avg=gen.w_avg_source, first_values=res.values[:, 0].tolist() if steps else [],
                         final_values=res.final_values.tolist()))
    return Written(files)


def repeats(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channel=0, lam=DEFAULT_LAMBDA,
            steps=DEFAULT_STEPS, lr=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear", size=None,
            seed=0, repeats=4, out="out", cache_dir=None):  # noqa: A002 - same flag as ascent's
    """Figure 4: `repeats` runs of the same channel (they differ only through the noise maps)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise InvalidArgumentError(f"--repeats must be an integer >= 2, got {repeats!r}")
    return ascent(pickle, model, weights, layer, channel, lam, steps, lr, w_plus, noise, resize, size, seed,
                  repeats, out, cache_dir)


def side_by_side(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channels="0,1,2,3",
                 size=128, lucid_steps=512, lam=DEFAULT_LAMBDA, steps=DEFAULT_STEPS, lr=DEFAULT_LR, w_plus=False,
                 noise="resample", resize="bilinear", classifier_size=None, seed=0, out="out", cache_dir=None):
    """Figure 1: Lucid renders (top row) above StyleGAN2 renders (bottom row), one column per channel."""
    from lucidtl import imageio
    from lucidtl.optvis import features
    from lucidtl.render import parse_channels
    from lucidtl.stylegan2.compare import side_by_side as lib

    _check(lam, steps, noise, resize)
    gen, net, info = _setup(pickle, model, weights, layer, cache_dir)
    chans = parse_channels(channels, features.channel_count(net, str(layer)))
    rows = lib(gen, net, str(layer), chans, size=size, lucid_steps=lucid_steps, steps=steps, lam=lam, lr=lr,
               w_plus=bool(w_plus), noise=noise, resize=resize, classifier_size=classifier_size, seed=seed,
               input_range=info.input_range)
    path = imageio.save_grid(rows, os.path.join(out, f"{layer}_side_by_side.png"), row_labels=["lucid", "stylegan2"],
                             col_labels=[f"ch {c}" for c in chans])
    return Written([path])


def ablation(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channel=0, max_k=39, cols=8,
             lam=DEFAULT_LAMBDA, steps=DEFAULT_STEPS, lr=DEFAULT_LR, w_plus=False, noise="resample",
             resize="bilinear", size=None, seed=0, out="out", cache_dir=None):
    """Figure 5: negate the k largest |weights| of the channel's filter, k = 0..max_k, draw each; a row-major
    grid of `cols` columns. The classifier's weights are restored afterwards."""
    from lucidtl import imageio
    from lucidtl.stylegan2.ablation import ablation as lib

    _check(lam, steps, noise, resize)
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise InvalidArgumentError(f"--cols must be an integer >= 1, got {cols!r}")
    gen, net, info = _setup(pickle, model, weights, layer, cache_dir)
    images, results = lib(gen, net, str(layer), int(channel), max_k=max_k, lam=lam, steps=steps, lr=lr,
                          w_plus=bool(w_plus), noise=noise, resize=resize, size=size, seed=seed,
                          input_range=info.input_range)
    rows = [list(images[i:i + cols]) for i in range(0, len(images), cols)]
    tag = f"{layer}_{int(channel):04d}_ablation"
    path = imageio.save_grid(rows, os.path.join(out, f"{tag}.png"),
                             row_labels=[f"k={i}.." for i in range(0, len(images), cols)],
                             col_labels=[f"+{j}" for j in range(min(cols, len(images)))])
    record = _record(os.path.join(out, f"{tag}.json"), pickle=str(pickle), weights=info.weights_source,
                     layer=str(layer), channel=int(channel), max_k=max_k, order="row-major, k = row * cols + col",
                     lam=lam, steps=steps, seed=seed, final_values=[float(r.final_values[0]) for r in results])
    return Written([path, record])


def convert(pickle=None, out=None, cache_dir=None):
    """Convert an official pickle once (cached by sha256) and, with --out, also write it to out (.npz)."""
    from lucidtl.stylegan2.pkl import load_generator, save_npz

    if pickle is None:
        raise InvalidArgumentError("--pickle is required: an official StyleGAN2 .pkl")
    gen = load_generator(pickle, cache_dir=cache_dir)
    files = []
    if out:
        if not str(out).endswith(".npz"):
            raise InvalidArgumentError(f"--out {out} must end in .npz")
        files.append(save_npz(gen, str(out), source=str(pickle)))
    c = gen.config
    return Written(files, f"{c.resolution}px, latent {c.latent_size}, w {c.dlatent_size}, {c.mapping_layers} mapping "
                          f"layers, {c.num_ws} ws; w_avg: {gen.w_avg_source}")


def _report(result):
    if result.note:
        print(result.note)
    for path in result.files:
        print(f"wrote {path}")


def main(argv=None):
    commands = {name: cli.printing(fn, _report) for name, fn in
                (("ascent", ascent), ("repeats", repeats), ("side-by-side", side_by_side), ("ablation", ablation),
                 ("convert", convert))}
    cli.run(commands, default="ascent", argv=argv)


if __name__ == "__main__":
    main()
