"""The one way to resolve a model and its weights: `build_model(model, weights)`.

model:   a registry name (MODELS), a `.keras` or legacy full-model `.h5` / `.hdf5` file (h5.py), a SavedModel
         folder (saved_model.py), a dotted import path of a builder (e.g. `keras.applications.InceptionV3`), or a
         Lucid zoo graph: `lucid:InceptionV1`, a frozen GraphDef `.pb` or a Lucid manifest `.json` (see lucid_zoo.py).
weights: None (the model's default: random for builders, the saved weights of a model file), "random",
         "imagenet" (through the manifest models/<name>.json), a `.weights.h5`, `.keras` or Keras 2 `.h5` file,
         or for inception_v1 an official file: a TF-slim checkpoint (`.ckpt`, V2 prefix, folder, `.tar.gz`, `.tar`)
         or a torchvision googlenet state dict (`.pth`); see converters.py.
"""
import collections
import dataclasses
import importlib
import importlib.util
import inspect
import io
import json
import os
import urllib.parse
import warnings
import zipfile

import keras

from lucidtl.atomic import atomic_path
from lucidtl.errors import (InvalidArgumentError, UnknownModelError, WeightsError, did_you_mean, listed_by,
                            one_line)
from lucidtl.models import h5, lucid_zoo, saved_model
from lucidtl.models.converters import CONVERTERS
from lucidtl.models.h5 import H5_SUFFIXES
from lucidtl.models.inception_v1 import inception_v1
from lucidtl.models.info import RANDOM_SOURCE, ModelInfo  # noqa: F401 (re-exported)
from lucidtl.models.resources import MANIFEST_DIR, check_cached, keras_cache_dir  # noqa: F401 (re-exported)

MODELS = {"inception_v1": inception_v1}
INPUT_RANGES = {"inception_v1": (0.0, 1.0)}  # registry models: the range their input layer expects
MANIFEST_FIELDS = ("name", "url", "sha256", "format", "input_range", "converter", "archive_member", "notes")
SLIM_SUFFIXES = (".ckpt", ".index", ".tar.gz", ".tgz", ".tar")
TORCH_SUFFIXES = (".pth", ".pt")
KERAS_SUFFIXES = (".weights.h5", ".keras")
WEIGHT_FILE_SUFFIXES = KERAS_SUFFIXES + H5_SUFFIXES  # what load_weights reads
MODEL_FILE_SUFFIXES = (".keras",) + H5_SUFFIXES  # model files build_model loads (a .weights.h5 is refused)
WEIGHTS_HELP = ("pass 'random', 'imagenet', a .weights.h5, .keras or Keras .h5 file, a TF-slim checkpoint (.ckpt, "
                "prefix, folder, .tar.gz or .tar) or a torchvision googlenet state dict (.pth)")

# keras.applications builders: the input range their preprocess_input expects
_MINUS_ONE_ONE = ("InceptionV3", "InceptionResNetV2", "Xception", "MobileNet", "MobileNetV2", "NASNetMobile",
                  "NASNetLarge", "ResNet50V2", "ResNet101V2", "ResNet152V2")
_CAFFE = ("VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152")
_TORCH = ("DenseNet121", "DenseNet169", "DenseNet201")


# ---- weight files -------------------------------------------------------------------------------------

def array_shapes(path):
    """Shapes of the model arrays stored in a `.weights.h5` file, a `.keras` archive or a legacy `.h5` file
    (optimizer excluded)."""
    import h5py

    def collect(f):
        shapes = []

        def visit(key, obj):
            if isinstance(obj, h5py.Dataset) and key.split("/")[0] in ("layers", "vars"):
                shapes.append(tuple(obj.shape))

        f.visititems(visit)
        return shapes

    path = os.fspath(path)
    if h5.is_h5(path) and not path.endswith(".weights.h5") and h5.kind(path) != h5.WEIGHTS:
        return h5.legacy_array_shapes(path)  # a Keras 2 layout (its own one-line errors)
    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as z:
                data = io.BytesIO(z.read("model.weights.h5"))
            with h5py.File(data, "r") as f:
                return collect(f)
        with h5py.File(path, "r") as f:
            return collect(f)
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as e:
        raise WeightsError(f"cannot read weights file {path}: {one_line(e, 300)} "
                           "(is it a Keras 3 weights file?)") from e


