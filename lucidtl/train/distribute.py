"""tf.distribute for training: which strategy, and which process writes files.

"auto": MultiWorkerMirroredStrategy when TF_CONFIG is set (one process per host), MirroredStrategy when the
process sees several GPUs, else the default (one device). "mirrored:/cpu:0,/cpu:1" names the devices.
Under several workers only the chief (task "chief", else worker 0) writes checkpoints and logs.
"""
import json
import os

import tensorflow as tf

from lucidtl.errors import InvalidArgumentError

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def make_strategy(kind="auto"):
    """A tf.distribute.Strategy from a name (see module doc), or `kind` itself if it is one."""
    if isinstance(kind, tf.distribute.Strategy):
        return kind
    name, _, devices = str(kind).partition(":")
    if name not in STRATEGIES:
        raise InvalidArgumentError(f"unknown --strategy {kind!r}; choose one of {', '.join(STRATEGIES)} "
                                   "(mirrored:DEVICE,DEVICE names devices)")
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multiworker"
        else:
            name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise InvalidArgumentError("--strategy multiworker needs TF_CONFIG (the cluster and this task) "
                                       "in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=[d for d in devices.split(",") if d] or None)
    return tf.distribute.get_strategy()


def is_chief(strategy=None):
    """True in the process that writes files: always, except for a non-chief worker of a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_type == "worker" and task_id == 0 and not has_chief


def shard_by_data(ds):
    """Multi-worker input: split each batch between workers by element (datasets from memory or one file)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def patch_for_multiworker(model, dataset):
    """Work around two Keras 3 faults under MultiWorkerMirroredStrategy (TF backend):
    - before fit it reduces a distributed (x, y) batch with strategy.reduce, which fails on a tuple: build the
      metrics here from one local batch and skip that step;
    - it all-reduces each step's logs with reduce("MEAN", axis=0), which fails on scalars: return them as
      [1]-vectors (the mean over workers is what Keras meant; callbacks read them as numbers)."""
    x, y = next(iter(dataset))
    model._symbolic_build(data_batch=(x, y, None))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    cls = type(model)

    def as_vectors(step):
        return lambda data: {k: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v
                             for k, v in step(model, data).items()}

    model.train_step = as_vectors(cls.train_step)
    model.test_step = as_vectors(cls.test_step)
