"""A run folder: what `lucidtl.train` writes and every downstream tool reads.

    runs/NAME/run.json              settings (dataset, model, top, recipe...) and whether it is complete
    runs/NAME/checkpoints.json      the IterationCheckpoint manifest
    runs/NAME/iter_000000.weights.h5 ...
    runs/NAME/final.keras           the fine-tuned model (after the last iteration)
    runs/NAME/history.csv, logs/    per-epoch metrics, TensorBoard (incl. live feature visualisations)
    runs/NAME/state/                the resume state while the run is unfinished
"""
import json
import os

from lucidtl.atomic import atomic_path
from lucidtl.errors import InvalidArgumentError, WeightsError
from lucidtl.train.callbacks import MANIFEST, read_manifest

RUN_FILE = "run.json"
FINAL = "final.keras"


def write_settings(out, settings):
    with atomic_path(os.path.join(out, RUN_FILE)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1, sort_keys=True)


def read_settings(out):
    """run.json as a dict; None when there is none; a one-line error naming the file when it is corrupt."""
    path = os.path.join(os.fspath(out), RUN_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidArgumentError(f"cannot read {path}: {' '.join(str(e).split())[:120]}; the run's settings "
                                   "are corrupt (restore the file, or train again into a new --out)") from None
    if not isinstance(settings, dict):
        raise InvalidArgumentError(f"{path} is not a run's settings (a JSON object); restore the file")
    return settings


def checkpoints(out):
    """The run's manifest records; a one-line error when the folder holds none."""
    out = os.fspath(out)
    if not os.path.isdir(out):
        raise InvalidArgumentError(f"run folder {out} does not exist; pass the --out folder of a training run")
    records = read_manifest(out)
    if not records:
        raise InvalidArgumentError(f"run folder {out} has no {MANIFEST}; is it the --out folder of a training run?")
    return records


def check(out):
    """Everything a renderer will read from the run folder, before any work: run.json and checkpoints.json
    parse, and every listed checkpoint file exists and holds Keras weights. Returns the manifest records."""
    from lucidtl.models.weights import _array_shapes

    out = os.fspath(out)
    records = checkpoints(out)
    settings = read_settings(out)
    for r in records:
        path = os.path.join(out, r["path"])
        if not os.path.isfile(path):
            raise InvalidArgumentError(f"run {out} lists {r['path']} (iteration {r['iteration']}) in {MANIFEST}, "
                                       f"but the file is missing; restore it or delete its entry")
        if settings is None and not path.endswith(".keras"):
            raise InvalidArgumentError(f"run {out} has weights-only checkpoints but no {RUN_FILE} to rebuild "
                                       "the model from; restore it")
        _array_shapes(path)  # a WeightsError naming the file when it is not a readable weights file
    return records


def build_run_model(settings):
    """The run's architecture (backbone + top), weights untouched (random)."""
    import keras

    from lucidtl.models import build_model
    from lucidtl.train.heads import add_head

    keras.utils.set_random_seed(0)
    backbone, _ = build_model(settings["model"], weights="random", include_top=False, **settings["model_kwargs"])
    return add_head(backbone, settings["num_classes"], top=settings["top"], multi_label=settings["multi_label"])


def load_checkpoint(out, iteration, model=None):
    """The run's model at a saved iteration ("final" for final.keras). `model`: reuse this architecture
    (faster when loading many checkpoints of one run; works for .weights.h5 and .keras checkpoints)."""
    from lucidtl.models import build_model, load_weights

    out = os.fspath(out)
    if iteration == "final":
        path = os.path.join(out, FINAL)
        if not os.path.isfile(path):
            raise InvalidArgumentError(f"run {out} has no {FINAL} yet; is the run complete?")
        return build_model(path)[0]
    records = {r["iteration"]: r for r in checkpoints(out)}
    if iteration not in records:
        raise InvalidArgumentError(f"run {out} has no checkpoint at iteration {iteration}; saved: "
                                   f"{', '.join(map(str, sorted(records)))}")
    path = os.path.join(out, records[iteration]["path"])
    if path.endswith(".keras") and model is None:
        return build_model(path)[0]
    if model is None:
        settings = read_settings(out)
        if settings is None:
            raise WeightsError(f"run {out} has weights-only checkpoints but no {RUN_FILE} to rebuild the model "
                               "from; save with save_format='keras' or pass the model")
        model = build_run_model(settings)
    return load_weights(model, path)
