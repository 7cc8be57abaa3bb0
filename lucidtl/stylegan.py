"""`python -m lucidtl.stylegan`: a classifier's channel drawn by StyleGAN2 (latent ascent from w_avg).

    python -m lucidtl.stylegan ascent --pickle stylegan2-ffhq-config-f.pkl --run runs/celeba --checkpoint last \
        --layer Mixed_5c_Branch_3_b_1x1 --channel 7 --out out/
    python -m lucidtl.stylegan repeats --pickle ... --channel 7 --repeats 4          # Figure 4
    python -m lucidtl.stylegan side-by-side --pickle ... --channels 0,1,2,3          # Figure 1
    python -m lucidtl.stylegan ablation --pickle ... --channel 7 --max-k 39          # Figure 5
    python -m lucidtl.stylegan convert --pickle stylegan2-ffhq-config-f.pkl --out converted/
"""
import dataclasses
import os

from lucidtl import cli
from lucidtl.atomic import atomic_path
from lucidtl.errors import ChannelRangeError, InvalidArgumentError

# lucidtl.stylegan2.ascent's defaults, written out so that help and flag checks need no TensorFlow
# (tests/test_cli.py keeps them equal)
DEFAULT_LAYER = "Mixed_5c_Branch_3_b_1x1"
DEFAULT_LAMBDA = 0.01
DEFAULT_STEPS = 200
DEFAULT_LR = 0.05
NOISE_MODES = ("resample", "fixed")
RESIZE_METHODS = ("bilinear", "area")
ARGS = """
        pickle (file): an official StyleGAN2 .pkl (e.g. stylegan2-ffhq-config-f.pkl) or a converted .npz
        model: the classifier: inception_v1 | a .keras or .h5 file | keras.applications.X | a dotted builder
        weights: the classifier's weights: imagenet | random | a weights file
        run (run): a training run folder: its model (head included) at --checkpoint is the classifier
        checkpoint (checkpoint): the saved iteration of --run, or last (default: last)
        layer: the classifier's layer
        lam (number >= 0): weight of the penalty ||w - w_avg||^2 keeping w* near the average face
        steps (int >= 0): ascent steps
        learning_rate (number > 0): Adam's learning rate on w
        w_plus (bool): one w per synthesis layer (W+) instead of one w
        noise (resample|fixed): the generator's noise maps: new at every step, or fixed
        resize (bilinear|area): how the generated image is resized for the classifier
        seed (int >= 0): random seed (noise maps)
        out (folder): the output folder
        cache_dir (str): where converted pickles are cached (default: ~/.cache/lucidtl)
"""


@dataclasses.dataclass
class Written:
    files: list
    note: str = ""


def _setup(pickle, model, weights, layer, cache_dir, run=None, checkpoint=None, channels=()):
    """(generator, classifier, ModelInfo), checking the layer and channels before anything slow runs."""
    from lucidtl.optvis import features
    from lucidtl.loading import load_model
    from lucidtl.stylegan2.pkl import load_generator

    if pickle is None:
        raise InvalidArgumentError("--pickle is required: an official StyleGAN2 .pkl or a converted .npz")
    net, info = load_model(model, weights, run=run, checkpoint=checkpoint)
    count = features.channel_count(net, str(layer))  # unknown layer: one line with the nearest names
    bad = [c for c in channels if not 0 <= int(c) < count]
    if bad:
        raise ChannelRangeError(f"channel {bad[0]} is out of range: layer {layer} has {count} channels "
                                f"(0..{count - 1}); check --channel")
    return load_generator(pickle, cache_dir=cache_dir), net, info


def _save_w(w, path):
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, w)
    return path


def _record(path, **fields):
    from lucidtl import imageio

    return imageio.save_json(fields, path)


def _documented(doc):
    """Give a command its docstring, with the flags all StyleGAN2 commands share (ARGS) filled in."""
    def give(fn):
        fn.__doc__ = doc.replace("{ARGS}", ARGS)
        return fn

    return give


