"""Datasets for fine-tuning: tfds (celeb_a, oxford_iiit_pet, oxford_flowers102) or an image folder, as
tf.data of (image, label) with float32 images in [0, 1] resized bilinearly with antialiasing.

    data = load("oxford_iiit_pet", breeds="paper31")
    model.fit(data.train, validation_data=data.validation)
"""
import dataclasses
import numbers
import os
from typing import Optional

import tensorflow as tf

from lucidtl.data import folder, pipeline, tfds_sets
from lucidtl.data.tfds_sets import PAPER31_BREEDS
from lucidtl.errors import InvalidArgumentError, closest

__all__ = ["DATASETS", "Data", "PAPER31_BREEDS", "load"]

DATASETS = tfds_sets.NAMES + ("folder:PATH",)


@dataclasses.dataclass
class Data:
    """What `load` returns. `validation` is None when no validation set was asked for."""
    name: str
    train: tf.data.Dataset
    validation: Optional[tf.data.Dataset]
    num_classes: int
    class_names: tuple
    multi_label: bool  # True: independent sigmoid outputs (CelebA's 40 attributes)
    loss_name: str  # "binary_crossentropy" if multi_label else "categorical_crossentropy"
    train_size: Optional[int]  # examples, when known
    validation_size: Optional[int]
    skipped: tuple = ()  # undecodable image files left out (skip_bad_images=True)


def load(dataset, split="train", batch_size=32, image_size=224, data_dir=None, manual_dir=None, shuffle=True,
         seed=0, augment=False, breeds=None, validation_split=0.1, eval_split="auto", download=True,
         shuffle_buffer=10_000, split_seed=0, repeat=False, skip=0, skip_bad_images=False):
    """Load `dataset` ("celeb_a", "oxford_iiit_pet", "oxford_flowers102" or "folder:PATH") as a `Data`.

    split / eval_split: tfds splits for `train` / `validation`; eval_split "auto" is "validation" (the
      "test" split for oxford_iiit_pet, which the paper validated on), None gives no validation set.
    batch_size: None leaves the datasets unbatched. image_size: int (square) or (height, width).
    data_dir, manual_dir, download: passed to tfds (download_config=DownloadConfig(manual_dir=...)).
    shuffle, seed, shuffle_buffer: the training set is reshuffled each epoch from `seed` (tfds files too).
    augment: random horizontal flips of training images (off by default, as in the paper).
    breeds: oxford_iiit_pet only: None/"all", "paper31" (see PAPER31_BREEDS) or a list of breed names;
      labels are re-indexed 0..len(breeds)-1 in that order and other breeds are dropped.
    validation_split, split_seed: folders only: the fraction of each class held out for validation
      (0: none), drawn with `split_seed` so the split does not change with the shuffling seed.
    repeat, skip: the training set as one stream of `repeat` epochs, starting `skip` examples in (resume).
    skip_bad_images: folders only: every image is decoded once up front; an undecodable one is an error
      naming it, or with skip_bad_images=True it is left out (listed in Data.skipped).
    """
    _check(batch_size=batch_size, image_size=image_size, seed=seed, shuffle_buffer=shuffle_buffer)
    name = str(dataset)
    if breeds is not None and name != "oxford_iiit_pet":
        raise InvalidArgumentError(f"breeds= applies only to oxford_iiit_pet, not {name!r}; drop it")
    if name.startswith("folder:"):
        train, val, parse, facts = _folder(name[len("folder:"):], split, validation_split, split_seed,
                                           skip_bad_images)
        buffer = max(facts["train_size"], 1)
    elif name in tfds_sets.NAMES:
        if eval_split == "auto":
            eval_split = tfds_sets.DEFAULT_EVAL[name]
        train, val, parse, facts = tfds_sets.load_raw(
            name, split=split, eval_split=eval_split, data_dir=data_dir, manual_dir=manual_dir,
            download=download, shuffle=shuffle, seed=seed, breeds=breeds)
        buffer = shuffle_buffer
    else:
        raise _unknown(name)

    common = dict(parse=parse, image_size=image_size, batch_size=batch_size, shuffle=shuffle, seed=seed,
                  augment=augment, shuffle_buffer=buffer)
    multi = facts["multi_label"]
    return Data(name=name, train=pipeline.build(train, train=True, repeat=repeat, skip=skip, **common),
                validation=None if val is None else pipeline.build(val, train=False, **common),
                num_classes=len(facts["class_names"]), class_names=tuple(facts["class_names"]),
                multi_label=multi, loss_name="binary_crossentropy" if multi else "categorical_crossentropy",
                train_size=facts["train_size"], validation_size=facts["validation_size"],
                skipped=tuple(facts.get("skipped", ())))


def _folder(path, split, fraction, split_seed, skip_bad_images=False):
    if split != "train":
        raise InvalidArgumentError(f"folder datasets have only split='train' (got {split!r}); "
                                   "set validation_split= for the held-out part")
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise InvalidArgumentError(f"validation_split must be a number in [0, 1), got {fraction!r}")
    path = os.path.expanduser(path)
    classes, files = folder.index(path)
    bad = folder.undecodable([p for c in classes for p in files[c]])
    if bad and not skip_bad_images:
        more = f" ({len(bad)} undecodable in all)" if len(bad) > 1 else ""
        raise InvalidArgumentError(f"cannot decode image {bad[0][0]}: {bad[0][1]}{more}; remove or replace it, or "
                                   "pass --skip-bad-images to leave such files out")
    if bad:
        drop = {p for p, _ in bad}
        files = {c: [p for p in v if p not in drop] for c, v in files.items()}
        empty = [c for c in classes if not files[c]]
        if empty:
            raise InvalidArgumentError(f"class folder {os.path.join(path, empty[0])} has no decodable images; "
                                       "add images or remove it")
    (tp, tl), (vp, vl) = folder.split(classes, files, fraction, split_seed)
    n = len(classes)

    def parse(p, label):
        return tf.io.read_file(p), tf.one_hot(label, n, dtype=tf.float32)

    def make(paths, labels):
        return tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), tf.constant(labels, tf.int64)))

    val = make(vp, vl) if fraction > 0 else None
    facts = dict(class_names=classes, multi_label=False, train_size=len(tp),
                 validation_size=len(vp) if fraction > 0 else None, skipped=[p for p, _ in bad])
    return make(tp, tl), val, parse, facts


def _check(*, batch_size, image_size, seed, shuffle_buffer):
    def pos_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0

    if batch_size is not None and not pos_int(batch_size):
        raise InvalidArgumentError(f"batch_size must be a positive int or None, got {batch_size!r}")
    pair = isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(map(pos_int, image_size))
    if not (pos_int(image_size) or pair):
        raise InvalidArgumentError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise InvalidArgumentError(f"seed must be an int, got {seed!r}")
    if not pos_int(shuffle_buffer):
        raise InvalidArgumentError(f"shuffle_buffer must be a positive int, got {shuffle_buffer!r}")


def _unknown(name):
    valid = list(tfds_sets.NAMES) + ["folder:PATH"]
    hint = f"; for an image folder use 'folder:{name}'" if os.path.isdir(os.path.expanduser(name)) else ""
    return InvalidArgumentError(f"unknown dataset {name!r}; use one of: "
                                f"{', '.join(closest(name, valid, n=len(valid)))}{hint}")
