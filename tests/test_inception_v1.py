"""BN-InceptionV1 against the numbers of the spec (/work/shared/spec/inception_v1.md)."""
import keras
import numpy as np
import pytest

from lucidtl.errors import InvalidArgumentError, UnknownLayerError
from lucidtl.models.inception_v1 import CONV_LAYERS, MIXED_LAYERS, checkpoint_scope, inception_v1

# the spec's table: block, (c0, c1, c2, c3, c4, c5), output channels
SPEC_BLOCKS = [
    ("Mixed_3b", (64, 96, 128, 16, 32, 32), 256),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64), 480),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64), 512),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64), 512),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64), 512),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64), 528),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128), 832),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128), 832),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128), 1024),
]
SPEC_STEM = [("Conv2d_1a_7x7", 7, 3, 64), ("Conv2d_2b_1x1", 1, 64, 64), ("Conv2d_2c_3x3", 3, 64, 192)]


def spec_convs(in_channels=3):
    """(paper name, kernel, in, out) of the 57 convs, derived from the spec table."""
    convs = [(n, k, in_channels if i == 0 else cin, cout) for i, (n, k, cin, cout) in enumerate(SPEC_STEM)]
    cin = 192
    for block, c, total in SPEC_BLOCKS:
        assert sum(c[i] for i in (0, 2, 4, 5)) == total
        convs += [(f"{block}_Branch_0_a_1x1", 1, cin, c[0]), (f"{block}_Branch_1_a_1x1", 1, cin, c[1]),
                  (f"{block}_Branch_1_b_3x3", 3, c[1], c[2]), (f"{block}_Branch_2_a_1x1", 1, cin, c[3]),
                  (f"{block}_Branch_2_b_3x3", 3, c[3], c[4]), (f"{block}_Branch_3_b_1x1", 1, cin, c[5])]
        cin = total
    return convs


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(0)
    return inception_v1()


def test_spec_table_itself():
    convs = spec_convs()
    assert len(convs) == 57
    assert sum(c[3] for c in convs) == 7280


def test_57_convs_named_as_the_paper(net):
    convs = [layer for layer in net.layers if isinstance(layer, keras.layers.Conv2D)]
    expected = spec_convs()
    assert CONV_LAYERS == [c[0] for c in expected]
    assert sorted(layer.name for layer in convs) == sorted(f"{c[0]}_conv" for c in expected)
    assert sum(layer.filters for layer in convs) == 7280
    for name, k, cin, cout in expected:
        layer = net.get_layer(f"{name}_conv")
        assert tuple(layer.kernel.shape) == (k, k, cin, cout), name
        assert layer.strides == ((2, 2) if name == "Conv2d_1a_7x7" else (1, 1)), name
        assert layer.padding == "same" and not layer.use_bias and layer.bias is None, name


def test_block_channels(net):
    assert MIXED_LAYERS == [b[0] for b in SPEC_BLOCKS]
    for block, _, total in SPEC_BLOCKS:
        layer = net.get_layer(block)
        assert isinstance(layer, keras.layers.Concatenate)
        assert layer.output.shape[-1] == total, block
        # channel order Branch_0..3
        parts = [t._keras_history.operation.name for t in layer.input]
        assert parts == [f"{block}_{b}" for b in ("Branch_0_a_1x1", "Branch_1_b_3x3", "Branch_2_b_3x3",
                                                    "Branch_3_b_1x1")]
    assert net.get_layer("Mixed_5c").output.shape[-1] == 1024


def test_batchnorm_and_relu_layers(net):
    for name in CONV_LAYERS:
        bn = net.get_layer(f"{name}_pre_relu")
        assert isinstance(bn, keras.layers.BatchNormalization)
        assert bn.center and not bn.scale and bn.gamma is None
        assert bn.epsilon == pytest.approx(1e-3) and bn.momentum == pytest.approx(0.9997)
        relu = net.get_layer(name)
        assert type(relu) is keras.layers.ReLU and relu.max_value is None
        assert relu.negative_slope == 0 and relu.threshold == 0
        assert net.get_layer(f"{name}_conv").output is bn.input


