"""How far to believe a picture: reach, path similarity, and changes beyond seed noise.

- reach: the picture's objective divided by that of the unit's top dataset image (same network, same
  objective: the channel's mean activation). Near 1 or above: the picture drives the unit as strongly as
  the best real image; far below 1: the optimisation fell short.
- path similarity (Geirhos et al., ICML 2024, "Don't trust your eyes"): at each layer below the unit, the
  cosine similarity of the picture's activations (averaged over positions) with the mean activations of the
  unit's top dataset images, both taken relative to the mean activations of the dataset's images (so that
  what all images share does not count); the floor is the same similarity for random dataset images. A
  picture processed along the path of the unit's natural top images scores well above the floor.
- beyond seed noise: a picture's change between two checkpoints compared with how much pictures of the same
  checkpoint differ between seeds (seed_spread).
"""
import os

import numpy as np

from lucidtl.errors import InvalidArgumentError

TOP_K = 8  # top dataset images a unit's path is compared with
FLOOR_IMAGES = 8  # random dataset images: the floor of path similarity
BELOW = 6  # layers below the unit compared, at most (the nearest ones)
_KINDS = ("InputLayer", "Conv2D", "Rescaling", "Dropout")  # skipped unless fused with an activation


def load_images(dataset, image_size, max_images=256):
    """(images float32 [N, S, S, C] in [0, 1], labels or None): an .npy / .npz file (arrays 'images',
    optional 'labels'; uint8 or [0, 1]) or a lucidtl.data name (folder:PATH, a tfds name), unshuffled."""
    name = str(dataset)
    if name.endswith((".npy", ".npz")):
        if not os.path.isfile(name):
            raise InvalidArgumentError(f"--dataset file {name} does not exist")
        arrays = np.load(name)
        images, labels = (arrays, None) if name.endswith(".npy") else (arrays["images"], arrays.get("labels"))
        images = np.asarray(images)[:max_images]
        if images.ndim != 4:
            raise InvalidArgumentError(f"{name} holds shape {images.shape}; expected images [N, H, W, C]")
        images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
        if images.shape[1:3] != (image_size, image_size):
            import tensorflow as tf

            images = tf.image.resize(images, [image_size, image_size], antialias=True).numpy()
        return images, (None if labels is None else np.asarray(labels)[:max_images])
    from lucidtl import data as datasets

    d = datasets.load(name, batch_size=None, image_size=image_size, shuffle=False, validation_split=0,
                      eval_split=None)
    images, labels = [], []
    for image, label in d.train.take(max_images).as_numpy_iterator():
        images.append(image)
        labels.append(np.argmax(label) if np.ndim(label) else label)
    if not images:
        raise InvalidArgumentError(f"--dataset {name} holds no images")
    return np.asarray(images, np.float32), np.asarray(labels)


def _scaled(images, input_range):
    lo, hi = input_range
    x = np.asarray(images, np.float32)
    return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo


