"""An independent NumPy (float64) BN-InceptionV1 forward pass and official-layout weight files, for the
converter tests. Written from ../shared/spec/inception_v1.md only: its own channel table, its own slim and
torchvision names, TF's SAME padding; nothing here imports lucidtl."""
import collections
import io
import pickle
import sys
import types
import zipfile

import numpy as np

EPS = 1e-3
# block: (Branch_0 1x1, Branch_1 1x1, 3x3, Branch_2 1x1, 3x3, Branch_3 1x1)
BLOCKS = collections.OrderedDict([
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)), ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)), ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)), ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)), ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
])
TORCH_BLOCKS = ["inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d",
                "inception4e", "inception5a", "inception5b"]


def convs():
    """(paper name, slim scope, torchvision prefix, kernel, in channels, out channels) of all 57 convs."""
    out = [("Conv2d_1a_7x7", "InceptionV1/Conv2d_1a_7x7", "conv1", 7, 3, 64),
           ("Conv2d_2b_1x1", "InceptionV1/Conv2d_2b_1x1", "conv2", 1, 64, 64),
           ("Conv2d_2c_3x3", "InceptionV1/Conv2d_2c_3x3", "conv3", 3, 64, 192)]
    cin = 192
    for (block, c), tb in zip(BLOCKS.items(), TORCH_BLOCKS):
        s = f"InceptionV1/{block}"
        b2b = "Conv2d_0a_3x3" if block == "Mixed_5b" else "Conv2d_0b_3x3"  # the checkpoint's quirk
        out += [(f"{block}_Branch_0_a_1x1", f"{s}/Branch_0/Conv2d_0a_1x1", f"{tb}.branch1", 1, cin, c[0]),
                (f"{block}_Branch_1_a_1x1", f"{s}/Branch_1/Conv2d_0a_1x1", f"{tb}.branch2.0", 1, cin, c[1]),
                (f"{block}_Branch_1_b_3x3", f"{s}/Branch_1/Conv2d_0b_3x3", f"{tb}.branch2.1", 3, c[1], c[2]),
                (f"{block}_Branch_2_a_1x1", f"{s}/Branch_2/Conv2d_0a_1x1", f"{tb}.branch3.0", 1, cin, c[3]),
                (f"{block}_Branch_2_b_3x3", f"{s}/Branch_2/{b2b}", f"{tb}.branch3.1", 3, c[3], c[4]),
                (f"{block}_Branch_3_b_1x1", f"{s}/Branch_3/Conv2d_0b_1x1", f"{tb}.branch4.1", 1, cin, c[5])]
        cin = c[0] + c[2] + c[4] + c[5]
    return out


