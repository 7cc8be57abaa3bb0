"""Nothing half-written on disk: write to a temporary name beside the target, then rename.

Every file operation lucidtl does (create, rename, append, truncate, remove, mkdir) goes through this module,
so one counter sees them all. Test hook: with LUCIDTL_KILL_AT_WRITE=k in the environment the process ends
(os._exit, no cleanup, exit code 137) just before its k-th file operation; `kill_at(k)` does the same in
process by raising SimulatedKill, after which no further file operation happens (as after a real kill).
Files get mode 0666 & ~umask and folders 0777 & ~umask, like any ordinary program (mkstemp alone gives 0600).
"""
import contextlib
import glob
import os
import shutil
import tempfile

KILL_ENV = "LUCIDTL_KILL_AT_WRITE"
KILLED_EXIT = 137


class SimulatedKill(BaseException):
    """The in-process stand-in for SIGKILL (a BaseException: `except Exception` does not catch it)."""


_state = {"count": 0, "kill_at": None, "dead": False, "log": None}


def _op(what, path):
    """Count one file operation; end the process (or simulate it) if this is the one to die at."""
    if _state["dead"]:
        raise SimulatedKill(f"already killed; {what} {path} not done")
    _state["count"] += 1
    if _state["log"] is not None:
        _state["log"].append((what, os.fspath(path)))
    k = _state["kill_at"]
    if k is None and os.environ.get(KILL_ENV):
        if _state["count"] >= int(os.environ[KILL_ENV]):
            os._exit(KILLED_EXIT)
    elif k is not None and _state["count"] >= k:
        _state["dead"] = True
        raise SimulatedKill(f"killed before file operation {k}: {what} {path}")


def killed():
    """True after a simulated kill (kill_at): nothing may be written or cleaned up any more."""
    return _state["dead"]


@contextlib.contextmanager
def kill_at(k):
    """Within the block, raise SimulatedKill just before the k-th file operation (counted from 1)."""
    saved = dict(_state)
    _state.update(count=0, kill_at=int(k), dead=False)
    try:
        yield
    finally:
        _state.update(count=saved["count"], kill_at=saved["kill_at"], dead=False)


@contextlib.contextmanager
def recording():
    """Within the block, list the file operations as (what, path) in the yielded list."""
    log, saved = [], _state["log"]
    _state["log"] = log
    try:
        yield log
    finally:
        _state["log"] = saved


def umask():
    """The process umask, read without changing it where Linux tells it (/proc), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode():
    return 0o666 & ~umask()


def folder_mode():
    return 0o777 & ~umask()


def makedirs(folder):
    """os.makedirs(folder, exist_ok=True), counted as one operation when it creates anything."""
    folder = os.fspath(folder)
    if folder and not os.path.isdir(folder):
        _op("mkdir", folder)
        os.makedirs(folder, exist_ok=True)
    return folder


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's folder (ending in the target's full name, so suffix checks
    such as Keras' `.weights.h5` pass); it is renamed onto `path` only if the block succeeds. A kill leaves
    at most the temporary file, which `clear_stale` removes."""
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    makedirs(folder)
    _op("create", path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{base}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        _op("rename", path)
        os.chmod(tmp, file_mode())  # after the writer: some writers replace the file they were given
        os.replace(tmp, path)
    except SimulatedKill:
        raise  # a killed process cleans nothing up
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes(path, data):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def copy_file(src, path):
    """Copy src to path atomically."""
    with atomic_path(path) as tmp:
        shutil.copyfile(src, tmp)
    return path


def append_text(path, text):
    """Append text and fsync. Two operations, split mid-text, so a kill test also sees a torn append."""
    path = os.fspath(path)
    data = text.encode("utf-8")
    half = len(data) // 2
    existed = os.path.exists(path)
    _op("append", path)
    with open(path, "ab") as f:
        if not existed:
            os.chmod(path, file_mode())
        f.write(data[:half])
        f.flush()
        _op("append", path)
        f.write(data[half:])
        f.flush()
        os.fsync(f.fileno())
    return path


def truncate(path, size):
    _op("truncate", path)
    with open(path, "rb+") as f:
        f.truncate(size)


def remove(path):
    _op("remove", path)
    os.remove(path)


def rmtree(path):
    _op("rmtree", path)
    shutil.rmtree(path)


def replace(src, dst):
    _op("rename", dst)
    os.replace(src, dst)


def make_temp_dir(parent, prefix=".tmp-"):
    """mkdtemp in parent, with the umask's folder mode (mkdtemp alone gives 0700)."""
    makedirs(parent)
    _op("mkdir", os.path.join(parent, prefix))
    tmp = tempfile.mkdtemp(dir=parent, prefix=prefix)
    os.chmod(tmp, folder_mode())
    return tmp


def chmod_tree(folder):
    """Give every file and folder below `folder` (itself included) the umask's modes; for trees that other
    libraries wrote into a temporary folder (e.g. a SavedModel)."""
    fm, dm = file_mode(), folder_mode()
    os.chmod(folder, dm)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), dm)
        for f in files:
            os.chmod(os.path.join(root, f), fm)


def stale(folder, name="*"):
    """The temporary files that writes of `name` (a glob pattern; default any file) in `folder` left when
    a kill cut them short."""
    return sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)), f".tmp-*-{name}")))


def clear_stale(folder, name="*"):
    """Remove the temporary files that writes of `name` (default: any file) in `folder` left when a kill cut
    them short; the target names were never touched."""
    clear_stale_pattern(folder, name if name == "*" else glob.escape(name))


def clear_stale_pattern(folder, pattern):
    """clear_stale for a glob pattern of target names (e.g. 'Mixed_4c_*.png')."""
    for tmp in stale(folder, pattern):
        remove(tmp)
