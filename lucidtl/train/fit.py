"""train(): fine-tune a pretrained backbone with a new top, saving checkpoints at chosen iterations.

Every run is counted in iterations (optimiser updates). The training set is one seeded stream of as many
epochs as the run needs; an "epoch" is one pass (or the recipe's steps_per_epoch). The run's state (model +
optimiser) is saved atomically every minute (or every `backup_every` iterations), so a run killed at any
moment restarts from its last state, skips exactly the examples it had consumed, and saves the checkpoints
it still owes.
"""
import csv
import dataclasses
import io
import json
import math
import os
import time

import keras
import tensorflow as tf

from lucidtl import atomic, cli
from lucidtl.data import load as load_data
from lucidtl.errors import InvalidArgumentError, WeightsError
from lucidtl.models import build_model, load_weights, save_model, save_weights
from lucidtl.run import FINAL, read_manifest, read_settings
from lucidtl.train import distribute
from lucidtl.train.callbacks import IterationCheckpoint, plain_metrics
from lucidtl.train.heads import OPTIMIZERS, TOPS, add_head, compile_for
from lucidtl.train.live import FeatureVisualization, out_of_range, parse_channels
from lucidtl.train.recipes import recipe as get_recipe
from lucidtl.train.run import write_settings
from lucidtl.train.schedule import parse_schedule

STATE = os.path.join("state", "resume.weights.h5")
# settings that must match for a run folder to be resumed
IDENTITY = ("dataset", "model", "weights", "top", "recipe", "batch_size", "iterations", "image_size", "seed",
            "learning_rate", "optimizer", "mixed_precision", "augment", "breeds", "validation_split", "save_at",
            "steps_per_epoch", "save_format")


@dataclasses.dataclass
class TrainResult:
    out: str
    iterations: int  # where the run stands now
    checkpoints: list  # the manifest records
    final: str  # path of final.keras
    resumed_from: int  # 0 for a fresh run
    history: dict  # metrics of the last fit call (per epoch)


class StopAtIteration(keras.callbacks.Callback):
    """Ends fit once the optimiser has made `iterations` updates (the last epoch may be partial)."""

    def __init__(self, iterations):
        super().__init__()
        self.iterations = iterations

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.iterations:
            self.model.stop_training = True


class ResumeState(keras.callbacks.Callback):
    """Saves model + optimiser state (which holds the iteration count) atomically every `every` iterations
    and/or every `seconds` of training, and at each epoch's end. Put it after IterationCheckpoint: the state
    never claims an iteration whose checkpoint is not on disk yet. One save of BN-InceptionV1 + Adam
    (68 MB) takes about 0.5 s on the development VM, so the default (60 s) costs under 1 %."""

    def __init__(self, path, every=None, seconds=60.0):
        super().__init__()
        self.path, self.every, self.seconds = path, int(every or 0), float(seconds or 0)
        self._writer = True
        self._last = time.monotonic()

    def on_train_begin(self, logs=None):
        self._writer = distribute.is_chief(getattr(self.model, "distribute_strategy", None))
        self._last = time.monotonic()

    def _save(self):
        if self._writer:
            save_weights(self.model, self.path)
        self._last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        due = self.every and int(self.model.optimizer.iterations.numpy()) % self.every == 0
        if due or (self.seconds and time.monotonic() - self._last >= self.seconds):
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()


class HistoryCSV(keras.callbacks.Callback):
    """history.csv: one row per epoch (epoch, then the logs by name), the whole file rewritten atomically at
    each epoch's end. A resumed run replaces the row of an epoch it ends again (Keras' CSVLogger appends a
    second one, and writes past the atomic helper)."""

    def __init__(self, path):
        super().__init__()
        self.path, self.rows, self._writer = path, [], True

    def on_train_begin(self, logs=None):
        self._writer = distribute.is_chief(getattr(self.model, "distribute_strategy", None))
        self.rows = []
        if os.path.isfile(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                self.rows = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit()]

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": str(epoch), **{k: repr(v) for k, v in sorted(plain_metrics(logs).items())}}
        self.rows = [r for r in self.rows if int(r["epoch"]) != epoch] + [row]
        self.rows.sort(key=lambda r: int(r["epoch"]))
        if self._writer:
            columns = list(dict.fromkeys(k for r in self.rows for k in r))
            text = io.StringIO()
            w = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
            w.writeheader()
            w.writerows(self.rows)
            atomic.write_text(self.path, text.getvalue())


