"""Shared tf.data steps: shuffle (seeded), decode, resize to float32 [0, 1], optional flip, batch, prefetch."""
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def to_unit_image(encoded, size):
    """Encoded JPEG/PNG/BMP/GIF bytes -> float32 [h, w, 3] in [0, 1].

    Resizing is `tf.image.resize(..., method="bilinear", antialias=True)`, whatever the source size
    (aspect ratio is not kept; grayscale is repeated to RGB, alpha dropped, a GIF gives its first frame)."""
    img = tf.io.decode_image(encoded, channels=3, dtype=tf.float32, expand_animations=False)
    img = tf.image.resize(img, size, method="bilinear", antialias=True)
    return tf.clip_by_value(img, 0.0, 1.0)


def _flip(example, draw):
    img, label = example
    img = tf.cond(draw % 2 == 0, lambda: tf.image.flip_left_right(img), lambda: img)
    return img, label


def build(ds, parse, *, image_size, batch_size, train, shuffle, seed, augment, shuffle_buffer):
    """Raw elements -> batches of (image, label). `parse(element)` gives (encoded image, label).

    Only the training set is shuffled (before decoding, so the buffer holds small encoded images) and
    augmented: a horizontal flip with probability 1/2 drawn from a stream seeded by `seed`, new each epoch.
    The same seed gives the same first epoch; order is otherwise deterministic."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if train and shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def prepare(*element):
        encoded, label = parse(*element)
        return to_unit_image(encoded, size), label

    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE)
    if train and augment:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, draws)).map(_flip, num_parallel_calls=AUTOTUNE)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(AUTOTUNE)
