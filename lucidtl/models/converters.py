"""Official ImageNet weight files -> lucidtl's Keras BN-InceptionV1, all or nothing.

- TF-slim checkpoints (`inception_v1.ckpt`: a V1 file, a V2 prefix, a folder, or the model zoo's `.tar.gz`),
  read with tf.train.load_checkpoint; names per `checkpoint_scope`.
- torchvision googlenet state dicts (`.pth`, read without torch by `torch_pickle`): OIHW kernels -> HWIO, BN
  gamma folded exactly into the scale-free BN, fc -> the 1x1 logits conv.

Every model variable must be filled from exactly one source array of the right shape; otherwise nothing is
assigned and a WeightsError lists the missing, unused and mis-shaped names. Training state (global_step,
optimiser slots, moving-average shadows, num_batches_tracked) is ignored by name, never silently.
"""
import dataclasses
import os
import re
import tarfile
import tempfile
import zlib

import numpy as np

from lucidtl.errors import WeightsError
from lucidtl.models import torch_pickle
from lucidtl.models.inception_v1 import (BN_EPSILON, CONV_LAYERS, IMAGENET_MEAN, IMAGENET_STD, LOGITS_CONV,
                                         MIXED_LAYERS, checkpoint_scope, input_scaling_of)

SLIM_TRAINING_STATE = re.compile(
    r"(^|/)(global_step|beta[12]_power)$|/(ExponentialMovingAverage|RMSProp(_1)?|Momentum|Adam(_1)?|Adagrad)$"
)
TORCH_TRAINING_STATE = re.compile(r"\.num_batches_tracked$")
TORCH_AUX = re.compile(r"^aux[12]\.")  # googlenet's auxiliary classifiers: training only
TORCH_STEM = {"conv1": "Conv2d_1a_7x7", "conv2": "Conv2d_2b_1x1", "conv3": "Conv2d_2c_3x3"}
TORCH_MIXED = dict(zip(["inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d",
                        "inception4e", "inception5a", "inception5b"], MIXED_LAYERS))
TORCH_BRANCHES = {"branch1": "Branch_0_a_1x1", "branch2.0": "Branch_1_a_1x1", "branch2.1": "Branch_1_b_3x3",
                  "branch3.0": "Branch_2_a_1x1", "branch3.1": "Branch_2_b_3x3", "branch4.1": "Branch_3_b_1x1"}
BACKGROUND_BIAS = -1e4  # torchvision has no background class: class 0 gets zero weights and this bias


@dataclasses.dataclass
class Conversion:
    """What a converter did: the source, how many arrays it assigned, and what it ignored (by name)."""
    source: str
    assigned: int
    ignored: list


def _short_list(names, n=4):
    names = list(names)
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _layer(model, name, path):
    try:
        return model.get_layer(name)
    except ValueError:
        raise WeightsError(
            f"model {model.name!r} has no layer {name!r}, so {path} cannot be loaded into it; these weights are "
            "for lucidtl's inception_v1 (build_model('inception_v1', weights=...))"
        ) from None


def _has_head(model):
    return LOGITS_CONV in [layer.name for layer in model.layers]


def _check_and_assign(model, path, targets, arrays, ignored):
    """targets: {source name: (variable, fn(array) -> value)}, variable None for an array that is required
    but consumed by other targets' fns (reported as ignored); arrays: {source name: array}."""
    missing = [n for n in targets if n not in arrays]
    unused = [n for n in arrays if n not in targets and n not in ignored]
    consumed = {n for n, (variable, _) in targets.items() if variable is None and n in arrays}
    values, misshaped = [], []
    for name, (variable, fn) in targets.items():
        if name in arrays and variable is not None:
            value = np.asarray(fn(arrays[name]), dtype=np.float32)
            if tuple(value.shape) != tuple(variable.shape):
                misshaped.append(f"{name} {list(np.shape(arrays[name]))} (model needs {list(variable.shape)})")
            values.append((variable, value))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_short_list(missing)}")
    if unused:
        problems.append(f"unused {len(unused)}: {_short_list(unused)}")
    if misshaped:
        problems.append(f"mis-shaped {len(misshaped)}: {_short_list(misshaped, 2)}")
    if problems:
        raise WeightsError(f"{path} does not fit model {model.name!r}: " + "; ".join(problems))
    for variable, value in values:
        variable.assign(value)
    return Conversion(str(path), len(values), sorted(set(ignored) | consumed))


# ---- TF-slim checkpoints -------------------------------------------------------------------------------

def _checkpoint_prefix(path):
    """The prefix tf.train.load_checkpoint wants, for a V1 file, a V2 prefix (or its .index) or a folder."""
    if os.path.isdir(path):
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        found = sorted({f[: -len(".index")] if f.endswith(".index") else f for f in os.listdir(path)
                        if f.endswith((".index", ".ckpt"))})
        if len(found) != 1:
            raise WeightsError(f"folder {path} holds {len(found) or 'no'} checkpoints; pass the checkpoint path")
        return os.path.join(path, found[0])
    if path.endswith(".index"):
        return path[: -len(".index")]
    if os.path.isfile(path) or os.path.isfile(path + ".index"):
        return path
    raise WeightsError(f"checkpoint {path} does not exist (neither a file nor a prefix with .index); check the path")


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class _Corrupt(Exception):
    pass


