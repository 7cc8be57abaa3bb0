"""`python -m lucidtl.analyze`: measure transfer from a run's checkpoints (see lucidtl/analysis/).

    python -m lucidtl.analyze similarity --run runs/pets --layers Mixed_3b,Mixed_4c,Mixed_5c \
        --dataset folder:data/pets --max-images 256 --out analysis/pets
    python -m lucidtl.analyze table --csv analysis/pets/similarity.csv,analysis/flowers/similarity.csv \
        --labels pets,flowers --out analysis
    python -m lucidtl.analyze scale --images renders/ --out analysis/scale
    python -m lucidtl.analyze redundancy --images renders/ [--compare activations --model inception_v1 \
        --weights imagenet --embed-layer Mixed_5c]
    python -m lucidtl.analyze examples --run runs/pets --layer Mixed_4c --channels 0:4 \
        --dataset folder:data/pets --out analysis/examples
    python -m lucidtl.analyze activation-atlas --run runs/pets --layer Mixed_4c --dataset folder:data/pets \
        --grid-size 20 --out analysis/activation_atlas
    python -m lucidtl.analyze attribution --run runs/pets --layers Mixed_4c --classes all \
        --dataset folder:data/pets --out analysis/attribution
    python -m lucidtl.analyze groups --run runs/pets --layers Mixed_4c --groups 6 --dataset folder:data/pets
    python -m lucidtl.analyze caricature --run runs/pets --layers Mixed_4c --indices 0,1 --dataset folder:data/pets
    python -m lucidtl.analyze accentuation --run runs/pets --layer Mixed_4c --channels 0:2 --indices 0,1 \
        --dataset folder:data/pets
"""
from lucidtl import cli
from lucidtl.analysis.commands import (  # noqa: F401 (the commands, re-exported for notebooks and tests)
    DEFAULT_METRICS, Written, accentuation, activation_atlas, attribution, caricature, examples, groups, redundancy,
    scale, similarity, table)


def _report(result):
    for line in result.lines:
        print(line)
    for path in result.files:
        print(f"wrote {path}")


def main(argv=None):
    cli.run({name: cli.printing(fn, _report) for name, fn in
             (("similarity", similarity), ("table", table), ("scale", scale), ("redundancy", redundancy),
              ("examples", examples), ("activation-atlas", activation_atlas), ("attribution", attribution),
              ("groups", groups), ("caricature", caricature), ("accentuation", accentuation))}, default="similarity",
            argv=argv, aliases={"embed": "embed_layer", "method": "compare"})


if __name__ == "__main__":
    main()
