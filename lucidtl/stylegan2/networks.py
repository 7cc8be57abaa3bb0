"""StyleGAN2 config-f generator in TF2: mapping network + skip-architecture synthesis network.

Variables are plain tf.Variables kept in `Generator.vars` under the official TF names ("G_mapping/Dense0/weight",
"G_synthesis/4x4/Conv/mod_weight", "G_synthesis/noise0", "dlatent_avg"), stored exactly as the pickles hold them;
the run-time scales (equalised learning rate, mapping lr multiplier) are applied in the forward pass.

Activations are NHWC inside (TF has no NCHW conv on CPU); the image comes out NCHW in about [-1, 1] like the
official network. Modulated convolution uses the non-fused form (scale the input by the style, one shared conv,
scale the output by the demodulation factor): mathematically the grouped form, but differentiable on CPU and for
any batch size.
"""
import collections
import dataclasses
import math

import numpy as np
import tensorflow as tf

from lucidtl.errors import InvalidArgumentError, WeightsError

SQRT2 = math.sqrt(2.0)
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)  # resample_kernel; K = outer(taps) / sum^2 * 4 (gain 1 x factor^2)
EPS = 1e-8


@dataclasses.dataclass(frozen=True)
class Config:
    """Generator hyper-parameters (names as in G_mapping / G_synthesis_stylegan2; defaults = config-f 1024)."""

    resolution: int = 1024
    latent_size: int = 512
    dlatent_size: int = 512
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lrmul: float = 0.01
    fmap_base: int = 16384
    fmap_decay: float = 1.0
    fmap_min: int = 1
    fmap_max: int = 512
    num_channels: int = 3
    conv_clamp: float | None = None  # stylegan2-ada only: clamp layer outputs to +-conv_clamp

    def __post_init__(self):
        r = self.resolution
        if not isinstance(r, (int, np.integer)) or r < 4 or r & (r - 1):
            raise InvalidArgumentError(f"resolution must be 4 * 2^k (4, 8, ..., 1024), got {r!r}")
        for name in ("latent_size", "dlatent_size", "mapping_layers", "mapping_fmaps", "fmap_base", "num_channels"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {v!r}")

    @property
    def log2(self):
        return int(self.resolution).bit_length() - 1

    @property
    def num_ws(self):
        """Number of w vectors the synthesis network reads (18 at 1024 px)."""
        return 2 * self.log2 - 2

    def nf(self, stage):
        return int(np.clip(int(self.fmap_base / (2.0 ** (stage * self.fmap_decay))), self.fmap_min, self.fmap_max))

    def channels(self, res):
        """Feature maps at resolution res (a power of two)."""
        return self.nf(int(res).bit_length() - 2)

    def noise_shapes(self):
        """Official noise constant shapes [1, 1, r, r], one per modulated 3x3 conv (num_ws - 1 of them)."""
        return [[1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2)] for i in range(self.num_ws - 1)]

    def variable_shapes(self):
        """{official name: shape}, in the pickles' order (Gs, then mapping, then synthesis)."""
        shapes = collections.OrderedDict(dlatent_avg=[self.dlatent_size])
        fan_in = self.latent_size
        for i in range(self.mapping_layers):
            out = self.dlatent_size if i == self.mapping_layers - 1 else self.mapping_fmaps
            shapes[f"G_mapping/Dense{i}/weight"] = [fan_in, out]
            shapes[f"G_mapping/Dense{i}/bias"] = [out]
            fan_in = out
        for i, shape in enumerate(self.noise_shapes()):
            shapes[f"G_synthesis/noise{i}"] = shape
        c = self.channels(4)
        shapes["G_synthesis/4x4/Const/const"] = [1, c, 4, 4]
        shapes.update(self._modconv_shapes("G_synthesis/4x4/Conv", 3, c, c, noise=True))
        shapes.update(self._modconv_shapes("G_synthesis/4x4/ToRGB", 1, c, self.num_channels, noise=False))
        for k in range(3, self.log2 + 1):
            res, c_in, c = 2 ** k, c, self.channels(2 ** k)
            shapes.update(self._modconv_shapes(f"G_synthesis/{res}x{res}/Conv0_up", 3, c_in, c, noise=True))
            shapes.update(self._modconv_shapes(f"G_synthesis/{res}x{res}/Conv1", 3, c, c, noise=True))
            shapes.update(self._modconv_shapes(f"G_synthesis/{res}x{res}/ToRGB", 1, c, self.num_channels, noise=False))
        return shapes

    def _modconv_shapes(self, prefix, kernel, c_in, c_out, noise):
        out = [(f"{prefix}/weight", [kernel, kernel, c_in, c_out]),
               (f"{prefix}/mod_weight", [self.dlatent_size, c_in]),
               (f"{prefix}/mod_bias", [c_in])]
        if noise:
            out.append((f"{prefix}/noise_strength", []))
        out.append((f"{prefix}/bias", [c_out]))
        return out