def _settings(dataset, model, weights, recipe, top, epochs, batch_size, iterations, save_at, image_size,
              learning_rate, optimizer, mixed_precision, seed, augment, breeds, validation_split, save_format):
    rec = get_recipe(recipe)
    top = rec.top if top is None else top
    if top not in TOPS:
        raise InvalidArgumentError(f"unknown --top {top!r}; choose one of {', '.join(TOPS)}")
    iterations = cli.integer("iterations", iterations, optional=True)
    epochs = cli.integer("epochs", epochs, optional=True)
    if iterations is None and epochs is None:
        iterations, epochs = rec.iterations, rec.epochs
    settings = dict(
        dataset=str(dataset), model=str(model), weights=None if weights is None else os.fspath(weights),
        recipe=rec.name, top=top, epochs=epochs, iterations=iterations,
        batch_size=cli.integer("batch-size", rec.batch_size if batch_size is None else batch_size),
        image_size=image_size, save_at=save_at if save_at is not None else rec.save_at,
        learning_rate=float(rec.learning_rate if learning_rate is None else learning_rate),
        optimizer=None if optimizer is None else cli.choice("optimizer", optimizer, tuple(OPTIMIZERS)),
        mixed_precision=_policy(mixed_precision), seed=cli.integer("seed", seed, minimum=0), augment=bool(augment),
        breeds=breeds, validation_split=validation_split, steps_per_epoch=rec.steps_per_epoch,
        save_format=save_format)
    try:  # as run.json will hold them (tuples become lists), so a resumed run compares equal
        return json.loads(json.dumps(settings))
    except TypeError:
        raise InvalidArgumentError("settings must be plain values (numbers, strings, lists)") from None


def _policy(mixed_precision):
    """False -> None (float32); True or "float16" -> "mixed_float16"; "bfloat16" -> "mixed_bfloat16"."""
    if mixed_precision in (False, None, "false", "no"):
        return None
    name = {True: "mixed_float16", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}.get(mixed_precision)
    if name is None:
        raise InvalidArgumentError(f"unknown --mixed-precision {mixed_precision!r}; use float16 (or True) or bfloat16")
    return name


def _prepare_out(out, settings, overwrite):
    """Resume (same settings), start over (--overwrite) or refuse; returns the settings on disk, if any
    (None when --overwrite is to replace them). Writes nothing: see _claim_out."""
    old = read_settings(out)
    if old is not None and overwrite:
        return None
    # a kill during the first run.json write leaves only its temporary file: that is a run to start
    if old is None and os.path.isdir(out) and any(not n.startswith(".tmp-") for n in os.listdir(out)):
        raise InvalidArgumentError(f"--out {out} is not empty and holds no training run; choose another --out")
    if old is not None:
        diff = [k for k in IDENTITY if old.get(k) != settings.get(k)]
        if diff:
            k = diff[0]
            raise InvalidArgumentError(f"--out {out} holds a run with {k}={old.get(k)!r}, not {settings.get(k)!r}; "
                                       "pass --overwrite to start over, or choose another --out")
    return old


def _claim_out(out, overwrite):
    """The run's first writes, once every check has passed: remove the run --overwrite replaces, and the
    temporary files of writes a kill cut short."""
    if overwrite and read_settings(out) is not None:
        atomic.rmtree(out)
    for folder in (out, os.path.join(out, os.path.dirname(STATE))):
        if os.path.isdir(folder):
            atomic.clear_stale(folder)


def _remove_state(out):
    """Remove the resume state's folder, once run.json says the run is complete."""
    folder = os.path.join(out, os.path.dirname(STATE))
    if os.path.isdir(folder):
        atomic.rmtree(folder)