def random_params(seed=0, gamma=False):
    """{paper name: dict(kernel HWIO, gamma, beta, mean, var)} + logits (kernel [1,1,1024,1001], bias)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, _, _, k, cin, cout in convs():
        params[name] = dict(
            kernel=rng.normal(0, np.sqrt(2.0 / (k * k * cin)), (k, k, cin, cout)),
            gamma=(rng.uniform(0.5, 1.5, cout) * rng.choice([-1.0, 1.0], cout, p=[0.2, 0.8])) if gamma
            else np.ones(cout),
            beta=rng.normal(0, 0.2, cout), mean=rng.normal(0, 0.2, cout), var=rng.uniform(0.5, 1.5, cout))
    if gamma:
        params["Mixed_4c_Branch_0_a_1x1"]["gamma"][3] = 0.0  # a dead channel
    params["logits"] = dict(kernel=rng.normal(0, 0.05, (1, 1, 1024, 1001)), bias=rng.normal(0, 0.1, 1001))
    return params


# ---- forward pass ---------------------------------------------------------------------------------------

def _same_pad(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _windows(x, k, s, fill):
    (t, b), (l, r) = _same_pad(x.shape[1], k, s), _same_pad(x.shape[2], k, s)
    x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)
    w = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # [B, H', W', C, k, k]
    return w[:, ::s, ::s]


def conv(x, kernel, s=1):
    k = kernel.shape[0]
    w = _windows(x, k, s, 0.0)
    cols = w.reshape(w.shape[:3] + (-1,))
    return cols @ np.transpose(kernel, (2, 0, 1, 3)).reshape(-1, kernel.shape[-1])


def maxpool(x, k, s):
    return _windows(x, k, s, -np.inf).max(axis=(-2, -1))


def forward(images, params, scaled=None):
    """{paper name: activation} for every conv (post-ReLU and `_pre_relu`), every block and `Logits` (when
    the last map is 7x7: slim's 7x7 average pool). images in [0,1]; scaled: the network's input, default
    (images - 0.5) * 2."""
    acts = {}
    x = (images - 0.5) * 2.0 if scaled is None else scaled

    def unit(x, name, s=1):
        p = params[name]
        y = conv(x, p["kernel"], s)
        y = p["gamma"] * (y - p["mean"]) / np.sqrt(p["var"] + EPS) + p["beta"]
        acts[f"{name}_pre_relu"] = y
        acts[name] = np.maximum(y, 0.0)
        return acts[name]

    x = unit(x, "Conv2d_1a_7x7", 2)
    x = maxpool(x, 3, 2)
    x = unit(x, "Conv2d_2b_1x1")
    x = unit(x, "Conv2d_2c_3x3")
    for block in BLOCKS:
        if block in ("Mixed_3b", "Mixed_4b"):
            x = maxpool(x, 3, 2)
        if block == "Mixed_5b":
            x = maxpool(x, 2, 2)
        b0 = unit(x, f"{block}_Branch_0_a_1x1")
        b1 = unit(unit(x, f"{block}_Branch_1_a_1x1"), f"{block}_Branch_1_b_3x3")
        b2 = unit(unit(x, f"{block}_Branch_2_a_1x1"), f"{block}_Branch_2_b_3x3")
        b3 = unit(maxpool(x, 3, 1), f"{block}_Branch_3_b_1x1")
        x = acts[block] = np.concatenate([b0, b1, b2, b3], -1)
    if x.shape[1:3] == (7, 7):
        pooled = x.mean(axis=(1, 2))
        acts["Logits"] = pooled @ params["logits"]["kernel"][0, 0] + params["logits"]["bias"]
    return acts


# ---- official layouts -----------------------------------------------------------------------------------

def slim_arrays(params, head=True):
    """{checkpoint variable name: float32 array} as in inception_v1_2016_08_28 (gamma must be 1)."""
    out = {}
    for name, scope, *_ in convs():
        p = params[name]
        assert np.all(p["gamma"] == 1.0), "slim has no gamma"
        out[f"{scope}/weights"] = p["kernel"]
        out[f"{scope}/BatchNorm/beta"] = p["beta"]
        out[f"{scope}/BatchNorm/moving_mean"] = p["mean"]
        out[f"{scope}/BatchNorm/moving_variance"] = p["var"]
    if head:
        out["InceptionV1/Logits/Conv2d_0c_1x1/weights"] = params["logits"]["kernel"]
        out["InceptionV1/Logits/Conv2d_0c_1x1/biases"] = params["logits"]["bias"]
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def torchvision_arrays(params, aux=True):
    """{state-dict key: array} of torchvision's googlenet (1000 classes: the slim head minus background)."""
    out = collections.OrderedDict()
    for name, _, prefix, *_ in convs():
        p = params[name]
        out[f"{prefix}.conv.weight"] = np.transpose(p["kernel"], (3, 2, 0, 1)).astype(np.float32)  # OIHW
        out[f"{prefix}.bn.weight"] = p["gamma"].astype(np.float32)
        out[f"{prefix}.bn.bias"] = p["beta"].astype(np.float32)
        out[f"{prefix}.bn.running_mean"] = p["mean"].astype(np.float32)
        out[f"{prefix}.bn.running_var"] = p["var"].astype(np.float32)
        out[f"{prefix}.bn.num_batches_tracked"] = np.array(1000, np.int64)
    if aux:
        out["aux1.conv.conv.weight"] = np.zeros((128, 512, 1, 1), np.float32)
        out["aux2.fc2.bias"] = np.zeros(1000, np.float32)
    out["fc.weight"] = params["logits"]["kernel"][0, 0, :, 1:].T.astype(np.float32)
    out["fc.bias"] = params["logits"]["bias"][1:].astype(np.float32)
    return out


_STORAGES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage",
             np.dtype(np.float64): "DoubleStorage"}


def write_torch_zip(path, state_dict, archive="archive"):
    """torch.save's zip layout (data.pkl with persistent storage ids, data/<key>, byteorder, version), written
    without torch: the pickle names torch's globals through stand-in modules while it is written."""
    fake_utils = types.ModuleType("torch._utils")
    fake_torch = types.ModuleType("torch")
    fake_torch._utils = fake_utils

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_types = {}
    for name in set(_STORAGES.values()):
        storage_types[name] = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(fake_torch, name, storage_types[name])

    class Tensor:
        def __init__(self, key, array):
            self.key, self.array = key, array

        def __reduce__(self):
            storage = ("storage", storage_types[_STORAGES[self.array.dtype]], self.key, "cpu", self.array.size)
            stride = tuple(s // self.array.itemsize for s in self.array.strides)
            return _rebuild_tensor_v2, (_Persistent(storage), 0, self.array.shape, stride, False,
                                        collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return obj.pid if isinstance(obj, _Persistent) else None

    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        tensors = collections.OrderedDict(
            (k, Tensor(str(i), np.array(v, order="C"))) for i, (k, v) in enumerate(state_dict.items()))
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(tensors)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{archive}/data.pkl", buf.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        for t in tensors.values():
            z.writestr(f"{archive}/data/{t.key}", t.array.astype(t.array.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{archive}/version", "3\n")
    return path


class _Persistent:
    def __init__(self, pid):
        self.pid = pid


def write_slim_checkpoint(prefix, arrays, v1=True):
    """A name-based TF checkpoint (SaveV1: the single-file format of the 2016 slim release; or SaveV2)."""
    import tensorflow as tf

    names = sorted(arrays)
    if v1:
        tf.raw_ops.Save(filename=str(prefix), tensor_names=names, data=[arrays[n] for n in names])
    else:
        tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                          tensors=[arrays[n] for n in names])
    return prefix
