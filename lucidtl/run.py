"""A run folder as one object: what `lucidtl.train` writes and every downstream tool reads.

    runs/NAME/run.json              settings (dataset, model, top, recipe...) and whether it is complete
    runs/NAME/checkpoints.json      the IterationCheckpoint manifest
    runs/NAME/iter_000000.weights.h5 ...
    runs/NAME/final.keras           the fine-tuned model (after the last iteration)
    runs/NAME/history.csv, logs/    per-epoch metrics, TensorBoard (incl. live feature visualisations)
    runs/NAME/state/                the resume state while the run is unfinished

    run = Run("runs/pets")
    run.iterations, run.settings, run.class_names, run.input_range, run.dataset
    net = run.model_at(run.iterations[-1])

A Run may instead hold loose checkpoint files (`Run(weights="a.weights.h5,b.weights.h5", model=...)`), as the
analyses accept with --weights and --model. Every read of a run folder's files, and every check of them with
its one-line error, lives here; TensorFlow is imported only when a model is built.
"""
import dataclasses
import json
import os
import re

from lucidtl.cli import not_a_run, split_list
from lucidtl.errors import InvalidArgumentError, WeightsError, listed_by

RUN_FILE = "run.json"
MANIFEST = "checkpoints.json"
FINAL = "final.keras"


# ---- the files ---------------------------------------------------------------------------------------

def read_manifest(directory):
    """The manifest's records (a list of dicts, ascending iteration); [] when there is none yet."""
    path = os.path.join(os.fspath(directory), MANIFEST)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)["checkpoints"]
        for r in records:
            r["iteration"], r["path"]  # noqa: B018 (every record names its iteration and file)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidArgumentError(f"cannot read checkpoint manifest {path} ({type(e).__name__}: "
                                   f"{' '.join(str(e).split())[:100]}); restore it, or train into a new --out"
                                   ) from None
    return records


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


def _existing_folder(path, what):
    """`path` as a str, after the one-line refusals of what is no run folder (a model, a file, a graph) and of
    a folder that does not exist (`what`: how the message names the folder to pass)."""
    why = not_a_run(path)
    if why is not None:
        raise InvalidArgumentError(why)
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InvalidArgumentError(f"run folder {path} does not exist; pass {what}")
    return path


def checkpoints(out):
    """The run's manifest records; a one-line error when the folder holds none."""
    out = _existing_folder(out, "the --out folder of a training run")
    records = read_manifest(out)
    if not records:
        raise InvalidArgumentError(f"run folder {out} has no {MANIFEST}; is it the --out folder of a training run?")
    return records


def check(out):
    """Everything a renderer will read from the run folder, before any work: run.json and checkpoints.json
    parse, and every listed checkpoint file exists and holds Keras weights. Returns the manifest records."""
    from lucidtl.models.weights import array_shapes

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
        array_shapes(path)  # a WeightsError naming the file when it is not a readable weights file
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
    out = os.fspath(out)
    return listed_by(_load_checkpoint(out, iteration, model), f"--run {out}")


def _load_checkpoint(out, iteration, model):
    from lucidtl.models import build_model, load_weights

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


# ---- checkpoints as the analyses see them ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Checkpoint:
    iteration: int
    path: str
    epoch: int = None


def iteration_from_name(path, default):
    """The iteration in a checkpoint file's name (`iter_<i>`), else `default`."""
    m = re.search(r"iter_(\d+)", os.path.basename(os.fspath(path)))
    return int(m.group(1)) if m else default


def read_run(directory):
    """The checkpoints of a run folder (its checkpoints.json), ascending iteration."""
    directory = _existing_folder(directory, "the folder the training callback wrote (the one holding "
                                            "checkpoints.json)")
    if not os.path.isfile(os.path.join(directory, MANIFEST)):
        raise InvalidArgumentError(f"run folder {directory} has no {MANIFEST}; pass the folder the training "
                                   "callback wrote, or the checkpoint files themselves")
    try:
        records = read_manifest(directory)
    except (ValueError, KeyError) as e:
        raise InvalidArgumentError(f"cannot read {os.path.join(directory, MANIFEST)}: {e}") from e
    return [Checkpoint(int(r["iteration"]), os.path.join(directory, r["path"]), r.get("epoch")) for r in records]


