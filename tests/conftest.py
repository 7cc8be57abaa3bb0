import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


# The test files that take longest, longest first (measured with --durations). With `--dist loadfile` xdist
# hands whole files to its workers in collection order: starting with these keeps one worker from running a
# long file alone at the end. Unlisted files follow in their usual order; tests within a file keep theirs.
LONGEST_FIRST = ("test_kill_resume.py", "test_study.py", "test_own_models.py", "test_train_run.py",
                 "test_activation_atlas_study.py", "test_render_reference.py", "test_distribute.py",
                 "test_converters.py", "test_export.py", "test_cli.py", "test_atlas.py", "test_command_line.py",
                 "test_model_files.py", "test_models.py", "test_building_blocks_cli.py", "test_notebook.py",
                 "test_activation_atlas.py", "test_render.py", "test_inception_v1.py", "test_stylegan2.py",
                 "test_install.py", "test_lucid_zoo.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """([run ta, run tb], image folder): tiny_backbone trained 4 iterations (saved at 0, 2, 4) with seeds 0 and 1
    on a generated 3-class folder. Built once a session for the study tests; read them, never write into them."""
    from lucidtl.train import fit
    from tiny_models import make_image_folder

    base = tmp_path_factory.mktemp("tiny_runs")
    folder = make_image_folder(str(base / "data"))
    made = []
    for name, seed in (("ta", 0), ("tb", 1)):
        out = str(base / name)
        fit.train(f"folder:{folder}", iterations=4, save_at="0,2,4", out=out, model="tiny_models.tiny_backbone",
                  weights="random", recipe="temporal", image_size=16, batch_size=4, seed=seed, progress=False,
                  tensorboard=False)
        made.append(out)
    return made, folder
