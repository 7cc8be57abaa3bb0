"""Read a PyTorch `.pth` state dict into NumPy arrays without torch.

Both of torch.save's layouts: the zip archive (torch >= 1.6: `<name>/data.pkl` + `<name>/data/<key>` raw
storages + `<name>/byteorder`) and the legacy stream (magic number, protocol, sys_info, the pickled object,
the storage keys, then each storage as an int64 element count and its raw bytes). The unpickler is restricted:
it rebuilds tensors and ordered dicts only, so a pickled nn.Module or arbitrary object is refused.
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from lucidtl.errors import WeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def itemsize(self):
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


def _to_array(raw, storage_type, little_endian):
    if storage_type.dtype == "bfloat16":  # the high half of a float32
        bits = np.frombuffer(raw, dtype="<u2" if little_endian else ">u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    dtype = np.dtype(storage_type.dtype).newbyteorder("<" if little_endian else ">")
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(storage_type.dtype).newbyteorder("="))


def rebuild_tensor(storage, offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2: the strided view of a 1-D storage array, copied."""
    if not size:
        return np.array(storage[offset])
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=[s * item for s in stride])
    return np.array(view)


def rebuild_parameter(data, *_ignored):
    """torch._utils._rebuild_parameter: the tensor itself."""
    return data


def _rebuild_from_type(func, _new_type, args, _state):
    return func(*args)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "rebuild_tensor"): rebuild_tensor,
    ("torch._utils", "rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch.nn.parameter", "Parameter"): object,
    ("torch", "Tensor"): object,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, load_storage, path, table=None):
        super().__init__(file)
        self._load_storage = load_storage
        self._path = path
        self._table = _ALLOWED if table is None else table

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in self._table:
            return self._table[(module, name)]
        raise WeightsError(
            f"{self._path} pickles a {module}.{name}, not a state dict of tensors; save model.state_dict() "
            "with torch.save and pass that file"
        )

    def persistent_load(self, pid):
        if self._load_storage is None or not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise WeightsError(f"{self._path}: unknown persistent record {pid!r:.60}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"{self._path}: unsupported storage type {storage_type!r:.60}")
        return self._load_storage(key, storage_type)


def _read_zip(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if not pkl:
            raise WeightsError(f"{path} is a zip file without data.pkl; it is not a torch.save file")
        root = pkl[0][: -len("data.pkl")]
        order = z.read(root + "byteorder").decode().strip() if root + "byteorder" in names else "little"
        cache = {}

        def load_storage(key, storage_type):
            if key not in cache:
                cache[key] = _to_array(z.read(f"{root}data/{key}"), storage_type, order == "little")
            return cache[key]

        with z.open(pkl[0]) as f:
            return _Unpickler(f, load_storage, path).load()


def _plain_load(f, path):
    """One pickle of plain values (no globals, no persistent ids)."""
    return _Unpickler(f, None, path, table={}).load()


def _read_legacy(path):
    with open(path, "rb") as f:
        header = [_plain_load(f, path) for _ in range(3)]  # magic, protocol, sys_info
        if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
            raise WeightsError(f"{path} is not a torch.save file (no zip archive, no legacy magic number)")
        little = header[2].get("little_endian", True) if isinstance(header[2], dict) else True
        pending = {}

        def load_storage(key, storage_type):
            pending.setdefault(key, _Lazy(storage_type))
            return pending[key]

        table = dict(_ALLOWED)
        table[("torch._utils", "_rebuild_tensor_v2")] = table[("torch._utils", "rebuild_tensor")] = _legacy_rebuild
        obj = _Unpickler(f, load_storage, path, table).load()
        keys = _plain_load(f, path)
        for key in keys:
            (count,) = struct.unpack("<q" if little else ">q", f.read(8))
            lazy = pending.get(str(key))
            raw = f.read(count * (lazy.storage_type.itemsize if lazy else 1))
            if lazy is not None:
                lazy.array = _to_array(raw, lazy.storage_type, little)
    return _resolve(obj)


class _Lazy:
    """A legacy-format storage whose bytes come after the pickle; tensors built on it resolve later."""

    def __init__(self, storage_type):
        self.storage_type = storage_type
        self.array = None


def _legacy_rebuild(storage, offset, size, stride, *_ignored):
    return ("lazy-tensor", storage, offset, tuple(size), tuple(stride))


def _resolve(obj):
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "lazy-tensor":
        _, lazy, offset, size, stride = obj
        return rebuild_tensor(lazy.array, offset, size, stride)
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _resolve(v)
        return out
    return obj


def storage_from_bytes(data):
    """torch.storage._load_from_bytes: a legacy torch.save stream holding one storage -> 1-D array."""
    f = io.BytesIO(data)
    header = [_plain_load(f, "storage") for _ in range(3)]  # magic, protocol, sys_info
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
        raise WeightsError("a pickled torch storage is not a legacy torch.save stream")
    little = header[2].get("little_endian", True) if isinstance(header[2], dict) else True
    pending = {}

    def load_storage(key, storage_type):
        return pending.setdefault(key, _Lazy(storage_type))

    obj = _Unpickler(f, load_storage, "storage", table={}).load()
    for key in _plain_load(f, "storage"):
        (count,) = struct.unpack("<q" if little else ">q", f.read(8))
        lazy = pending[str(key)]
        lazy.array = _to_array(f.read(count * lazy.storage_type.itemsize), lazy.storage_type, little)
    if not isinstance(obj, _Lazy) or obj.array is None:
        raise WeightsError("a pickled torch storage holds no data")
    return obj.array


def read_state_dict(path):
    """{name: np.ndarray} from a torch.save'd state dict (either layout). Accepts a dict wrapping it under
    "state_dict" or "model" (training checkpoints) and strips DataParallel's "module." prefixes."""
    path = str(path)
    try:
        if zipfile.is_zipfile(path):
            obj = _read_zip(path)
        else:
            obj = _read_legacy(path)
    except WeightsError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, struct.error, AttributeError) as e:
        raise WeightsError(f"cannot read {path} as a PyTorch state dict: {type(e).__name__}: {e}") from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors; save model.state_dict() with torch.save")
    return collections.OrderedDict(
        (k[len("module."):] if k.startswith("module.") else k, v) for k, v in obj.items()
    )

