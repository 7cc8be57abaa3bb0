"""Lucid's ChannelReducer (lucid.misc.channel_reducer): a scikit-learn decomposition over the channel axis.

    reducer = ChannelReducer(6, "NMF", random_state=0)
    spatial = reducer.fit_transform(acts)      # acts [..., C] -> [..., 6]: each position's group weights
    channel = reducer.components               # [6, C]: each group as a direction in channel space

The last axis holds the channels; any leading axes are flattened into rows ([prod(leading), C]) and the
array results are reshaped back (leading + (n_components,)). No normalisation. `reduction_alg` is a
class or the name of a `sklearn.decomposition` estimator (NMF, PCA, FastICA, MiniBatchDictionaryLearning,
...), built as alg(n_components=n, **kwargs). `reducer.X` reads the estimator's `X_` (components ->
components_). Deviations from Lucid 0.3.10 (README): numpy integers are accepted as n_components; an
attribute the estimator lacks raises AttributeError (Lucid returns None, which makes copy/pickle recurse
forever); NMF (non-negative methods) on negative values, and more components than channels, are one-line
errors naming the fix.
"""
import numbers

import numpy as np

from lucidtl.errors import InvalidArgumentError

NON_NEGATIVE = ("NMF", "MiniBatchNMF", "LatentDirichletAllocation")


def _algorithm(reduction_alg):
    import sklearn.decomposition
    from sklearn.base import BaseEstimator

    if isinstance(reduction_alg, str):
        found = getattr(sklearn.decomposition, reduction_alg, None)
        if not (isinstance(found, type) and issubclass(found, BaseEstimator)):
            from lucidtl.errors import did_you_mean

            names = [n for n in dir(sklearn.decomposition) if isinstance(getattr(sklearn.decomposition, n), type)
                     and issubclass(getattr(sklearn.decomposition, n), BaseEstimator)]
            raise InvalidArgumentError(f"unknown reduction_alg {reduction_alg!r}{did_you_mean(reduction_alg, names)}; "
                                       "name a sklearn.decomposition class (NMF, PCA, FastICA, ...)")
        return found
    if isinstance(reduction_alg, type):
        return reduction_alg
    raise InvalidArgumentError(f"reduction_alg must be a class or a sklearn.decomposition name, got {reduction_alg!r}")


class ChannelReducer:
    """Reduce the channel (last) axis of activations to n_components with a scikit-learn decomposition."""

    def __init__(self, n_components=3, reduction_alg="NMF", **kwargs):
        if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral) or n_components < 1:
            raise InvalidArgumentError(f"n_components must be a positive integer, got {n_components!r}")
        self.n_components = int(n_components)
        alg = _algorithm(reduction_alg)
        self._non_negative = alg.__name__ in NON_NEGATIVE
        self._reducer = alg(n_components=self.n_components, **kwargs)
        self._is_fit = False

    @staticmethod
    def _flat(acts):
        acts = np.asarray(acts)
        if acts.ndim < 1:
            raise InvalidArgumentError("activations need a channel axis ([..., C])")
        return acts.reshape((-1, acts.shape[-1])), acts.shape[:-1]

    def _check(self, flat):
        if flat.shape[0] == 0:
            raise InvalidArgumentError("no activations to factorise (no images?)")
        if self.n_components > flat.shape[1]:
            raise InvalidArgumentError(f"{self.n_components} groups for a layer of {flat.shape[1]} channels; "
                                       f"ask for at most {flat.shape[1]}")
        if self._non_negative and flat.min() < 0:
            raise InvalidArgumentError(
                f"{type(self._reducer).__name__} factorises non-negative activations, and these go down to "
                f"{float(flat.min()):.3g}: a `_pre_relu` endpoint (taken before its ReLU) or a layer without a "
                "ReLU; use the layer after the ReLU (Mixed_4c, not Mixed_4c_pre_relu) or reduction_alg='PCA'")

    def _apply(self, fn, acts):
        flat, lead = self._flat(acts)
        self._check(flat)
        out = fn(flat)
        return out.reshape(lead + (out.shape[-1],)) if isinstance(out, np.ndarray) else out

    def fit(self, acts):
        """Fit the decomposition; returns the scikit-learn estimator (as Lucid)."""
        self._is_fit = True
        return self._apply(self._reducer.fit, acts)

    def fit_transform(self, acts):
        self._is_fit = True
        return self._apply(self._reducer.fit_transform, acts)

    def transform(self, acts):
        return self._apply(self._reducer.transform, acts)

    def __call__(self, acts):
        return self.transform(acts) if self._is_fit else self.fit_transform(acts)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        reducer = self.__dict__.get("_reducer")
        if reducer is not None and hasattr(reducer, name + "_"):
            return getattr(reducer, name + "_")
        raise AttributeError(f"ChannelReducer ({type(reducer).__name__}) has no {name!r} (fitted: "
                             f"{self.__dict__.get('_is_fit')})")

    def __dir__(self):
        extra = [k[:-1] for k in vars(self._reducer) if k.endswith("_") and not k.startswith("_")]
        return sorted(set(object.__dir__(self)) | set(extra))