def test_pool_and_input_names(net):
    assert net.layers[0].name == "images"
    assert net.layers[1].name == "input_scaling"
    for name, size, stride in [("MaxPool_2a_3x3", 3, 2), ("MaxPool_3a_3x3", 3, 2), ("MaxPool_4a_3x3", 3, 2),
                               ("MaxPool_5a_2x2", 2, 2)] + [(f"{b}_Branch_3_a_max", 3, 1) for b in MIXED_LAYERS]:
        pool = net.get_layer(name)
        assert isinstance(pool, keras.layers.MaxPooling2D)
        assert pool.pool_size == (size, size) and pool.strides == (stride, stride) and pool.padding == "same"


def test_relu_of_pre_relu_is_the_layer(net):
    names = ["Conv2d_1a_7x7", "Mixed_4c_Branch_2_b_3x3", "Mixed_5c_Branch_3_b_1x1"]
    outs = [net.get_layer(f"{n}{s}").output for n in names for s in ("_pre_relu", "")]
    probe = keras.Model(net.input, outs)
    x = np.random.default_rng(0).random((2, 40, 48, 3), dtype=np.float32)
    values = [np.asarray(v) for v in probe(x)]
    for i, name in enumerate(names):
        pre, post = values[2 * i], values[2 * i + 1]
        assert (pre < 0).any(), name
        np.testing.assert_allclose(np.maximum(pre, 0), post, rtol=0, atol=1e-6, err_msg=name)


def test_input_scaling(net):
    probe = keras.Model(net.input, net.get_layer("input_scaling").output)
    x = np.zeros((1, 2, 3, 3), np.float32)
    x[0, 1] = 1.0
    x[0, 0, 1] = 0.5
    y = np.asarray(probe(x))
    np.testing.assert_allclose(y[0, 0, 0], -1.0)
    np.testing.assert_allclose(y[0, 0, 1], 0.0)
    np.testing.assert_allclose(y[0, 1], 1.0)


def test_any_input_size_and_strides(net):
    names = ["Conv2d_1a_7x7", "MaxPool_2a_3x3", "Conv2d_2c_3x3", "Mixed_3c", "Mixed_4f", "Mixed_5c"]
    probe = keras.Model(net.input, [net.get_layer(n).output for n in names])
    sizes = [o.shape[1:3] for o in probe(np.zeros((1, 224, 224, 3), np.float32))]
    assert [tuple(s) for s in sizes] == [(112, 112), (56, 56), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert tuple(net(np.zeros((1, 64, 80, 3), np.float32)).shape) == (1, 2, 3, 1024)  # SAME: ceil at each /2


def test_parameter_count(net):
    convs = spec_convs()
    weights = sum(k * k * cin * cout for _, k, cin, cout in convs)
    bn = sum(3 * cout for *_, cout in convs)  # beta, moving mean, moving variance
    # torchvision googlenet has 6,624,904 parameters = conv weights + BN gamma, beta (2 x 7,280) + fc 1024x1000+1000
    assert weights == 6_624_904 - 2 * 7280 - (1024 * 1000 + 1000)
    assert net.count_params() == weights + bn
    assert sum(int(np.prod(v.shape)) for v in net.trainable_weights) == weights + 7280


def test_grayscale_input():
    gray = inception_v1(input_shape=(None, None, 1))
    assert tuple(gray.get_layer("Conv2d_1a_7x7_conv").kernel.shape) == (7, 7, 1, 64)
    assert tuple(gray(np.zeros((1, 32, 32, 1), np.float32)).shape) == (1, 1, 1, 1024)


def test_classifier_head_slim_224():
    top = inception_v1(include_top=True)
    pool = top.get_layer("AvgPool_0a_7x7")
    assert pool.pool_size == (7, 7) and pool.strides == (1, 1) and pool.padding == "valid"
    assert top.get_layer("Dropout_0b").rate == pytest.approx(0.2)
    logits = top.get_layer("Logits_Conv2d_0c_1x1")
    assert logits.use_bias and tuple(logits.kernel.shape) == (1, 1, 1024, 1001)
    assert logits.activation.__name__ == "linear"
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.input is logits.output
                   for layer in top.layers)
    assert top.layers[-1].name == "Logits"
    y = top(np.random.default_rng(1).random((2, 224, 224, 3), dtype=np.float32))
    assert tuple(y.shape) == (2, 1001)
    weights = sum(k * k * cin * cout for _, k, cin, cout in spec_convs())
    assert top.count_params() == weights + 3 * 7280 + 1024 * 1001 + 1001


