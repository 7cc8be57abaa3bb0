"""Notebooks: the tutorial runs top to bottom in a real Jupyter kernel, and lucidtl.misc.io.show gives the
right image/png display data there (a batch as one labelled grid, a list, one image, `w` scaling), and
render_vis shows its images inline in a kernel.

nbclient (the executor under nbconvert and nbmake) runs the notebook: the test reads every cell's outputs
itself, with no pytest plugin; the kernel is ipykernel's, with this repository first on PYTHONPATH."""
import base64
import io
import os

import numpy as np
import pytest
from PIL import Image

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKS = '''
import numpy as np
from lucidtl.misc.io import show
batch = np.random.default_rng(0).uniform(0, 1, (3, 10, 12, 3)).astype("float32")
show(batch)
show(batch, labels=["a", "b", "c"], w=80)
show(list(batch[:2]))
show(batch[0])
show(batch[0, ..., 0] * 4, domain=(0, 4))
'''


def _pngs(cell):
    return [Image.open(io.BytesIO(base64.b64decode(o["data"]["image/png"])))
            for o in cell.get("outputs", []) if o.get("output_type") == "display_data" and "image/png" in o["data"]]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.read(os.path.join(ROOT, "notebooks", "tutorial.ipynb"), as_version=4)
    tutorial = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS))
    env_path = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path  # the kernel process inherits it
    try:
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}})
        client.execute()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    return nb, tutorial


def test_tutorial_runs_and_shows_its_images(executed):
    nb, tutorial = executed
    code = [c for c in nb.cells[:tutorial] if c.cell_type == "code"]
    assert all(not any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in code)
    render_cell = next(c for c in code if "thresholds=(8, 16)" in c.source)
    shown = _pngs(render_cell)
    assert len(shown) == 2 and all(p.size == (48, 48) for p in shown)  # render_vis inline, one per threshold
    text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    assert "backbone/conv2_relu" in text and "CKA of iteration 4 against iteration 0:" in text
    assert "index.html" in text
    assert len(_pngs(next(c for c in code if "study(" in c.source))) == 1


def test_show_gives_image_png_display_data_in_a_kernel(executed):
    nb, _ = executed
    grid, scaled, pair, one, gray = _pngs(nb.cells[-1])
    assert one.size == (12, 10) and grid.width > 3 * 12 and grid.height > 10  # a grid with its labels above
    assert scaled.width == 80 and pair.width < grid.width
    rgb = np.asarray(one.convert("RGB"))
    batch = np.random.default_rng(0).uniform(0, 1, (3, 10, 12, 3)).astype("float32")
    np.testing.assert_array_equal(rgb, np.clip(np.rint(batch[0] * 255), 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(gray.convert("RGB"))[..., 0],
                                  np.clip(np.rint(batch[0, ..., 0] * 255), 0, 255).astype(np.uint8))


def test_progress_in_a_log_file_is_whole_lines(tmp_path):
    """Not a terminal, not a notebook: about ten whole lines, no carriage-return redraws; a terminal: tqdm."""
    from lucidtl.optvis.render import LineBar, progress_bar

    log = open(tmp_path / "log.txt", "w+")
    bar = progress_bar(100, True, desc="render", stream=log, interval=0)
    assert isinstance(bar, LineBar)
    for _ in range(100):
        bar.update(1)
    bar.write("50 0.1234")
    bar.close()
    log.seek(0)
    text = log.read()
    lines = text.splitlines()
    assert "\r" not in text and 9 <= len(lines) <= 12
    assert lines[0].startswith("render: 10/100 step (10%)") and lines[-1].startswith("render: 100/100 step (100%) done")

    class Terminal:
        def isatty(self):
            return True

        def write(self, s):
            pass

        def flush(self):
            pass

    from tqdm.auto import tqdm

    tty = progress_bar(5, True, stream=Terminal())
    assert isinstance(tty, tqdm)
    tty.close()


def test_show_outside_a_notebook_prints_a_line(capsys):
    from lucidtl.misc import io as mio

    mio.show(np.zeros((2, 8, 8, 3), np.float32))
    mio.show(np.zeros((5, 6), np.float32))
    assert capsys.readouterr().out.splitlines() == ["<2 images>", "<image 6x5>"]
    png = Image.open(io.BytesIO(mio.image_png(np.full((4, 4, 1), 0.5), w=8)))
    assert png.size == (8, 8) and np.asarray(png.convert("RGB"))[0, 0, 0] == 128