def resolve_checkpoints(checkpoints):
    """A run folder, a weights file, or a list of files / Checkpoint objects -> [Checkpoint], ascending."""
    if isinstance(checkpoints, Run):
        return checkpoints.checkpoints
    if isinstance(checkpoints, (str, os.PathLike)):
        path = os.fspath(checkpoints)
        if os.path.isdir(path) or not path.endswith((".weights.h5", ".keras")):
            out = read_run(path)
        else:
            out = [Checkpoint(iteration_from_name(path, 0), path)]
    else:
        out = []
        for i, c in enumerate(checkpoints):
            if isinstance(c, Checkpoint):
                out.append(c)
            elif isinstance(c, dict):
                out.append(Checkpoint(int(c["iteration"]), os.fspath(c["path"]), c.get("epoch")))
            else:
                out.append(Checkpoint(iteration_from_name(c, i), os.fspath(c)))
    if not out:
        raise InvalidArgumentError("no checkpoints to analyse; the run folder's manifest is empty")
    for c in out:
        if not os.path.isfile(c.path):
            raise WeightsError(f"checkpoint {c.path} does not exist; check the run folder")
    return sorted(out, key=lambda c: c.iteration)


def select(cps, iterations):
    """The checkpoints at `iterations` (None: all); an iteration not saved is a one-line error."""
    if iterations is None:
        return list(cps)
    saved = {c.iteration: c for c in cps}
    missing = [i for i in iterations if i not in saved]
    if missing:
        raise InvalidArgumentError(f"no checkpoint at iteration {missing[0]}; the run saved iterations "
                                   f"{', '.join(str(c.iteration) for c in cps)}")
    return [saved[i] for i in sorted(set(iterations))]


# ---- the Run -----------------------------------------------------------------------------------------

