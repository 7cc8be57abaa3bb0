"""Training under tf.distribute: two logical CPUs (MirroredStrategy) and two workers on localhost
(MultiWorkerMirroredStrategy via TF_CONFIG) save the same checkpoints as a one-device run."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from lucidtl.train import run as runs
from conftest import summary_events
from tiny_models import make_image_folder

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "distributed_run.py")


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _run(mode, folder, out, **env):
    return subprocess.Popen([sys.executable, SCRIPT, mode, folder, out], env=_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=240):
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-3000:]
    assert "ran out of data" not in stderr  # Keras' warning when a stream is shorter than the run
    return stdout


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    folder = make_image_folder(str(root / "data"), per_class=8)
    out = str(root / "single")
    _finish(_run("single", folder, out))
    return folder, out


def _same_checkpoints(a, b, atol=2e-5):
    ra, rb = runs.read_manifest(a), runs.read_manifest(b)
    assert [r["iteration"] for r in ra] == [r["iteration"] for r in rb] == [0, 2, 6]
    model = runs.build_run_model(runs.read_settings(a))
    for r in ra:
        wa = [w.copy() for w in runs.load_checkpoint(a, r["iteration"], model).get_weights()]
        wb = runs.load_checkpoint(b, r["iteration"], model).get_weights()
        for x, y in zip(wa, wb):
            np.testing.assert_allclose(x, y, atol=atol, err_msg=f"iteration {r['iteration']}")
    first, last = (runs.load_checkpoint(a, i, model).get_weights()[0].copy() for i in (0, 6))
    assert np.abs(first - last).max() > 1e-3  # training moved the weights, so equality means something


@pytest.mark.slow  # two training processes; test_train_run.py's tiny run is the quick loop's training
def test_mirrored_on_two_logical_cpus_equals_one_device(single, tmp_path):
    folder, ref = single
    out = str(tmp_path / "mirrored")
    stdout = _finish(_run("mirrored", folder, out))
    assert "iterations 6" in stdout
    _same_checkpoints(ref, out)
    # the live feature visualisations work on mirrored variables too
    events = summary_events(os.path.join(out, "logs", "features"))
    assert sorted((t, s) for t, s, _ in events) == [("conv2_relu:1", 0), ("conv2_relu:1", 6)]


@pytest.mark.slow  # three training processes
def test_two_workers_on_localhost_equal_one_device(single, tmp_path):
    folder, ref = single
    out = str(tmp_path / "workers")
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = [_run("worker", folder, out, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                             "index": i}}))
             for i in range(2)]
    outputs = [_finish(p) for p in procs]
    assert all("iterations 6" in o for o in outputs)
    _same_checkpoints(ref, out)
    settings = runs.read_settings(out)
    assert settings["complete"]