def _initial_value(name, shape, rng, config):
    """The official initialisers: N(0, 1/lrmul) mapping weights, N(0, 1) conv/style weights, const and noise;
    zeros for biases, noise strengths and dlatent_avg."""
    leaf = name.rsplit("/", 1)[-1]
    if name.startswith("G_mapping/") and leaf == "weight":
        return rng.standard_normal(shape) / config.mapping_lrmul
    if leaf in ("weight", "mod_weight", "const") or leaf.startswith("noise") and leaf != "noise_strength":
        return rng.standard_normal(shape)
    return np.zeros(shape)


# ---- resampling ---------------------------------------------------------------------------------------

def _fir(x, pad0, pad1):
    """Pad H and W by (pad0, pad1), then the separable [1,3,3,1] filter (sums to 4 in 2D), VALID, NHWC."""
    x = tf.pad(x, [[0, 0], [pad0, pad1], [pad0, pad1], [0, 0]])
    taps = np.asarray(FIR_TAPS, np.float32)
    taps = taps / taps.sum() * 2.0  # 1D gain 2 per axis -> 4 in 2D
    c = x.shape[-1]
    rows = tf.constant(np.tile(taps.reshape(4, 1, 1, 1), [1, 1, c, 1]))
    cols = tf.constant(np.tile(taps.reshape(1, 4, 1, 1), [1, 1, c, 1]))
    x = tf.nn.depthwise_conv2d(x, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, cols, [1, 1, 1, 1], "VALID")


