"""lucidtl.run.Run: one object for a run folder (what it reads, and its one-line errors)."""
import json
import os

import pytest

from lucidtl.errors import InvalidArgumentError, WeightsError
from lucidtl.run import Checkpoint, Run, load_checkpoint


def _run_folder(root, iterations=(0, 5, 20), settings=None):
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for it in iterations:
        name = f"iter_{it:06d}.weights.h5"
        (root / name).write_bytes(b"")
        records.append({"iteration": it, "path": name, "epoch": it // 5})
    (root / "checkpoints.json").write_text(json.dumps({"format": "weights", "checkpoints": records}))
    if settings is not None:
        (root / "run.json").write_text(json.dumps(settings))
    return root


def test_a_run_reads_its_folder_once(tmp_path):
    folder = _run_folder(tmp_path / "pets", settings={"class_names": ["cat", "dog"], "input_range": [-1, 1],
                                                       "image_size": 96, "dataset": "folder:data/pets"})
    run = Run(str(folder))
    assert (run.name, run.label, Run(str(folder), label="x").label) == ("pets", "pets", "x")
    assert run.iterations == (0, 5, 20) and run.class_names == ["cat", "dog"]
    assert (run.input_range, run.image_size, run.dataset) == ((-1, 1), 96, "folder:data/pets")
    assert run.checkpoints == [Checkpoint(it, os.path.join(str(folder), f"iter_{it:06d}.weights.h5"), it // 5)
                               for it in (0, 5, 20)]
    assert [c.iteration for c in run.select([20, 0])] == [0, 20] and os.fspath(run) == str(folder)
    with pytest.raises(InvalidArgumentError, match="no checkpoint at iteration 7; the run saved iterations 0, 5, 20"):
        run.select([7])
    assert run.last() == 20 and run.last("last") == 20 and run.last(5) == 5
    assert Run.of(run) is run


def test_without_run_json_the_settings_are_empty_and_weights_need_a_model(tmp_path):
    run = Run(str(_run_folder(tmp_path / "bare")))
    assert run.settings == {} and run.input_range == (0.0, 1.0) and run.class_names is None
    with pytest.raises(InvalidArgumentError, match="pass --model"):
        run.architecture()
    with pytest.raises(WeightsError, match="weights-only checkpoints but no run.json"):
        load_checkpoint(run.path, 0)


def test_loose_files_and_the_errors_of_a_missing_run(tmp_path):
    folder = _run_folder(tmp_path / "r")
    loose = Run(weights=f"{folder}/iter_000020.weights.h5,{folder}/iter_000005.weights.h5")
    assert [c.iteration for c in loose.checkpoints] == [5, 20] and loose.label == "" and loose.settings == {}
    with pytest.raises(InvalidArgumentError, match="^no checkpoints; pass --run"):
        Run().checkpoints  # noqa: B018
    with pytest.raises(InvalidArgumentError, match="does not exist; pass the --out folder of a training run"):
        Run(str(tmp_path / "nope")).records  # noqa: B018
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgumentError, match="has no checkpoints.json"):
        Run(str(tmp_path / "empty")).iterations  # noqa: B018
    (folder / "run.json").write_text("{not json")
    with pytest.raises(InvalidArgumentError, match="settings are corrupt"):
        Run(str(folder)).settings  # noqa: B018


def test_saved_keeps_the_order_asked_and_names_the_saved_ones(tmp_path):
    run = Run(str(_run_folder(tmp_path / "r")))
    assert run.saved() == [0, 5, 20] and run.saved("20,0") == [20, 0] and run.saved([5]) == [5]
    with pytest.raises(InvalidArgumentError, match="no checkpoint at iteration 3; saved: 0, 5, 20"):
        run.saved("3")


def test_a_run_goes_where_a_run_folder_does(tmp_path):
    """str / os.fspath give the folder, so commands taking --runs accept Runs as they accept folders."""
    from lucidtl.cli import split_list

    run = Run(str(_run_folder(tmp_path / "r")))
    assert str(run) == os.fspath(run) == run.path and split_list([run]) == [run.path]
    assert str(Run(weights="a.weights.h5")) == "a.weights.h5"
