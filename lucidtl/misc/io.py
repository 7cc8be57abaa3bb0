"""Where Lucid keeps them (lucid.misc.io): `show` an array, a batch or a list of images inline in a notebook,
`save` / `load` an image.

    from lucidtl.misc.io import show
    show(images)                  # [B, H, W, C]: one labelled grid (labels 0..B-1, or labels=[...])
    show(image)                   # [H, W, C] or [H, W]: one image
    show([a, b], labels=["a", "b"])

As Lucid's show: rank 4 is a batch, rank 2 or 3 an image, a list or tuple a collection of images, anything
else is printed with repr(). Pixel values are mapped from `domain` (default (0, 1), Lucid's) onto 0..255 and
clipped; domain=None stretches min..max. Lucid displays an HTML row of <img> tags; lucidtl displays one PNG
(`image/png` display data, with a text/plain fallback), so the picture survives nbconvert, GitHub's renderer
and any Jupyter front end; a batch is a grid with its labels drawn in (imageio.labelled_grid).
Outside IPython, show prints a one-line description instead.
"""
import io
import logging

import numpy as np

log = logging.getLogger(__name__)


def _as_array(thing):
    return np.asarray(thing.numpy() if hasattr(thing, "numpy") else thing)


def _normalise(array, domain):
    """float image(s) in 0..1 from `domain` ((lo, hi), or None: min..max), 2-D images made RGB."""
    x = _as_array(array).astype(np.float32)
    if x.ndim >= 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if domain is None:
        lo, hi = float(np.min(x)), float(np.max(x))
    else:
        lo, hi = (float(v) for v in domain)
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    x = np.clip(x, 0.0, 1.0)
    if x.ndim == 2:
        return np.repeat(x[..., None], 3, -1)
    if x.shape[-1] == 2:
        return np.concatenate([x, np.zeros_like(x[..., :1])], -1)
    return x[..., :3]


def _scaled(image, w):
    """Nearest-neighbour resize of a PIL image to width w (Lucid's `w`), keeping the aspect ratio."""
    if w is None or image.width == int(w):
        return image
    from PIL import Image

    h = max(1, round(image.height * int(w) / image.width))
    return image.resize((int(w), h), Image.NEAREST)


def png_bytes(image):
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def image_png(array, domain=(0, 1), w=None):
    """PNG bytes of one image [H, W, C] / [H, W]."""
    from PIL import Image

    from lucidtl.imageio import to_uint8

    return png_bytes(_scaled(Image.fromarray(to_uint8(_normalise(array, domain))), w))


def images_png(arrays, labels=None, domain=(0, 1), w=None):
    """PNG bytes of a row of images (a batch or a list), each under its label (default: its index)."""
    from lucidtl.imageio import labelled_grid

    cells = [_normalise(a, domain) for a in arrays]
    labels = [str(i) for i in range(len(cells))] if labels is None else [str(s) for s in labels]
    return png_bytes(_scaled(labelled_grid([cells], col_labels=labels), w))


def _display(png, text):
    try:
        import IPython.display
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(text)
        return
    IPython.display.display({"image/png": png, "text/plain": text}, raw=True)


def image(array, domain=(0, 1), w=None, format="png"):  # noqa: A002 (Lucid's argument name)
    """Display one image inline (Lucid's lucid.misc.io.showing.image)."""
    if format != "png":
        raise ValueError(f"format {format!r}: lucidtl shows PNG only")
    x = _as_array(array)
    _display(image_png(x, domain, w), f"<image {x.shape[1]}x{x.shape[0]}>")


def images(arrays, labels=None, domain=(0, 1), w=None):
    """Display a list or batch of images in a row, each with its label (default: its index)."""
    arrays = list(arrays)
    if labels is not None and len(labels) != len(arrays):
        raise ValueError(f"{len(labels)} labels for {len(arrays)} images")
    _display(images_png(arrays, labels, domain, w), f"<{len(arrays)} images>")


def show(thing, domain=(0, 1), labels=None, w=None):
    """Display an array, a batch or a list of images without saying which (Lucid's lucid.misc.io.show)."""
    if hasattr(thing, "numpy") and not isinstance(thing, np.ndarray):
        thing = thing.numpy()
    if isinstance(thing, np.ndarray):
        if thing.ndim == 4:
            images(thing, labels, domain, w)
        elif thing.ndim in (2, 3):
            image(thing, domain, w)
        else:
            log.warning("show supports arrays of rank 2 to 4; printing repr()")
            print(repr(thing))
    elif isinstance(thing, (list, tuple)):
        images(thing, labels, domain, w)
    else:
        log.warning("show supports arrays and lists of them; printing repr()")
        print(repr(thing))


def save(array, path):
    """Write one image [H, W, C] in [0, 1] as PNG (atomically, quantised as shown); returns the path."""
    from lucidtl.imageio import save_png

    return save_png(_normalise(array, (0, 1)), path)


def load(path):
    """A PNG as float32 [H, W, C] in [0, 1]."""
    from lucidtl.imageio import load_png

    return load_png(path)