def test_classifier_head_global_any_size():
    top = inception_v1(include_top=True, pooling="global")
    assert tuple(top(np.zeros((2, 96, 96, 3), np.float32)).shape) == (2, 1001)


def test_bad_arguments():
    with pytest.raises(InvalidArgumentError, match="pooling"):
        inception_v1(include_top=True, pooling="max")
    with pytest.raises(InvalidArgumentError, match="classes"):
        inception_v1(include_top=True, classes=0)
    with pytest.raises(InvalidArgumentError, match="input_shape"):
        inception_v1(input_shape=(None, None))


def test_slim_pooling_needs_224_when_the_size_is_known():
    with pytest.raises(InvalidArgumentError, match="pooling='global'"):
        inception_v1(include_top=True, input_shape=(128, 128, 3))


def test_checkpoint_scope():
    assert checkpoint_scope("Conv2d_1a_7x7") == "InceptionV1/Conv2d_1a_7x7"
    assert checkpoint_scope("Conv2d_2b_1x1") == "InceptionV1/Conv2d_2b_1x1"
    assert checkpoint_scope("Conv2d_2c_3x3") == "InceptionV1/Conv2d_2c_3x3"
    assert checkpoint_scope("Mixed_4c_Branch_2_b_3x3") == "InceptionV1/Mixed_4c/Branch_2/Conv2d_0b_3x3"
    assert checkpoint_scope("Mixed_3b_Branch_0_a_1x1") == "InceptionV1/Mixed_3b/Branch_0/Conv2d_0a_1x1"
    assert checkpoint_scope("Mixed_4f_Branch_1_a_1x1") == "InceptionV1/Mixed_4f/Branch_1/Conv2d_0a_1x1"
    assert checkpoint_scope("Mixed_5c_Branch_1_b_3x3") == "InceptionV1/Mixed_5c/Branch_1/Conv2d_0b_3x3"
    assert checkpoint_scope("Mixed_4c_Branch_3_b_1x1") == "InceptionV1/Mixed_4c/Branch_3/Conv2d_0b_1x1"
    assert checkpoint_scope("Mixed_5c_Branch_2_b_3x3") == "InceptionV1/Mixed_5c/Branch_2/Conv2d_0b_3x3"
    # the slim quirk: Mixed_5b's Branch_2 3x3 is Conv2d_0a_3x3
    assert checkpoint_scope("Mixed_5b_Branch_2_b_3x3") == "InceptionV1/Mixed_5b/Branch_2/Conv2d_0a_3x3"
    assert checkpoint_scope("Mixed_5b_Branch_2_a_1x1") == "InceptionV1/Mixed_5b/Branch_2/Conv2d_0a_1x1"
    assert checkpoint_scope("Logits_Conv2d_0c_1x1") == "InceptionV1/Logits/Conv2d_0c_1x1"
    scopes = [checkpoint_scope(n) for n in CONV_LAYERS]
    assert len(set(scopes)) == 57
    assert sum(s.endswith("Conv2d_0a_3x3") for s in scopes) == 1


def test_checkpoint_scope_unknown_name():
    with pytest.raises(UnknownLayerError, match="closest: Mixed_4c_Branch_2_b_3x3"):
        checkpoint_scope("Mixed_4c_Branch_2_b_5x5")


def test_imagenet_input_scaling():
    from lucidtl.models.inception_v1 import input_scaling_of

    net = inception_v1(input_scaling="imagenet")
    scaling = keras.Model(net.input, net.get_layer("input_scaling").output)
    x = np.random.default_rng(0).uniform(0, 1, (1, 4, 4, 3)).astype("float32")
    want = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])  # torchvision's Normalize
    np.testing.assert_allclose(scaling(x), want, atol=1e-5)
    assert input_scaling_of(net) == "imagenet" and input_scaling_of(inception_v1()) == "slim"
    with pytest.raises(InvalidArgumentError, match="unknown input_scaling 'torch'"):
        inception_v1(input_scaling="torch")
