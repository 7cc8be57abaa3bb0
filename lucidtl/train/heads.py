"""Classifier tops for fine-tuning, as in the paper: no layer frozen, Adam(1e-3).

- "paper": global average pool -> Dense(1024, relu) -> Dense(n) (the 200-epoch runs);
- "single": global average pool -> Dense(n) (the temporal run).
A transformer backbone's tokens [B, T, C] are averaged over the tokens (the class token among them).
The last layer is softmax + categorical cross-entropy (accuracy), or for multi-label data (CelebA's 40
attributes) a coordinate-wise sigmoid + mean binary cross-entropy (binary accuracy).
"""
import keras

from lucidtl.errors import InvalidArgumentError, did_you_mean

TOPS = ("paper", "single")
LEARNING_RATE = 1e-3


def add_head(backbone, num_classes, top="paper", multi_label=False, name=None):
    """A functional model: backbone's last output -> the top. The backbone's layers keep their names, so
    every conv stays reachable for rendering."""
    if top not in TOPS:
        raise InvalidArgumentError(f"unknown top {top!r}{did_you_mean(str(top), TOPS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
    tokens = len(backbone.output.shape) == 3  # a transformer's token sequence [B, T, C]
    pool = keras.layers.GlobalAveragePooling1D if tokens else keras.layers.GlobalAveragePooling2D
    x = pool(name="head_pool")(backbone.output)
    if top == "paper":
        x = keras.layers.Dense(1024, activation="relu", name="head_dense")(x)
    outputs = keras.layers.Dense(num_classes, activation="sigmoid" if multi_label else "softmax",
                                 dtype="float32", name="predictions")(x)  # float32 under mixed precision too
    return keras.Model(backbone.input, outputs, name=name or f"{backbone.name}_{top}")


OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}


def compile_for(model, multi_label=False, learning_rate=LEARNING_RATE, optimizer="adam",
                multi_label_loss="binary_crossentropy"):
    """`optimizer`(learning_rate) (Adam by default) with the paper's loss and metric for the label format.
    multi_label_loss="cosine_similarity": the authors' code's CelebA loss (Keras' old cosine_proximity)."""
    if multi_label:
        loss = (keras.losses.CosineSimilarity() if multi_label_loss == "cosine_similarity"
                else keras.losses.BinaryCrossentropy())
        metrics = [keras.metrics.BinaryAccuracy(name="binary_accuracy")]
    else:
        loss, metrics = keras.losses.CategoricalCrossentropy(), [keras.metrics.CategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=OPTIMIZERS[optimizer](learning_rate), loss=loss, metrics=metrics)
    return model
