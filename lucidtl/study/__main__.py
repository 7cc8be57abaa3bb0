"""`python -m lucidtl.study`: run folders -> a browsable study website (see lucidtl.study.study).

    python -m lucidtl.study --runs runs/celeba,runs/flowers --out study/
    python -m lucidtl.study --runs runs/celeba,runs/flowers --out study/ --layers Mixed_3b,Mixed_4c \
        --channels 0:8 --size 128 --steps 512 --dataset folder:data/flowers --shard 0/2
"""
from lucidtl import cli
from lucidtl.study.pipeline import study


def main(argv=None):
    cli.run({"study": cli.printing(study)}, "study", argv)


if __name__ == "__main__":
    main()
