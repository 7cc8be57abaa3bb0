import os

import numpy as np
import pytest
from PIL import Image

from lucidtl import imageio
from lucidtl.atomic import atomic_path


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "x.weights.h5"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.endswith("x.weights.h5") and os.path.dirname(tmp) == str(target.parent)
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed")
    assert os.listdir(target.parent) == []


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
        assert target.read_text() == "old"  # untouched until the block ends
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["a.txt"]


def test_png_is_round_255x(tmp_path):
    img = np.array([[[0.0, 0.5, 1.0], [0.002, 0.998, 0.25]]], np.float32)  # 1x2 RGB
    imageio.save_png(img, tmp_path / "p.png")
    png = np.asarray(Image.open(tmp_path / "p.png"))
    np.testing.assert_array_equal(png, [[[0, 128, 255], [1, 254, 64]]])


def test_grayscale_and_multichannel_pngs(tmp_path):
    gray = np.full((4, 4, 1), 0.2, np.float32)
    imageio.save_png(gray, tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "L"
    five = np.full((4, 4, 5), 0.4, np.float32)
    imageio.save_png(five, tmp_path / "f.png")
    assert np.asarray(Image.open(tmp_path / "f.png")).shape == (4, 4, 3)


def test_labelled_grid_layout():
    cell = np.zeros((10, 12, 3), np.float32)
    grid = imageio.labelled_grid([[cell] * 3] * 2, row_labels=["t=1", "t=2"], col_labels=["a", "b", "c"])
    assert grid.width >= 3 * 12 and grid.height >= 2 * 10 + 14
    arr = np.asarray(grid)
    assert (arr == 0).all(axis=-1).sum() >= 6 * 10 * 12  # all six black cells are pasted
