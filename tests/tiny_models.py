"""Tiny backbones for training tests (importable by dotted path: tiny_models.tiny_backbone)."""
import os

import keras
import numpy as np
from PIL import Image


def tiny_backbone(include_top=False, weights=None, input_shape=(None, None, 3), batch_norm=False):
    """Two ReLU convs (+ optional BN), named like a real backbone's endpoints; no BN by default, so a
    multi-replica run equals a single-device one."""
    x = inp = keras.Input(input_shape, name="images")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="conv2_relu")(x)
    return keras.Model(inp, x, name="tiny_backbone")


def make_image_folder(root, classes=3, per_class=6, size=20, seed=0):
    """root/<class>/<i>.png: each class a distinct mean colour plus noise (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = os.path.join(root, f"class_{c}")
        os.makedirs(folder, exist_ok=True)
        colour = np.zeros(3)
        colour[c % 3] = 200
        for i in range(per_class):
            img = np.clip(colour + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(os.path.join(folder, f"{i}.png"))
    return root
