"""BN-InceptionV1 as in TF-slim's inception_v1 (the network of the paper), as a functional Keras 3 model.

Every conv is Conv2D (no bias, SAME) -> BatchNormalization (beta only) -> ReLU, with layers named after the
paper: for a conv `P` the Conv2D is `P_conv`, the BatchNormalization `P_pre_relu` (the pre-activation) and
the ReLU `P`. The model takes float32 images in [0, 1] (layer `images`) and rescales them to [-1, 1] itself
(layer `input_scaling`). See /work/shared/spec/inception_v1.md for the numbers.
"""
import keras

from lucidtl.errors import InvalidArgumentError, UnknownLayerError, did_you_mean

SCOPE = "InceptionV1"

# name: (input channels are the previous block's output)
#   Branch_0 1x1, Branch_1 1x1 -> 3x3, Branch_2 1x1 -> 3x3, Branch_3 maxpool -> 1x1
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
MIXED_LAYERS = list(MIXED)
# the max-pool (name, size) that comes before a block
POOL_BEFORE = {"Mixed_3b": ("MaxPool_3a_3x3", 3), "Mixed_4b": ("MaxPool_4a_3x3", 3), "Mixed_5b": ("MaxPool_5a_2x2", 2)}
STEM = [("Conv2d_1a_7x7", 64, 7, 2), ("Conv2d_2b_1x1", 64, 1, 1), ("Conv2d_2c_3x3", 192, 3, 1)]
BRANCH_CONVS = ["Branch_0_a_1x1", "Branch_1_a_1x1", "Branch_1_b_3x3", "Branch_2_a_1x1", "Branch_2_b_3x3",
                "Branch_3_b_1x1"]
CONV_LAYERS = [s[0] for s in STEM] + [f"{m}_{b}" for m in MIXED for b in BRANCH_CONVS]
LOGITS_CONV = "Logits_Conv2d_0c_1x1"
POOLINGS = ("slim", "global")

INPUT_SCALINGS = ("slim", "imagenet", "unit")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's normalisation, for googlenet weights trained on it
IMAGENET_STD = (0.229, 0.224, 0.225)

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9997


def checkpoint_scope(paper_name):
    """The TF-slim checkpoint scope of a conv: `Mixed_4c_Branch_2_b_3x3` -> `InceptionV1/Mixed_4c/Branch_2/
    Conv2d_0b_3x3` (its variables are `<scope>/weights` and `<scope>/BatchNorm/...`)."""
    if paper_name == LOGITS_CONV:
        return f"{SCOPE}/Logits/Conv2d_0c_1x1"
    if paper_name not in CONV_LAYERS:
        raise UnknownLayerError(
            f"{paper_name!r} is not a conv of InceptionV1{did_you_mean(str(paper_name), CONV_LAYERS + [LOGITS_CONV])}"
        )
    if not paper_name.startswith("Mixed_"):
        return f"{SCOPE}/{paper_name}"
    block, branch = paper_name[:8], paper_name[9:17]  # "Mixed_4c", "Branch_2"
    letter, kernel = paper_name[18:].split("_")  # "b", "3x3"
    if block == "Mixed_5b" and branch == "Branch_2" and letter == "b":
        letter = "a"  # slim's own name for this conv
    return f"{SCOPE}/{block}/{branch}/Conv2d_0{letter}_{kernel}"


def _conv_bn_relu(x, name, filters, kernel, strides=1):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(center=True, scale=False, epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name=f"{name}_pre_relu")(x)
    return keras.layers.ReLU(name=name)(x)


def _mixed(x, name, c):
    b0 = _conv_bn_relu(x, f"{name}_Branch_0_a_1x1", c[0], 1)
    b1 = _conv_bn_relu(x, f"{name}_Branch_1_a_1x1", c[1], 1)
    b1 = _conv_bn_relu(b1, f"{name}_Branch_1_b_3x3", c[2], 3)
    b2 = _conv_bn_relu(x, f"{name}_Branch_2_a_1x1", c[3], 1)
    b2 = _conv_bn_relu(b2, f"{name}_Branch_2_b_3x3", c[4], 3)
    b3 = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_Branch_3_a_max")(x)
    b3 = _conv_bn_relu(b3, f"{name}_Branch_3_b_1x1", c[5], 1)
    return keras.layers.Concatenate(axis=-1, name=name)([b0, b1, b2, b3])