def activations(model, layers, images, input_range=(0.0, 1.0), batch_size=32, reduce=True):
    """{layer: activations of images}, averaged over positions when reduce ([N, C]), float32."""
    from lucidtl.optvis import features

    fm = features.feature_model(model, list(layers))
    out = {name: [] for name in layers}
    for i in range(0, len(images), batch_size):
        x = _scaled(features.fit_input(model, images[i:i + batch_size])
                    if features.fixed_input_size(model) else images[i:i + batch_size], input_range)
        outs = fm(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for name, a in zip(layers, outs):
            a = np.asarray(a, np.float32)
            out[name].append(a.reshape(len(a), -1, a.shape[-1]).mean(1) if reduce else a)
    return {name: np.concatenate(v) for name, v in out.items()}


def mean_activations(model, layers, images, input_range=(0.0, 1.0)):
    """{layer: the images' activations averaged over positions and images, [C]}."""
    return {name: a.mean(0) for name, a in activations(model, layers, images, input_range).items()}


def unit_scores(model, layer, channels, images, input_range=(0.0, 1.0), batch_size=32):
    """[N, len(channels)]: each image's channel objective (the channel's mean activation over positions)."""
    acts = activations(model, [layer], images, input_range, batch_size)[layer]
    return acts[:, list(channels)]


def reach(picture_value, top_value):
    """picture / top dataset image objective; None when the top image does not drive the unit (<= 0)."""
    return float(picture_value) / float(top_value) if top_value > 0 else None


def layers_below(model, layer, limit=BELOW):
    """The named layers the unit's value is computed from (activations, concatenations, pooling; not the
    unit's own), the `limit` nearest, in graph order."""
    from lucidtl.optvis import features

    sub = features.feature_model(model, [layer])
    ancestors = {lay.name for lay in sub.layers}
    names = [e.name for e in features.catalogue(model)
             if (e.kind not in _KINDS or e.activation) and e.name.split(features.SEP)[-1] in ancestors]
    base = layer[:-len(features.PRE_RELU)] if layer.endswith(features.PRE_RELU) else layer
    names = [n for n in names if n != base]
    return names[-limit:] if limit else names


def cosine(a, b):
    """Cosine similarity of the rows of a [N, C] with the vector b [C] (0 for a zero vector)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b)
    return np.where(norms > 0, (a @ b) / np.where(norms > 0, norms, 1.0), 0.0)


def random_images(images, n=FLOOR_IMAGES, seed=0):
    """n images drawn at random (without replacement, seeded) from images: the floor's random images."""
    pick = np.random.default_rng(seed).choice(len(images), size=min(n, len(images)), replace=False)
    return np.asarray(images)[np.sort(pick)]


def path_similarity(model, layers, pictures, top_images, floor_images, input_range=(0.0, 1.0), reference=None):
    """{layer: {"picture": [P] similarities, "floor": mean similarity of floor_images}}: at each layer,
    the cosine similarity of each picture's position-averaged activations with the mean of top_images',
    both minus the mean of reference's (the dataset's images, or {layer: their mean activations} as
    mean_activations gives; None: nothing subtracted). floor_images: random dataset images
    (random_images)."""
    pictures = np.asarray(pictures, np.float32)
    layers = list(layers)
    if not layers:
        return {}
    top = activations(model, layers, top_images, input_range)
    pic = activations(model, layers, pictures, input_range)
    floor = activations(model, layers, floor_images, input_range)
    if reference is not None and not isinstance(reference, dict):
        reference = mean_activations(model, layers, reference, input_range)
    out = {}
    for name in layers:
        mu = reference[name] if reference is not None else 0.0
        centre = top[name].mean(0) - mu
        out[name] = {"picture": [float(v) for v in cosine(pic[name] - mu, centre)],
                     "floor": float(cosine(floor[name] - mu, centre).mean())}
    return out


def rms_distance(a, b):
    """Root-mean-square difference of two pictures."""
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def seed_spread(before, after, distance=rms_distance):
    """A unit's change between two checkpoints against the noise of its pictures between seeds.

    before, after: the unit's pictures at the two checkpoints, one per seed (the same seeds, K >= 2).
    change: the mean distance over all pairs (before_i, after_j); spread: the mean distance between
    pictures of different seeds at the same checkpoint (both checkpoints pooled). beyond: change > spread.
    A unit the network did not change draws the same picture from the same seed, so its change is
    (K-1)/K of its spread: never beyond."""
    before, after = list(before), list(after)
    if len(before) < 2 or len(before) != len(after):
        raise InvalidArgumentError(f"seed spread needs the same K >= 2 seeds at both checkpoints, got "
                                   f"{len(before)} and {len(after)}")
    change = np.mean([distance(a, b) for a in before for b in after])
    within = [distance(p[i], p[j]) for p in (before, after) for i in range(len(p)) for j in range(i + 1, len(p))]
    spread = float(np.mean(within))
    return {"change": float(change), "spread": spread, "beyond": bool(change > spread), "seeds": len(before)}


def rank_beyond(rows):
    """rows: {unit: seed_spread result}. (the units whose change is beyond their spread, largest change
    first; how many were not)."""
    kept = sorted((u for u, r in rows.items() if r["beyond"]), key=lambda u: -rows[u]["change"])
    return kept, len(rows) - len(kept)


def record_trust(model, layer, channels, pictures, images, negative=False, input_range=(0.0, 1.0)):
    """A render record's "trust" (pictures: {threshold: [len(channels), H, W, C] as the PNGs hold them};
    images: the dataset's): per channel, reach at every threshold (the picture's channel objective / the top
    dataset image's) and path similarity of the last threshold's picture at the layers below the unit."""
    sign = -1.0 if negative else 1.0
    scores = sign * unit_scores(model, layer, channels, images, input_range)  # [N, C]
    own = {t: np.diag(sign * unit_scores(model, layer, channels, np.stack(row), input_range))
           for t, row in pictures.items()}  # picture j's value for its own channel j
    last = max(pictures)
    below = layers_below(model, layer)
    floor = random_images(images)
    mu = mean_activations(model, below, images, input_range) if below else None
    out = {"top_objective": {}, "reach": {}, "path_similarity": {}, "layers_below": below,
           "images": int(len(images)), "top_k": TOP_K}
    for j, c in enumerate(channels):
        top = int(np.argmax(scores[:, j]))
        out["top_objective"][str(c)] = float(scores[top, j])
        out["reach"][str(c)] = {}
        for t in pictures:
            out["reach"][str(c)][str(t)] = reach(own[t][j], scores[top, j])
        order = np.argsort(-scores[:, j], kind="stable")[:TOP_K]
        sims = path_similarity(model, below, np.asarray(pictures[last][j])[None], images[order], floor,
                               input_range, reference=mu)
        out["path_similarity"][str(c)] = {name: {"picture": v["picture"][0], "floor": v["floor"]}
                                          for name, v in sims.items()}
    return out


def units_trust(first, last, layer, channels, seeds=3, size=128, steps=512, seed=0, images=None,
                input_range=(0.0, 1.0), transforms="standard"):
    """How far to believe the change of each unit (`layer`, each of `channels`) between two checkpoints'
    networks `first` and `last`: each unit drawn with `seeds` seeds at both (one batch per seed and network;
    seed s is seed + 1000 * s), seed_spread of the pictures; with images (the dataset's, [N, H, W, C]): the
    reach and path similarity of the last network's first-seed picture (record_trust).
    Returns {channel: {"change", "spread", "beyond", "seeds"[, "reach", "path_similarity"]}}."""
    from lucidtl.optvis.render import render_channels

    if int(seeds) < 2:
        raise InvalidArgumentError(f"the spread between seeds needs at least 2 seeds, got {seeds}")
    units = [(layer, int(c)) for c in channels]
    pictures = {}
    for name, net in (("first", first), ("last", last)):
        pictures[name] = [render_channels(net, units, size=size, steps=steps, seed=seed + 1000 * s,
                                          input_range=input_range, transforms=transforms) for s in range(int(seeds))]
    out = {}
    for j, c in enumerate(channels):
        out[int(c)] = seed_spread([p[j] for p in pictures["first"]], [p[j] for p in pictures["last"]])
    if images is not None:
        from lucidtl.imageio import as_saved

        measures = record_trust(last, layer, [int(c) for c in channels], {steps: as_saved(pictures["last"][0])},
                                np.asarray(images, np.float32), input_range=input_range)
        for c in channels:
            out[int(c)]["reach"] = measures["reach"][str(c)][str(steps)]
            out[int(c)]["path_similarity"] = measures["path_similarity"][str(c)]
    return out
