"""An independent NumPy float64 StyleGAN2 (config-f, skip) written from spec/stylegan2.md, NCHW throughout.

Deliberately the other way round from lucidtl.stylegan2: the style modulates a per-image copy of the weight
(weight' = weight * s, weight'' = weight' / sqrt(sum weight'^2 + 1e-8)), convolutions are explicit tap loops,
up-sampling inserts zeros and runs a true 2D convolution with the full 4x4 kernel K = outer([1,3,3,1]) / 64 * 4.
"""
import numpy as np

K = np.outer([1.0, 3.0, 3.0, 1.0], [1.0, 3.0, 3.0, 1.0]) / 64.0 * 4.0


def lrelu(x):
    return np.where(x >= 0, x, 0.2 * x) * np.sqrt(2.0)


def mapping(v, z, layers, lrmul=0.01):
    x = np.asarray(z, np.float64)
    x = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 1e-8)
    for i in range(layers):
        w = v[f"G_mapping/Dense{i}/weight"].astype(np.float64)
        b = v[f"G_mapping/Dense{i}/bias"].astype(np.float64)
        x = lrelu(x @ (w / np.sqrt(w.shape[0]) * lrmul) + b * lrmul)
    return x


def correlate(x, w):
    """VALID cross-correlation, NCHW x with per-image weights w [N, kh, kw, I, O]."""
    n, _, h, wd = x.shape
    kh, kw, _, o = w.shape[1:]
    out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + h - kh + 1, j:j + wd - kw + 1]
            out += np.einsum("nchw,nco->nohw", patch, w[:, i, j])
    return out


def true_conv_k(x):
    """VALID true 2D convolution of every channel with K (flipped, though K is symmetric)."""
    n, c, h, w = x.shape
    kf = K[::-1, ::-1]
    out = np.zeros((n, c, h - 3, w - 3))
    for i in range(4):
        for j in range(4):
            out += x[:, :, i:i + h - 3, j:j + w - 3] * kf[i, j]
    return out


def zero_insert(x):
    """[N, C, H, W] -> [N, C, 2H, 2W] with x at even positions, zeros after each pixel."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, 2 * h, 2 * w))
    out[:, :, ::2, ::2] = x
    return out


def pad(x, p0, p1):
    return np.pad(x, [(0, 0), (0, 0), (p0, p1), (p0, p1)])


def upsample_skip(y):
    return true_conv_k(pad(zero_insert(y), 2, 1))


def style(v, prefix, w):
    mw = v[prefix + "/mod_weight"].astype(np.float64)
    return w @ (mw / np.sqrt(mw.shape[0])) + v[prefix + "/mod_bias"] + 1.0  # [N, I]


def modconv(v, prefix, x, w, demodulate=True, up=False):
    weight = v[prefix + "/weight"].astype(np.float64)
    kh, kw, ci, _ = weight.shape
    weight = weight / np.sqrt(kh * kw * ci)
    ww = weight[None] * style(v, prefix, w)[:, None, None, :, None]  # [N, k, k, I, O]
    if demodulate:
        ww = ww / np.sqrt(np.sum(ww * ww, axis=(1, 2, 3), keepdims=True) + 1e-8)
    if up:  # zero-insert (2H - 1 samples), pad k - 1 each side, VALID conv -> 2H + 1; then FIR pad (1, 1) -> 2H
        z = zero_insert(x)[:, :, :-1, :-1]
        z = correlate(pad(z, kh - 1, kh - 1), ww)
        return true_conv_k(pad(z, 1, 1))
    p = kh // 2
    return correlate(pad(x, p, p), ww)


def layer(v, prefix, x, w, noise, up=False):
    x = modconv(v, prefix, x, w, up=up)
    x = x + noise * float(v[prefix + "/noise_strength"])
    return lrelu(x + v[prefix + "/bias"][None, :, None, None])


def torgb(v, prefix, x, w):
    return modconv(v, prefix, x, w, demodulate=False) + v[prefix + "/bias"][None, :, None, None]


def synthesis(v, ws, resolution):
    """ws [N, num_ws, D]; noise = the stored constants noise{i} [1, 1, r, r]. Returns (image NCHW, blocks)
    where blocks maps "4x4", "4x4/rgb", "8x8", ... to NCHW float64 arrays."""
    ws = np.asarray(ws, np.float64)
    n = ws.shape[0]
    noise = lambda i: v[f"G_synthesis/noise{i}"].astype(np.float64)  # noqa: E731
    x = np.repeat(v["G_synthesis/4x4/Const/const"].astype(np.float64), n, axis=0)
    x = layer(v, "G_synthesis/4x4/Conv", x, ws[:, 0], noise(0))
    y = torgb(v, "G_synthesis/4x4/ToRGB", x, ws[:, 1])
    blocks = {"4x4": x, "4x4/rgb": y}
    k, r = 3, 8
    while r <= resolution:
        p = f"G_synthesis/{r}x{r}"
        x = layer(v, p + "/Conv0_up", x, ws[:, 2 * k - 5], noise(2 * k - 5), up=True)
        x = layer(v, p + "/Conv1", x, ws[:, 2 * k - 4], noise(2 * k - 4))
        y = upsample_skip(y) + torgb(v, p + "/ToRGB", x, ws[:, 2 * k - 3])
        blocks[f"{r}x{r}"], blocks[f"{r}x{r}/rgb"] = x, y
        k, r = k + 1, r * 2
    return y, blocks