def _scaling_layer(input_scaling, channels):
    """[0,1] -> [-1,1] ("slim", the paper's), -> (x - mean) / std per channel ("imagenet", 3 channels), or
    unchanged ("unit": what the authors' training code fed the slim weights)."""
    if input_scaling in ("slim", "unit"):
        slim = input_scaling == "slim"
        return keras.layers.Rescaling(scale=2.0 if slim else 1.0, offset=-1.0 if slim else 0.0,
                                      name="input_scaling")
    if channels != 3:
        raise InvalidArgumentError(f"input_scaling='imagenet' needs 3 input channels, not {channels}")
    return keras.layers.Rescaling(scale=[1.0 / s for s in IMAGENET_STD],
                                  offset=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], name="input_scaling")


def input_scaling_of(model):
    """"slim", "imagenet" or "unit" for a model built here, None for any other model."""
    try:
        layer = model.get_layer("input_scaling")
    except ValueError:
        return None
    if not isinstance(layer.scale, (int, float)):
        return "imagenet"
    return "slim" if layer.scale == 2.0 else "unit"


def _check_args(include_top, classes, input_shape, pooling, dropout, input_scaling="slim"):
    if input_scaling not in INPUT_SCALINGS:
        raise InvalidArgumentError(f"unknown input_scaling {input_scaling!r}; choose one of {', '.join(INPUT_SCALINGS)}")
    if pooling not in POOLINGS:
        raise InvalidArgumentError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    if include_top and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise InvalidArgumentError(f"classes must be a positive integer, got {classes!r}")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise InvalidArgumentError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    if len(tuple(input_shape)) != 3 or not input_shape[-1]:
        raise InvalidArgumentError(
            "input_shape must be (height, width, channels) with known channels, e.g. (None, None, 3); "
            f"got {input_shape!r}"
        )


def inception_v1(include_top=False, classes=1001, input_shape=(None, None, 3), pooling="slim", dropout=0.2,
                 name="InceptionV1", input_scaling="slim"):
    """BN-InceptionV1 (TF-slim). Input: float32 images in [0, 1], any size (None, None, C) by default.

    include_top adds the classifier: `AvgPool_0a_7x7` (7x7 VALID, slim's; needs a 7x7 Mixed_5c, i.e. 224 px
    inputs) or, with pooling="global", a global average pool (any size); then `Dropout_0b` (rate `dropout`),
    `Logits_Conv2d_0c_1x1` (1x1 conv with bias) and `Logits` ([B, classes]; class 0 is background).
    input_scaling: "slim" maps [0,1] to [-1,1] (slim and torchvision's ImageNet weights); "imagenet" applies
    torchvision's mean/std instead (for googlenet weights trained with transform_input=False)."""
    _check_args(include_top, classes, input_shape, pooling, dropout, input_scaling)
    images = keras.Input(tuple(input_shape), name="images", dtype="float32")
    x = _scaling_layer(input_scaling, input_shape[-1])(images)
    x = _conv_bn_relu(x, *STEM[0])
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="MaxPool_2a_3x3")(x)
    for stem in STEM[1:]:
        x = _conv_bn_relu(x, *stem)
    for block, channels in MIXED.items():
        if block in POOL_BEFORE:
            pool, size = POOL_BEFORE[block]
            x = keras.layers.MaxPooling2D(size, strides=2, padding="same", name=pool)(x)
        x = _mixed(x, block, channels)
    if include_top:
        if pooling == "slim":
            h, w = x.shape[1], x.shape[2]
            if (h is not None and h != 7) or (w is not None and w != 7):
                raise InvalidArgumentError(
                    f"pooling='slim' needs a 7x7 Mixed_5c (224x224 inputs), but input_shape {tuple(input_shape)} "
                    f"gives {h}x{w}; use pooling='global' for other sizes"
                )
            x = keras.layers.AveragePooling2D(7, strides=1, padding="valid", name="AvgPool_0a_7x7")(x)
        else:
            x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="AvgPool_0a_global")(x)
        x = keras.layers.Dropout(dropout, name="Dropout_0b")(x)
        x = keras.layers.Conv2D(classes, 1, padding="valid", use_bias=True, name=LOGITS_CONV)(x)
        x = keras.layers.Reshape((classes,), name="Logits")(x)  # slim's spatial squeeze (needs a 1x1 map)
    return keras.Model(images, x, name=name)