def upsample(x):
    """upsample_2d with the FIR kernel: a zero after each pixel (2H), pad (2, 1), filter -> [N, 2H, 2W, C]."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    x = tf.reshape(x, [-1, h, 1, w, 1, c])
    x = tf.pad(x, [[0, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]])
    x = tf.reshape(x, [-1, 2 * h, 2 * w, c])
    return _fir(x, 2, 1)


def upsample_conv(x, weight):
    """upsample_conv_2d: stride-2 transposed conv with the flipped weight (-> 2H + k - 2), then FIR pad."""
    k, c_out = weight.shape[0], weight.shape[3]
    h, w = x.shape[1], x.shape[2]
    filters = tf.transpose(weight[::-1, ::-1], [0, 1, 3, 2])  # [k, k, out, in]
    shape = tf.stack([tf.shape(x)[0], 2 * (h - 1) + k, 2 * (w - 1) + k, c_out])
    x = tf.nn.conv2d_transpose(x, filters, shape, strides=2, padding="VALID")
    p = (len(FIR_TAPS) - 2) - (k - 1)
    return _fir(x, (p + 1) // 2 + 1, p // 2 + 1)


# ---- the generator ------------------------------------------------------------------------------------

class Generator(tf.Module):
    """StyleGAN2 config-f generator. `Generator(Config(resolution=8, fmap_base=64, ...))` builds a randomly
    initialised one (seeded); `lucidtl.stylegan2.load_generator(path)` one with official weights.

    Call: G(z, psi=1.0, cutoff=None, noise="random") -> NCHW images in about [-1, 1]. The parts:
    mapping(z) -> w [N, D]; broadcast/truncate -> ws [N, num_ws, D]; synthesis(ws, noise) -> images.
    noise: "random" (fresh N(0,1) maps each call; stateless when a seed [2] is given), "const" (the stored
    noise constants), or a list of num_ws - 1 tensors [N or 1, r, r, 1] (see `noise_maps`).
    """

    def __init__(self, config=None, seed=0, name="stylegan2"):
        super().__init__(name=name)
        self.config = config = config or Config()
        rng = np.random.default_rng(seed)
        self.vars = collections.OrderedDict()
        for key, shape in config.variable_shapes().items():
            value = _initial_value(key, shape, rng, config).astype(np.float32)
            self.vars[key] = tf.Variable(value, trainable=False, name=key.replace("/", "__"))
        self.w_avg_source = "none (zeros; call estimate_w_avg)"

    # -- weights --
    def assign(self, arrays, source="arrays"):
        """Set every variable from {official name: array}, all or nothing; a WeightsError names the first
        missing or mis-shaped variable; names the generator does not use are ignored."""
        missing = [k for k in self.vars if k not in arrays]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise WeightsError(f"{source} lacks the variable {missing[0]}{more} for a "
                               f"{self.config.resolution}px StyleGAN2 generator")
        for key, var in self.vars.items():
            shape = tuple(np.shape(arrays[key]))
            if shape != tuple(var.shape):
                raise WeightsError(f"{source}: variable {key} has shape {list(shape)}, expected {var.shape.as_list()}")
        for key, var in self.vars.items():
            var.assign(np.asarray(arrays[key], np.float32))
        return self

    def arrays(self):
        return collections.OrderedDict((k, v.numpy()) for k, v in self.vars.items())

    @property
    def w_avg(self):
        return self.vars["dlatent_avg"]

    def estimate_w_avg(self, n=10000, seed=123, batch=1000):
        """w_avg as the mean of mapping(z) over n samples z ~ RandomState(seed) (the official projector's
        recipe); stores it in dlatent_avg and returns it."""
        z = np.random.RandomState(seed).randn(n, self.config.latent_size).astype(np.float32)
        total = np.zeros([self.config.dlatent_size], np.float64)
        for i in range(0, n, batch):
            total += self.mapping(tf.constant(z[i:i + batch])).numpy().sum(0)
        self.w_avg.assign((total / n).astype(np.float32))
        self.w_avg_source = f"mean of mapping(z) over {n} samples (RandomState({seed}))"
        return self.w_avg.numpy()

    # -- mapping --
    def mapping(self, z):
        """z [N, latent_size] -> w [N, dlatent_size]."""
        cfg = self.config
        x = tf.convert_to_tensor(z, tf.float32)
        x = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + EPS)
        for i in range(cfg.mapping_layers):
            w = self.vars[f"G_mapping/Dense{i}/weight"]
            b = self.vars[f"G_mapping/Dense{i}/bias"]
            x = tf.matmul(x, w * (cfg.mapping_lrmul / math.sqrt(w.shape[0]))) + b * cfg.mapping_lrmul
            x = tf.nn.leaky_relu(x, 0.2) * SQRT2
        return x

    def broadcast(self, w):
        """w [N, D] -> ws [N, num_ws, D]; ws [N, num_ws, D] unchanged."""
        w = tf.convert_to_tensor(w, tf.float32)
        if w.shape.rank == 2:
            return tf.tile(w[:, None], [1, self.config.num_ws, 1])
        if w.shape.rank != 3 or w.shape[1] != self.config.num_ws:
            raise InvalidArgumentError(f"w must be [N, {self.config.dlatent_size}] or [N, {self.config.num_ws}, "
                                       f"{self.config.dlatent_size}], got {w.shape}")
        return w

    def truncate(self, w, psi=1.0, cutoff=None):
        """w' = w_avg + psi (w - w_avg) for the first `cutoff` ws (all when None); returns ws [N, num_ws, D]."""
        ws = self.broadcast(w)
        if psi is None or psi == 1:
            return ws
        idx = np.arange(self.config.num_ws)
        layer_psi = np.where(idx < (cutoff if cutoff is not None else self.config.num_ws), psi, 1.0)
        layer_psi = tf.constant(layer_psi.astype(np.float32)[None, :, None])
        return self.w_avg + layer_psi * (ws - self.w_avg)

    # -- synthesis --
    def noise_maps(self, batch, seed=None):
        """Fresh N(0,1) noise maps [batch, r, r, 1] for every noisy layer (stateless when seed [2] given)."""
        maps = []
        for i, shape in enumerate(self.config.noise_shapes()):
            size = [batch, shape[2], shape[3], 1]
            if seed is None:
                maps.append(tf.random.normal(size))
            else:
                maps.append(tf.random.stateless_normal(size, tf.random.experimental.stateless_fold_in(seed, i)))
        return maps

    def const_noise(self):
        return [tf.reshape(self.vars[f"G_synthesis/noise{i}"], [1, s[2], s[3], 1])
                for i, s in enumerate(self.config.noise_shapes())]

    def _noise(self, noise, batch):
        if isinstance(noise, str):
            if noise == "const":
                return self.const_noise()
            if noise == "random":
                return self.noise_maps(batch)
            raise InvalidArgumentError(f"noise must be 'random', 'const' or a list of maps, got {noise!r}")
        noise = list(noise)
        if len(noise) != self.config.num_ws - 1:
            raise InvalidArgumentError(f"noise: expected {self.config.num_ws - 1} maps, got {len(noise)}")
        return noise

    def _modconv(self, x, w, prefix, demodulate=True, up=False):
        weight = self.vars[prefix + "/weight"]
        k, _, c_in, _ = weight.shape
        weight = weight * (1.0 / math.sqrt(k * k * c_in))  # equalised learning rate
        mod_w = self.vars[prefix + "/mod_weight"]
        s = tf.matmul(w, mod_w * (1.0 / math.sqrt(mod_w.shape[0]))) + self.vars[prefix + "/mod_bias"] + 1.0  # [N, I]
        x = x * s[:, None, None, :]
        if up:
            x = upsample_conv(x, weight)
        else:
            x = tf.nn.conv2d(x, weight, 1, "SAME")
        if demodulate:  # rsqrt(sum over k, k, I of (weight * s)^2 + eps), per image and output channel
            d = tf.math.rsqrt(tf.matmul(tf.square(s), tf.reduce_sum(tf.square(weight), [0, 1])) + EPS)
            x = x * d[:, None, None, :]
        return x

    def _layer(self, x, w, prefix, noise, up=False):
        x = self._modconv(x, w, prefix, up=up)
        x = x + noise * self.vars[prefix + "/noise_strength"]
        return self._clamp(tf.nn.leaky_relu(x + self.vars[prefix + "/bias"], 0.2) * SQRT2)

    def _torgb(self, x, w, prefix):
        return self._clamp(self._modconv(x, w, prefix, demodulate=False) + self.vars[prefix + "/bias"])

    def _clamp(self, x):
        c = self.config.conv_clamp
        return x if c is None else tf.clip_by_value(x, -float(c), float(c))

    def synthesis(self, ws, noise="random", blocks=None):
        """ws [N, num_ws, D] (or w [N, D]) -> images [N, C, R, R] (NCHW, about [-1, 1]).

        blocks: a dict to receive the NHWC features and skip images after each block
        ("4x4", "4x4/rgb", "8x8", "8x8/rgb", ...); for tests and inspection."""
        ws = self.broadcast(ws)
        n = tf.shape(ws)[0]
        noise = self._noise(noise, n)
        const = tf.transpose(self.vars["G_synthesis/4x4/Const/const"], [0, 2, 3, 1])
        x = tf.tile(const, [n, 1, 1, 1])
        x = self._layer(x, ws[:, 0], "G_synthesis/4x4/Conv", noise[0])
        y = self._torgb(x, ws[:, 1], "G_synthesis/4x4/ToRGB")
        if blocks is not None:
            blocks["4x4"], blocks["4x4/rgb"] = x, y
        for k in range(3, self.config.log2 + 1):
            p = f"G_synthesis/{2 ** k}x{2 ** k}"
            x = self._layer(x, ws[:, 2 * k - 5], p + "/Conv0_up", noise[2 * k - 5], up=True)
            x = self._layer(x, ws[:, 2 * k - 4], p + "/Conv1", noise[2 * k - 4])
            y = upsample(y) + self._torgb(x, ws[:, 2 * k - 3], p + "/ToRGB")
            if blocks is not None:
                blocks[f"{2 ** k}x{2 ** k}"], blocks[f"{2 ** k}x{2 ** k}/rgb"] = x, y
        return tf.transpose(y, [0, 3, 1, 2])

    def __call__(self, z, psi=1.0, cutoff=None, noise="random"):
        return self.synthesis(self.truncate(self.mapping(z), psi, cutoff), noise=noise)


def to_classifier_image(images):
    """NCHW [-1, 1] -> NHWC [0, 1] (clipped), what a classifier trained on [0, 1] images expects."""
    return tf.clip_by_value((tf.transpose(images, [0, 2, 3, 1]) + 1.0) / 2.0, 0.0, 1.0)
