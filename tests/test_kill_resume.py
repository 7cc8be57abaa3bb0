"""Crash consistency, proved at every file operation: for each k, a render, an atlas (and its site) and a
training run are killed just before their k-th file operation, the same call is made again, and the result
must equal an uninterrupted run's (bytes of PNGs, records and manifests; weights to float tolerance) with no
temporary file left.

The kill is simulated in process (lucidtl.atomic.kill_at raises SimulatedKill, a BaseException, after which
no file operation happens: the atomic helpers clean nothing up, as after SIGKILL); one real os._exit through
LUCIDTL_KILL_AT_WRITE checks that the environment hook ends a CLI process the same way."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lucidtl import atomic
from lucidtl.atlas import job
from lucidtl.atlas.site import site
from lucidtl.render import render
from lucidtl.train import fit
from lucidtl.train import run as runs
from tiny_models import make_image_folder, tiny_backbone

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = "tiny_models.tiny_backbone"
RENDER = dict(model=MODEL, weights="random", layer="conv2_relu", channels="0:2", batch_size=1, size=32, steps=3,
              transforms="none", progress=False)
TRAIN = dict(model=MODEL, weights="random", recipe="temporal", image_size=16, batch_size=4, iterations=2,
             save_at="0,2", backup_seconds=0, progress=False, tensorboard=False)


def _files(folder):
    """{relative path: bytes} of every file below folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


def _temporary(folder):
    return sorted(os.path.relpath(os.path.join(r, f), folder) for r, ds, fs in os.walk(folder)
                  for f in fs + ds if f.startswith(".tmp-"))


def _every_kill(make, check, base):
    """make(out) once uninterrupted (counting its file operations), then for every k: killed at k, made
    again, checked against the uninterrupted result."""
    whole = str(base / "whole")
    with atomic.recording() as log:
        make(whole)
    assert len(log) >= 5, log
    for k in range(1, len(log) + 1):
        out = str(base / f"k{k:02d}")
        with atomic.kill_at(k), pytest.raises(atomic.SimulatedKill):
            make(out)
        make(out)
        assert _temporary(out) == [], f"killed before {log[k - 1]}"
        check(out, whole, f"killed before operation {k} {log[k - 1]}")
    return log


@pytest.mark.slow  # a render per file operation; the quick loop keeps the real killed process below
def test_render_killed_at_every_write_resumes_byte_for_byte(tmp_path):
    def make(out):
        render(out=out, **RENDER)

    def check(out, whole, where):
        assert _files(out) == _files(whole), where  # PNGs, grid and the record (objective values included)

    log = _every_kill(make, check, tmp_path)
    ops = [what for what, _ in log]
    # the record is written before each batch's PNG: a kill between them re-renders the batch
    assert ops.count("create") == 2 * 2 + 2, log  # per batch record + PNG, then grid + final record
    record = json.load(open(tmp_path / "whole" / "conv2_relu_render.json"))
    assert record["status"] == "complete" and sorted(record["objective_values"]) == ["3:0-0", "3:1-1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(str(tmp_path_factory.mktemp("data")))


@pytest.mark.slow  # an atlas and a site per file operation
def test_atlas_and_site_killed_at_every_write_resume_byte_for_byte(tmp_path):
    import keras

    from lucidtl.models import save_weights

    keras.utils.set_random_seed(3)
    weights = save_weights(tiny_backbone(), str(tmp_path / "net.weights.h5"))

    def make(out):
        job.render(weights=weights, model=MODEL, layers="conv2_relu", channels="0:2", size=16, steps=2, batch_size=1,
                   transforms="none", out=out, progress=False)

    def records(out):
        return sorted(json.dumps({k: v for k, v in r.items() if k not in job.VOLATILE}, sort_keys=True)
                      for r in job.read_manifest(out))

    def check(out, whole, where):
        a, b = _files(out), _files(whole)
        assert sorted(a) == sorted(b), where
        for name in a:
            if not name.startswith("manifest-"):  # manifests hold wall times: compared as records
                assert a[name] == b[name], (name, where)
        assert records(out) == records(whole), where
        assert all(line.endswith(b"\n") for line in a["manifest-0of1.jsonl"].splitlines(keepends=True))

    _every_kill(make, check, tmp_path / "atlas")

    atlas = str(tmp_path / "atlas" / "whole")

    def make_site(out):
        site(atlas=atlas, out=out, copy=True)

    def check_site(out, whole, where):
        assert _files(out) == _files(whole), where

    _every_kill(make_site, check_site, tmp_path / "site")


def _weights(path):
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, o: arrays.append((k, o[()])) if isinstance(o, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow  # a training per file operation
def test_train_killed_at_every_write_resumes_to_the_same_run(folder, tmp_path):
    def make(out):
        fit.train(f"folder:{folder}", out=out, **TRAIN)

    def check(out, whole, where):
        assert sorted(_files(out)) == sorted(_files(whole)), where
        assert runs.read_settings(out) == runs.read_settings(whole), where
        a, b = runs.read_manifest(out), runs.read_manifest(whole)
        keep = ("iteration", "requested", "epoch", "path")
        assert [{k: r[k] for k in keep} for r in a] == [{k: r[k] for k in keep} for r in b], where
        for ra, rb in zip(a, b):
            assert set(ra["metrics"]) == set(rb["metrics"]), where
        for r in b:
            for (ka, xa), (kb, xb) in zip(_weights(os.path.join(out, r["path"])),
                                          _weights(os.path.join(whole, r["path"]))):
                assert ka == kb
                np.testing.assert_allclose(xa, xb, atol=1e-5, err_msg=f"{r['path']} {where}")
        ha = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
        hb = list(csv.DictReader(open(os.path.join(whole, "history.csv"))))
        assert [r["epoch"] for r in ha] == [r["epoch"] for r in hb] and ha[0].keys() == hb[0].keys(), where
        fa = runs.load_checkpoint(out, "final").get_weights()
        fb = runs.load_checkpoint(whole, "final").get_weights()
        for x, y in zip(fa, fb):
            np.testing.assert_allclose(x, y, atol=1e-5, err_msg=where)

    log = _every_kill(make, check, tmp_path)
    assert ("create", os.path.join(str(tmp_path / "whole"), "run.json")) == log[1]  # the first run.json write
    assert runs.read_settings(str(tmp_path / "whole"))["complete"]


def test_environment_hook_ends_a_cli_process_and_the_rerun_completes(tmp_path):
    """LUCIDTL_KILL_AT_WRITE=k: the process dies (exit 137, no cleanup) just before its k-th file
    operation; the same command then completes to the uninterrupted result."""
    out, whole = str(tmp_path / "killed"), str(tmp_path / "whole")
    render(out=whole, **RENDER)
    argv = [sys.executable, "-m", "lucidtl.render", "--model", MODEL, "--weights", "random", "--layer", "conv2_relu",
            "--channels", "0:2", "--batch-size", "1", "--size", "32", "--steps", "3",
            "--transforms", "none", "--progress", "False", "--out", out]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3", **{atomic.KILL_ENV: "5"})  # before the first PNG is renamed
    killed = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert killed.returncode == atomic.KILLED_EXIT, killed.stderr[-2000:]
    assert _temporary(out), "the kill should have left the record's temporary file"
    render(out=out, **RENDER)
    assert _temporary(out) == [] and _files(out) == _files(whole)
