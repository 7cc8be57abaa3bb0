"""lucidtl: Lucid's feature visualisation in TensorFlow 2 / Keras 3, for watching neurons during fine-tuning."""
import os

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


_enable_memory_growth()
