"""FeatureVisualization: watch channels change while a model trains, as TensorBoard image summaries.

At each chosen iteration the callback renders every channel (one batch, Lucid's FFT + decorrelated image
and standard transforms, few steps, small size) on the model as it is at that moment, and writes one image
summary per channel (tag "layer:channel", step = iteration). Training weights are only read.
"""
import os
import random

import keras
import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError
from lucidtl.selection import parse_layer_channels
from lucidtl.optvis import features
from lucidtl.optvis.render import render_channels
from lucidtl.train.schedule import parse_schedule


def parse_channels(spec):
    """Layer-qualified channels ("Mixed_4c:3,Mixed_5b:0:4", or (layer, channel) pairs) -> [(layer, channel)];
    the one syntax of lucidtl.selection (`all` needs the layer's size: list the channels instead)."""
    pairs = parse_layer_channels(spec)
    if not pairs:
        raise InvalidArgumentError(f"no channels in {spec!r}; write layer:channels, e.g. Mixed_4c:3 or Mixed_4c:0:4")
    return pairs


def out_of_range(model, channels):
    """The first (layer, channel, count) of `channels` ((layer, channel) pairs) whose channel is outside
    0..count-1 (count: its layer's channels), or None; an unknown layer: an error naming the closest."""
    for layer, ch in channels:
        count = features.channel_count(model, layer)
        if not 0 <= ch < count:
            return layer, ch, count
    return None


class FeatureVisualization(keras.callbacks.Callback):
    """Render `channels` at the iterations `at` (a schedule; default the paper's) into TensorBoard.

    log_dir: where the summary file goes (e.g. <run>/logs/features). steps/size: render length and image
    size (small: this runs inside training). input_range: the model's input range. seed: the same starting
    image at every iteration, so differences come from the weights."""

    def __init__(self, log_dir, channels, at=None, iterations=None, steps=64, size=96, input_range=(0.0, 1.0),
                 seed=0):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.channels = parse_channels(channels)
        self.at = parse_schedule(at, iterations)
        self.steps, self.size, self.seed = int(steps), int(size), int(seed)
        self.input_range = tuple(input_range)
        self._pending = []
        self._writer = None
        self.rendered = {}  # iteration -> [B, H, W, 3] images, the last one rendered (for inspection)

    def on_train_begin(self, logs=None):
        bad = out_of_range(self.model, self.channels)
        if bad:
            layer, ch, count = bad
            raise InvalidArgumentError(f"channel {ch} of {layer} is out of range (0..{count - 1})")
        self._writer = tf.summary.create_file_writer(self.log_dir)
        now = int(self.model.optimizer.iterations.numpy())
        self._pending = [i for i in self.at if i >= now]
        if self._pending and self._pending[0] == now:
            self._draw(now)

    def on_train_batch_end(self, batch, logs=None):
        if self._pending:
            now = int(self.model.optimizer.iterations.numpy())
            if now >= self._pending[0]:
                self._draw(now)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def _draw(self, iteration):
        while self._pending and self._pending[0] <= iteration:
            self._pending.pop(0)
        state = np.random.get_state()  # rendering seeds the global generators; give training its own back
        py_state = random.getstate()
        try:
            images = render_channels(self.model, self.channels, self.size, self.steps, self.seed, self.input_range)
        finally:
            np.random.set_state(state)
            random.setstate(py_state)
        self.rendered[iteration] = images
        with self._writer.as_default():
            for (layer, ch), img in zip(self.channels, images):
                tf.summary.image(f"{layer}:{ch}", img[None], step=iteration)
        self._writer.flush()
