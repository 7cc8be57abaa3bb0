"""Image folders with one sub-folder per class (Flowers17 as the paper used it, or your own data)."""
import os
import re

import numpy as np

from lucidtl.errors import InvalidArgumentError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras' ALLOWLIST_FORMATS
_CHECKED = {}  # (path, size, mtime_ns) -> None if decodable, else the reason
LAYOUT = "expected PATH/<class_name>/<image>.jpg (or .png .bmp .gif) with at least two class folders"


def index(path):
    """(class_names, {class: sorted image paths}) as Keras' image_dataset_from_directory finds them: class
    folders sorted by name (hidden ones skipped), images of the accepted formats found recursively."""
    if not os.path.exists(path):
        raise InvalidArgumentError(f"image folder {path} does not exist; {LAYOUT}")
    if not os.path.isdir(path):
        raise InvalidArgumentError(f"{path} is not a folder; {LAYOUT}")
    classes = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        loose = "has images but no class folders" if _loose_images(path) else "has no class folders"
        raise InvalidArgumentError(f"image folder {path} {loose}; {LAYOUT}")
    files = {c: [] for c in classes}
    for p in _keras_file_paths(path, classes):
        files[os.path.relpath(p, path).split(os.sep)[0]].append(p)
    empty = [c for c in classes if not files[c]]
    if empty:
        raise InvalidArgumentError(f"class folder {os.path.join(path, empty[0])} has no images; add images or "
                                   f"remove it ({LAYOUT})")
    if len(classes) < 2:
        raise InvalidArgumentError(f"image folder {path} has a single class folder ({classes[0]}); {LAYOUT}")
    return classes, {c: sorted(v) for c, v in files.items()}


def _keras_file_paths(path, classes):
    """The image files keras.utils.image_dataset_from_directory lists for these class folders ([] if none)."""
    import keras

    try:
        ds = keras.utils.image_dataset_from_directory(path, labels="inferred", class_names=classes, batch_size=None,
                                                      shuffle=False, verbose=False)
    except ValueError:  # Keras: "No images found in directory"
        return []
    return list(ds.file_paths)


def _loose_images(folder):
    return any(n.lower().endswith(IMAGE_EXTENSIONS) for n in os.listdir(folder))


def split(classes, files, fraction, seed):
    """Stratified split: round(n * fraction) images of each class (at most n - 1) go to validation, drawn
    with numpy's default_rng(seed). Returns (train, validation), each a (paths, label indices) pair in
    class-then-path order."""
    rng = np.random.default_rng(seed)
    parts = {"train": ([], []), "val": ([], [])}
    for label, c in enumerate(classes):
        paths = files[c]
        n_val = min(int(len(paths) * fraction + 0.5), len(paths) - 1)
        val = set(rng.permutation(len(paths))[:n_val].tolist())
        for i, p in enumerate(paths):
            part = parts["val" if i in val else "train"]
            part[0].append(p)
            part[1].append(label)
    return parts["train"], parts["val"]


def undecodable(paths):
    """[(path, reason)] of the files the training pipeline could not decode (tf.io.decode_image, as
    pipeline.to_unit_image calls it), in the order given. All files are decoded once, in parallel, in one
    tf.data pass that drops failures; the few that fail are decoded again one by one for the reason. Results
    are kept per (path, size, mtime), so later calls only stat the files."""
    import tensorflow as tf

    keys, todo = [], []
    for p in paths:
        try:
            st = os.stat(p)
            key = (p, st.st_size, st.st_mtime_ns)
        except OSError as e:
            key = (p, None, None)
            _CHECKED[key] = e.strerror or str(e)
        keys.append(key)
        if key not in _CHECKED:
            todo.append(key)
    if todo:
        def decode(i, path):
            img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return i, tf.shape(img)

        ds = tf.data.Dataset.from_tensor_slices((tf.range(len(todo), dtype=tf.int64), [k[0] for k in todo]))
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=False)
        good = {int(i) for i, _ in ds.as_numpy_iterator()}
        for i, key in enumerate(todo):
            _CHECKED[key] = None if i in good else _reason(key[0])
    return [(k[0], _CHECKED[k]) for k in keys if _CHECKED[k] is not None]


def _reason(path):
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except Exception as e:  # tf.errors.OpError: the message is the decoder's
        text = re.sub(r"\{\{[^}]*\}\}|\[Op:.*$", "", getattr(e, "message", None) or str(e))  # TF's op tags
        return " ".join(text.split())[:100] or type(e).__name__
    return "not decodable"
