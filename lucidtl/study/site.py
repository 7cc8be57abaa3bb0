"""The study's static website: OUT/index.html, app.js, style.css and OUT/data/ (scripts, not JSON: browsers
refuse fetch() of local files, so the site works from file:// and from any static host, no server).

data/index.js holds what every page needs (runs, checkpoints, layers, layer-level similarity curves);
data/layer-NNN.js holds one layer's per-channel values (objective, similarity, spatial period, examples)
and is loaded by a <script> tag when a page of that layer is opened: no single giant file. Images stay where
the stages wrote them (OUT/atlas/, OUT/examples/) and load lazily.
"""
import json
import math
import os

from lucidtl import atomic
from lucidtl.atlas import job
from lucidtl.run import Run
from lucidtl.study import layout as L

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = ("style.css", "app.js", "index.html")  # the page last: it needs the rest
LAYER_METRICS = ("pwsm_theta", "procrustes_norm", "cka")
ACTIVATION_ATLAS_ASSETS = ("activation_atlas.js", "activation_atlas.html")


def _read(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _deep_clean(v):
    if isinstance(v, dict):
        return {k: _deep_clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_deep_clean(x) for x in v]
    return _clean(v)


def _dump(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def site_data(out):
    """(index, {layer: layer data}) from the stages' files in the study folder `out`."""
    settings = L.read_json(os.path.join(out, L.SETTINGS_FILE))
    chans = settings["channels"]
    records = job.read_manifest(os.path.join(out, "atlas"))
    runs = {}
    for r in records:
        runs.setdefault(r["run"], set()).add(r["iteration"])
    order = [os.path.basename(os.path.normpath(p)) for p in settings["runs"]]
    runs = [{"name": name, "iterations": sorted(runs.get(name, ()))} for name in order]
    col = {(run["name"], it): i for run in runs for i, it in enumerate(run["iterations"])}
    layers = {}
    for layer in settings["layers"]:
        layers[layer] = {"name": layer, "channels": chans[layer], "runs": {}, "between": {}}
        for run in runs:
            blank = [[None] * len(chans[layer]) for _ in run["iterations"]]
            layers[layer]["runs"][run["name"]] = {k: [list(b) for b in blank] for k in
                                                 ("objective", "period", "procrustes_norm", "cka", "examples")}
    slot = {layer: {c: i for i, c in enumerate(chans[layer])} for layer in chans}
    for r in records:
        if r["layer"] in layers and r["channel"] in slot[r["layer"]]:
            lay = layers[r["layer"]]["runs"][r["run"]]
            lay["objective"][col[r["run"], r["iteration"]]][slot[r["layer"]][r["channel"]]] = _clean(
                round(r["objective"], 5))
    curves = {layer: {} for layer in layers}
    for run in runs:
        name = run["name"]
        for j, it in enumerate(run["iterations"]):
            sim = _read(L.similarity_path(out, name, it))
            scale = _read(L.scale_path(out, name, it))
            for layer, lay in layers.items():
                v = lay["runs"][name]
                if sim and layer in sim["layers"]:
                    s = sim["layers"][layer]
                    c = curves[layer].setdefault(name, {k: [None] * len(run["iterations"]) for k in LAYER_METRICS})
                    for k in LAYER_METRICS:
                        c[k][j] = s.get(k)
                    for k in ("procrustes_norm", "cka"):
                        v[k][j] = s["channels"].get(k, v[k][j])
                if scale:
                    per = scale["periods"].get(layer, {})
                    v["period"][j] = [per.get(str(ch)) for ch in lay["channels"]]
                if j == 0:
                    found = _read(L.trust_path(out, name, layer))
                    if found:
                        v["trust"] = _deep_clean({k: found[k] for k in ("iterations", "seeds", "units")})
                ex = _read(L.examples_path(out, name, it, layer))
                if ex:
                    v["examples"][j] = [len(ex["channels"].get(str(ch), [])) for ch in lay["channels"]]
    between = {}
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            key = f"{a['name']}~{b['name']}"
            its = [it for it in a["iterations"] if it in b["iterations"]]
            found = [(it, _read(L.between_path(out, a["name"], b["name"], it))) for it in its]
            found = [(it, s) for it, s in found if s]
            if not found:
                continue
            between[key] = {"iterations": [it for it, _ in found], "layers": {}}
            for layer, lay in layers.items():
                between[key]["layers"][layer] = {k: [s["layers"][layer].get(k) for _, s in found]
                                                 for k in LAYER_METRICS}
                lay["between"][key] = {"iterations": [it for it, _ in found],
                                       **{k: [s["layers"][layer]["channels"].get(k) for _, s in found]
                                          for k in ("procrustes_norm", "cka")}}
    blocks = _blocks(out, runs, layers, slot) if settings.get("dataset") else {}
    index = {"runs": runs, "examples": bool(settings.get("dataset")), "between": between, "blocks": blocks,
             "activation_atlas": bool(settings.get("activation_atlas")),
             "settings": {k: settings[k] for k in ("size", "steps", "seed", "dataset", "max_images", "examples")},
             "layers": [{"name": layer, "channels": len(chans[layer]), "file": f"data/layer-{i:03d}.js",
                         "curves": curves[layer]} for i, layer in enumerate(settings["layers"])]}
    return index, layers


def _csv(path):
    from lucidtl.analysis import tables

    return tables.read_csv(path) if os.path.isfile(path) else []


def _blocks(out, runs, layers, slot):
    """The building blocks (study.pipeline.blocks_stage) into the layer data: per run, the attribution of each
    chosen channel to each class over checkpoints, the channels carrying each class (top 5), the neuron
    groups' weights, cosines and errors; returns the index's part: per run the classes and example images."""
    found = {}
    for run in runs:
        name, col = run["name"], {it: j for j, it in enumerate(run["iterations"])}
        rows = _csv(os.path.join(L.blocks_dir(out, name, "attribution"), "attribution.csv"))
        if not rows:
            continue
        summary = _read(os.path.join(L.blocks_dir(out, name, "attribution"), "attribution_summary.json")) or {}
        classes = [str(c) for c in summary.get("class_names", [])]
        k_of = {k: j for j, k in enumerate(summary.get("classes", []))}
        for layer, lay in layers.items():
            n = len(run["iterations"])
            att = [[[None] * len(lay["channels"]) for _ in classes] for _ in range(n)]
            carry = [[[] for _ in classes] for _ in range(n)]
            lay["runs"][name]["attribution"], lay["runs"][name]["carriers"] = att, carry
            groups = _csv(os.path.join(L.blocks_dir(out, name, "groups"), layer, "groups.csv"))
            skipped = _read(os.path.join(L.blocks_dir(out, name, "groups"), layer, "skipped.json"))
            g = {"weight": [None] * n, "cosine": [None] * n, "error_fixed": [None] * n, "error_refit": [None] * n,
                 "skipped": skipped["skipped"] if skipped else None}
            for r in groups:
                j = col.get(r["iteration"])
                if j is None:
                    continue
                if r["mode"] == "refit":
                    g["weight"][j] = (g["weight"][j] or []) + [_clean(round(r["weight"], 6))]
                    g["cosine"][j] = (g["cosine"][j] or []) + [_clean(round(r["cosine"], 6))]
                g["error_" + r["mode"]][j] = _clean(round(r["error"], 6))
            lay["runs"][name]["groups"] = g
        for r in rows:
            lay, j, k = layers.get(r["layer"]), col.get(r["iteration"]), k_of.get(r["class"])
            if lay is None or j is None or k is None:
                continue
            if r["channel"] in slot[r["layer"]]:
                lay["runs"][name]["attribution"][j][k][slot[r["layer"]][r["channel"]]] = _clean(
                    round(r["attribution"], 6))
            if r["rank"] < 5:
                lay["runs"][name]["carriers"][j][k].append([r["rank"], r["channel"],
                                                            _clean(round(r["attribution"], 6))])
        for lay in layers.values():
            for per in lay["runs"][name].get("carriers", []):
                for c in per:
                    c.sort()
        accent = {}
        for layer in layers:
            a = _read(os.path.join(L.blocks_dir(out, name, "accentuation"), layer.replace("/", "_"),
                                   "accentuation.json"))
            if a:
                accent[layer] = a["channel"]
        found[name] = {"classes": classes, "images": summary.get("indices", []), "accentuation": accent,
                       "no_groups": [layer for layer, lay in layers.items() if lay["runs"][name]["groups"]["skipped"]]}
    return found


def build(out, progress=False):
    """Write the site into the study folder `out`; returns counts."""
    out = os.fspath(out)
    index, layers = site_data(out)
    for entry in index["layers"]:
        atomic.write_text(os.path.join(out, entry["file"]), "window.STUDY_LAYERS = window.STUDY_LAYERS || {};\n"
                          f"window.STUDY_LAYERS[{json.dumps(entry['name'])}] = {_dump(layers[entry['name']])};\n")
    atomic.write_text(os.path.join(out, "data", "index.js"), f"window.STUDY = {_dump(index)};\n")
    if _activation_atlas_site(out):
        for name in ACTIVATION_ATLAS_ASSETS:
            atomic.copy_file(os.path.join(HERE, "web", name), os.path.join(out, name))
    for name in ASSETS:
        atomic.copy_file(os.path.join(HERE, "web", name), os.path.join(out, name))
    return {"layers": len(layers), "units": sum(len(v["channels"]) for v in layers.values()) * len(index["runs"])}


def _activation_atlas_site(out):
    """data/activation_atlas.js (every run's and layer's activation atlas summary, paths relative to the
    study folder) when the study made activation atlases; False when it did not."""
    settings = L.read_json(os.path.join(out, L.SETTINGS_FILE))
    if not settings.get("activation_atlas"):
        return False
    data = {"runs": {}, "layers": settings["layers"], "grid_size": settings["grid_size"]}
    for path in settings["runs"]:
        run = os.path.basename(os.path.normpath(path))
        names = Run(path).class_names
        data["runs"][run] = {"class_names": names, "layers": {}}
        for layer in settings["layers"]:
            summary = _read(L.activation_atlas_path(out, run, layer))
            if summary is None:
                continue
            base = os.path.relpath(os.path.dirname(L.activation_atlas_path(out, run, layer)), out).replace(os.sep, "/")
            for ck in summary["checkpoints"]:
                it = ck["atlas"].split("/")[0]
                ck["atlas"] = f"{base}/{ck['atlas']}"
                for cell in ck["cells"]:
                    cell["icon"], cell["patches"] = f"{base}/{it}/{cell['icon']}", f"{base}/{it}/{cell['patches']}"
            data["runs"][run]["layers"][layer] = summary
    atomic.write_text(os.path.join(out, "data", "activation_atlas.js"), f"window.ACTIVATION_ATLAS = {_dump(data)};\n")
    return True
