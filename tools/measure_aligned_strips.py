"""Do aligned strips line up? The mean pixel correlation of neighbouring checkpoints' pictures of a channel,
rendered independently (each checkpoint alone, all from the same start: what render/atlas do without
--aligned) and as aligned strips (one optimisation, shared low-resolution part), on checkpoints that
differ little; and each image's own-checkpoint objective in both.

    python tools/measure_aligned_strips.py                      # a tiny fine-tuning run, trained here
    python tools/measure_aligned_strips.py --model inception_v1 --layer Mixed_4c --size 64 --steps 128

--model inception_v1 uses seeded random weights (no pretrained weights offline) with checkpoints made by
adding noise of --noise x each weight tensor's std, --checkpoints of them.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


def tiny_run_models(folder):
    from lucidtl.train import fit
    from lucidtl.train import run as runs
    from tiny_models import make_image_folder

    data = make_image_folder(os.path.join(folder, "data"), size=32)
    out = os.path.join(folder, "run")
    fit.train(f"folder:{data}", iterations=8, save_at="0,2,4,6,8", out=out, model="tiny_models.tiny_backbone",
              weights="random", recipe="temporal", image_size=32, batch_size=4, seed=0, progress=False,
              tensorboard=False)
    return [runs.load_checkpoint(out, it) for it in (0, 2, 4, 6, 8)], (0.0, 1.0)


def perturbed_models(name, k, noise):
    import keras

    from lucidtl import models

    keras.utils.set_random_seed(0)
    base, info = models.build_model(name, weights="random")
    weights = base.get_weights()
    rng = np.random.default_rng(0)
    out = [base]
    for i in range(1, k):
        m, _ = models.build_model(name, weights="random")
        m.set_weights([w + i * noise * (w.std() or 0) * rng.normal(size=w.shape).astype(w.dtype) for w in weights])
        out.append(m)
    return out, tuple(info.input_range)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="tiny (a tiny run trained here) or a registry model name")
    p.add_argument("--layer", default="conv2_relu")
    p.add_argument("--channels", default="0,1,2,3")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--checkpoints", type=int, default=5)
    p.add_argument("--noise", type=float, default=0.01)
    args = p.parse_args()
    from lucidtl.recipes import aligned_strips as A

    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "tiny":
            models, input_range = tiny_run_models(tmp)
        else:
            models, input_range = perturbed_models(args.model, args.checkpoints, args.noise)
        channels = [int(c) for c in args.channels.split(",")]
        print(f"{args.model} {args.layer} channels {channels}, {len(models)} checkpoints, {args.size}px, "
              f"{args.steps} steps")
        for aligned in (False, True):
            t0 = time.time()
            strips = A.render_strips(models, args.layer, channels, args.size, args.steps, aligned=aligned,
                                     input_range=input_range)[args.steps]
            own = A.own_objectives(models, args.layer, channels, strips, input_range)
            print(f"  {'aligned    ' if aligned else 'independent'}  neighbour correlation "
                  f"{A.neighbour_correlation(strips):.3f}  own objective {own.mean():.4f} "
                  f"(min {own.min():.4f})  {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
