"""Curves of a metric over training iterations, one line per layer (matplotlib, Agg backend), PNG + CSV."""
import os

import numpy as np

from lucidtl.analysis.tables import write_csv
from lucidtl.atomic import atomic_path

LABELS = {"pwsm_theta": "PWSM angle (rad)", "procrustes_norm": "Procrustes distance / 2",
          "cka": "linear CKA", "period": "dominant period (px)", "redundancy": "redundancy (mean cosine)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def fit_title(ax, title):
    """The axes' title, wrapped until it lies inside the figure (a long layer path ran off both edges); the
    layout is made tight around it."""
    import textwrap

    text, fig = str(title), ax.figure
    renderer = fig.canvas.get_renderer()
    for chars in range(max(len(text), 10), 9, -4):
        ax.set_title("\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)) or text)
        fig.tight_layout()
        box = ax.title.get_window_extent(renderer)
        if box.x0 >= 4 and box.x1 <= fig.bbox.width - 4:
            return


def plot_curves(rows, metric, path, x="iteration", group="layer", title=None, err=None):
    """One line per value of `group`: rows[x] against rows[metric] (err: a column of error-bar half-widths).
    The x axis is symlog (linear below 1) so iteration 0 and the paper's 10..3000 schedule both show."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for name in dict.fromkeys(r.get(group) for r in rows):
        rs = sorted((r for r in rows if r.get(group) == name), key=lambda r: r[x])
        xs = np.array([r[x] for r in rs], np.float64)
        ys = np.array([np.nan if r.get(metric) is None else r[metric] for r in rs], np.float64)
        if err:
            es = np.array([np.nan if r.get(err) is None else r[err] for r in rs], np.float64)
            ax.errorbar(xs, ys, yerr=es, marker="o", ms=3, capsize=2, label=str(name))
        else:
            ax.plot(xs, ys, marker="o", ms=3, label=str(name))
    if rows and min(r[x] for r in rows) >= 0 and max(r[x] for r in rows) > 10:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(x)
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    if len(ax.get_lines()) > 0:
        ax.legend(fontsize=7, loc="best")
    fit_title(ax, title or LABELS.get(metric, metric))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_curves(rows, metrics, out, prefix="similarity", x="iteration", group="layer"):
    """For each metric: <out>/<prefix>_<metric>.png and .csv (columns x, group, metric). Returns the paths."""
    paths = []
    for m in metrics:
        base = os.path.join(out, f"{prefix}_{m}")
        cols = [x, group, m]
        paths.append(write_csv(sorted(rows, key=lambda r: (str(r.get(group)), r[x])), base + ".csv", cols))
        paths.append(plot_curves(rows, m, base + ".png", x=x, group=group))
    return paths
