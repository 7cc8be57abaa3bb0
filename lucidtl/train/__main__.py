"""python -m lucidtl.train: fine-tune with the paper's recipes (see lucidtl.train.fit.train)."""
from lucidtl import cli


def _report(result):
    saved = ", ".join(str(r["iteration"]) for r in result.checkpoints)
    resumed = f" (resumed at iteration {result.resumed_from})" if result.resumed_from else ""
    print(f"{result.out}: {result.iterations} iterations{resumed}; checkpoints at {saved}; model {result.final}")


def main(argv=None):
    cli.run({"train": cli.printing("lucidtl.train.fit:train", _report)}, "train", argv)


if __name__ == "__main__":
    main()
