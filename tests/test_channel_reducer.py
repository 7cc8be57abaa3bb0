"""ChannelReducer against scikit-learn on the flattened matrix; groups matched (planted permutation),
projected (reconstruction error) and rendered through the direction objectives."""
import copy
import pickle

import numpy as np
import pytest
import sklearn.decomposition

from conftest import build_tiny_cnn
from lucidtl.analysis import groups
from lucidtl.errors import InvalidArgumentError
from lucidtl.misc.channel_reducer import ChannelReducer


def _acts(seed=0, shape=(3, 5, 4, 8), k=3):
    """Non-negative activations that are (nearly) a sum of k groups."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(size=shape[:-1] + (k,))
    h = rng.uniform(size=(k, shape[-1])) ** 3
    return (w @ h + 0.01 * rng.uniform(size=shape)).astype(np.float64)


def test_nmf_equals_sklearn_on_the_flattened_matrix():
    acts = _acts()
    red = ChannelReducer(3, "NMF", init="nndsvd", random_state=0, max_iter=400)
    spatial = red.fit_transform(acts)
    ref = sklearn.decomposition.NMF(3, init="nndsvd", random_state=0, max_iter=400)
    want = ref.fit_transform(acts.reshape(-1, 8))
    assert spatial.shape == (3, 5, 4, 3)
    np.testing.assert_allclose(spatial.reshape(-1, 3), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(red.components, ref.components_, rtol=1e-10, atol=1e-12)
    assert red.components.shape == (3, 8) and red.n_iter == ref.n_iter_
    np.testing.assert_allclose(red.transform(acts[:1]).reshape(-1, 3), ref.transform(acts[:1].reshape(-1, 8)),
                               rtol=1e-8, atol=1e-10)
    assert red(acts[:1]).shape == (1, 5, 4, 3)  # fitted: __call__ transforms
    assert isinstance(red.fit(acts), sklearn.decomposition.NMF)  # fit returns the estimator, as Lucid


def test_other_decompositions_and_the_errors():
    acts = _acts(1)
    pca = ChannelReducer(2, "PCA")
    np.testing.assert_allclose(np.abs(pca.fit_transform(acts).reshape(-1, 2)),
                               np.abs(sklearn.decomposition.PCA(2).fit_transform(acts.reshape(-1, 8))), rtol=1e-8)
    assert ChannelReducer(np.int64(2), sklearn.decomposition.FastICA, random_state=0).n_components == 2
    with pytest.raises(AttributeError):
        ChannelReducer(2).inverse  # an attribute the estimator lacks
    copy.deepcopy(pca)
    pickle.loads(pickle.dumps(pca))  # no endless __getattr__ recursion
    with pytest.raises(InvalidArgumentError, match="unknown reduction_alg 'NFM'; closest: NMF"):
        ChannelReducer(2, "NFM")
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        ChannelReducer(2.5)
    with pytest.raises(InvalidArgumentError, match="9 groups for a layer of 8 channels"):
        ChannelReducer(9).fit(acts)
    with pytest.raises(InvalidArgumentError, match="_pre_relu.*before its ReLU"):
        ChannelReducer(2).fit(acts - 0.5)


def test_matching_recovers_a_planted_permutation():
    rng = np.random.default_rng(3)
    reference = rng.uniform(size=(6, 20)) ** 4
    perm = np.array([3, 0, 5, 1, 4, 2])
    moved = reference[perm] * rng.uniform(0.5, 2, size=(6, 1)) + 0.02 * rng.uniform(size=(6, 20))
    order, cos = groups.match_groups(reference, moved)
    assert np.array_equal(perm[order], np.arange(6))  # moved[order[i]] is reference[i]
    assert np.all(cos > 0.9)
    # refit on the same data with the groups reordered: matched back
    acts = _acts(4, shape=(40, 8), k=3)
    a = groups.reducer(3)
    a.fit(acts)
    order, cos = groups.match_groups(a.components, a.components[[2, 0, 1]])
    assert list(order) == [1, 2, 0] and np.allclose(cos, 1)


def test_projection_error_grows_as_the_layer_leaves_the_basis():
    base = _acts(5, shape=(200, 8), k=3)
    red = groups.reducer(3)
    red.fit(base)
    err0, w0 = groups.relative_error(red, base)
    assert err0 < 0.05 and w0.shape == (3,)
    other = np.random.default_rng(6).uniform(size=(200, 8)) ** 3  # not in the span of the groups
    err1, _ = groups.relative_error(red, other)
    assert err1 > 3 * err0
    # the error is the definition: ||X - W H|| / ||X||
    w = red.transform(other)
    assert err1 == pytest.approx(np.linalg.norm(other - w @ red.components) / np.linalg.norm(other))


def test_sampled_rows_and_semantic_dictionary():
    acts = np.arange(2 * 3 * 3 * 4, dtype=np.float64).reshape(2, 3, 3, 4)
    rows = groups.sample_rows(acts, 2, np.random.default_rng(0))
    assert rows.shape == (4, 4)
    flat = acts.reshape(-1, 4).tolist()
    assert all(r in flat for r in rows.tolist())
    assert groups.sample_rows(acts, 0, None).shape == (18, 4)
    weights = np.zeros((2, 2, 2))
    weights[0, 0, 1], weights[1, 1, 0] = 2.0, 1.0
    icons = np.stack([np.zeros((3, 3, 3)), np.full((3, 3, 3), 0.2)])
    view = groups.semantic_dictionary(weights, icons)
    assert view.shape == (6, 6, 3)
    assert np.allclose(view[:3, :3], 0.2) and np.allclose(view[3:, 3:], 0.5) and np.allclose(view[:3, 3:], 1)


def test_groups_render_through_direction_objectives():
    from lucidtl.optvis import objectives
    from lucidtl.optvis.param import image
    from lucidtl.optvis.render import evaluate

    model = build_tiny_cnn()
    rng = np.random.default_rng(0)
    acts = rng.uniform(size=(50, 10)) ** 2
    red = groups.reducer(2)
    red.fit(acts)
    start = np.asarray(image(16, batch=2)())
    imgs = groups.render_groups(model, "mixed", red.components, size=16, steps=24, transforms="none")
    assert imgs.shape == (2, 16, 16, 3)
    for i in range(2):
        obj = objectives.direction("mixed", red.components[i], batch=i)
        assert evaluate(model, obj, imgs) > evaluate(model, obj, start)
