"""lucidtl: Lucid's feature visualisation in TensorFlow 2 / Keras 3, for watching neurons during fine-tuning."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet C++ start-up chatter; users may override

__version__ = "0.1.0"


def _enable_memory_growth():
    """Never grab all GPU memory on import (set LUCIDTL_MEMORY_GROWTH=0 to opt out)."""
    if os.environ.get("LUCIDTL_MEMORY_GROWTH", "1") == "0":
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # GPUs already initialised by the caller: leave their setting
            pass


class _AfterTensorFlow:
    """Runs _enable_memory_growth right after TensorFlow is first imported, so that importing lucidtl (and
    its command lines' --help and flag checks) does not import TensorFlow."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def run(module):
            exec_module(module)
            _enable_memory_growth()

        spec.loader.exec_module = run
        return spec


if "tensorflow" in sys.modules:
    _enable_memory_growth()
elif not any(isinstance(f, _AfterTensorFlow) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterTensorFlow())
