"""The paper's tfds datasets: celeb_a (40 attributes), oxford_iiit_pet ("Animals"), oxford_flowers102.

Labels: celeb_a gives a float32 multi-hot [40] in the order of `info.features["attributes"].keys()`, which
is sorted by name and equals the column order of CelebA's list_attr_celeba.txt (5_o_Clock_Shadow,
Arched_Eyebrows, Attractive, ..., Young). The others give one-hot float32 [num_classes]."""
import os

import tensorflow as tf

from lucidtl.errors import InvalidArgumentError, did_you_mean

NAMES = ("celeb_a", "oxford_iiit_pet", "oxford_flowers102")
DEFAULT_EVAL = {"celeb_a": "validation", "oxford_iiit_pet": "test", "oxford_flowers102": "validation"}
# The file names tfds 4.9.10 looks for in the manual folder (its checksums.tsv); sizes and sha256 must match.
SOURCE_FILES = {
    "celeb_a": ("img_align_celeba.zip", "list_attr_celeba.txt", "list_eval_partition.txt",
                "list_landmarks_align_celeba.txt", "identity_CelebA.txt"),
    "oxford_iiit_pet": ("images.tar.gz", "annotations.tar.gz"),
    "oxford_flowers102": ("102flowers.tgz", "imagelabels.mat", "setid.mat"),
}
# "paper31": the paper's 31-breed "Animals" subset is unpublished. Our fixed rule: all 12 cat breeds plus the
# first 19 of the 25 dog breeds in tfds' (alphabetical) label order, i.e. dropping samoyed, scottish_terrier,
# shiba_inu, staffordshire_bull_terrier, wheaten_terrier and yorkshire_terrier. Listed in tfds label order.
PAPER31_BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal", "Birman",
    "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
    "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
    "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll",
    "Russian_Blue", "saint_bernard", "Siamese", "Sphynx",
)


def resolve_breeds(breeds, names):
    """None/"all" -> all 37; "paper31" -> PAPER31_BREEDS; else a list (or comma-separated string) of breed
    names, matched case-insensitively; the class order is the order given."""
    if breeds is None or breeds == "all":
        return list(names)
    if isinstance(breeds, str):
        breeds = PAPER31_BREEDS if breeds == "paper31" else [b for b in breeds.split(",") if b.strip()]
    lookup = {n.lower(): n for n in names}
    chosen = []
    for b in breeds:
        name = lookup.get(str(b).strip().lower())
        if name is None:
            raise InvalidArgumentError(f"unknown oxford_iiit_pet breed {b!r}{did_you_mean(str(b), names)}")
        if name in chosen:
            raise InvalidArgumentError(f"breed {name!r} is listed twice in breeds=; list each breed once")
        chosen.append(name)
    if len(chosen) < 2:
        raise InvalidArgumentError(f"breeds= needs at least two breeds, got {chosen}; or use 'paper31' / 'all'")
    return chosen


def load_raw(name, *, split, eval_split, data_dir, manual_dir, download, shuffle, seed, breeds):
    """Raw (train, validation or None) datasets + how to parse them + label facts (a dict)."""
    import tensorflow_datasets as tfds

    wanted = "attributes" if name == "celeb_a" else "label"
    decoders = tfds.decode.PartialDecoding({"image": True, wanted: True},
                                           decoders={"image": tfds.decode.SkipDecoding()})
    splits = [split] + ([eval_split] if eval_split else [])
    try:
        features = tfds.builder(name, data_dir=data_dir).info.features
        keep = resolve_breeds(breeds, features["label"].names) if name == "oxford_iiit_pet" else None
        dss, info = tfds.load(
            name, split=splits, data_dir=data_dir, download=download, with_info=True, decoders=decoders,
            shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed),
            download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)})
    except InvalidArgumentError:
        raise
    except Exception as e:  # tfds raises many types (AssertionError, DownloadError, OSError, ValueError...)
        raise _load_error(name, e, split=splits, data_dir=data_dir, manual_dir=manual_dir) from None
    sizes = [_size(info, s) for s in splits] + [None]

    if name == "celeb_a":
        keys = list(features["attributes"].keys())
        facts = dict(class_names=keys, multi_label=True)

        def parse(ex):
            return ex["image"], tf.cast(tf.stack([ex["attributes"][k] for k in keys]), tf.float32)
    else:
        names = list(features["label"].names)
        keep = keep or names
        table = tf.constant([keep.index(n) if n in keep else -1 for n in names], tf.int64)
        facts = dict(class_names=keep, multi_label=False)
        if len(keep) < len(names):
            dss = [ds.filter(lambda ex: tf.gather(table, ex["label"]) >= 0) for ds in dss]
            sizes = [None, None]

        def parse(ex):
            return ex["image"], tf.one_hot(tf.gather(table, ex["label"]), len(keep), dtype=tf.float32)
    # unknown sizes (a breed subset, or no prepared metadata): count the records once, images undecoded
    sizes = [n if n is not None or ds is None else int(ds.reduce(0, lambda k, _: k + 1))
             for n, ds in zip(sizes, dss + [None])]
    facts.update(train_size=sizes[0], validation_size=sizes[1] if eval_split else None)
    return dss[0], (dss[1] if eval_split else None), parse, facts


def _size(info, split):
    try:
        return int(info.splits[split].num_examples)
    except Exception:  # unknown without prepared metadata (e.g. under tfds.testing.mock_data)
        return None


def _load_error(name, err, *, split, data_dir, manual_dir):
    import tensorflow_datasets as tfds

    root = data_dir or tfds.core.constants.DATA_DIR
    manual = manual_dir or os.path.join(root, "downloads", "manual")
    first = (str(err).strip().splitlines() or [""])[0][:300]
    if "could not find data" in first:  # tfds' AssertionError when nothing is prepared and download=False
        first = "no prepared data there"
    if isinstance(err, ModuleNotFoundError) and err.name:
        fix = f"pip install {err.name.replace('_', '-')} (tfds needs it to download and prepare {name})"
    elif isinstance(err, (ValueError, KeyError)) and "split" in str(err).lower():
        fix = f"use split names tfds knows for {name} (e.g. 'train', 'train[:10%]'); asked for {split}"
    else:
        fix = (f"without internet, put {', '.join(SOURCE_FILES[name])} into {manual} (or pass manual_dir=) or "
               f"copy a prepared {name} into {root}, then retry with download=True")
    return InvalidArgumentError(f"cannot load tfds dataset {name!r} from data_dir {root} "
                                f"({type(err).__name__}: {first}); {fix}")
