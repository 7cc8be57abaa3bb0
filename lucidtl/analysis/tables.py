"""CSV files of result rows and the reusability table (mean +- std of each distance over checkpoints)."""
import csv
import math

import numpy as np

from lucidtl.atomic import atomic_path
from lucidtl.errors import InvalidArgumentError


def write_csv(rows, path, columns=None):
    """rows (dicts) -> CSV at path (atomically); columns default to the keys in first-seen order."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in columns})
    return path


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))  # round-trips exactly
    return v


def _value(text):
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_csv(path):
    """CSV -> list of dicts, numbers parsed (ints, floats incl. nan), empty cells None."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [{k: _value(v) for k, v in r.items()} for r in csv.DictReader(f)]
    except OSError as e:
        raise InvalidArgumentError(f"cannot read {path}: {e.strerror or e}; pass a CSV written by "
                                   "`python -m lucidtl.analyze similarity`") from e


def reusability_table(rows, metrics, by=("run", "layer"), exclude_reference=True):
    """Per group (default: run label and layer): n checkpoints and mean, std (population, ddof=0) of each
    metric over the checkpoints, NaNs ignored. exclude_reference: leave out each reference compared with
    itself (iteration == reference), whose distance is 0 by construction."""
    groups = {}
    for r in rows:
        if exclude_reference and r.get("reference") is not None and r.get("iteration") == r.get("reference"):
            continue
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        row = dict(zip(by, key))
        row["n"] = len(rs)
        for m in metrics:
            v = np.array([_float(r.get(m)) for r in rs], np.float64)
            v = v[np.isfinite(v)]
            row[f"{m}_mean"] = float(v.mean()) if v.size else float("nan")
            row[f"{m}_std"] = float(v.std()) if v.size else float("nan")
        out.append(row)
    return out


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def format_table(table, metrics, by=("run", "layer"), digits=3):
    """A Markdown table with 'mean ± std' cells."""
    head = list(by) + ["n"] + list(metrics)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [str(r.get(k, "")) for k in by] + [str(r["n"])]
        cells += [f"{r[f'{m}_mean']:.{digits}f} ± {r[f'{m}_std']:.{digits}f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
