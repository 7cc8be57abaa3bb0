"""Atlas throughput on this CPU: images/hour at 128 px and 512 steps, and the speed-up of 2 shards.

    python tools/bench_atlas.py [--layer Mixed_4c_Branch_2_b_3x3] [--channels 32] [--batch 8] [--steps 8,64]

Runs the real job (`python -m lucidtl.atlas render --weights W --shard i/n`) in subprocesses on InceptionV1
(seeded random weights; the cost does not depend on the values), each process limited to ONE core
(taskset + TF intra/inter-op threads 1 + OMP 1). Per-run time = fixed (start, model, tracing) + per-step x
updates; two short step counts separate the two, and 512 steps (513 updates) are extrapolated from them,
both printed. The speed-up compares 1 process doing all items with 2 shards (0/2 on core 0, 1/2 on core 1)
run at the same time, measured at both step counts and extrapolated to 512 the same way; printed for the
whole processes and for the render time alone (the manifest's per-batch wall times, no process start-up).
The layer is a mid-depth one (Mixed_4c): the whole atlas's mean cost per image depends on the mix of the
57 layers' depths. The machine may be shared: noise shows as a speed-up above 2.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_core_env():
    return dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS="1",
                TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)


def command(weights, out, args, steps, shard, core):
    cmd = [sys.executable, "-m", "lucidtl.atlas", "render", "--weights", weights, "--out", out,
           "--layers", args.layer, "--channels", f"0:{args.channels}", "--size", str(args.size),
           "--steps", str(steps), "--batch", str(args.batch), "--shard", shard, "--progress", "False"]
    return (["taskset", "-c", str(core)] if shutil.which("taskset") else []) + cmd


def timed(cmds, outs):
    """Start all commands at once -> (seconds until the last one ends, the slowest shard's render seconds:
    the sum of its manifest's per-batch wall times, i.e. without process start-up)."""
    logs = [tempfile.TemporaryFile() for _ in cmds]  # not pipes: a full pipe would stall a shard
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=one_core_env(), stdout=subprocess.DEVNULL, stderr=log)
             for c, log in zip(cmds, logs)]
    for p in procs:
        p.wait()
    elapsed = time.perf_counter() - t0
    for p, log in zip(procs, logs):
        if p.returncode:
            log.seek(0)
            raise SystemExit(f"atlas job failed: {log.read().decode()[-2000:]}")
    render = []
    for out in outs:
        for name in os.listdir(out):
            if name.startswith("manifest-"):
                with open(os.path.join(out, name)) as f:
                    render.append(sum({(r["layer"], r["batch_channels"][0]): r["wall_s"]
                                       for r in map(json.loads, f)}.values()))
    return elapsed, max(render)


def extrapolate(t, short, long_, steps=512):
    """Time at `steps` from times at two step counts: fixed + per-update x (steps + 1) updates."""
    per_update = (t[long_] - t[short]) / (long_ - short)
    return t[short] + (steps - short) * per_update


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", default="Mixed_4c_Branch_2_b_3x3")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", default="8,64", help="two short step counts to extrapolate from")
    args = ap.parse_args()
    short, long_ = (int(s) for s in args.steps.split(","))
    tmp = tempfile.mkdtemp(prefix="bench_atlas_")
    try:
        import keras

        from lucidtl.models import inception_v1, save_weights

        keras.utils.set_random_seed(0)
        weights = save_weights(inception_v1(), os.path.join(tmp, "random.weights.h5"))
        n = args.channels
        one, two = {}, {}
        for s in (short, long_):
            out = os.path.join(tmp, f"one_{s}")
            one[s] = timed([command(weights, out, args, s, "0/1", 0)], [out])
            out = os.path.join(tmp, f"two_{s}")
            two[s] = timed([command(weights, out, args, s, f"{i}/2", i) for i in (0, 1)], [out])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"layer {args.layer}, {n} channels in batches of {args.batch}, {args.size} px, one core a process")
    for label, k in (("whole process", 0), ("render only (manifest wall times)", 1)):
        t1 = {s: one[s][k] for s in one}
        t2 = {s: two[s][k] for s in two}
        e1, e2 = extrapolate(t1, short, long_), extrapolate(t2, short, long_)
        print(f"{label}: 1 process {t1[short]:.1f} s / {t1[long_]:.1f} s, 2 shards {t2[short]:.1f} s / "
              f"{t2[long_]:.1f} s at {short} / {long_} steps (measured speed-up {t1[short] / t2[short]:.2f} / "
              f"{t1[long_] / t2[long_]:.2f})")
        print(f"  512 steps (extrapolated): 1 process {e1:.0f} s -> {n / e1 * 3600:.0f} images/hour on one core; "
              f"2 shards {e2:.0f} s -> {n / e2 * 3600:.0f} images/hour on two; speed-up {e1 / e2:.2f}")
    print(f"images_per_hour_1core_{long_}_steps_measured {n / one[long_][0] * 3600:.0f}")
    print(f"speedup_2_shards_{long_}_steps_measured {one[long_][0] / two[long_][0]:.2f}")
    e1 = extrapolate({s: one[s][0] for s in one}, short, long_)
    e2 = extrapolate({s: two[s][0] for s in two}, short, long_)
    print(f"images_per_hour_1core_512_steps_extrapolated {n / e1 * 3600:.0f}")
    print(f"speedup_2_shards_512_steps_extrapolated {e1 / e2:.2f}")


if __name__ == "__main__":
    main()