def _build(settings, rec, data, weights):
    kwargs = {}
    if settings["model"] == "inception_v1" and rec.input_scaling != "slim":
        kwargs["input_scaling"] = rec.input_scaling
    keras.utils.set_random_seed(settings["seed"])
    try:
        with cli.held_output():  # offline, the weights error is the only line
            backbone, info = build_model(settings["model"], weights=weights, include_top=False, **kwargs)
    except WeightsError as e:
        if weights != "imagenet":
            raise
        raise WeightsError(f"{e}; or pass --weights random to fine-tune from random weights "
                           "(not the paper's setting)") from None
    if rec.bn_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = rec.bn_momentum
    net = add_head(backbone, data.num_classes, top=settings["top"], multi_label=data.multi_label)
    optimizer = settings.get("optimizer") or (
        (rec.multi_label_optimizer or rec.optimizer) if data.multi_label else rec.optimizer)
    compile_for(net, data.multi_label, settings["learning_rate"], optimizer, rec.multi_label_loss)
    return net, info, kwargs


def _steps_per_epoch(settings, data):
    if settings["steps_per_epoch"]:
        return settings["steps_per_epoch"]
    return max(1, math.ceil(data.train_size / settings["batch_size"]))


def train(dataset, weights="imagenet", recipe="paper", model="inception_v1", top=None, epochs=None,
          batch_size=None, iterations=None, save_at=None, out=None, image_size=None, learning_rate=None,
          optimizer=None, mixed_precision=False, data_dir=None, manual_dir=None, breeds=None, validation_split=0.1,
          seed=0, augment=False, strategy="auto", save_format="weights", backup_every=None, backup_seconds=60,
          visualize=None, visualize_at=None, visualize_steps=64, visualize_size=96, tensorboard=True, progress=True,
          overwrite=False, download=True, skip_bad_images=False):
    """Fine-tune a model (ImageNet weights by default) on a dataset with the recipe's top, loss and schedule.

    Rerunning with the same settings and --out resumes the run; a killed run loses at most the last backup.

    Args:
        weights: imagenet | random | a weights file
        recipe (paper|temporal|authors-code|authors-code-temporal): the paper's recipe (lucidtl.train.recipes)
        model: inception_v1 | a .keras or .h5 file | keras.applications.X | a dotted builder
        top (paper|single): the head put on the backbone (default: the recipe's)
        epochs (int >= 1): epochs to train (default: the recipe's)
        batch_size (int >= 1): training batch (default: the recipe's)
        iterations (int >= 1): optimiser updates; bounds the run instead of epochs (default: the recipe's)
        save_at (any): checkpoint iterations: paper | 0,10,20 | every:N | log:K (default: the recipe's)
        out (folder): the run folder (default runs/<dataset>-<recipe>)
        image_size (int >= 1): side the images are resized to (default: the recipe's)
        learning_rate (number > 0): the optimiser's learning rate (default: the recipe's)
        optimizer (adam|rmsprop|sgd): the optimiser (default: the recipe's)
        mixed_precision (any): False, True / float16 (mixed_float16) or bfloat16; weights stay float32
        data_dir: where tensorflow_datasets keeps its data
        manual_dir: where manually downloaded dataset files are (CelebA)
        breeds (any): oxford_iiit_pet subset: paper31 or a comma list of breeds
        validation_split (number in [0, 1]): share of a folder dataset held out for validation
        seed (int >= 0): data order, augmentation and head initialisation seed
        augment (bool): random flips and crops
        strategy: auto | default | mirrored[:devices] | multiworker (TF_CONFIG)
        save_format (weights|keras): checkpoints as .weights.h5 or whole .keras models
        backup_every (int >= 1): save the resume state every N iterations (besides --backup-seconds)
        backup_seconds (number >= 0): save the resume state every N seconds of training
        visualize (layer channels): channels drawn into TensorBoard while training, e.g. Mixed_4c:3,Mixed_5b:0:4
        visualize_at (any): iterations of those drawings (default: the checkpoint iterations)
        visualize_steps (int >= 1): render steps of each drawing
        visualize_size (int >= 16): side of each drawing in px
        tensorboard (bool): write TensorBoard logs
        progress (bool): show a progress bar
        overwrite (bool): start the run anew in a folder that holds another run
        download (bool): download the dataset when it is missing
        skip_bad_images (bool): image folders only: leave out (and count, in run.json's skipped_images) files
            that cannot be decoded; by default the first one is an error naming it, before anything is written
    """
    settings = _settings(dataset, model, weights, recipe, top, epochs, batch_size, iterations, save_at,
                         image_size, learning_rate, optimizer, mixed_precision, seed, augment, breeds,
                         validation_split, save_format)
    rec = get_recipe(settings["recipe"])
    strat = distribute.make_strategy(strategy)  # first: multi-worker collectives must start before other ops
    chief = distribute.is_chief(strat)
    out = os.fspath(out or os.path.join("runs", f"{settings['dataset'].replace(':', '-').replace(os.sep, '_')}-"
                                                 f"{settings['recipe']}"))
    cli.integer("backup-every", backup_every, minimum=1, optional=True)
    if isinstance(backup_seconds, bool) or not isinstance(backup_seconds, (int, float)) or backup_seconds < 0:
        raise InvalidArgumentError(f"--backup-seconds must be a number >= 0, got {backup_seconds!r}")
    old = _prepare_out(out, settings, overwrite) if chief else read_settings(out)
    if old is not None and old.get("complete"):
        total = old["total_iterations"]
        if chief:  # a kill after run.json said complete and before the state was removed
            _claim_out(out, False)
            _remove_state(out)
        print(f"{out}: complete ({total} iterations); nothing to do (--overwrite starts it again)")
        return TrainResult(out=out, iterations=total, checkpoints=read_manifest(out), final=os.path.join(out, FINAL),
                           resumed_from=total, history={})

    passes = [1]  # epochs of data the stream holds; set once the run's length is known

    def data_at(skip):
        return load_data(settings["dataset"], batch_size=settings["batch_size"],
                         image_size=settings["image_size"] or 224, data_dir=data_dir, manual_dir=manual_dir,
                         seed=settings["seed"], augment=settings["augment"], breeds=breeds,
                         validation_split=validation_split, download=download, repeat=passes[0], skip=skip,
                         skip_bad_images=skip_bad_images)

    data = data_at(0)
    if settings["image_size"] is None:
        size = rec.multi_label_image_size if (data.multi_label and rec.multi_label_image_size) else rec.image_size
        settings["image_size"] = size
        data = data_at(0)
    spe = _steps_per_epoch(settings, data)
    total = settings["iterations"] or settings["epochs"] * spe
    spe = min(spe, total)  # a run shorter than one pass (e.g. 3000 CelebA iterations) is one "epoch": a full bar
    passes[0] = math.ceil(total * settings["batch_size"] / data.train_size) + 1
    save_points = parse_schedule(settings["save_at"], total)
    saved = read_manifest(out) if old is not None else []
    if chief:
        _print_plan(settings, data, out, total, spe, save_points, old, saved)

    # where the weights come from: the resume state, else (killed before its first save) the saved
    # iteration 0, else the requested pretrained weights
    state = os.path.join(out, STATE)
    restart = None if old is None else state if os.path.isfile(state) else (  # old None: a fresh run (or
        os.path.join(out, saved[0]["path"]) if saved and saved[0]["iteration"] == 0 else None)  # --overwrite)
    before = keras.mixed_precision.dtype_policy()
    try:  # layers keep the policy they were built with; the global one is only borrowed
        keras.mixed_precision.set_dtype_policy(settings["mixed_precision"] or "float32")
        with strat.scope():
            net, info, model_kwargs = _build(settings, rec, data, "random" if restart else settings["weights"])
    finally:
        keras.mixed_precision.set_dtype_policy(before)
    settings.update(num_classes=data.num_classes, multi_label=data.multi_label, class_names=list(data.class_names),
                    model_kwargs=model_kwargs, input_range=list(info.input_range), total_iterations=total,
                    steps_per_epoch_used=spe, complete=False)
    if restart == state:
        net.optimizer.build(net.trainable_variables)  # the state holds the optimiser (and its iteration count)
    if restart:
        load_weights(net, restart)
    start = int(net.optimizer.iterations.numpy()) if restart == state else 0
    if data.skipped:
        settings["skipped_images"] = list(data.skipped)
        print(f"skipped {len(data.skipped)} undecodable image(s): {', '.join(data.skipped[:3])}"
              f"{' ...' if len(data.skipped) > 3 else ''}")
    if visualize:  # channels in range before the first write
        _check_visualize(net, visualize)
    if chief:
        _claim_out(out, overwrite)
        write_settings(out, settings)

    history = {}
    if start < total:
        callbacks = [IterationCheckpoint(out, save_points, total, save_format=save_format,
                                         report=_line_printer(progress))]
        if visualize and chief:
            callbacks.append(FeatureVisualization(os.path.join(out, "logs", "features"), visualize,
                                                  at=visualize_at or save_points, iterations=total,
                                                  steps=visualize_steps, size=visualize_size,
                                                  input_range=tuple(info.input_range), seed=settings["seed"]))
        callbacks.append(StopAtIteration(total))
        if chief:
            callbacks.append(HistoryCSV(os.path.join(out, "history.csv")))
            if tensorboard:
                callbacks.append(keras.callbacks.TensorBoard(os.path.join(out, "logs"), update_freq="epoch"))
        callbacks.append(ResumeState(state, backup_every, backup_seconds))
        history = _fit(net, settings, data_at, strat, callbacks, start, total, spe, progress)
    final = os.path.join(out, FINAL)
    if chief:
        if not os.path.isfile(final) or start < total:
            save_model(net, final)
        settings["complete"] = True
        write_settings(out, settings)
        _remove_state(out)
    return TrainResult(out=out, iterations=int(net.optimizer.iterations.numpy()) if start < total else total,
                       checkpoints=read_manifest(out), final=final, resumed_from=start, history=history)


