"""Image folders with one sub-folder per class (Flowers17 as the paper used it, or your own data)."""
import os

import numpy as np

from lucidtl.errors import InvalidArgumentError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
LAYOUT = "expected PATH/<class_name>/<image>.jpg (or .png .bmp .gif) with at least two class folders"


def index(path):
    """(class_names, {class: sorted image paths}): class folders sorted by name, images found recursively."""
    if not os.path.exists(path):
        raise InvalidArgumentError(f"image folder {path} does not exist; {LAYOUT}")
    if not os.path.isdir(path):
        raise InvalidArgumentError(f"{path} is not a folder; {LAYOUT}")
    classes = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    files = {c: _images(os.path.join(path, c)) for c in classes}
    if not classes:
        loose = "has images but no class folders" if _images(path, recursive=False) else "has no class folders"
        raise InvalidArgumentError(f"image folder {path} {loose}; {LAYOUT}")
    empty = [c for c in classes if not files[c]]
    if empty:
        raise InvalidArgumentError(f"class folder {os.path.join(path, empty[0])} has no images; add images or "
                                   f"remove it ({LAYOUT})")
    if len(classes) < 2:
        raise InvalidArgumentError(f"image folder {path} has a single class folder ({classes[0]}); {LAYOUT}")
    return classes, files


def _images(folder, recursive=True):
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


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
