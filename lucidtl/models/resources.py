"""Files lucidtl ships inside its package, found through importlib.resources (so a wheel, an sdist, an editable
or a plain `pip install .` all find them): the weight manifests and Lucid's zoo manifests, and Keras' cache
(where downloads go, checked against the manifests' sha256 before any download).

    manifests/<name>.json        registry models (source URL, sha256, format, input range, converter)
    manifests/lucid/<name>.json  Lucid 0.3.10's model zoo (load_from_manifest fields + url, sha256)
"""
import hashlib
import os
from importlib import resources as importlib_resources

from lucidtl.errors import WeightsError

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


def sha256(path):
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_cached(path, expected, url):
    """Before keras.utils.get_file is asked for `path`: a file already there with another sha256 than
    `expected` is refused in one line (WeightsError) and kept; get_file would delete it and download again."""
    if not expected or not os.path.isfile(path):
        return
    got = sha256(path)
    if got != expected.lower():
        raise WeightsError(f"{path} has sha256 {got[:12]}..., not the manifest's {expected} (another file or a "
                           f"damaged download); replace it with the file from {url}, or remove it to download it "
                           "again")
