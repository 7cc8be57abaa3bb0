"""Figure 1: a channel drawn by Lucid (FFT-decorrelated image) above the same channel drawn by StyleGAN2."""
import numpy as np
import tensorflow as tf

from lucidtl.optvis import objectives, param
from lucidtl.optvis.render import render_vis
from lucidtl.stylegan2.ascent import DEFAULT_LAMBDA, DEFAULT_LR, DEFAULT_STEPS, Ascent

LUCID_STEPS = 512


def lucid_renders(model, layer, channels, size=128, steps=LUCID_STEPS, seed=0, input_range=(0.0, 1.0)):
    """Lucid's render of each channel (one batch, image i maximises channel i): [len(channels), size, size, 3]."""
    obj = objectives.Objective.sum([objectives.channel(layer, c, batch=i) for i, c in enumerate(channels)])
    images = render_vis(model, obj, param_f=lambda: param.image(size, batch=len(channels)), thresholds=(steps,),
                        verbose=False, seed=seed, input_range=input_range)
    return images[-1]


def fit(images, size):
    """[N,H,W,C] -> [N,size,size,C] for display (antialiased bilinear)."""
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape[1] == size:
        return images.numpy()
    return np.clip(tf.image.resize(images, [size, size], antialias=True).numpy(), 0.0, 1.0)


def side_by_side(generator, model, layer, channels, size=128, lucid_steps=LUCID_STEPS, steps=DEFAULT_STEPS,
                 lam=DEFAULT_LAMBDA, lr=DEFAULT_LR, w_plus=False, noise="resample", resize="bilinear",
                 classifier_size=None, seed=0, input_range=(0.0, 1.0)):
    """Two rows of len(channels) images at size x size: Lucid renders on top, StyleGAN2 renders below."""
    channels = [int(c) for c in channels]
    top = lucid_renders(model, layer, channels, size, lucid_steps, seed, input_range)
    bottom = []
    for c in channels:
        run = Ascent(generator, model, layer=layer, channel=c, lam=lam, lr=lr, w_plus=w_plus, noise=noise,
                     resize=resize, size=classifier_size, seed=seed, input_range=input_range)
        bottom.append(run.run(steps, 1).images[0])
    return [list(fit(top, size)), list(fit(np.stack(bottom), size))]
