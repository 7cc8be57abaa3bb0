"""The parameterisation type: a tf.Module that owns its variables and makes an image when called."""
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError


class Param(tf.Module):
    """A parameterisation: `param()` returns the image tensor [B,H,W,C] float32.

    fn: zero-argument callable building the tensor (tf.function-safe).
    variables: the tf.Variables `fn` reads, and/or Params whose output it reads; tf.Module flattens
      and de-duplicates them into `trainable_variables`.
    """

    def __init__(self, fn, variables=(), name=None):
        if not callable(fn):
            raise InvalidArgumentError(f"Param needs a zero-argument callable, got {type(fn).__name__}; "
                                       "wrap the tensor-building code in a function")
        super().__init__(name=name)
        self._fn = fn
        self._deps = tuple(variables)

    def __call__(self):
        return self._fn()

    def map(self, f, name=None):
        """The Param computing f(self()), owning the same variables."""
        return Param(lambda: f(self()), [self], name=name)


def check_shape(shape):
    """[B, H, W, C] as four positive Python ints."""
    try:
        dims = [int(d) for d in shape]
    except (TypeError, ValueError):
        dims = []
    if len(dims) != 4 or min(dims) < 1:
        raise InvalidArgumentError(f"image shape must be [batch, height, width, channels] of positive ints, "
                                   f"got {shape!r}")
    return dims
