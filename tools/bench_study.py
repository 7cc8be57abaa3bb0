"""The study site at the paper's scale in headless Chromium: first paint of a unit page and of the largest
layer page, and the browser's memory.

    python tools/bench_study.py [--out /tmp/lucidtl-study-bench] [--runs 3] [--iterations 0,10,...] [--repeats 5]

Writes a synthetic study folder of InceptionV1's 57 conv layers (7,280 channels) x 8 checkpoints x 3 runs
(174,720 renders and as many example strips; placeholder PNGs: 16 small files hard-linked, so it is cheap),
with every stage's files (atlas manifest, similarity, between-run similarity, scale, examples), then builds
the site with lucidtl.study.site.build and opens it from file:// in a fresh Chromium per measurement.
Timings: the paint timing API's first-contentful-paint, and the moment app.js has drawn the page (a
performance mark), both from navigation start; memory: the page's JS heap (CDP Performance.getMetrics) and
the proportional set size of all the browser's processes (/proc);
the median of --repeats fresh loads.
Chromium: LUCIDTL_CHROMIUM, else chromium on PATH.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_ITERATIONS = (0, 10, 20, 30, 60, 150, 1000, 3000)  # ../shared/spec/paper.md, the temporal run


def inception_conv_layers():
    """[(layer, channels)] of InceptionV1's 57 conv layers, read off the model."""
    from lucidtl.models import CONV_LAYERS, build_model
    from lucidtl.optvis import features

    net, _ = build_model("inception_v1", weights="random")
    return [(name, features.channel_count(net, name)) for name in CONV_LAYERS]


def _placeholders(folder, n=16, size=32, seed=0):
    from lucidtl import imageio

    rng = np.random.default_rng(seed)
    return [imageio.save_png(rng.random((size, size, 3)), os.path.join(folder, f"p{i}.png")) for i in range(n)]


def make_synthetic_study(out, layers, runs=("celeba", "flowers", "pets"), iterations=PAPER_ITERATIONS,
                         examples=True, seed=0):
    """A study folder as lucidtl.study's stages leave it (before the site), with placeholder PNGs and
    random values; returns the number of renders."""
    from lucidtl.imageio import save_json
    from lucidtl.study import pipeline as P

    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    pngs = _placeholders(os.path.join(out, "placeholders"))
    chans = {name: list(range(count)) for name, count in layers}
    save_json({"runs": [f"/runs/{r}" for r in runs], "layers": [n for n, _ in layers], "channels": chans,
               "size": 128, "steps": 512, "batch_size": 32, "seed": 0, "dataset": "celeb_a" if examples else None,
               "max_images": 256, "examples": 6}, os.path.join(out, P.SETTINGS_FILE))
    os.makedirs(os.path.join(out, "atlas"), exist_ok=True)
    save_json({"size": 128, "steps": 512}, os.path.join(out, "atlas", "atlas.json"))
    n, k = 0, 0
    with open(os.path.join(out, "atlas", "manifest-0of1.jsonl"), "w", encoding="utf-8") as manifest:
        for r_i, run in enumerate(runs):
            for j, it in enumerate(iterations):
                drift = j / max(len(iterations) - 1, 1)
                sim = {"iteration": it, "reference_iteration": iterations[0], "layers": {}}
                between = {"iteration": it, "layers": {}}
                scale = {"iteration": it, "periods": {}}
                for depth, (layer, count) in enumerate(layers):
                    d = drift * (0.05 + 0.5 * depth / len(layers))  # deeper layers move more
                    pd = np.clip(d * rng.random(count) * 2, 0, 1).round(4).tolist()
                    sim["layers"][layer] = {"cka": round(1 - d, 4), "procrustes_norm": round(d, 4),
                                            "pwsm_theta": round(d * 1.5, 4),
                                            "channels": {"procrustes_norm": pd, "cka": [round(1 - v, 4) for v in pd]}}
                    between["layers"][layer] = {"cka": round(1 - d, 4), "procrustes_norm": round(d, 4),
                                                "pwsm_theta": round(d, 4),
                                                "channels": {"procrustes_norm": pd, "cka": pd}}
                    scale["periods"][layer] = {str(c): float(rng.integers(2, 64)) for c in range(count)}
                    folder = os.path.join(out, "atlas", run, P.iter_name(it), layer)
                    os.makedirs(folder, exist_ok=True)
                    ex_folder = os.path.join(out, "examples", run, P.iter_name(it), layer)
                    if examples:
                        os.makedirs(ex_folder, exist_ok=True)
                    lines = []
                    for c in range(count):
                        rel = f"{run}/{P.iter_name(it)}/{layer}/{c:04d}.png"
                        os.link(pngs[k % len(pngs)], os.path.join(out, "atlas", rel))
                        if examples:
                            os.link(pngs[(k + 7) % len(pngs)], os.path.join(ex_folder, f"{c:04d}.png"))
                        k += 1
                        lines.append(json.dumps({"checkpoint": f"{run}/{P.iter_name(it)}", "run": run,
                                                 "iteration": it, "layer": layer, "channel": c,
                                                 "objective": round(float(rng.random()), 4), "png": rel,
                                                 "finished": 0}) + "\n")
                    manifest.write("".join(lines))
                    n += count
                    if examples:
                        save_json({"iteration": it, "layer": layer, "k": 6,
                                   "channels": {str(c): [[c, 1.0, 0]] * 6 for c in range(count)}},
                                  P.examples_path(out, run, it, layer))
                save_json(sim, P.similarity_path(out, run, it))
                save_json(scale, P.scale_path(out, run, it))
                for other in runs[r_i + 1:]:
                    save_json(between, P.between_path(out, run, other, it))
    return n