class Run:
    """A training run folder (`path`), or loose checkpoint files (`weights`, comma separated or a list) of the
    architecture `model` (with the head `num_classes`/`top`/`multi_label` training added). Files are read
    when first asked for, each once; `model_at` builds one architecture per slot and reloads weights into it."""

    def __init__(self, path=None, weights=None, model=None, num_classes=None, top="paper", multi_label=False,
                 label=None):
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError(not_a_run(path))  # a model object
        self.path = None if path is None else os.fspath(path)
        self.weights = weights
        self.model, self.num_classes, self.top, self.multi_label = model, num_classes, top, multi_label
        self._label = label
        self._settings = self._architecture = self._records = None
        self._held = {}

    @classmethod
    def of(cls, run, **kwargs):
        """`run` itself when it is a Run, else Run(run, **kwargs)."""
        return run if isinstance(run, Run) else cls(run, **kwargs)

    def __fspath__(self):
        """The run folder (a Run goes wherever a path does)."""
        if self.path is None:
            raise TypeError("a Run of loose checkpoint files has no folder")
        return self.path

    def __str__(self):
        """The folder (or the loose files), so that a Run goes where a --run / --runs value does."""
        return self.path if self.path is not None else str(self.weights)

    def __repr__(self):
        return f"Run({self.path!r})" if self.weights is None else f"Run(weights={self.weights!r})"

    # -- what the folder says --
    @property
    def name(self):
        """The run folder's name ("" for loose files)."""
        return os.path.basename(os.path.normpath(self.path)) if self.path is not None else ""

    @property
    def label(self):
        """The run's name in tables: the label given, else the folder's name."""
        return str(self._label) if self._label is not None else self.name

    @property
    def settings(self):
        """run.json as a dict ({} without one, or for loose files)."""
        if self._settings is None:
            self._settings = (read_settings(self.path) if self.path is not None else None) or {}
        return self._settings

    @property
    def class_names(self):
        return self.settings.get("class_names")

    @property
    def input_range(self):
        """The input range the run trained with (run.json; (0, 1) without one)."""
        return tuple(self.settings.get("input_range", (0.0, 1.0)))

    @property
    def image_size(self):
        return self.settings.get("image_size")

    @property
    def dataset(self):
        """The dataset spec the run trained on (run.json), or None."""
        return self.settings.get("dataset")

    @property
    def records(self):
        """The folder's manifest records (read once); a one-line error when it is not a run folder."""
        if self._records is None:
            self._records = checkpoints(self.path)
        return self._records

    @property
    def iterations(self):
        return tuple(r["iteration"] for r in self.records)

    @property
    def checkpoints(self):
        """[Checkpoint] ascending: the loose files when given, else the folder's; one-line errors."""
        if self.path is None and self.weights is None:
            raise InvalidArgumentError("no checkpoints; pass --run RUN_FOLDER (with checkpoints.json) or "
                                       "--weights FILE[,FILE...]")
        if self.weights is None:
            return resolve_checkpoints(self.path)
        return resolve_checkpoints(split_list(self.weights))

    def saved(self, iterations=None):
        """The saved iterations asked for (comma separated or a list), in the order given; None: all."""
        saved = list(self.iterations)
        if iterations is None:
            return saved
        wanted = [int(i) for i in (str(iterations).split(",") if isinstance(iterations, (str, int)) else iterations)]
        missing = [i for i in wanted if i not in saved]
        if missing:
            raise InvalidArgumentError(f"no checkpoint at iteration {missing[0]}; saved: {', '.join(map(str, saved))}")
        return wanted

    def select(self, iterations):
        """The checkpoints at the saved `iterations` (None: all)."""
        return select(self.checkpoints, iterations)

    def check(self):
        """Every file the run lists exists and is readable (before any work); the manifest records."""
        return check(self.path)

    def last(self, checkpoint=None):
        """The iteration --checkpoint names (None or "last": the last saved)."""
        return self.records[-1]["iteration"] if checkpoint in (None, "last") else checkpoint

    # -- models --
    def build(self):
        """The run's architecture from run.json (backbone + head), weights random."""
        return build_run_model(self.settings)

    def model_at(self, iteration, slot=None):
        """The model at a saved iteration ("final": final.keras). slot: reuse that slot's architecture (built
        at its first call), loading the weights only when another iteration is asked for; None: a new model."""
        if slot is None:
            return load_checkpoint(self.path, iteration)
        net, at = self._held.get(slot, (None, None))
        if net is None or at != iteration:
            net = load_checkpoint(self.path, iteration, model=net)
            self._held[slot] = (net, iteration)
        return net

    def architecture(self):
        """(model_fn, input_range): model_fn() builds the architecture each checkpoint is loaded into. Without
        `model`, the run's run.json or else a .keras checkpoint supplies it. Checked once, on first call."""
        if self._architecture is None:
            self._architecture = self._make_architecture()
        return self._architecture

    def _make_architecture(self):
        from lucidtl.models import build_model

        model, num_classes = self.model, self.num_classes
        if model is None and self.path is not None and os.path.isfile(os.path.join(self.path, RUN_FILE)):
            settings, flags = self.settings, f"--run {self.path}"
            return (lambda: listed_by(build_run_model(settings), flags)), tuple(settings.get("input_range", (0.0, 1.0)))
        if model is None:
            files = [c.path for c in self.checkpoints if c.path.endswith(".keras")]
            if not files:
                raise InvalidArgumentError("pass --model: the architecture the run trained (a registry name, a "
                                           ".keras file or a dotted builder path), with --num_classes and --top "
                                           "if training added a head")
            model = files[0]
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise InvalidArgumentError(f"--num_classes must be a positive integer, got {num_classes!r}")
        first, info = build_model(model, weights=None)
        spare = [first]  # the probe build serves the first call
        top, multi_label = self.top, self.multi_label

        flags = f"--run {self.path}" if self.path is not None and self.model is None else None

        def model_fn():
            net = spare.pop() if spare else build_model(model, weights=None)[0]
            if num_classes is not None:
                from lucidtl.train.heads import add_head

                net = add_head(net, num_classes, top=top, multi_label=bool(multi_label))
            return net if flags is None else listed_by(net, flags)

        return model_fn, tuple(info.input_range)


def load_run(run, checkpoint=None, model=None, weights=None):
    """(model, ModelInfo) of a training run at a saved iteration (None or "last": the last one saved)."""
    from lucidtl.models.weights import ModelInfo

    if model not in (None, "inception_v1") or weights is not None:
        raise InvalidArgumentError("--run rebuilds the run's own model: drop --model / --weights (or --run)")
    run = Run.of(run)
    iteration = run.last(checkpoint)
    net = run.model_at(iteration)  # an iteration not saved: one line naming the saved ones
    return net, ModelInfo(name=net.name, weights_source=f"{run.path} iteration {iteration}",
                          input_range=run.input_range, random_weights=False)
