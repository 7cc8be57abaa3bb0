"""The 2-D layout of an activation atlas (Lucid's recipes/activation_atlas/layout.py): UMAP, then a
per-axis normalisation into [0, 1] that a second set of points (another checkpoint's) can be put through
unchanged."""
import dataclasses

import numpy as np

from lucidtl.errors import InvalidArgumentError

UMAP_DEFAULTS = {"n_components": 2, "n_neighbors": 50, "min_dist": 0.05, "metric": "cosine"}


def require_umap():
    """The umap module, or a one-line error saying how to install it."""
    try:
        import umap
    except ImportError:
        raise InvalidArgumentError("the activation atlas needs umap-learn, which is not installed; "
                                   "pip install 'lucidtl[activation-atlas]' (or pip install umap-learn)") from None
    return umap


@dataclasses.dataclass(frozen=True)
class Bounds:
    """normalize_layout's per-axis numbers: clip to [lo, hi], then (x - low) / (high - low)."""
    lo: np.ndarray
    hi: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def apply(self, layout):
        clipped = np.clip(np.asarray(layout, np.float64), self.lo, self.hi)
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        return np.clip((clipped - self.low) / span, 0.0, 1.0)


def layout_bounds(layout, min_percentile=1, max_percentile=99, relative_margin=0.1):
    """Lucid's normalisation numbers, per axis: lo = p1 - m (p99 - p1), then hi = p99 + m (p99 - lo) (so the
    upper margin is 11% where the lower is 10%: Lucid's order of operations), and the extremes of the
    clipped points, which map to exactly 0 and 1."""
    layout = np.asarray(layout, np.float64)
    mins = np.percentile(layout, min_percentile, axis=0)
    maxs = np.percentile(layout, max_percentile, axis=0)
    mins = mins - relative_margin * (maxs - mins)
    maxs = maxs + relative_margin * (maxs - mins)
    clipped = np.clip(layout, mins, maxs)
    return Bounds(mins, maxs, clipped.min(axis=0), clipped.max(axis=0))


def normalize_layout(layout, min_percentile=1, max_percentile=99, relative_margin=0.1):
    """Lucid's normalize_layout: clip each axis to its percentiles plus a margin, min-max scale to [0, 1]."""
    return layout_bounds(layout, min_percentile, max_percentile, relative_margin).apply(layout)


def make_umap(umap_options=None, seed=0, verbose=False):
    """UMAP with Lucid's settings (n_neighbors=50, min_dist=0.05, cosine), seeded (seed None: unseeded, as
    Lucid; a seed makes UMAP single-threaded and the layout reproducible)."""
    umap = require_umap()
    options = dict(UMAP_DEFAULTS, **(umap_options or {}))
    if seed is not None:
        options.setdefault("random_state", int(seed))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by setting random_state": the seed is meant
        return umap.UMAP(verbose=verbose, **options)


def _fit(reducer, x):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.fit_transform(np.asarray(x, np.float32)), np.float64)


def _transform(reducer, x):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(reducer.transform(np.asarray(x, np.float32)), np.float64)


def check_points(n_points, umap_options=None):
    """UMAP needs more points than neighbours."""
    need = dict(UMAP_DEFAULTS, **(umap_options or {}))["n_neighbors"] + 1
    if n_points < need:
        raise InvalidArgumentError(f"{n_points} activations are too few for UMAP with n_neighbors="
                                   f"{need - 1}; sample more (more images or positions per image)")


def aligned_umap(activations, umap_options=None, normalize=True, verbose=False, seed=0):
    """Lucid's aligned_umap: one UMAP fit on the activations ([N, C]), or on a list of them stacked (split
    back evenly after); normalised into [0, 1] per axis unless normalize=False."""
    many = isinstance(activations, (list, tuple))
    stacked = np.concatenate(activations, axis=0) if many else np.asarray(activations)
    check_points(len(stacked), umap_options)
    layout = _fit(make_umap(umap_options, seed, verbose), stacked)
    if normalize:
        layout = normalize_layout(layout)
    if not many:
        return layout
    return np.split(layout, np.cumsum([len(a) for a in activations])[:-1])


@dataclasses.dataclass
class CheckpointLayout:
    """One layout for several checkpoints' activations of the same points: fitted on the reference
    checkpoint's ("first") or on all of them stacked ("joint"); the other checkpoints are placed in it
    with UMAP's transform ("first") or are part of the fit ("joint"). One normalisation (the fitted
    points') is applied to every checkpoint, so a place means the same in every atlas."""
    layouts: list  # [K] arrays [N, 2] in [0, 1]
    raw: list  # [K] arrays [N, 2] before normalisation
    bounds: Bounds
    fit: str


FITS = ("first", "joint")


def drift_aligned(reference, acts):
    """`acts` moved by the difference of the means (the reference's minus their own). Fine-tuning shifts a
    layer's activations by one shared vector (BatchNorm statistics, biases); in cosine distance that vector
    then dominates every point (a fine-tuned MobileNetV2: cosine 0.998 between any two points), all of them
    get the same nearest neighbours among the reference's points, and UMAP's transform puts them all on
    those: one cell. Placed by their variation around their own mean, they spread as the reference's do."""
    acts = np.asarray(acts, np.float64)
    return acts - acts.mean(axis=0) + np.asarray(reference, np.float64).mean(axis=0)


def checkpoint_layout(activations, fit="first", umap_options=None, seed=0, verbose=False, report=None):
    """activations: [K] arrays [N, C] (the same N points at K checkpoints, the reference first). With fit
    "first", each other checkpoint is placed after drift_aligned (its mean moved onto the reference's)."""
    if fit not in FITS:
        raise InvalidArgumentError(f"unknown --fit {fit!r}; choose one of {', '.join(FITS)}")
    check_points(len(activations[0]), umap_options)
    reducer = make_umap(umap_options, seed, verbose)
    if fit == "joint":
        raw = np.split(_fit(reducer, np.concatenate(activations)), len(activations))
        fitted = np.concatenate(raw)
    else:
        raw = [_fit(reducer, activations[0])]
        for k, acts in enumerate(activations[1:], 1):
            if report:
                report(f"placing checkpoint {k + 1}/{len(activations)} in the layout")
            raw.append(_transform(reducer, drift_aligned(activations[0], acts)))
        fitted = raw[0]
    bounds = layout_bounds(fitted)
    return CheckpointLayout([bounds.apply(r) for r in raw], raw, bounds, fit)
