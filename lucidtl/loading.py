"""What a render needs before its first step, shared by the render, atlas, export and stylegan commands: the
model it names (a registry name, a file, a builder, or a training run at a checkpoint) and the check that a
layer runs at the chosen image size."""
import os

from lucidtl import cli
from lucidtl.errors import InvalidArgumentError, UnknownLayerError, WeightsError
from lucidtl.run import MANIFEST, load_run

PARAMS = ("fft", "pixel", "laplacian", "cppn", "maco")  # the --param choices
TRANSFORMS = ("standard", "distill", "none", "patch")  # the named transform sets
MIN_SIZE = 16
MAX_SIZE = 4096  # a 4096 px image of 3 float32 channels is 200 MB per batch item already


def _transformed_min_size(size, transforms, patch=16):
    """Smallest image the model can see after the named transform set."""
    if transforms == "standard":  # pad 12, jitter 8, scale 0.9 (truncated), jitter 4
        return int(0.9 * (size + 16)) - 4
    if transforms == "patch":  # pad p, jitter p, scale 0.8 (truncated), jitter p // 2
        return int(0.8 * (size + patch)) - max(1, patch // 2)
    return size


def check_size(model, layer, size, transforms, input_range):
    """The layer can run on what the renderer feeds it: the transformed image, resized to the model's fixed
    input size where it has one (as Renderer does)."""
    import tensorflow as tf

    from lucidtl.optvis import features

    from lucidtl.optvis.taps import patch_size

    probe = _transformed_min_size(size, transforms, patch_size(model) or 16)
    fixed = features.fixed_input_size(model)
    channels = model.inputs[0].shape[-1] or 3
    fm = features.feature_model(model, [layer])

    def runs(hw):
        try:
            out = fm(tf.zeros([1, *hw, channels]), training=False)
            return min(out.shape[1:-1], default=1) > 0, None
        except (tf.errors.OpError, ValueError) as e:
            return False, e

    seen = f"after the {transforms} transforms the model sees {probe}px" if probe != size else "the model sees it as is"
    if fixed is not None:  # every image is resized to the fixed size: that is the only size to check
        ok, error = runs(fixed)
        if not ok:
            reason = f": {' '.join(str(error).split())[:200]}" if error is not None else " (no spatial extent)"
            raise InvalidArgumentError(f"model cannot run layer {layer!r} at its fixed input size "
                                       f"{fixed[0]}x{fixed[1]} (--size {size} is resized to it){reason}") from None
        return
    ok, error = runs((probe, probe))
    if not ok and error is not None and (probe >= 512 or not runs((max(2 * probe, 320),) * 2)[0]):
        # a larger image fails too: the input is not too small, the model cannot run it
        raise InvalidArgumentError(f"model cannot run layer {layer!r} with --size {size} ({seen}): "
                                   f"{' '.join(str(error).split())[:200]}") from None
    if not ok:
        raise InvalidArgumentError(
            f"--size {size} is too small: {seen}, which gives layer {layer!r} no spatial extent; use a larger --size"
        )


def load_model(model, weights, include_top=False, run=None, checkpoint=None, layer=None, custom_objects=None,
               input_range=None):
    """build_model, except that weights=None on a registry model means "ImageNet if available, else random",
    said plainly when random. Random weights are seeded (0): the same random network on every run.
    run (+ checkpoint, default the last): a training run's model at that saved iteration, head included.
    layer: checked before any weights are looked for; a model lucidtl builds (registry, keras.applications)
    keeps its classifier top when the layer is one only the top has (e.g. predictions).
    input_range: (lo, hi) the model expects, instead of what lucidtl knows or assumes."""
    from lucidtl.models.weights import is_builder, with_input_range
    from lucidtl.optvis import features

    if run is not None:
        net, info = load_run(run, checkpoint, model, weights)
        if layer is not None:
            features.endpoint(net, layer)
    else:
        if checkpoint is not None:
            raise InvalidArgumentError("--checkpoint needs --run, the run folder it belongs to")
        check = None if layer is None else (lambda net: features.endpoint(net, layer))
        try:
            net, info = _load(model, weights, include_top, check, custom_objects)
        except UnknownLayerError as e:
            if layer is None or include_top or not is_builder(model):
                raise
            try:  # one rule: a layer only the classifier top has -> the model with its top
                net, info = _load(model, weights, True, check, custom_objects)
            except UnknownLayerError:
                raise e from None
    return net, (info if input_range is None else with_input_range(info, model, input_range))


def _load(model, weights, include_top, check, custom_objects):
    import keras

    from lucidtl import models

    note = ""
    if weights is None and str(model) in models.MODELS:
        try:
            with cli.held_output():  # offline, the note below is the only line
                return models.build_model(model, weights="imagenet", include_top=include_top, before_weights=check)
        except WeightsError as e:
            weights, note = "random", f"no ImageNet weights ({e}); "
    keras.utils.set_random_seed(0)
    try:
        net, info = models.build_model(model, weights=weights, include_top=include_top, before_weights=check,
                                       custom_objects=custom_objects)
    except WeightsError as e:
        folder = os.path.dirname(os.fspath(weights or "")) or "."
        if weights is not None and os.path.isfile(os.path.join(folder, MANIFEST)):
            raise WeightsError(f"{weights} is a checkpoint of the training run {folder}: use --run {folder} "
                               f"--checkpoint N, which rebuilds the run's architecture, head included ({e})") from None
        raise
    if info.random_weights:
        print(f"note: {note}using RANDOM weights")
    return net, info