def _extract_checkpoint(archive, folder):
    """Extract the checkpoint files (regular files only, flattened) of a .tar(.gz) into a scratch folder."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and ".ckpt" in os.path.basename(m.name)]
            if not members:
                raise WeightsError(f"archive {archive} holds no .ckpt file; is it the TF-slim model zoo archive?")
            for m in members:
                with tar.extractfile(m) as src, open(os.path.join(folder, os.path.basename(m.name)), "wb") as dst:
                    dst.write(src.read())
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise _Corrupt(str(e) or type(e).__name__) from e
    except OSError as e:  # gzip raises BadGzipFile (an OSError) for a damaged stream
        if not os.access(archive, os.R_OK):
            raise WeightsError(f"cannot read archive {archive}: {e.strerror or e}") from e
        raise _Corrupt(str(e) or type(e).__name__) from e
    return folder


def _corrupt_archive(path, detail):
    """The one-line error for a damaged archive; a file in the Keras download cache is to be deleted."""
    from lucidtl.models.resources import keras_cache_dir

    cache = os.path.realpath(keras_cache_dir()) + os.sep
    fix = ("delete it (the next run downloads it again)" if os.path.realpath(path).startswith(cache)
           else "download it again")
    return WeightsError(f"archive {path} is corrupt or truncated ({' '.join(detail.split())[:120]}); {fix}")


def read_slim_checkpoint(path):
    """{variable name: np.ndarray} of a TF-slim checkpoint (V1/V2 file or prefix, folder, .tar.gz or .tar)."""
    path = os.fspath(path)
    if path.endswith(ARCHIVE_SUFFIXES):
        if not os.path.isfile(path):
            raise WeightsError(f"archive {path} does not exist; check the path")
        with tempfile.TemporaryDirectory(prefix="lucidtl-ckpt-") as folder:
            try:
                return _read_prefix(_checkpoint_prefix(_extract_checkpoint(path, folder)), path)
            except _Corrupt as e:
                raise _corrupt_archive(path, str(e)) from None
            except _Unreadable as e:  # the members extracted but are no checkpoint: damaged inside
                raise _corrupt_archive(path, str(e).replace(folder + os.sep, "")) from None
    prefix = _checkpoint_prefix(path)
    try:
        return _read_prefix(prefix, path)
    except _Unreadable as e:
        raise WeightsError(f"cannot read checkpoint {path}: {e} (is it a TF checkpoint?)") from None


class _Unreadable(Exception):
    pass


def _read_prefix(prefix, path):
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    except Exception as e:  # tf raises DataLossError / NotFoundError / ValueError for non-checkpoints
        raise _Unreadable(" ".join(str(e).split())[:200]) from e


def _slim_targets(model, path):
    targets = {}
    for conv in CONV_LAYERS:
        scope = checkpoint_scope(conv)
        targets[f"{scope}/weights"] = (_layer(model, f"{conv}_conv", path).kernel, np.asarray)
        bn = _layer(model, f"{conv}_pre_relu", path)
        for var in ("beta", "moving_mean", "moving_variance"):
            targets[f"{scope}/BatchNorm/{var}"] = (getattr(bn, var), np.asarray)
    if _has_head(model):
        scope = checkpoint_scope(LOGITS_CONV)
        logits = model.get_layer(LOGITS_CONV)
        targets[f"{scope}/weights"] = (logits.kernel, np.asarray)
        targets[f"{scope}/biases"] = (logits.bias, np.asarray)
    return targets


def load_slim_checkpoint(model, path):
    """Fill lucidtl's inception_v1 from a TF-slim checkpoint. A model without a head ignores the Logits
    variables (listed in the returned Conversion.ignored)."""
    path = os.fspath(path)
    arrays = read_slim_checkpoint(path)
    targets = _slim_targets(model, path)
    ignored = {n for n in arrays if SLIM_TRAINING_STATE.search(n)}
    if not _has_head(model):
        ignored |= {n for n in arrays if n.startswith(checkpoint_scope(LOGITS_CONV) + "/")}
    _check_scaling(model, "slim", path)
    return _check_and_assign(model, path, targets, arrays, ignored)


# ---- torchvision googlenet ------------------------------------------------------------------------------

def torchvision_name(paper_name):
    """torchvision googlenet's module path of a conv: `Mixed_4c_Branch_2_b_3x3` -> `inception4b.branch3.1`."""
    for torch_name, ours in TORCH_STEM.items():
        if ours == paper_name:
            return torch_name
    for torch_block, block in TORCH_MIXED.items():
        for torch_branch, branch in TORCH_BRANCHES.items():
            if paper_name == f"{block}_{branch}":
                return f"{torch_block}.{torch_branch}"
    raise WeightsError(f"{paper_name!r} is not a conv of InceptionV1")


