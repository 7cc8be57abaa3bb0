"""Spatial scale of a visualisation: the dominant period (pixels) of its radially averaged power spectrum.

Method: each colour channel minus its mean (removes DC), times a periodic 2-D Hann window (less leakage
from the image border; window="none" skips it), FFT, power |F|^2 summed over colour channels. Frequencies
are binned by radius to the nearest integer k in units of 1/N cycles per pixel, N = max(H, W); bins
k = 1 .. N // 2 are kept (DC out, and the corners beyond Nyquist whose annuli are incomplete). The dominant
period is N / k at the bin of largest power: weighting="mean" averages the power over each annulus (the
radially averaged spectrum), "sum" totals it (energy per annulus, which favours fine scales by ~k).
mean_period is N / (power-weighted mean k over annulus totals), a smoother summary of the same spectrum.
"""
import os
import re

import numpy as np

from lucidtl.errors import InvalidArgumentError

WINDOWS = ("hann", "none")
WEIGHTINGS = ("mean", "sum")
NAME = re.compile(r"^(?P<layer>.+)_(?P<channel>\d{4,})_(?P<threshold>\d+)\.png$")  # render CLI's names
ITERATION = re.compile(r"iter_(\d+)")


def _hann(n):
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _image(image):
    img = np.asarray(image, np.float64)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or min(img.shape[:2]) < 4:
        raise InvalidArgumentError(f"need an [H, W] or [H, W, C] image of at least 4 px, got {img.shape}")
    return img


def radial_power_spectrum(image, window="hann", weighting="mean"):
    """(k, power): k = 1 .. N//2 (cycles per N px, N = max(H, W)) and the mean (or summed) power there."""
    if window not in WINDOWS:
        raise InvalidArgumentError(f"unknown window {window!r}; choose one of {', '.join(WINDOWS)}")
    if weighting not in WEIGHTINGS:
        raise InvalidArgumentError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
    img = _image(image)
    h, w, _ = img.shape
    x = img - img.mean(axis=(0, 1), keepdims=True)
    if window == "hann":
        x = x * np.outer(_hann(h), _hann(w))[..., None]
    power = (np.abs(np.fft.fft2(x, axes=(0, 1))) ** 2).sum(axis=-1)
    n = max(h, w)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")) * n
    k = np.rint(radius).astype(int).ravel()
    total = np.bincount(k, weights=power.ravel(), minlength=n // 2 + 1)[1:n // 2 + 1]
    count = np.bincount(k, minlength=n // 2 + 1)[1:n // 2 + 1]
    ks = np.arange(1, n // 2 + 1)
    return ks, (total / np.maximum(count, 1) if weighting == "mean" else total)


def dominant_period(image, window="hann", weighting="mean"):
    """N / k of the strongest radial bin, in pixels (NaN for a constant image)."""
    ks, p = radial_power_spectrum(image, window, weighting)
    if not np.any(p > 0):
        return float("nan")
    return float(max(_image(image).shape[:2]) / ks[int(np.argmax(p))])


def mean_period(image, window="hann"):
    ks, p = radial_power_spectrum(image, window, "sum")
    total = p.sum()
    return float(max(_image(image).shape[:2]) * total / np.sum(ks * p)) if total > 0 else float("nan")


# ---- folders of renders ------------------------------------------------------------------------------

def describe(path):
    """{iteration, layer, channel, threshold} from a render's path: `<layer>_<cccc>_<t>.png` (the render
    CLI's names) below an optional `iter_<i>` folder; unknown parts are None (layer: the file stem)."""
    name = os.path.basename(path)
    m = NAME.match(name)
    its = ITERATION.findall(os.path.relpath(path)) or ITERATION.findall(name)
    out = {"iteration": int(its[-1]) if its else None, "layer": os.path.splitext(name)[0], "channel": None,
           "threshold": None}
    if m:
        out.update(layer=m["layer"], channel=int(m["channel"]), threshold=int(m["threshold"]))
    return out


def find_images(folder):
    """Every rendered PNG below folder, sorted, with its path, run, iteration, layer, channel and threshold.

    An atlas folder (atlas.json) is read through its manifest: layer, channel and checkpoint come from the
    records (run: the run folder's name, or the checkpoint label of a --weights file). Any other folder must
    hold the render command's `<layer>_<cccc>_<t>.png` names (grids skipped), optionally below iter_<i>
    folders; a PNG named otherwise is an error, not a guess."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"image folder {folder} does not exist; pass a folder of rendered PNGs")
    from lucidtl.atlas.job import SETTINGS_FILE

    if os.path.isfile(os.path.join(folder, SETTINGS_FILE)):
        return _atlas_images(folder)
    rows = []
    for root, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            if f.lower().endswith(".png") and not f.endswith("_grid.png"):
                path = os.path.join(root, f)
                row = {"path": path, "run": None, **describe(os.path.relpath(path, folder))}
                if row["channel"] is None:
                    raise InvalidArgumentError(
                        f"cannot tell the layer and channel of {path}: --images takes an atlas folder (with "
                        f"{SETTINGS_FILE}) or a folder of the render command's <layer>_<channel>_<step>.png files")
                rows.append(row)
    if not rows:
        raise InvalidArgumentError(f"no PNG files in {folder}; pass the folder the render tools wrote")
    return rows


def _atlas_images(folder):
    from lucidtl.atlas.job import rendered_records

    rows = []
    for r in rendered_records(folder, need_files=True):  # one-line errors: a corrupt line, no renders, a lost PNG
        rows.append({"path": os.path.join(folder, r["png"]), "run": r["run"] or r["checkpoint"], "iteration": r["iteration"],
                     "layer": r["layer"], "channel": r["channel"], "threshold": r["settings"]["steps"]})
    rows.sort(key=lambda r: (r["run"], -1 if r["iteration"] is None else r["iteration"], r["layer"], r["channel"]))
    return rows


def spatial_scale(folder, window="hann", weighting="mean"):
    """One row per PNG: path, iteration, layer, channel, threshold, period, mean_period (pixels)."""
    from lucidtl.imageio import load_png

    rows = []
    for r in find_images(folder):
        img = load_png(r["path"])[..., :3]
        rows.append({**r, "size": img.shape[0], "period": dominant_period(img, window, weighting),
                     "mean_period": mean_period(img, window)})
    return rows


def summarise(rows, value="period", by=("run", "iteration", "layer", "threshold")):
    """Per group: n, mean and std (ddof=0) of `value` over channels."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r[value])
    out = []
    for key, vs in groups.items():
        v = np.asarray(vs, np.float64)
        v = v[np.isfinite(v)]
        out.append({**dict(zip(by, key)), "n": len(vs), value: float(v.mean()) if v.size else float("nan"),
                    f"{value}_std": float(v.std()) if v.size else float("nan")})
    return out
