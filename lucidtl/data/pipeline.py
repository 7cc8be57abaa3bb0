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


def _epochs(ds, count, buffer, seed):
    """`count` epochs in a row, epoch e shuffled with seed (seed * 1000003 + e) and no seed-generator state:
    unlike shuffle(reshuffle_each_iteration=True), every copy of this pipeline (tf.distribute clones it per
    replica and worker; a resumed run builds it anew) yields the same stream."""
    stream = None
    for e in range(count):
        one = ds.shuffle(buffer, seed=int(seed) * 1_000_003 + e, reshuffle_each_iteration=False)
        stream = one if stream is None else stream.concatenate(one)
    return stream


def build(ds, parse, *, image_size, batch_size, train, shuffle, seed, augment, shuffle_buffer, repeat=False,
          skip=0):
    """Raw elements -> batches of (image, label). `parse(element)` gives (encoded image, label).

    Only the training set is shuffled (before decoding, so the buffer holds small encoded images) and
    augmented: a horizontal flip with probability 1/2 drawn from a stream seeded by `seed`, new each epoch.
    The same seed gives the same first epoch; order is otherwise deterministic.
    repeat: N epochs in one stream (each shuffled anew, the same in every copy of the pipeline). skip: drop the stream's first `skip` examples
    before decoding, so a resumed run sees exactly the examples an uninterrupted one would."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if repeat and not (train and shuffle):
        ds = ds.repeat(None if repeat is True else int(repeat))
    elif repeat:
        if repeat is True:
            raise ValueError("a shuffled training stream needs its number of epochs: repeat=N")
        ds = _epochs(ds, int(repeat), shuffle_buffer, seed)
    elif train and shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if skip:
        ds = ds.skip(skip)

    def prepare(*element):
        encoded, label = parse(*element)
        return to_unit_image(encoded, size), label

    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE)
    if train and augment:
        if repeat:  # stateless draws, for the same reason as _epochs
            draws = tf.data.Dataset.counter().map(lambda i: tf.random.stateless_uniform(
                [], tf.stack([tf.constant(seed, tf.int64), i]), minval=0, maxval=2**31 - 1, dtype=tf.int64))
        else:
            draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        draws = draws.skip(skip)
        ds = tf.data.Dataset.zip((ds, draws)).map(_flip, num_parallel_calls=AUTOTUNE)
    if batch_size:
        ds = ds.batch(batch_size)
    return ds.prefetch(AUTOTUNE)