def chromium():
    exe = os.environ.get("LUCIDTL_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if exe is None:
        sys.exit("no Chromium executable (apt install chromium, or set LUCIDTL_CHROMIUM)")
    return exe


def browser_pss_mb():
    """Proportional set size (MiB) of every Chromium process descending from this one (/proc, Linux)."""
    parent = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parent[int(pid)] = int(fields[1])
        except OSError:
            pass
    mine, total = {os.getpid()}, 0
    for _ in range(8):  # a few levels: python -> playwright driver -> chromium -> its children
        mine |= {p for p, pp in parent.items() if pp in mine}
    for pid in mine:
        try:
            with open(f"/proc/{pid}/comm") as f:
                if "chrom" not in f.read():
                    continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            pass
    return round(total / 1024, 1)


def measure(index, address, exe, viewport=(1400, 1000)):
    """{first_contentful_paint_ms, drawn_ms, js_heap_mb, images_loaded, images} of one fresh page load."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto("file://" + os.path.abspath(index) + address)
        page.wait_for_function("h => document.body.getAttribute('data-drawn') === h", arg=address, timeout=60000)
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        timing = page.evaluate("""h => ({
            fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
            drawn: (performance.getEntriesByName('drawn ' + h)[0] || {}).startTime,
            images: document.images.length,
            loaded: Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length})""", address)
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        pss = browser_pss_mb()
        browser.close()
    if errors:
        raise RuntimeError(f"console errors on {address}: {errors[:3]}")
    return {"first_contentful_paint_ms": round(timing["fcp"] or -1, 1), "drawn_ms": round(timing["drawn"], 1),
            "js_heap_mb": round(metrics["JSHeapUsedSize"] / 2**20, 1), "browser_pss_mb": pss,
            "dom_nodes": int(metrics["Nodes"]), "images": timing["images"],
            "images_loaded": timing["loaded"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/lucidtl-study-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iterations", default=",".join(map(str, PAPER_ITERATIONS)))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    from lucidtl.study import site

    exe = chromium()
    layers = inception_conv_layers()
    runs = ("celeba", "flowers", "pets", "animals", "scenes")[:args.runs]
    iterations = tuple(int(i) for i in args.iterations.split(","))
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    t0 = time.time()
    n = make_synthetic_study(args.out, layers, runs, iterations)
    t1 = time.time()
    site.build(args.out)
    t2 = time.time()
    data = os.path.join(args.out, "data")
    sizes = {f: os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)}
    largest = max(layers, key=lambda x: x[1])
    index = os.path.join(args.out, "index.html")

    def median_of(address):  # each a fresh browser; the median load by drawn_ms
        loads = sorted((measure(index, address, exe) for _ in range(args.repeats)), key=lambda m: m["drawn_ms"])
        return dict(loads[len(loads) // 2], repeats=args.repeats)

    unit = median_of(f"#/unit/{runs[0]}/Mixed_4c_Branch_1_b_3x3/100")
    layer = median_of(f"#/layer/{largest[0]}/{runs[0]}")
    home = median_of("#/")
    print(json.dumps({
        "channels": sum(c for _, c in layers), "layers": len(layers), "runs": len(runs), "checkpoints": len(iterations),
        "renders": n, "synthetic_study_s": round(t1 - t0, 1), "site_build_s": round(t2 - t1, 1),
        "index_js_kb": round(sizes["index.js"] / 1024, 1),
        "largest_layer_js_kb": round(max(v for k, v in sizes.items() if k != "index.js") / 1024, 1),
        "all_data_mb": round(sum(sizes.values()) / 2**20, 2),
        "largest_layer": f"{largest[0]} ({largest[1]} channels)",
        "unit_page": unit, "largest_layer_page": layer, "home_page": home}, indent=1))


if __name__ == "__main__":
    main()
