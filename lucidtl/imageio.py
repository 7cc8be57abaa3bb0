"""Writing what was shown: PNGs quantised exactly as displayed, labelled grids, atomic files."""
import json

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lucidtl.atomic import atomic_path


def as_saved(images):
    """float32 images quantised as a PNG stores them (round(255 * x) / 255), every channel kept."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float32) * 255.0), 0, 255) / np.float32(255.0)


def to_uint8(image):
    """[H,W,C] float in [0,1] -> uint8 by rounding (C = 1, 3 or 4 kept; other counts: first 3)."""
    arr = np.asarray(image, dtype=np.float32)
    arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    elif arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        arr = arr[..., :3]
    return arr


def load_png(path):
    """A PNG written by save_png, back as float32 [H,W,C] in [0,1] (exactly the saved values)."""
    arr = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def save_png(image, path):
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
    return path


def save_json(obj, path):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
    return path


LABEL_MIN = 48  # px: a column narrower than its label is widened up to this, then the label wraps


def wrap_label(text, chars):
    """`text` in lines of at most `chars` characters (at least 1), broken after / _ : - or a space where it can."""
    chars, rest, lines = max(1, int(chars)), str(text), []
    while len(rest) > chars:
        cut = max(rest.rfind(c, 0, chars) for c in "/_:- ")
        cut = cut + 1 if cut > 0 else chars
        lines.append(rest[:cut])
        rest = rest[cut:]
    return lines + [rest]


def labelled_grid(rows, row_labels=(), col_labels=(), pad=4, background=255, title=None, title_fill=(160, 0, 0)):
    """A grid of [H,W,C] float images (rows x cols) with text labels on the left and on top, and a title line
    above them (e.g. that the network's weights were random: red, the default title_fill)."""
    cells = [[Image.fromarray(to_uint8(img)).convert("RGB") for img in row] for row in rows]
    h = max(c.height for row in cells for c in row)
    cell_w = max(c.width for row in cells for c in row)
    # a column is as wide as its cells (at least LABEL_MIN px where a label needs it); longer labels wrap
    w = max([cell_w] + [min(len(str(s)) * 6, LABEL_MIN) for s in col_labels])
    wrapped = [wrap_label(s, w // 6) for s in col_labels]
    font = ImageFont.load_default()
    left = (max((len(s) for s in row_labels), default=0) * 7 + pad) if row_labels else 0
    head = 14 + pad if title else 0
    top = head + (max(len(lines) for lines in wrapped) * 12 + 2 + pad if col_labels else 0)
    n_cols = max(len(row) for row in cells)
    width = max(left + n_cols * (w + pad) + pad, len(title or "") * 6 + 2 * pad)
    grid = Image.new("RGB", (width, top + len(cells) * (h + pad) + pad), (background,) * 3)
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((pad, pad // 2), str(title), fill=tuple(title_fill), font=font)
    for j, lines in enumerate(wrapped):
        for k, line in enumerate(lines):
            draw.text((left + pad + j * (w + pad), head + pad // 2 + 12 * k), line, fill=(0, 0, 0), font=font)
    for i, row in enumerate(cells):
        y = top + pad + i * (h + pad)
        if i < len(row_labels):
            draw.text((pad // 2, y + h // 2 - 5), str(row_labels[i]), fill=(0, 0, 0), font=font)
        for j, cell in enumerate(row):
            grid.paste(cell, (left + pad + j * (w + pad), y))
    return grid


RANDOM_TITLE = "RANDOM weights: an untrained network"


def save_grid(rows, path, row_labels=(), col_labels=(), title=None, title_fill=(160, 0, 0)):
    with atomic_path(path) as tmp:
        labelled_grid(rows, row_labels, col_labels, title=title, title_fill=title_fill).save(tmp, format="PNG")
    return path
