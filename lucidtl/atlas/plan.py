"""The atlas's work list: (checkpoint, layer, channel batch) items in one deterministic order, split into shards.

Every process computes the same full list from the same arguments and keeps items k with k % n == i
(`--shard i/n`), so n processes share the work with no overlap and no coordination. Seeds depend only on
(layer, channel batch), never on the shard or the checkpoint: shards together equal one full run, and a
channel is drawn from the same starting image at every checkpoint (what changes along a run is the weights).
"""
import dataclasses
import os
import re
import zlib

from lucidtl.errors import InvalidArgumentError

SEED_MOD = 2**31 - 1  # the renderer seeds with an int32


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    label: str  # also the folder of its PNGs: "<run name>/iter_000030" or "weights/<file stem>"
    run: str | None = None  # run folder name
    run_path: str | None = None  # absolute run folder
    iteration: int | None = None
    weights: str | None = None  # absolute weights file (for --weights)

    def record(self):
        return {"checkpoint": self.label, "run": self.run, "run_path": self.run_path, "iteration": self.iteration,
                "weights": self.weights}


@dataclasses.dataclass(frozen=True)
class Item:
    index: int  # position in the full list
    checkpoint: Checkpoint
    layer: str
    channels: tuple
    seed: int

    @property
    def keys(self):
        return [(self.checkpoint.label, self.layer, c) for c in self.channels]


def parse_shard(shard):
    """"i/n" (0 <= i < n) -> (i, n); a one-line error otherwise."""
    text = str(shard).strip()
    m = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise InvalidArgumentError(f"cannot read --shard {shard!r}; write i/n with 0 <= i < n, e.g. 0/2")
    return int(m.group(1)), int(m.group(2))


def split_list(value, flag):
    """A comma-separated string, a list/tuple or None -> a list of non-empty strings."""
    from lucidtl.cli import split_list as items_of

    if value is None:
        return []
    items = items_of(value)
    if not items:
        raise InvalidArgumentError(f"--{flag} is empty")
    return items


def checkpoints(runs=(), weights=()):
    """Every checkpoint of the run folders (ascending iteration), then the weight files, as given."""
    from lucidtl.run import Run

    out = []
    for path in runs:
        name = os.path.basename(os.path.normpath(path))
        for r in Run(path).check():  # every file it lists, before anything is rendered
            out.append(Checkpoint(f"{name}/iter_{r['iteration']:06d}", name, os.path.abspath(path), r["iteration"]))
    for path in weights:
        if not os.path.isfile(path):
            raise InvalidArgumentError(f"weights file {path} does not exist")
        from lucidtl.models.weights import KERAS_SUFFIXES, array_shapes  # keras: not at import time

        if path.endswith(KERAS_SUFFIXES):
            array_shapes(path)  # a one-line error naming it when it is not readable, before any rendering
        stem = os.path.basename(path).split(".")[0]
        out.append(Checkpoint(f"weights/{stem}", weights=os.path.abspath(path)))
    seen = set()
    for c in out:
        if c.label in seen:
            raise InvalidArgumentError(f"two checkpoints share the name {c.label!r}; rename a run folder or "
                                       "weights file (atlas folders are named after them)")
        seen.add(c.label)
    if not out:
        raise InvalidArgumentError("nothing to render; pass --runs RUN_FOLDER[,RUN_FOLDER] and/or --weights FILE")
    return out


def default_layers(model):
    """The 57 conv layers of InceptionV1 when the model has them, else every 4-D ReLU/activation output
    (Relu ops of a Lucid graph; layers with a fused ReLU, as VGG's convs; nested models' layers by path)."""
    from lucidtl.models import CONV_LAYERS
    from lucidtl.optvis import features

    names = set(features.layer_names(model))
    if all(n in names for n in CONV_LAYERS):
        return list(CONV_LAYERS)
    return [e.name for e in features.catalogue(model)
            if (e.kind in ("ReLU", "Activation", "Relu", "Relu6") or e.activation in ("relu", "relu6"))
            and len(e.shape) == 4 and e.channels]


def selection(model, layers="all", channels="all"):
    """[(layer, [channels])] for this architecture; unknown layers name the closest ones."""
    from lucidtl.optvis import features
    from lucidtl.selection import parse_channels

    names = default_layers(model) if layers in (None, "all") else split_list(layers, "layers")
    chosen = []
    for layer in names:
        count = features.channel_count(model, layer)  # UnknownLayerError with the closest names
        chosen.append((layer, parse_channels(channels, count)))
    return chosen


def batch_seed(seed, layer, first_channel):
    return (int(seed) + zlib.crc32(f"{layer}/{first_channel}".encode())) % SEED_MOD


def items(ckpts, chosen, batch, seed=0):
    """The full work list. ckpts: [Checkpoint]; chosen: {checkpoint label: [(layer, [channels])]}."""
    out = []
    for ck in ckpts:
        for layer, chans in chosen[ck.label]:
            for k in range(0, len(chans), batch):
                chunk = tuple(chans[k:k + batch])
                out.append(Item(len(out), ck, layer, chunk, batch_seed(seed, layer, chunk[0])))
    return out


def shard_items(work, shard):
    """Round-robin: the items k with k % n == i."""
    i, n = shard
    return [w for w in work if w.index % n == i]


def png_path(label, layer, channel):
    """Where a channel's PNG lives, relative to the atlas folder."""
    return f"{label}/{layer}/{channel:04d}.png"
