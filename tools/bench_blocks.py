"""Attribution and neuron groups of one layer over a run's checkpoints, streamed: time and peak memory.

    python tools/bench_blocks.py [--images 1000] [--checkpoints 8] [--layer Mixed_4c] [--classes 31]
        [--attributed 4] [--size 224] [--batch 16] [--positions 16] [--groups 6] [--jobs attribution,groups]

A BN-InceptionV1 (random weights) with a `--classes` softmax head, `--checkpoints` perturbed copies of its
weights saved as a run folder would hold them, and `--images` deterministic random images streamed by
tf.data (never all in memory). Runs lucidtl.analysis.building_blocks' attribution (linear, to `--attributed`
classes) and groups (NMF, fit on the first checkpoint, projected and refit at every one; renders of 1 step,
so the figure is the factorisation's, not the renders') jobs, and prints each job's time, time per image and
checkpoint, and the process's peak RSS after each (ru_maxrss). Memory is bounded by the batch (attribution:
chunks of 8 classes x batch x H x W x C gradients) and by images x positions x C rows (groups), not by the
dataset: run it with twice the images and the peak stays (see README, Building blocks).
"""
import argparse
import os
import resource
import shutil
import tempfile
import time


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--checkpoints", type=int, default=8)
    ap.add_argument("--layer", default="Mixed_4c")
    ap.add_argument("--classes", type=int, default=31)
    ap.add_argument("--attributed", type=int, default=4, help="classes attributed (0: all --classes)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--positions", type=int, default=16)
    ap.add_argument("--groups", type=int, default=6)
    ap.add_argument("--jobs", default="attribution,groups")
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    from lucidtl.analysis import building_blocks as bb
    from lucidtl.analysis.streaming import Checkpoint
    from lucidtl.models import build_model, save_weights
    from lucidtl.train.heads import add_head

    t0 = time.perf_counter()
    net = add_head(build_model("inception_v1", weights=None)[0], args.classes, top="single")
    work = tempfile.mkdtemp(prefix="bench_blocks_")
    its = [0, 10, 20, 30, 60, 150, 1000, 3000][:args.checkpoints] + list(range(4000, 4000 + 1000 * max(
        0, args.checkpoints - 8), 1000))
    base, rng, cps = net.get_weights(), np.random.default_rng(0), []
    for k, it in enumerate(its):
        net.set_weights([w + 0.02 * k * rng.normal(size=w.shape).astype(w.dtype) * (np.std(w) + 1e-3) for w in base])
        path = os.path.join(work, f"iter_{it:06d}.weights.h5")
        save_weights(net, path)
        cps.append(Checkpoint(it, path))
    net.set_weights(base)
    size, n = args.size, args.images
    seed = tf.constant(7, tf.int64)
    source = tf.data.Dataset.range(n).map(
        lambda i: tf.random.stateless_uniform((size, size, 3), tf.stack([i, seed]))).batch(args.batch)
    inp = bb.inputs(cps, lambda: net, (0.0, 1.0), source, [f"class {k}" for k in range(args.classes)],
                    [args.layer], "bench", args.batch)
    print(f"setup: InceptionV1 + {args.classes}-class head, {len(cps)} checkpoints, {n} images of {size} px "
          f"({time.perf_counter() - t0:.1f} s); peak RSS {rss_mib():.0f} MiB")
    classes = "all" if args.attributed == 0 else list(range(args.attributed))
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    try:
        for job in jobs:
            out = os.path.join(work, job)
            t0 = time.perf_counter()
            if job == "attribution":
                bb.attribution_over_checkpoints(inp, classes, out, examples=(0,), batch_size=args.batch,
                                                max_images=n)
            elif job == "groups":
                bb.groups_over_checkpoints(inp, args.groups, out, positions=args.positions, size=64, steps=0,
                                           examples=(0,), batch_size=args.batch, max_images=n)
            else:
                raise SystemExit(f"unknown job {job!r}; use attribution, groups")
            dt = time.perf_counter() - t0
            per = dt / (n * len(cps)) * 1e3
            print(f"{job}: {dt:.1f} s for {n} images x {len(cps)} checkpoints of {args.layer} "
                  f"({per:.2f} ms per image and checkpoint); peak RSS {rss_mib():.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