def _check(lam, steps, noise, resize):
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam < 0:
        raise InvalidArgumentError(f"--lam must be a number >= 0, got {lam!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InvalidArgumentError(f"--steps must be an integer >= 0, got {steps!r}")
    cli.choice("noise", noise, NOISE_MODES)
    cli.choice("resize", resize, RESIZE_METHODS)


@_documented("""Draw one channel with StyleGAN2: latent ascent from w_avg; a PNG, w* (.npy) and a JSON record.

    Writes <layer>_<channel>_stylegan2[_r<i>].png (with --repeats K: K runs differing only in their noise,
    and a one-row grid).

    Args:{ARGS}        channel (int >= 0): the channel drawn
        classifier_size (int >= 1): side of the image the classifier sees (default: its fixed input size, else
            the generator's resolution)
        repeats (int >= 1): runs of the same channel, differing only in their noise
        precision (float32|bfloat16|float16): what the classifier computes in (the generator stays float32)
    """)
def ascent(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channel=0, lam=DEFAULT_LAMBDA,
           steps=DEFAULT_STEPS, learning_rate=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear",
           classifier_size=None, seed=0, repeats=1, out="out", cache_dir=None, run=None, checkpoint=None,
           precision="float32"):
    from lucidtl import imageio
    from lucidtl.stylegan2 import ascent as lib

    from lucidtl.optvis import precision as precision_lib

    lr = learning_rate
    _check(lam, steps, noise, resize)
    precision = precision_lib.require_fast(precision_lib.check(precision))
    gen, net, info = _setup(pickle, model, weights, layer, cache_dir, run, checkpoint, [channel])
    precision_lib.lowered(net, precision)  # a classifier it cannot take: refused before the first write
    res = lib.ascent(gen, net, layer=str(layer), channel=int(channel), lam=lam, steps=steps, lr=lr,
                     w_plus=bool(w_plus), noise=noise, resize=resize, size=classifier_size, seed=seed, repeats=repeats,
                     input_range=info.input_range, precision=precision)
    tag = f"{layer}_{int(channel):04d}_stylegan2"
    files = []
    for r, img in enumerate(res.images):
        suffix = f"_r{r}" if repeats > 1 else ""
        files.append(imageio.save_png(img, os.path.join(out, f"{tag}{suffix}.png")))
    if repeats > 1:
        files.append(imageio.save_grid([list(res.images)], os.path.join(out, f"{tag}_repeats.png"),
                                       col_labels=[f"run {r}" for r in range(repeats)]))
    files.append(_save_w(res.w, os.path.join(out, f"{tag}_w.npy")))
    files.append(_record(os.path.join(out, f"{tag}.json"), pickle=str(pickle), model=str(run or model),
                         weights=info.weights_source, layer=str(layer), channel=int(channel), lam=lam, steps=steps,
                         lr=lr, w_plus=bool(w_plus), noise=noise, resize=resize, seed=seed, repeats=repeats,
                         w_avg=gen.w_avg_source, first_values=res.values[:, 0].tolist() if steps else [],
                         final_values=res.final_values.tolist(), precision=precision))
    return Written(files)


@_documented("""Figure 4: several runs of the same channel (they differ only through the noise maps), one row.

    Args:{ARGS}        channel (int >= 0): the channel drawn
        classifier_size (int >= 1): side of the image the classifier sees (default: its fixed input size, else
            the generator's resolution)
        repeats (int >= 2): runs of the same channel
    """)
def repeats(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channel=0, lam=DEFAULT_LAMBDA,
            steps=DEFAULT_STEPS, learning_rate=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear",
            classifier_size=None, seed=0, repeats=4, out="out", cache_dir=None, run=None,
            checkpoint=None):  # noqa: A002 - same flag as ascent's
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise InvalidArgumentError(f"--repeats must be an integer >= 2, got {repeats!r}")
    return ascent(pickle, model, weights, layer, channel, lam, steps, learning_rate, w_plus, noise, resize,
                  classifier_size, seed, repeats, out, cache_dir, run, checkpoint)


@_documented("""Figure 1: Lucid renders (top row) above StyleGAN2 renders (bottom row), one column per channel.

    Args:{ARGS}        channels (channels): the channels drawn: 7 | 0:8 | 1,5,9
        size (int in [16, 4096]): side of the Lucid renders in px
        lucid_steps (int >= 1): optimisation steps of the Lucid renders
        classifier_size (int >= 1): side of the image the classifier sees (default: the generator's)
    """)
def side_by_side(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channels="0,1,2,3",
                 size=128, lucid_steps=512, lam=DEFAULT_LAMBDA, steps=DEFAULT_STEPS, learning_rate=DEFAULT_LR,
                 w_plus=False, noise="resample", resize="bilinear", classifier_size=None, seed=0, out="out",
                 cache_dir=None, run=None, checkpoint=None):
    from lucidtl import imageio
    from lucidtl.optvis import features
    from lucidtl.selection import parse_channels
    from lucidtl.stylegan2.compare import side_by_side as lib

    lr = learning_rate
    _check(lam, steps, noise, resize)
    gen, net, info = _setup(pickle, model, weights, layer, cache_dir, run, checkpoint)
    chans = parse_channels(channels, features.channel_count(net, str(layer)))
    rows = lib(gen, net, str(layer), chans, size=size, lucid_steps=lucid_steps, steps=steps, lam=lam, lr=lr,
               w_plus=bool(w_plus), noise=noise, resize=resize, classifier_size=classifier_size, seed=seed,
               input_range=info.input_range)
    path = imageio.save_grid(rows, os.path.join(out, f"{layer}_side_by_side.png"), row_labels=["lucid", "stylegan2"],
                             col_labels=[f"ch {c}" for c in chans])
    return Written([path])


@_documented("""Figure 5: negate the k largest |weights| of the channel's filter, k = 0..max_k, and draw each.

    A row-major grid of --cols columns; the classifier's weights are restored afterwards.

    Args:{ARGS}        channel (int >= 0): the channel drawn
        max_k (int >= 0): the largest number of weights negated
        cols (int >= 1): columns of the grid
        classifier_size (int >= 1): side of the image the classifier sees (default: its fixed input size, else
            the generator's resolution)
    """)
def ablation(pickle=None, model="inception_v1", weights=None, layer=DEFAULT_LAYER, channel=0, max_k=39, cols=8,
             lam=DEFAULT_LAMBDA, steps=DEFAULT_STEPS, learning_rate=DEFAULT_LR, w_plus=False, noise="resample",
             resize="bilinear", classifier_size=None, seed=0, out="out", cache_dir=None, run=None, checkpoint=None):
    from lucidtl import imageio
    from lucidtl.stylegan2.ablation import ablation as lib

    lr = learning_rate
    _check(lam, steps, noise, resize)
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise InvalidArgumentError(f"--cols must be an integer >= 1, got {cols!r}")
    gen, net, info = _setup(pickle, model, weights, layer, cache_dir, run, checkpoint, [channel])
    images, results = lib(gen, net, str(layer), int(channel), max_k=max_k, lam=lam, steps=steps, lr=lr,
                          w_plus=bool(w_plus), noise=noise, resize=resize, size=classifier_size, seed=seed,
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
    """Convert an official pickle once (cached by sha256); with --out also write it there as <name>.npz.

    Args:
        pickle (file): an official StyleGAN2 .pkl
        out (folder): a folder for the converted <pickle name>.npz (default: only the cache)
        cache_dir (str): where converted pickles are cached (default: ~/.cache/lucidtl)
    """
    from lucidtl.stylegan2.pkl import load_generator, save_npz

    if pickle is None:
        raise InvalidArgumentError("--pickle is required: an official StyleGAN2 .pkl")
    gen = load_generator(pickle, cache_dir=cache_dir)
    files = []
    if out:
        name = os.path.splitext(os.path.basename(str(pickle)))[0] + ".npz"
        files.append(save_npz(gen, os.path.join(str(out), name), source=str(pickle)))
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
    cli.run(commands, default="ascent", argv=argv, aliases={"size": "classifier_size"})


if __name__ == "__main__":
    main()
