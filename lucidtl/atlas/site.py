"""A static website for an atlas: index.html + app.js + data.js (a script, not JSON: browsers refuse fetch()
of local files, so the site works from file:// and from any static host, no server).

Browse run -> checkpoint -> layer -> channel; the channel across the run's checkpoints (temporal strip),
pre vs post (the run's first and last checkpoints) side by side, the layer as a grid of lazy-loaded
thumbnails; arrow keys move channel (left/right) and layer (up/down), [ and ] the checkpoint; the address's
#hash is a permalink to what is shown.
"""
import json
import os
import shutil

from lucidtl.atlas.job import read_manifest, read_settings
from lucidtl.atomic import atomic_path
from lucidtl.errors import InvalidArgumentError

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = ("index.html", "app.js", "style.css")


def site_data(atlas, root):
    """What app.js reads: checkpoints (plan order), runs, layers, and per (checkpoint, layer) the channels
    present with their objective values. PNG of (c, l, ch) = root/<label>/<layer>/<ch:04d>.png."""
    records = read_manifest(atlas)
    if not records:
        raise InvalidArgumentError(f"atlas {atlas} has no rendered images yet; run python -m lucidtl.atlas render")
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
    return {"root": root, "settings": read_settings(atlas), "checkpoints": checkpoints, "runs": runs,
            "layers": layers, "images": images}


def site(atlas="atlas", out="site", copy=False):
    """Write the static website of an atlas (index.html, app.js, style.css, data.js) into a folder.

    Args:
        atlas (str): the atlas folder (what `python -m lucidtl.atlas render --out` wrote)
        out (folder): the site folder
        copy (bool): copy the PNGs into <out>/img (a self-contained site); by default the pages link to the
            atlas folder by a relative path (keep both where they are)
    """
    atlas, out = os.fspath(atlas), os.fspath(out)
    read_settings(atlas)  # a one-line error when it is not an atlas
    os.makedirs(out, exist_ok=True)
    if copy:
        root = "img"
        for r in read_manifest(atlas):
            dst = os.path.join(out, root, r["png"])
            if not os.path.exists(dst):
                with atomic_path(dst) as tmp:
                    shutil.copyfile(os.path.join(atlas, r["png"]), tmp)
    else:
        root = os.path.relpath(os.path.abspath(atlas), os.path.abspath(out)).replace(os.sep, "/")
    data = site_data(atlas, root)
    with atomic_path(os.path.join(out, "data.js")) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("window.ATLAS = " + json.dumps(data, separators=(",", ":")) + ";\n")
    for name in ASSETS:
        with atomic_path(os.path.join(out, name)) as tmp:
            shutil.copyfile(os.path.join(HERE, "web", name), tmp)
    return os.path.join(out, "index.html")
