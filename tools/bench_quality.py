"""Quality of parameterisations on real data: Lucid's default (fft + decorrelated), pixel, and MaCo.

    python tools/bench_quality.py [--steps 256] [--seeds 3] [--size 32] [--epochs 12]

scikit-learn's digits (1797 real 8x8 scans of handwritten digits, shipped with the package) are upsampled to
--size px, grey repeated on 3 channels, and split 1200 / 597. Two CNNs of different widths are trained here
from different seeds on the first 1200: network A is visualised, network B judges. For each
parameterisation and seed, the ten class scores of A (the logits) are rendered in one batch (image k maximises
class k; Lucid's standard transforms, Adam 0.05, --steps steps). As MaCo's paper measures them:
- transferability: B's accuracy at naming each render's class (chance 0.10);
- plausibility: the cosine distance, in B's penultimate features (global average pool), between a render and
  the mean feature of the held-out real images of its class (lower: closer to real images); the same
  distance for the held-out real images themselves is printed as the floor.
MaCo's spectrum is the mean amplitude spectrum of the 1200 training images, with their mean colour and
contrast (lucidtl.optvis.param.natural_spectrum / natural_statistics: what `render --param maco --dataset`
uses). Prints one Markdown table (mean ± std over seeds) and the CPU.
"""
import argparse
import os
import platform
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

PARAMS = ("fft", "pixel", "maco")
LABELS = {"fft": "Lucid default (fft + decorrelated)", "pixel": "pixel", "maco": "MaCo"}


def digits(size):
    from sklearn.datasets import load_digits

    d = load_digits()
    k = size // 8
    x = np.repeat(np.repeat(d.images / 16.0, k, 1), k, 2)[..., None]
    x = np.repeat(x, 3, -1).astype(np.float32)
    return (x[:1200], d.target[:1200]), (x[1200:], d.target[1200:])


def network(width, seed, size):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="c1")(inp)
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.MaxPooling2D(name="p1")(h)
    h = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="c3")(h)
    h = keras.layers.MaxPooling2D(name="p2")(h)
    h = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="c4")(h)
    h = keras.layers.GlobalAveragePooling2D(name="features")(h)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(h))


def train(model, data, epochs, seed):
    keras.utils.set_random_seed(seed)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(*data, epochs=epochs, batch_size=32, verbose=0)
    return model


def renders(model, kind, size, steps, seed, maco):
    from lucidtl.optvis import objectives, param
    from lucidtl.optvis.render import Renderer

    objective = sum((objectives.channel("logits", k, batch=k) for k in range(1, 10)),
                    objectives.channel("logits", 0, batch=0))
    if kind == "maco":
        make = lambda: param.maco(size, batch=10, **maco)  # noqa: E731
    else:
        make = lambda: param.image(size, batch=10, fft=kind == "fft", decorrelate=True)  # noqa: E731
    r = Renderer(model, objective, param_f=make, transforms="standard", seed=seed)
    return r.run((steps,), verbose=False)[-1]


def cosine_distance(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 1.0 - np.sum(a * b, -1)


def cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args(argv)
    from lucidtl.optvis import param

    (xtr, ytr), (xte, yte) = digits(args.size)
    start = time.time()
    a = train(network(16, 0, args.size), (xtr, ytr), args.epochs, 0)
    b = train(network(24, 1, args.size), (xtr, ytr), args.epochs, 1)
    acc = [float(np.mean(np.argmax(m.predict(xte, verbose=0), -1) == yte)) for m in (a, b)]
    print(f"held-out accuracy: A {acc[0]:.3f}, B {acc[1]:.3f} ({time.time() - start:.0f} s to train both)")
    feats = keras.Model(b.input, b.get_layer("features").output)
    real = np.asarray(feats(xte))
    centres = np.stack([real[yte == k].mean(0) for k in range(10)])
    floor = float(np.mean(cosine_distance(real, centres[yte])))
    mean, std = param.natural_statistics(xtr)
    maco = {"spectrum": param.natural_spectrum(xtr), "mean": mean, "std": std}
    rows = {}
    for kind in PARAMS:
        trans, plaus = [], []
        for seed in range(args.seeds):
            t0 = time.time()
            pics = renders(a, kind, args.size, args.steps, seed, maco)
            trans.append(float(np.mean(np.argmax(b.predict(pics, verbose=0), -1) == np.arange(10))))
            plaus.append(float(np.mean(cosine_distance(np.asarray(feats(pics)), centres))))
            print(f"{kind} seed {seed}: transferability {trans[-1]:.2f}, plausibility distance {plaus[-1]:.3f} "
                  f"({time.time() - t0:.0f} s)")
        rows[kind] = (np.mean(trans), np.std(trans), np.mean(plaus), np.std(plaus))
    print()
    print(f"| parameterisation | transferability (B's accuracy, chance 0.10) | plausibility (cosine distance to "
          f"the class's real images; real images: {floor:.3f}) |")
    print("|---|---|---|")
    for kind, (tm, ts, pm, ps) in rows.items():
        print(f"| {LABELS[kind]} | {tm:.2f} ± {ts:.2f} | {pm:.3f} ± {ps:.3f} |")
    print()
    print(f"CPU: {cpu()}; {args.seeds} seeds, {args.steps} steps, {args.size} px; held-out accuracy A {acc[0]:.3f}, "
          f"B {acc[1]:.3f}")


if __name__ == "__main__":
    main()
