"""keras-hub models (ViT, DeiT, DINOv2, CLIP / SigLIP vision, ...): presets and the optional dependency.

A preset is how keras-hub users get weights: `hf://google/...`, `kaggle://keras/...`, a preset name
(`keras_hub:vit_base_patch16_224_imagenet`), or a preset folder written by `save_to_preset` (config.json,
metadata.json, model.weights.h5; task.json for a whole task such as an ImageClassifier). keras-hub is an extra:
`pip install "lucidtl[transformers]"`."""
import json
import os

from lucidtl.errors import InvalidArgumentError, WeightsError, one_line
from lucidtl.models.info import RANDOM_SOURCE, ModelInfo

EXTRA = 'keras-hub is not installed; install the transformers extra: pip install "lucidtl[transformers]"'
PREFIX = "keras_hub:"  # a preset name from keras-hub's list
SCHEMES = ("hf://", "kaggle://", "modelscope://")
PRESET_FILES = ("config.json", "metadata.json")


def require():
    """The keras_hub module, or the one-line InvalidArgumentError naming the extra to install."""
    try:
        import keras_hub
    except ImportError:
        raise InvalidArgumentError(EXTRA) from None
    return keras_hub


def is_preset_folder(name):
    return os.path.isdir(name) and all(os.path.isfile(os.path.join(name, f)) for f in PRESET_FILES)


def is_preset(name):
    """Whether `name` names a keras-hub preset (a preset folder, hf:// or kaggle:// handle, keras_hub:NAME)."""
    name = os.fspath(name)
    return name.startswith(PREFIX) or name.startswith(SCHEMES) or is_preset_folder(name)


def _handle(name):
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def input_range(preset_folder):
    """(lo, hi, note): the range [0, 255] pixels reach after the preset's image converter (a scalar scale and
    offset), else (0, 1) with a note that it is assumed."""
    path = os.path.join(preset_folder, "preprocessor.json") if preset_folder else None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)["config"]["image_converter"]["config"]
        scale, offset = config.get("scale"), config.get("offset")
        scale = 1.0 if scale is None else scale
        offset = 0.0 if offset is None else offset
        if isinstance(scale, (int, float)) and isinstance(offset, (int, float)):
            lo, hi = sorted((float(offset), float(255 * scale + offset)))
            return (lo, hi), ""
        note = "the preset's image converter normalises per channel"
    except (OSError, TypeError, KeyError, ValueError):
        note = "the preset has no image converter with a scalar scale"
    return (0.0, 1.0), f"input range (0, 1) assumed ({note}); pass --input-range LO,HI if it expects another"


def build(name, weights=None):
    """(model, ModelInfo) of a keras-hub preset: the whole task where the preset holds one (task.json, e.g. an
    ImageClassifier with its head), else the backbone. weights: None (the preset's), "random" (its config
    with fresh initialisers) or a weights file for the same architecture (the caller loads it)."""
    keras_hub = require()
    name = os.fspath(name)
    handle = _handle(name)
    local = handle if is_preset_folder(handle) else None
    task = local is not None and os.path.isfile(os.path.join(local, "task.json"))
    load = weights != "random"
    try:
        if task:
            net = _task_class(keras_hub, local).from_preset(handle, load_weights=load)
        else:
            net = keras_hub.models.Backbone.from_preset(handle, load_weights=load)
    except Exception as e:  # noqa: BLE001 - network, missing preset, wrong files: one line each
        if local is None:
            raise WeightsError(
                f"cannot load keras-hub preset {handle!r} ({one_line(e, 160)}); where it cannot be downloaded, "
                "save it on a machine with network (keras_hub.models.Backbone.from_preset(PRESET)"
                ".save_to_preset(FOLDER)) and pass --model FOLDER") from None
        raise WeightsError(f"cannot load keras-hub preset folder {handle} ({one_line(e, 200)}); write it with "
                           "save_to_preset") from None
    rng, note = input_range(local)
    source = RANDOM_SOURCE if not load else f"keras-hub preset {handle}"
    return net, ModelInfo(name, source, rng, not load, note)


def _task_class(keras_hub, folder):
    """The task class a preset folder's task.json names (registered by importing keras_hub)."""
    import keras

    with open(os.path.join(folder, "task.json"), encoding="utf-8") as f:
        config = json.load(f)
    cls = keras.saving.get_registered_object(config.get("registered_name") or "")
    return cls if cls is not None else keras_hub.models.ImageClassifier
