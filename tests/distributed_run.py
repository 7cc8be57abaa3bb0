"""A tiny fine-tuning run in its own process, for test_distribute: python distributed_run.py MODE FOLDER OUT.

MODE: single (one CPU), mirrored (MirroredStrategy over two logical CPUs), worker (one task of a
MultiWorkerMirroredStrategy cluster described by TF_CONFIG)."""
import sys

import tensorflow as tf

mode, folder, out = sys.argv[1:4]
if mode == "mirrored":  # must happen before TF initialises its devices
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from lucidtl.train.fit import train  # noqa: E402

strategy = {"single": "default", "mirrored": "mirrored:/cpu:0,/cpu:1", "worker": "multiworker"}[mode]
live = dict(visualize="conv2_relu:1", visualize_at="0,6", visualize_steps=3, visualize_size=16) if mode == "mirrored" else {}
result = train(f"folder:{folder}", model="tiny_models.tiny_backbone", weights="random", recipe="temporal",
               iterations=6, save_at="0,2,6", image_size=16, batch_size=4, out=out, strategy=strategy,
               progress=False, tensorboard=False, optimizer="sgd", learning_rate=0.5, **live)
print("iterations", result.iterations)