def _check_weights_path(path):
    path = os.fspath(path)
    if not path.endswith(WEIGHT_FILE_SUFFIXES):
        raise WeightsError(f"cannot read weights file {path}: expected a .weights.h5 or .keras file (or a Keras "
                           "2 .h5 / .hdf5 file)")
    if not os.path.isfile(path):
        raise WeightsError(f"weights file {path} does not exist; check the path")
    return path


def load_weights(model, path):
    """Load a `.weights.h5` (or the weights of a `.keras` or legacy `.h5` file) into `model`, all or nothing: on
    any mismatch the model keeps its previous weights and a WeightsError names the file and the reason."""
    path = _check_weights_path(path)
    stored = array_shapes(path)
    wanted = [tuple(v.shape) for v in model.weights]
    if len(stored) != len(wanted):
        raise WeightsError(
            f"weights file {path} holds {len(stored)} arrays but model {model.name!r} has {len(wanted)} variables; "
            "it was saved from a different model (or include_top setting)"
        )
    extra = collections.Counter(stored) - collections.Counter(wanted)
    if extra:
        missing = collections.Counter(wanted) - collections.Counter(stored)
        raise WeightsError(
            f"weights file {path} does not match model {model.name!r}: it holds an array of shape "
            f"{next(iter(extra))} where the model expects {next(iter(missing))}"
        )
    snapshot = [v.numpy() for v in model.weights]
    try:
        model.load_weights(path)
    except Exception as e:
        for v, value in zip(model.weights, snapshot):
            v.assign(value)
        raise WeightsError(f"cannot load weights file {path} into model {model.name!r}: {one_line(e, 300)}") from e
    return model


def _atomic_save(save, path, suffix):
    path = os.fspath(path)
    if not path.endswith(suffix):
        raise InvalidArgumentError(f"cannot save to {path}: the file name must end in {suffix}")
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            # numpy 2 noise from TF variables inside Keras' writer
            warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
            save(tmp)
    except Exception as e:
        raise WeightsError(f"cannot write {path}: {one_line(e, 300)}") from e
    return path


def save_weights(model, path):
    """model.save_weights to `path` (`*.weights.h5`) via a temporary file and os.replace."""
    return _atomic_save(model.save_weights, path, ".weights.h5")


def save_model(model, path):
    """model.save to `path` (`*.keras`) via a temporary file and os.replace."""
    return _atomic_save(model.save, path, ".keras")


# ---- manifests and ImageNet weights --------------------------------------------------------------------

def manifest(name):
    """The manifest lucidtl/models/manifests/<name>.json as a dict (fields MANIFEST_FIELDS)."""
    path = os.path.join(MANIFEST_DIR, f"{name}.json")
    if not os.path.isfile(path):
        raise WeightsError(f"no ImageNet weights are known for {name!r}: there is no manifest {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read manifest {path}: {one_line(e, 300)}") from e
    missing = [k for k in MANIFEST_FIELDS if k not in data]
    if missing:
        raise WeightsError(f"manifest {path} lacks the field(s) {', '.join(missing)}")
    return data


def _imagenet(model, name):
    info = manifest(name)
    converter = CONVERTERS.get(info["converter"])
    if converter is None:
        raise WeightsError(f"manifest {name}.json names an unknown converter {info['converter']!r}; "
                           f"known: {', '.join(CONVERTERS)}")
    url = info["url"]
    fname = os.path.basename(urllib.parse.urlsplit(url).path)
    cache = keras_cache_dir()
    target = os.path.join(cache, "lucidtl", fname)
    check_cached(target, info["sha256"], url)  # get_file would delete a cached file with another sha256
    try:
        path = keras.utils.get_file(fname, origin=url, file_hash=info["sha256"], hash_algorithm="sha256",
                                    cache_subdir="lucidtl", cache_dir=cache)
    except ValueError as e:
        if "hash" not in str(e):
            raise WeightsError(f"cannot download {fname}: {one_line(e, 120)}") from e
        raise WeightsError(
            f"{fname} from {url} is corrupt or truncated: its sha256 is not the manifest's {info['sha256']}; "
            f"download it again (delete {target} if it is there)"
        ) from e
    except Exception as e:
        reason = str(e)
        reason = reason[reason.index("[Errno"):] if "[Errno" in reason else reason  # the cause, not the URL again
        raise WeightsError(
            f"cannot download {fname} ({one_line(reason, 120)}); download it from {url} and place it at {target}"
        ) from e
    converter(model, path)
    return f"imagenet ({url})"


