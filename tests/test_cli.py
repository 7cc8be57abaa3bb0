"""`python -m lucidtl.render`: a full small render, the layer catalogue, and bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lucidtl import render as cli
from lucidtl.models import inception_v1
from lucidtl.optvis.render import render_vis

SMALL = ["--size", "32", "--steps", "3", "--weights", "random", "--progress", "False"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    return e.value.code, capsys.readouterr()


def test_full_render_writes_pngs_grid_and_record(tmp_path, capsys):
    out = tmp_path / "out"
    cli.main(["--layer", "Mixed_4c_Branch_2_b_3x3", "--channels", "0:3", "--thresholds", "1,3", "--seed", "5",
              "--out", str(out), *SMALL])
    printed = capsys.readouterr().out
    assert "RANDOM weights" in printed and f"{out}/Mixed_4c_Branch_2_b_3x3_grid.png" in printed
    names = sorted(os.listdir(out))
    assert names == sorted([f"Mixed_4c_Branch_2_b_3x3_{c:04d}_{t}.png" for c in range(3) for t in (1, 3)]
                           + ["Mixed_4c_Branch_2_b_3x3_grid.png", "Mixed_4c_Branch_2_b_3x3_render.json"])
    record = json.loads((out / "Mixed_4c_Branch_2_b_3x3_render.json").read_text())
    assert record["thresholds"] == [1, 3] and record["updates_at_threshold"] == [2, 4]
    assert record["channels"] == [0, 1, 2] and record["seed"] == 5 and record["random_weights"]
    grid = Image.open(out / "Mixed_4c_Branch_2_b_3x3_grid.png")
    assert grid.width > 3 * 32 and grid.height > 2 * 32

    # the PNG holds exactly what was rendered: the same render through the API, quantised round(255 x)
    import keras

    keras.utils.set_random_seed(0)
    model = inception_v1()  # the CLI's random network: seeded with 0
    obj = cli.channel_objective("Mixed_4c_Branch_2_b_3x3", [0, 1, 2])
    imgs = render_vis(model, obj, param_f=cli.make_param("fft", 32, 3), thresholds=(1, 3), seed=5,
                      verbose=False)
    png = np.asarray(Image.open(out / "Mixed_4c_Branch_2_b_3x3_0002_3.png"))
    assert png.shape == (32, 32, 3) and png.dtype == np.uint8
    np.testing.assert_array_equal(png, np.rint(imgs[1][2] * 255).astype(np.uint8))


def test_layers_lists_names_and_channels(capsys):
    cli.main(["layers"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["Mixed_4c"][2] == "512" and rows["Mixed_4c"][3] == "yes"
    assert rows["Mixed_5c"][2] == "1024"
    assert rows["Mixed_4c_Branch_2_b_3x3"][2] == "64"
    assert rows["Mixed_4c_Branch_2_b_3x3_pre_relu"][1] == "BatchNormalization"
    assert sum(1 for r in rows.values() if r[1] == "ReLU") == 57


@pytest.mark.parametrize("argv,expected", [
    (["--layer", "Mixed_4c_Branch_2_b_3x4"], "closest: Mixed_4c_Branch_2_b_3x3"),
    (["--layer", "Mixed_4c_Branch_0_a_1x1", "--channels", "160"], "has 160 channels (0..159)"),
    (["--channels", "0:8", "--thresholds", "-3,2"], "not a non-negative integer"),
    (["--steps", "2", "--thresholds", "5"], "beyond --steps 2"),
    (["--size", "8"], "--size must be an integer >= 16"),
    (["--param", "fourier"], "choose one of fft, pixel, laplacian, cppn"),
    (["--transforms", "fancy"], "choose one of standard, distill, none"),
    (["--model", "inception_v2"], "closest: inception_v1"),
    (["--channels", "a-b"], "use e.g. 7, 0:8, 1,5,9 or all"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, expected):
    out = tmp_path / "out"
    code, captured = run([*SMALL, "--out", str(out), *argv], capsys)
    assert code == 2
    err = captured.err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_unreadable_weights_file(tmp_path, capsys):
    bad = tmp_path / "broken.weights.h5"
    bad.write_bytes(b"not an hdf5 file")
    code, captured = run(["--weights", str(bad), "--out", str(tmp_path / "out"), "--size", "32"], capsys)
    assert code == 2 and "broken.weights.h5" in captured.err and "\n" not in captured.err.strip()
    assert not (tmp_path / "out").exists()


def test_size_too_small_for_a_valid_padding_model(tmp_path, capsys):
    """InceptionV3 has VALID convs: after the transforms a 16 px image is too small for mixed10."""
    code, captured = run(["--model", "keras.applications.InceptionV3", "--layer", "mixed10", "--size", "16",
                          "--weights", "random", "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "too small" in captured.err


@pytest.mark.slow  # a fresh process; test_bad_inputs.py's real entry points stay in the quick loop
def test_subprocess_module_entry_point(tmp_path):
    """The real `python -m lucidtl.render` entry point: exit code 2, one line, no traceback."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "lucidtl.render", "--layer", "Mixed_9z", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown layer 'Mixed_9z'")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # InceptionV1 rendered three times; tests/test_kill_resume.py's killed render stays in the quick loop
