"""Where a study's files live (shared by the stages, lucidtl.study.pipeline, and the site, lucidtl.study.site)."""
import json
import os

SETTINGS_FILE = "study.json"


def iter_name(iteration):
    return f"iter_{iteration:06d}"


def similarity_path(out, run, iteration):
    return os.path.join(out, "similarity", run, iter_name(iteration) + ".json")


def between_path(out, a, b, iteration):
    return os.path.join(out, "similarity", "between", f"{a}~{b}", iter_name(iteration) + ".json")


def examples_path(out, run, iteration, layer):
    return os.path.join(out, "examples", run, iter_name(iteration), layer + ".json")


def example_png(run, iteration, layer, channel):
    """A channel's example strip, relative to the study folder."""
    return f"examples/{run}/{iter_name(iteration)}/{layer}/{channel:04d}.png"


def scale_path(out, run, iteration):
    return os.path.join(out, "scale", run, iter_name(iteration) + ".json")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def activation_atlas_path(out, run, layer):
    """The summary.json of a run's activation atlas of a layer (lucidtl.recipes.activation_atlas.checkpoints)."""
    return os.path.join(out, "activation_atlas", run, layer.replace("/", "_"), "summary.json")


def blocks_dir(out, run, what):
    return os.path.join(out, "blocks", run, what)


def trust_path(out, run, layer):
    """The trust measures of a run's ranked units of a layer (lucidtl.analysis.trust.units_trust)."""
    return os.path.join(out, "trust", run, layer.replace("/", "_") + ".json")