def _fold_gamma(arrays, prefix):
    """kernel (HWIO), mean, var such that the scale-free BN computes torch's gamma * (y - mean) / sqrt(var + eps)
    + beta exactly: a negative gamma flips the output channel's sign, |gamma| rescales the variance."""
    kernel = np.transpose(arrays[f"{prefix}.conv.weight"].astype(np.float64), (2, 3, 1, 0))
    gamma = arrays[f"{prefix}.bn.weight"].astype(np.float64)
    mean = arrays[f"{prefix}.bn.running_mean"].astype(np.float64)
    var = arrays[f"{prefix}.bn.running_var"].astype(np.float64)
    if np.all(gamma == 1.0):
        return kernel, mean, var
    sign = np.where(gamma < 0, -1.0, 1.0)
    zero = gamma == 0
    kernel = np.where(zero, 0.0, kernel * sign)
    mean = np.where(zero, 0.0, mean * sign)
    var = np.where(zero, var, (var + BN_EPSILON) / np.where(zero, 1.0, gamma) ** 2 - BN_EPSILON)
    return kernel, mean, var


def _torch_targets(model, arrays, path):
    targets = {}
    for conv in CONV_LAYERS:
        prefix = torchvision_name(conv)
        kernel_var = _layer(model, f"{conv}_conv", path).kernel
        bn = _layer(model, f"{conv}_pre_relu", path)
        complete = all(f"{prefix}.{k}" in arrays for k in ("conv.weight", "bn.weight", "bn.running_mean",
                                                            "bn.running_var"))
        if complete:
            k, m, v = _fold_gamma(arrays, prefix)
            fns = (lambda a, k=k: k), (lambda a, m=m: m), (lambda a, v=v: v)
        else:  # reported as missing; shapes are still checked on what is there
            fns = (lambda a: np.transpose(a, (2, 3, 1, 0)) if np.ndim(a) == 4 else a), np.asarray, np.asarray
        targets[f"{prefix}.conv.weight"] = (kernel_var, fns[0])
        targets[f"{prefix}.bn.weight"] = (None, None)  # folded into the kernel, mean and variance
        targets[f"{prefix}.bn.bias"] = (bn.beta, np.asarray)
        targets[f"{prefix}.bn.running_mean"] = (bn.moving_mean, fns[1])
        targets[f"{prefix}.bn.running_var"] = (bn.moving_variance, fns[2])
    if _has_head(model):
        logits = model.get_layer(LOGITS_CONV)
        classes = logits.kernel.shape[-1]
        pad = 1 if classes == 1001 else 0  # lucidtl's slim-style head: class 0 = background

        def kernel(w):
            w = np.asarray(w, np.float64).T[None, None]
            return np.concatenate([np.zeros(w.shape[:3] + (pad,)), w], -1) if pad else w

        def bias(b):
            return np.concatenate([[BACKGROUND_BIAS] * pad, b]) if pad else b

        targets["fc.weight"] = (logits.kernel, kernel)
        targets["fc.bias"] = (logits.bias, bias)
    return targets


def load_torchvision_googlenet(model, path, transform_input=True):
    """Fill lucidtl's inception_v1 from a torchvision googlenet state dict (`.pth`, no torch needed).

    transform_input=True (torchvision's ImageNet weights): the network body takes [-1, 1] inputs, which is
    what lucidtl's default input scaling makes of [0, 1] images. transform_input=False (a googlenet trained on
    ImageNet-normalised inputs) needs a model built with input_scaling="imagenet"."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"state dict {path} does not exist; check the path")
    arrays = torch_pickle.read_state_dict(path)
    _check_scaling(model, "slim" if transform_input else "imagenet", path)
    targets = _torch_targets(model, arrays, path)
    ignored = {n for n in arrays if TORCH_TRAINING_STATE.search(n) or TORCH_AUX.match(n)}
    if not _has_head(model):
        ignored |= {n for n in arrays if n.startswith("fc.")}
    return _check_and_assign(model, path, targets, arrays, ignored)


def _check_scaling(model, wanted, path):
    have = input_scaling_of(model)
    if have is not None and have != wanted:
        fix = {"slim": "input_scaling='slim' (the default)", "imagenet": "input_scaling='imagenet'"}[wanted]
        raise WeightsError(
            f"{path} expects {'[-1, 1]' if wanted == 'slim' else 'ImageNet mean/std normalised'} inputs but model "
            f"{model.name!r} scales its inputs the {have} way; build it with {fix}"
        )


CONVERTERS = {"slim_checkpoint": load_slim_checkpoint, "torchvision_googlenet": load_torchvision_googlenet}
__all__ = ["BACKGROUND_BIAS", "CONVERTERS", "Conversion", "IMAGENET_MEAN", "IMAGENET_STD", "load_slim_checkpoint",
           "load_torchvision_googlenet", "read_slim_checkpoint", "torchvision_name"]
