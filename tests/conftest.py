import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


def build_tiny_cnn(channels=3, fixed_size=None, seed=0):
    """A small functional CNN with separate ReLU layers, a concat of ReLUs and a logits head."""
    keras.utils.set_random_seed(seed)
    size = (fixed_size, fixed_size) if fixed_size else (None, None)
    x = inp = keras.Input((*size, channels), name="images")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    a = keras.layers.Conv2D(6, 3, padding="same", name="branch_a")(x)
    a = keras.layers.ReLU(name="branch_a_relu")(a)
    b = keras.layers.Conv2D(4, 1, padding="same", name="branch_b")(x)
    b = keras.layers.ReLU(name="branch_b_relu")(b)
    x = keras.layers.Concatenate(name="mixed")([a, b])
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="fused")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inp, x, name="tiny")


def cli_exit(main, argv, capsys):
    """Run a CLI's main(argv), which must exit: (exit code, captured stdout/stderr)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr()


def summary_events(log_dir):
    """(tag, step, plugin) of every summary value in the TensorBoard event files of log_dir."""
    import glob

    import tensorflow as tf

    found = []
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.append((value.tag, event.step, value.metadata.plugin_data.plugin_name))
    return found


@pytest.fixture(scope="session")
def tiny_cnn():
    return build_tiny_cnn()
