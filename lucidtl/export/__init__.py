"""SavedModel export: a classifier with its pre-processing, and a channel renderer that runs Lucid's whole
render loop inside one TF graph (lucidtl/export/savedmodel.py; the command line: `python -m lucidtl.export`).

    python -m lucidtl.export classifier --model inception_v1 --weights imagenet --out export/classifier
    python -m lucidtl.export renderer --model inception_v1 --layer Mixed_4c --size 128 --out export/renderer
"""
import importlib

_CLI = ("main", "classifier", "renderer")


def __getattr__(name):  # TensorFlow is imported on first use, so that the command line's help stays fast
    if name.startswith("__"):
        raise AttributeError(name)
    module = importlib.import_module("lucidtl.export.__main__" if name in _CLI else "lucidtl.export.savedmodel")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'lucidtl.export' has no attribute {name!r}") from None
