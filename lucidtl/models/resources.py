"""Files lucidtl ships inside its package, found through importlib.resources (so a wheel, an sdist, an editable
or a plain `pip install .` all find them): the weight manifests and Lucid's zoo manifests, and Keras' cache.

    manifests/<name>.json        registry models (source URL, sha256, format, input range, converter)
    manifests/lucid/<name>.json  Lucid 0.3.10's model zoo (load_from_manifest fields + url, sha256)
"""
import os

from importlib import resources as importlib_resources

MANIFESTS = importlib_resources.files("lucidtl.models") / "manifests"
MANIFEST_DIR = str(MANIFESTS)  # a real folder for every install lucidtl supports (not a zip import)
ZOO_DIR = os.path.join(MANIFEST_DIR, "lucid")


def shipped_files():
    """Every file the code reads from the package, relative to the package root `lucidtl/` (the wheel test
    checks each is inside the wheel)."""
    root = importlib_resources.files("lucidtl")
    out = []
    for folder in ("models/manifests", "models/manifests/lucid", "atlas/web", "study/web"):
        out += sorted(f"{folder}/{p.name}" for p in root.joinpath(folder).iterdir() if p.is_file())
    return out


def keras_cache_dir():
    """Where keras.utils.get_file caches files (KERAS_HOME, else ~/.keras, else /tmp/.keras), as Keras decides."""
    base = os.environ.get("KERAS_HOME")
    if base is None:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    return base if os.access(base, os.W_OK) else "/tmp/.keras"
