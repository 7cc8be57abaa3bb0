"""A static website for an atlas: index.html + app.js + data.js (a script, not JSON: browsers refuse fetch()
of local files, so the site works from file:// and from any static host, no server).

Browse run -> checkpoint -> layer -> channel; the channel across the run's checkpoints (temporal strip),
pre vs post (the run's first and last checkpoints) side by side, the layer as a grid of lazy-loaded
thumbnails; arrow keys move channel (left/right) and layer (up/down), [ and ] the checkpoint; the address's
#hash is a permalink to what is shown.
"""
import json
import os

from lucidtl.atlas.job import read_settings, rendered_records
from lucidtl import atomic

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = ("index.html", "app.js", "style.css")


def site_data(atlas, root, records=None, settings=None):
    """What app.js reads: checkpoints (plan order), runs, layers, and per (checkpoint, layer) the channels
    present with their objective values. PNG of (c, l, ch) = root/<label>/<layer>/<ch:04d>.png.
    records, settings: the atlas's, when the caller has read them already."""
    records = rendered_records(atlas) if records is None else records
    checkpoints, index, layers, images = [], {}, [], {}
    for r in sorted(records, key=lambda r: (r["run"] or "~", r["iteration"] or 0, r["checkpoint"])):
        if r["checkpoint"] not in index:
            index[r["checkpoint"]] = len(checkpoints)
            checkpoints.append({"label": r["checkpoint"], "run": r["run"] or "weights",
                                "iteration": r["iteration"]})
    for r in records:
        if r["layer"] not in layers:
            layers.append(r["layer"])
        images.setdefault(f"{index[r['checkpoint']]}|{r['layer']}", {})[str(r["channel"])] = round(
            r["objective"], 5)
    runs = {}
    for i, c in enumerate(checkpoints):
        runs.setdefault(c["run"], []).append(i)
    return {"root": root, "settings": read_settings(atlas) if settings is None else settings, "checkpoints": checkpoints, "runs": runs,
            "layers": layers, "images": images}


def site(atlas="atlas", out="site", copy=False):
    """Write the static website of an atlas (index.html, app.js, style.css, data.js) into a folder.

    Args:
        atlas (str): the atlas folder (what `python -m lucidtl.atlas render --out` wrote)
        out (folder): the site folder
        copy (bool): copy the PNGs into <out>/img (a self-contained site); by default the pages link to the
            atlas folder by a relative path (keep both where they are)

    The manifest is read and checked before anything is written.
    """
    atlas, out = os.fspath(atlas), os.fspath(out)
    settings = read_settings(atlas)  # a one-line error when it is not an atlas
    root = "img" if copy else os.path.relpath(os.path.abspath(atlas), os.path.abspath(out)).replace(os.sep, "/")
    records = rendered_records(atlas, need_files=copy)  # errors (no renders, a corrupt manifest, a missing
    data = site_data(atlas, root, records, settings)    # PNG to copy) before the first write
    atomic.makedirs(out)
    atomic.clear_stale(out)  # data.js and the assets sit directly in out
    if copy:
        for folder in sorted({os.path.dirname(os.path.join(out, root, r["png"])) for r in records}):
            if os.path.isdir(folder):
                atomic.clear_stale(folder)
        for r in records:
            dst = os.path.join(out, root, r["png"])
            if not os.path.exists(dst):
                atomic.copy_file(os.path.join(atlas, r["png"]), dst)
    atomic.write_text(os.path.join(out, "data.js"), "window.ATLAS = " + json.dumps(data, separators=(",", ":"))
                      + ";\n")
    for name in ASSETS:
        atomic.copy_file(os.path.join(HERE, "web", name), os.path.join(out, name))
    return os.path.join(out, "index.html")
