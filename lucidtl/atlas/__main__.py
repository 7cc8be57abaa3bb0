"""`python -m lucidtl.atlas`: render an atlas (sharded, resumable) and make its static website.

    python -m lucidtl.atlas render --runs runs/celeba,runs/flowers --layers all --channels all \
        --size 128 --steps 512 --batch-size 32 --shard 0/2 --out atlas/
    python -m lucidtl.atlas render --weights a.weights.h5,b.weights.h5 --model inception_v1 --out atlas/
    python -m lucidtl.atlas site --atlas atlas/ --out site/
"""
from lucidtl import cli
from lucidtl.atlas.job import render
from lucidtl.atlas.site import site

REPEATABLE = ("runs", "run", "weights")  # --run: the old spelling of --runs


def merge_repeated(argv, flags=REPEATABLE):
    """`--runs A --runs B` -> `--runs=A,B` (fire keeps only the last of a repeated flag)."""
    values, rest, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        if name in flags:
            if "=" in arg:
                values.setdefault(name, []).append(arg.split("=", 1)[1])
            elif i + 1 < len(argv):
                values.setdefault(name, []).append(argv[i + 1])
                i += 1
            else:
                rest.append(arg)
        else:
            rest.append(arg)
        i += 1
    return rest + [f"--{k}={','.join(v)}" for k, v in values.items()]


def main(argv=None):
    import sys

    argv = merge_repeated(list(sys.argv[1:] if argv is None else argv))
    cli.run({"render": cli.printing(render), "site": cli.printing(site)}, "render", argv, aliases={"run": "runs"})


if __name__ == "__main__":
    main()
