"""lucidtl installed as a package: the wheel and the sdist carry every manifest and web asset the code reads,
and an installed copy (not the source tree) finds its manifests through the package's resources."""
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = ("tests", "tools", "build", "dist", "out", "runs")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, sdist) built by setuptools' PEP 517 hooks from a copy of the source (the tree stays clean)."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=lambda d, names: [n for n in names if n in SKIP and d == ROOT
                                                        or n.startswith(".") or n.endswith(".egg-info")
                                                        or n == "__pycache__"])
    names = []
    for hook in ("build_wheel", "build_sdist"):  # one process each: setuptools keeps state between hooks
        code = f"import sys; from setuptools import build_meta as b; print('BUILT', b.{hook}(sys.argv[1]))"
        out = subprocess.run([sys.executable, "-c", code, str(tmp / "dist")], cwd=src, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        names.append([line for line in out.stdout.splitlines() if line.startswith("BUILT ")][-1].split()[1])
    wheel, sdist = names
    return tmp, tmp / "dist" / wheel, tmp / "dist" / sdist


def test_wheel_and_sdist_carry_every_file_the_code_reads(built):
    from lucidtl.models import resources

    _, wheel, sdist = built
    needed = resources.shipped_files()
    assert "models/manifests/inception_v1.json" in needed and "models/manifests/lucid/InceptionV1.json" in needed
    assert {"atlas/web/index.html", "study/web/app.js"} <= set(needed) and len(needed) >= 38
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert {f"lucidtl/{p}" for p in needed} <= names
    with tarfile.open(sdist) as t:
        members = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name}
    assert {f"lucidtl/{p}" for p in needed} <= members


@pytest.mark.slow  # a fresh process importing TensorFlow from the unpacked wheel; the wheel's contents stay quick
def test_installed_wheel_finds_its_manifests_offline(built):
    """Unpacked as pip installs it (a pure wheel is a zip of site-packages), first on sys.path, run from
    elsewhere: --weights imagenet offline says which file to put where, as the editable install does."""
    tmp, wheel, _ = built
    site = tmp / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = """
import keras, lucidtl, sys
from lucidtl.models import build_model, lucid_zoo
from lucidtl.errors import WeightsError
assert lucidtl.__file__.startswith(sys.argv[1]), lucidtl.__file__
def offline(*a, **k):
    raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")
keras.utils.get_file = offline
print(len(lucid_zoo.zoo_names()), lucid_zoo.zoo_manifest("InceptionV1")["input_name"])
for name in ("inception_v1", "lucid:InceptionV1"):
    try:
        build_model(name, weights="imagenet")
    except WeightsError as e:
        print(e)
"""
    env = dict(os.environ, PYTHONPATH=str(site), KERAS_HOME=str(tmp / "keras"))
    out = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "31 input"
    assert "cannot download inception_v1_2016_08_28.tar.gz" in lines[1] and "no manifest" not in out.stdout
    assert os.path.join(str(tmp / "keras"), "lucidtl", "inception_v1_2016_08_28.tar.gz") in lines[1]
    assert "InceptionV1.pb" in lines[2] and "unknown" not in lines[2]