# ---- models ---------------------------------------------------------------------------------------------

def check_input_range(value):
    """(lo, hi) floats with lo < hi from "0,255", (0, 255) or [0, 255]; else a one-line error."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        lo, hi = (float(v) for v in items)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"--input-range must be two numbers LO,HI (e.g. 0,255 or -1,1), got "
                                   f"{value!r}") from None
    if not lo < hi:
        raise InvalidArgumentError(f"--input-range {lo:g},{hi:g}: LO must be below HI (e.g. 0,255)")
    return lo, hi


def _import_builder(dotted):
    parts = dotted.replace(":", ".").split(".")
    error = None
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError as e:
            error = error or e
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError as e:
            raise UnknownModelError(f"cannot find model builder {dotted!r}: {one_line(e, 300)}") from e
        if not callable(obj):
            raise UnknownModelError(f"model builder {dotted!r} is not callable")
        return obj
    raise UnknownModelError(f"cannot import model builder {dotted!r}: {one_line(error, 300)}")


def _application_range(dotted):
    short = dotted.replace(":", ".").split(".")[-1]
    if short in _MINUS_ONE_ONE:
        return (-1.0, 1.0), ""
    if short in _CAFFE:
        return (0.0, 255.0), f"{short} also expects BGR, mean-subtracted input (keras 'caffe' preprocessing)"
    if short in _TORCH:
        return (0.0, 255.0), f"{short} also expects ImageNet mean/std normalisation (keras 'torch' preprocessing)"
    return (0.0, 255.0), f"input range (0, 255) assumed for {short}; check its preprocess_input"


def _call_builder(builder, dotted, include_top, weights, kw):
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        params = {}
    takes_all = any(p.kind == p.VAR_KEYWORD for p in params.values())
    defaults = {"weights": weights, "include_top": include_top, "input_shape": (None, None, 3)}
    args = {k: v for k, v in defaults.items() if k in params or takes_all}
    args.update(kw)

    def call(args):
        try:
            return builder(**args)
        except (ValueError, TypeError):
            raise
        except Exception as e:  # downloads fail with plain Exception in keras.utils.get_file
            if weights == "imagenet":
                raise WeightsError(f"cannot get ImageNet weights for {dotted}: {one_line(e, 300)}") from e
            raise

    try:
        net = call(args)
    except (ValueError, TypeError) as e:
        if "input_shape" not in args or "input_shape" in kw:
            raise InvalidArgumentError(f"cannot build {dotted}: {one_line(e, 300)}") from e
        args.pop("input_shape")  # e.g. a Flatten head needs the builder's default fixed size
        try:
            net = call(args)
        except (ValueError, TypeError) as e2:
            raise InvalidArgumentError(f"cannot build {dotted}: {one_line(e2, 300)}") from e2
    if not isinstance(net, keras.Model):
        raise InvalidArgumentError(f"{dotted} returned {type(net).__name__}, not a keras.Model")
    return net


def _is_slim_checkpoint(path):
    return (path.endswith(SLIM_SUFFIXES) or os.path.isfile(path + ".index")
            or (os.path.isdir(path) and any(f.endswith((".index", ".ckpt")) for f in os.listdir(path))))


def _apply_weights(net, weights, name):
    """Load `weights` (not None / "random" / "imagenet") into net by file type; returns the source string."""
    if not isinstance(weights, (str, os.PathLike)):
        raise WeightsError(f"cannot use weights {weights!r}; {WEIGHTS_HELP}")
    path = os.fspath(weights)
    if path.endswith(WEIGHT_FILE_SUFFIXES):
        load_weights(net, path)
    elif path.endswith(TORCH_SUFFIXES):
        CONVERTERS["torchvision_googlenet"](net, path)
    elif _is_slim_checkpoint(path):
        CONVERTERS["slim_checkpoint"](net, path)
    else:
        hint = "; check the path" if not os.path.exists(path) else ""
        raise WeightsError(f"unknown weights {path!r} for {name}{hint}; {WEIGHTS_HELP}")
    return path


def load_custom_objects(spec):
    """`module[:Name,...]` (--custom-objects) -> {name: object} for keras.models.load_model, after importing
    the module (a dotted name importable from here, or a .py file), so that its
    @keras.saving.register_keras_serializable classes register. Without names: every Keras layer, model,
    loss, metric, initializer, regularizer or constraint class the module defines. A dict is returned as is."""
    if spec is None or isinstance(spec, dict):
        return spec or None
    text = str(spec).strip()
    module_name, _, names = text.rpartition(":") if text.rpartition(":")[0] and not text.endswith(".py") else (
        text, "", "")
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise ImportError(f"no file {module_name}")
            loader_spec = importlib.util.spec_from_file_location(
                os.path.splitext(os.path.basename(module_name))[0], module_name)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - the module's own import error, in one line
        raise InvalidArgumentError(f"--custom-objects {text}: cannot import {module_name} ({one_line(e, 160)}); "
                                   "name a module importable from here (or a .py file)") from None
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if wanted:
        missing = [n for n in wanted if not hasattr(module, n)]
        if missing:
            raise InvalidArgumentError(f"--custom-objects {text}: {module_name} defines no "
                                       f"{missing[0]!r}{did_you_mean(missing[0], dir(module))}")
        return {n: getattr(module, n) for n in wanted}
    kinds = (keras.layers.Layer, keras.losses.Loss, keras.metrics.Metric, keras.initializers.Initializer,
             keras.regularizers.Regularizer, keras.constraints.Constraint)
    return {n: v for n, v in vars(module).items()
            if inspect.isclass(v) and issubclass(v, kinds) and v.__module__ == module.__name__} or None


def _missing_class(error):
    """(class, module) Keras could not locate while deserialising, or None."""
    import re

    text = str(error)
    found = (re.search(r"Could not locate (?:class|function) '([^']+)'", text)
             or re.search(r"Unknown [a-z ]+: '([^']+)'", text))  # the legacy .h5 loader's words
    if not found:
        return None
    module = re.search(r"'module': '([^']+)', 'class_name': '" + re.escape(found.group(1)) + "'", text)
    return found.group(1), module.group(1) if module else None


def _from_keras_file(path, weights, objects=None):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"model file {path} does not exist; check the path")
    if h5.is_h5(path) and h5.kind(path) != h5.MODEL:
        raise WeightsError(f"cannot use {path} as a model: it holds weights only (written by save_weights, no "
                           "model_config), not the architecture; pass it as --weights with the --model it was "
                           "saved from")
    objects = load_custom_objects(objects)
    try:
        net = keras.models.load_model(path, compile=False, custom_objects=objects)
    except Exception as e:
        missing = _missing_class(e)
        if missing:
            name, module = missing
            where = f" (defined in module {module})" if module and not module.startswith("keras") else ""
            raise WeightsError(
                f"cannot load model file {path}: it uses the custom class {name!r}{where}, which is not imported; "
                f"pass --custom-objects {module or 'MODULE'}:{name} (custom_objects= in Python), a module "
                "importable from here or a .py file") from None
        raise WeightsError(f"cannot load model file {path}: {one_line(e, 300)}") from e
    ours = "input_scaling" in [layer.name for layer in net.layers]
    rng = (0.0, 1.0)
    kind = ".keras" if path.endswith(".keras") else ".h5"
    note = "" if ours else (f"input range (0, 1) assumed for a {kind} file; pass --input-range LO,HI if it expects "
                            "another")
    if weights is None:
        return net, ModelInfo(path, path, rng, False, note)
    if weights == "random":
        with keras.saving.custom_object_scope(objects or {}):
            net = keras.models.clone_model(net)  # same graph, fresh initialisers
        return net, ModelInfo(path, RANDOM_SOURCE, rng, True, note)
    if weights == "imagenet":
        raise WeightsError(f"no ImageNet weights are known for model file {path}; pass a .weights.h5 file")
    return net, ModelInfo(path, _apply_weights(net, weights, path), rng, False, note)


def with_input_range(info, model, input_range):
    """info with the input range the user gave (--input-range), checked."""
    input_range = check_input_range(input_range)
    if lucid_zoo.is_graph_source(os.fspath(model)):
        raise InvalidArgumentError("a Lucid graph maps [0,1] images onto its image_value_range itself; drop "
                                   "--input-range (or give image_value_range in a Lucid manifest .json)")
    return dataclasses.replace(info, input_range=input_range, note=(
        f"input range {input_range} as given" if info.input_range != input_range else info.note))


def is_builder(model):
    """Whether `model` is built by lucidtl (a registry name or a dotted builder), so include_top applies."""
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else ""
    return name in MODELS or (bool(name) and not lucid_zoo.is_graph_source(name)
                              and not name.endswith(MODEL_FILE_SUFFIXES)
                              and not os.path.exists(name) and ("." in name.strip(".") or ":" in name))


def build_model(model="inception_v1", weights=None, include_top=False, custom_objects=None, input_range=None,
                before_weights=None, **kw):
    """(keras.Model, ModelInfo) for a registry name, a `.keras` / `.h5` file or a dotted builder path; see module
    doc.

    custom_objects: for a `.keras` or `.h5` file, `module[:Name,...]` or a dict (see load_custom_objects()).
    input_range: (lo, hi) the model expects, instead of what lucidtl knows or assumes (ModelInfo.input_range).
    before_weights: called with the built network before its weights are looked for (a registry model) or
    as soon as it exists (others): checks such as "the layer exists" fail before a download."""
    user_check = before_weights or (lambda net: None)
    flags = "" if model == "inception_v1" else f"--model {os.fspath(model)}" if isinstance(
        model, (str, os.PathLike)) else ""
    if custom_objects is not None and isinstance(custom_objects, str):
        flags += f" --custom-objects {custom_objects}"

    def check(net):  # an unknown layer's message names the command that lists this model's layers
        listed_by(net, flags.strip())
        user_check(net)

    def done(net, info):
        check(net)
        return net, info

    if input_range is not None:
        net, info = build_model(model, weights, include_top, custom_objects, before_weights=before_weights, **kw)
        return net, with_input_range(info, model, input_range)
    if not isinstance(model, (str, os.PathLike)):
        raise InvalidArgumentError(f"model must be a name, a .keras or .h5 file or a dotted builder path, got "
                                   f"{model!r}")
    name = os.fspath(model)
    if lucid_zoo.is_graph_source(name):  # lucid:NAME, a frozen graph .pb or a Lucid manifest .json
        return done(*lucid_zoo.build(name, weights, **kw))
    if saved_model.is_saved_model(name):  # a SavedModel folder: its ops and Keras layers by name
        return done(*saved_model.build(name, weights, **kw))
    if custom_objects is not None and not name.endswith(MODEL_FILE_SUFFIXES):
        raise InvalidArgumentError(f"--custom-objects applies to a .keras or .h5 model file, not {name}")
    if name.endswith(MODEL_FILE_SUFFIXES):
        if kw:
            raise InvalidArgumentError(f"builder arguments {sorted(kw)} do not apply to a saved model file {name}")
        return done(*_from_keras_file(name, weights, custom_objects))
    if name in MODELS:
        try:
            net = MODELS[name](include_top=include_top, **kw)
        except TypeError as e:
            raise InvalidArgumentError(f"cannot build {name}: {one_line(e, 300)}") from e
        input_range, note = INPUT_RANGES[name], ""
        check(net)  # before any download
        if weights is None or weights == "random":
            return net, ModelInfo(name, RANDOM_SOURCE, input_range, True, note)
        if weights == "imagenet":
            return net, ModelInfo(name, _imagenet(net, name), input_range, False, note)
        return net, ModelInfo(name, _apply_weights(net, weights, name), input_range, False, note)
    if os.sep in name or os.path.exists(name):
        raise UnknownModelError(f"cannot use model file {name!r}: pass a .keras or .h5 file, a SavedModel folder "
                                f"(with {saved_model.MARKER}), a Lucid graph .pb (or a registry name)")
    if "." not in name.strip(".") and ":" not in name:
        raise UnknownModelError(
            f"unknown model {name!r}{did_you_mean(name, MODELS)}; or pass a .keras or .h5 file or a dotted builder "
            "path such as keras.applications.InceptionV3"
        )
    builder = _import_builder(name)
    input_range, note = _application_range(name)
    if weights is None or weights == "random":
        return done(_call_builder(builder, name, include_top, None, kw),
                    ModelInfo(name, RANDOM_SOURCE, input_range, True, note))
    if weights == "imagenet":
        net = _call_builder(builder, name, include_top, "imagenet", kw)
        return done(net, ModelInfo(name, f"imagenet ({name})", input_range, False, note))
    net = done(_call_builder(builder, name, include_top, None, kw), None)[0]
    return net, ModelInfo(name, _apply_weights(net, weights, name), input_range, False, note)