def _check_visualize(net, visualize):
    bad = out_of_range(net, parse_channels(visualize))  # unknown layer: the closest names
    if bad:
        layer, channel, count = bad
        raise InvalidArgumentError(f"--visualize channel {layer}:{channel} is out of range: {layer} has {count} "
                                   f"channels (0..{count - 1})")


def _line_printer(progress):
    """print, on a line of its own when a progress bar may be on the current one."""
    def report(line):
        print(("\n" if progress else "") + line, flush=True)

    return report


def _print_plan(settings, data, out, total, spe, save_points, old, saved):
    """What the run will do, before it starts (read by a person deciding whether to wait for it); saved: the
    manifest's records of a resumed run."""
    sizes = f"{data.train_size} training" if data.train_size else "training"
    if data.validation_size:
        sizes += f" + {data.validation_size} validation"
    print(f"train: {settings['dataset']}: {sizes} images of {settings['image_size']} px, {data.num_classes} "
          f"{'attributes' if data.multi_label else 'classes'}")
    print(f"train: recipe {settings['recipe']} (top {settings['top']}, batch {settings['batch_size']}, "
          f"learning rate {settings['learning_rate']:g}): {total} iterations ({spe} a pass)")
    points = ", ".join(str(p) for p in save_points if p <= total)
    print(f"train: checkpoints at iterations {points} into {out}")
    if old is not None:
        done = [r["iteration"] for r in saved]
        print(f"train: resuming; saved so far: {', '.join(map(str, done)) or 'none'}")


