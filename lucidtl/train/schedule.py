"""Which training iterations (optimiser updates) get a checkpoint. Iteration 0 is the untouched model."""
import numpy as np

from lucidtl.errors import InvalidArgumentError

PAPER_ITERATIONS = (0, 10, 20, 30, 60, 150, 1000, 3000)  # the paper's temporal run (Figure 6)


def log_spaced(last, count):
    """0 plus `count` iterations up to `last`, spaced evenly in log(1 + i), unique integers."""
    if last < 1 or count < 1:
        raise InvalidArgumentError(f"log:{count}:{last} needs a positive count and last iteration")
    points = np.rint(np.expm1(np.linspace(0.0, np.log1p(last), count + 1))).astype(int)
    return tuple(sorted({0, *points.tolist()}))


def parse_schedule(save_at, iterations=None):
    """Sorted unique iterations from: a list/tuple of ints, "paper" (the paper's 8), "0,10,20" ,
    "every:N" (0, N, 2N, ... up to `iterations`), or "log:K" (0 + K log-spaced up to `iterations`)."""
    if save_at is None or save_at == "paper":
        return PAPER_ITERATIONS
    if isinstance(save_at, str):
        kind, _, arg = save_at.partition(":")
        if kind in ("every", "log"):
            if iterations is None:
                raise InvalidArgumentError(f"save_at={save_at!r} needs the run length (iterations)")
            try:
                n = int(arg)
            except ValueError:
                raise InvalidArgumentError(f"save_at={save_at!r}: {kind}:N needs an integer N, e.g. {kind}:10") from None
            if n < 1:
                raise InvalidArgumentError(f"save_at={save_at!r}: N must be >= 1")
            if kind == "every":
                return tuple(range(0, int(iterations) + 1, n))
            return log_spaced(int(iterations), n)
        save_at = [s for s in save_at.replace(" ", "").split(",") if s]
    try:
        points = sorted({int(s) for s in save_at})
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"cannot read save_at={save_at!r}; use e.g. 0,10,20,30,60,150,1000,3000, paper, every:100 or log:8"
        ) from None
    if not points or points[0] < 0:
        raise InvalidArgumentError(f"save_at={save_at!r} needs non-negative iterations")
    return tuple(points)
