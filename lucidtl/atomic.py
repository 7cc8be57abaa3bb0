"""Nothing half-written on disk: write to a temporary name beside the target, then rename."""
import contextlib
import glob
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's folder (ending in the target's full name, so suffix checks
    such as Keras' `.weights.h5` pass); it is renamed onto `path` only if the block succeeds."""
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{base}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def clear_stale(folder, name="*"):
    """Remove the temporary files that writes of `name` (default: any file) in `folder` left when a kill cut
    them short; the target names were never touched."""
    pattern = f".tmp-*-{name if name == '*' else glob.escape(name)}"
    for tmp in glob.glob(os.path.join(glob.escape(os.fspath(folder)), pattern)):
        os.remove(tmp)
