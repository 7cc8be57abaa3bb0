"""Keras' legacy HDF5 files (`.h5` / `.hdf5`, what Keras 2 wrote and Keras 3 still reads), told apart from
Keras 3's `.weights.h5`:

    model.save("m.h5")           a full model: the root's `model_config` attribute (JSON) + `model_weights/`
    model.save_weights("w.h5")   Keras 2 weights only: the root's `layer_names` attribute, one group a layer
    model.save_weights("w.weights.h5")  Keras 3 weights only: groups `layers/`, `vars/`, no attributes
"""
import os

from lucidtl.errors import WeightsError, one_line

H5_SUFFIXES = (".h5", ".hdf5")
MODEL, LEGACY_WEIGHTS, WEIGHTS = "model", "legacy weights", "weights"


def is_h5(path):
    """Whether the file name is an HDF5 one (`.h5`, `.hdf5`, `.weights.h5`)."""
    return os.fspath(path).endswith(H5_SUFFIXES)


def kind(path):
    """MODEL, LEGACY_WEIGHTS or WEIGHTS for an existing HDF5 file; a WeightsError when it is none of them."""
    import h5py

    path = os.fspath(path)
    try:
        with h5py.File(path, "r") as f:
            if "model_config" in f.attrs:
                return MODEL
            if "layer_names" in f.attrs:
                return LEGACY_WEIGHTS
            if "layers" in f or "vars" in f:
                return WEIGHTS
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read {path} as an HDF5 file ({one_line(e, 120)}); is it a Keras .h5 "
                           "file?") from None
    raise WeightsError(f"{path} is an HDF5 file but not a Keras one (no model_config, layer_names or layers); "
                       "pass a file written by Keras' model.save or save_weights")


def legacy_array_shapes(path):
    """Shapes of the model arrays of a legacy `.h5` (a full model's `model_weights/` or a weights-only
    file), layer by layer in the stored order (optimizer state excluded)."""
    import h5py

    path = os.fspath(path)
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            shapes = []
            for layer in group.attrs["layer_names"]:
                layer = layer.decode() if isinstance(layer, bytes) else layer
                for name in group[layer].attrs["weight_names"]:
                    name = name.decode() if isinstance(name, bytes) else name
                    shapes.append(tuple(group[layer][name].shape))
            return shapes
    except (OSError, KeyError, ValueError) as e:
        raise WeightsError(f"cannot read weights file {path}: {one_line(e, 300)} (is it a Keras .h5 file?)") from e