def test_killed_run_resumes_to_the_same_result(tmp_path, capsys):
    args = ["--layer", "Mixed_3b", "--channels", "0:4", "--batch-size", "2", "--thresholds", "1,2", *SMALL]
    full, cut = tmp_path / "full", tmp_path / "cut"
    cli.main([*args, "--out", str(full)])
    cli.main([*args, "--out", str(cut)])
    # as if killed during the second batch: its PNGs and the grid are missing
    for c in (2, 3):
        (cut / f"Mixed_3b_{c:04d}_2.png").unlink()
    (cut / "Mixed_3b_grid.png").unlink()
    kept = (cut / "Mixed_3b_0000_2.png").stat().st_mtime_ns
    capsys.readouterr()
    cli.main([*args, "--out", str(cut)])
    assert (cut / "Mixed_3b_0000_2.png").stat().st_mtime_ns == kept  # the first batch was not redone
    for name in sorted(os.listdir(full)):
        if name.endswith(".png"):
            np.testing.assert_array_equal(np.asarray(Image.open(full / name)), np.asarray(Image.open(cut / name)))
    assert json.loads((cut / "Mixed_3b_render.json").read_text())["status"] == "complete"


def test_other_settings_in_the_same_folder_is_an_error(tmp_path, capsys):
    out = tmp_path / "o"
    cli.main(["--layer", "Mixed_3b", "--channels", "0:2", *SMALL, "--out", str(out)])
    code, captured = run(["--layer", "Mixed_3b", "--channels", "0:2", *SMALL, "--seed", "3", "--out", str(out)],
                         capsys)
    assert code == 2 and "other settings (seed)" in captured.err and "--overwrite" in captured.err
    cli.main(["--layer", "Mixed_3b", "--channels", "0:2", *SMALL, "--seed", "3", "--out", str(out),
              "--overwrite"])
    assert json.loads((out / "Mixed_3b_render.json").read_text())["seed"] == 3


def test_render_a_keras_applications_model(tmp_path, capsys):
    """Any functional Keras model: keras.applications.InceptionV3 (random weights, input range (-1, 1))."""
    out = tmp_path / "v3"
    cli.main(["--model", "keras.applications.InceptionV3", "--layer", "mixed2", "--channels", "3,7", "--size", "80",
              "--steps", "2", "--progress", "False", "--out", str(out)])
    record = json.loads((out / "mixed2_render.json").read_text())
    assert record["input_range"] == [-1.0, 1.0] and record["random_weights"]
    assert np.asarray(Image.open(out / "mixed2_0007_2.png")).shape == (80, 80, 3)