def _fit(net, settings, data_at, strat, callbacks, start, total, spe, progress):
    """model.fit from iteration `start`: the rest of a partial epoch first, then whole epochs."""
    batch = settings["batch_size"]
    epoch, done_in_epoch = divmod(start, spe)
    epochs = math.ceil(total / spe)
    verbose = 1 if progress else 0
    history = {}
    while start < total:
        data = data_at(start * batch)
        train_ds, val_ds = data.train, data.validation
        replicas = strat.num_replicas_in_sync
        if val_ds is not None and replicas > 1:
            # Keras cannot split an uneven last batch across replicas: drop it (at most one batch)
            vb = replicas * max(1, batch // replicas)
            vb = replicas if (data.validation_size or 0) < vb else vb
            val_ds = val_ds.unbatch().batch(vb, drop_remainder=True)
            if data.validation_size:  # a known length, or Keras warns that the input "ran out of data"
                val_ds = val_ds.apply(tf.data.experimental.assert_cardinality(data.validation_size // vb))
        if isinstance(strat, tf.distribute.MultiWorkerMirroredStrategy):
            distribute.patch_for_multiworker(net, data.train)
            train_ds = distribute.shard_by_data(train_ds)
            val_ds = val_ds and distribute.shard_by_data(val_ds)
        if done_in_epoch:  # finish the interrupted epoch
            steps, last = spe - done_in_epoch, epoch + 1
        else:
            steps, last = spe, epochs
        h = net.fit(train_ds, validation_data=val_ds, epochs=last, initial_epoch=epoch, steps_per_epoch=steps,
                    callbacks=callbacks, verbose=verbose, shuffle=False)
        history = h.history
        start = int(net.optimizer.iterations.numpy())
        epoch, done_in_epoch = divmod(start, spe)
        if last == epochs:
            break
    return history
