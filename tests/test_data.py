"""lucidtl.data on tfds mock data and generated image folders; never touches the network."""
import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from lucidtl.data import PAPER31_BREEDS, load
from lucidtl.errors import InvalidArgumentError

SIZE = 32


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def first(ds):
    return next(iter(ds))


def all_batches(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def check_images(x, size=SIZE):
    assert x.dtype == np.float32 and x.shape[1:] == (size, size, 3)
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.0


def raw_labels(name, n):
    """The mock's raw labels; the mock draws from the decoded features, so decode as `load` does."""
    decoders = tfds.decode.PartialDecoding({"image": True, "label": True},
                                           decoders={"image": tfds.decode.SkipDecoding()})
    with tfds.testing.mock_data(num_examples=n):
        return [int(ex["label"]) for ex in tfds.load(name, split="train", decoders=decoders)]


# ---- tfds datasets (mocked)

def test_celeb_a_multi_hot():
    with tfds.testing.mock_data(num_examples=6):
        data = load("celeb_a", batch_size=3, image_size=SIZE, shuffle=False)
        x, y = all_batches(data.train)
        vx, vy = all_batches(data.validation)
    check_images(x)
    check_images(vx)
    assert y.shape == (6, 40) and y.dtype == np.float32 and set(np.unique(y)) <= {0.0, 1.0}
    assert data.num_classes == 40 and data.multi_label and data.loss_name == "binary_crossentropy"
    names = data.class_names
    assert names[0] == "5_o_Clock_Shadow" and names[-1] == "Young" and list(names) == sorted(names)


@pytest.mark.parametrize("name, n", [("oxford_iiit_pet", 37), ("oxford_flowers102", 102)])
def test_one_hot_sets(name, n):
    with tfds.testing.mock_data(num_examples=5):
        data = load(name, batch_size=2, image_size=SIZE, shuffle=False)
        x, y = all_batches(data.train)
        assert data.validation is not None
        expected = raw_labels(name, 5)
    check_images(x)  # mock images are 5-50 px: the pipeline resized them
    assert y.shape == (5, n) and y.dtype == np.float32 and np.all(y.sum(1) == 1)
    assert y.argmax(1).tolist() == expected
    assert data.num_classes == n == len(data.class_names) and not data.multi_label
    assert data.loss_name == "categorical_crossentropy"


def test_image_size_pair_and_unbatched():
    with tfds.testing.mock_data(num_examples=2):
        data = load("oxford_flowers102", batch_size=None, image_size=(20, 30), eval_split=None)
        x, y = first(data.train)
    assert x.shape == (20, 30, 3) and y.shape == (102,) and data.validation is None


def test_paper31_subset_reindexed():
    dropped = ["samoyed", "scottish_terrier", "shiba_inu", "staffordshire_bull_terrier", "wheaten_terrier",
               "yorkshire_terrier"]
    names = tfds.builder("oxford_iiit_pet").info.features["label"].names
    kept = [n for n in names if n not in dropped]
    assert list(PAPER31_BREEDS) == kept and len(kept) == 31
    assert sum(n[0].isupper() for n in kept) == 12  # Oxford capitalises cat breeds: all 12 kept
    new_index = {names.index(n): i for i, n in enumerate(kept)}
    raw = raw_labels("oxford_iiit_pet", 40)
    expected = [new_index[r] for r in raw if r in new_index]
    assert len(expected) < len(raw) and any(r >= names.index("Siamese") for r in new_index if r in raw)
    with tfds.testing.mock_data(num_examples=40):
        data = load("oxford_iiit_pet", breeds="paper31", batch_size=8, image_size=SIZE, shuffle=False)
        x, y = all_batches(data.train)
    check_images(x)
    assert y.shape == (len(expected), 31) and np.all(y.sum(1) == 1)
    assert y.argmax(1).tolist() == expected
    assert data.num_classes == 31 and data.class_names == PAPER31_BREEDS
    assert data.train_size == len(expected)  # counted once, since tfds cannot know a subset's size


def test_breed_list_order_and_errors():
    raw = raw_labels("oxford_iiit_pet", 40)
    names = tfds.builder("oxford_iiit_pet").info.features["label"].names
    a, b = names[raw[0]], names[raw[1]]
    with tfds.testing.mock_data(num_examples=40):
        data = load("oxford_iiit_pet", breeds=[b, a.upper()], batch_size=None, image_size=8, shuffle=False)
        labels = [int(np.argmax(y)) for _, y in data.train]
    assert data.class_names == (b, a)
    assert labels == [{b: 0, a: 1}[names[r]] for r in raw if names[r] in (a, b)]
    with pytest.raises(InvalidArgumentError, match="'beagel'.*closest: beagle"):
        load("oxford_iiit_pet", breeds=["beagel", "pug"])
    with pytest.raises(InvalidArgumentError, match="at least two"):
        load("oxford_iiit_pet", breeds=["pug"])
    with pytest.raises(InvalidArgumentError, match="only to oxford_iiit_pet"):
        load("celeb_a", breeds="paper31")


def test_seed_reproducibility():
    def first_batch(seed):
        with tfds.testing.mock_data(num_examples=16):
            return first(load("oxford_flowers102", batch_size=16, image_size=8, seed=seed).train)[1].numpy()

    same = first_batch(1)
    np.testing.assert_array_equal(same, first_batch(1))
    assert not np.array_equal(same.argmax(1), first_batch(2).argmax(1))
    assert sorted(same.argmax(1)) == sorted(first_batch(2).argmax(1))  # a permutation of the same examples


def test_no_augmentation_by_default_and_flip_when_asked():
    with tfds.testing.mock_data(num_examples=6):
        plain = load("oxford_flowers102", batch_size=6, image_size=12, shuffle=False)
        one, two = first(plain.train)[0].numpy(), first(plain.train)[0].numpy()
        flipped = load("oxford_flowers102", batch_size=6, image_size=12, shuffle=False, augment=True, seed=3)
        f1 = first(flipped.train)[0].numpy()
        f2 = first(load("oxford_flowers102", batch_size=6, image_size=12, shuffle=False, augment=True,
                        seed=3).train)[0].numpy()
        val = first(flipped.validation)[0].numpy()
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(f1, f2)  # seeded
    np.testing.assert_array_equal(val, one)  # validation is never augmented
    is_flip = [np.array_equal(f, o[:, ::-1]) and not np.array_equal(f, o) for f, o in zip(f1, one)]
    is_same = [np.array_equal(f, o) for f, o in zip(f1, one)]
    assert all(a or b for a, b in zip(is_flip, is_same)) and any(is_flip)


def test_tfds_missing_data_offline(tmp_path):
    with pytest.raises(InvalidArgumentError) as err:
        load("oxford_flowers102", data_dir=str(tmp_path), download=False)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path) in msg and "102flowers.tgz" in msg and "no prepared data" in msg


def test_tfds_missing_module_named(monkeypatch):
    def broken_load(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

    monkeypatch.setattr(tfds, "load", broken_load)
    with pytest.raises(InvalidArgumentError, match="pip install importlib-resources"):
        load("oxford_flowers102")


def test_tfds_unknown_split(monkeypatch):
    def strict_load(*args, **kwargs):
        raise ValueError("Unknown split 'trian'. Should be one of ['test', 'train'].")

    monkeypatch.setattr(tfds, "load", strict_load)
    with pytest.raises(InvalidArgumentError, match="use split names tfds knows.*'trian'"):
        load("oxford_iiit_pet", split="trian")


def test_tfds_download_failure_names_manual_dir(monkeypatch, tmp_path):
    def offline_load(*args, **kwargs):
        raise tfds.download.DownloadError("Failed to get url https://drive.google.com/uc?id=x.\nHTTP 0")

    monkeypatch.setattr(tfds, "load", offline_load)
    with pytest.raises(InvalidArgumentError) as err:
        load("celeb_a", data_dir=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and err.value.__cause__ is None
    assert "'celeb_a'" in msg and str(tmp_path / "downloads" / "manual") in msg and "img_align_celeba.zip" in msg
    with pytest.raises(InvalidArgumentError, match="manual_dir_here"):
        load("celeb_a", data_dir=str(tmp_path), manual_dir="/x/manual_dir_here")


def test_unknown_dataset_and_bad_arguments(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"'celeba'; use one of: celeb_a, "):
        load("celeba")
    with pytest.raises(InvalidArgumentError, match="folder:"):
        load(str(tmp_path))
    for kwargs in [dict(batch_size=0), dict(image_size=-1), dict(image_size=(3,)), dict(seed=1.5)]:
        with pytest.raises(InvalidArgumentError):
            load("celeb_a", **kwargs)


# ---- image folders

def write_folder(root, counts, size=(20, 14)):
    rng = np.random.default_rng(0)
    for c, n in counts.items():
        (root / c).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / c / f"img_{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_folder_dataset(tmp_path):
    root = write_folder(tmp_path / "flowers", {"tulip": 5, "daisy": 10, "rose": 3})
    (root / "daisy" / "notes.txt").write_text("not an image")
    data = load(f"folder:{root}", batch_size=4, image_size=SIZE, validation_split=0.2, shuffle=False)
    assert data.class_names == ("daisy", "rose", "tulip") and data.num_classes == 3
    assert not data.multi_label and data.loss_name == "categorical_crossentropy"
    x, y = all_batches(data.train)
    vx, vy = all_batches(data.validation)
    check_images(x)
    check_images(vx)
    assert y.dtype == np.float32 and np.all(y.sum(1) == 1)
    assert np.bincount(vy.argmax(1), minlength=3).tolist() == [2, 1, 1]  # round(n * 0.2) per class
    assert np.bincount(y.argmax(1), minlength=3).tolist() == [8, 2, 4]
    assert (data.train_size, data.validation_size) == (14, 4)
    again = load(f"folder:{root}", batch_size=4, image_size=SIZE, validation_split=0.2, shuffle=False, seed=5)
    np.testing.assert_array_equal(all_batches(again.validation)[0], vx)  # the split ignores the shuffle seed
    none = load(f"folder:{root}", validation_split=0, image_size=SIZE)
    assert none.validation is None and none.train_size == 18


def test_folder_pixel_values(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.full((9, 9, 3), 255, np.uint8)).save(tmp_path / "a" / "white.png")
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "b" / "black.png")  # grayscale -> RGB
    data = load(f"folder:{tmp_path}", batch_size=2, image_size=4, validation_split=0, shuffle=False)
    x, y = first(data.train)
    np.testing.assert_allclose(x[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[1], 0.0, atol=1e-6)
    np.testing.assert_array_equal(y, [[1, 0], [0, 1]])


@pytest.mark.parametrize("layout, needle", [
    ("missing", "does not exist"), ("empty", "has no class folders"), ("loose", "has images but no class"),
    ("one", "single class folder"), ("empty_class", "has no images"), ("file", "is not a folder")])
def test_folder_errors(tmp_path, layout, needle):
    root = tmp_path / "data"
    if layout == "file":
        root.write_text("x")
    elif layout != "missing":
        root.mkdir()
    if layout == "loose":
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "x.png")
    if layout == "one":
        write_folder(root / "sub", {"cat": 2})
        root = root / "sub"
    if layout == "empty_class":
        write_folder(root / "sub", {"cat": 2})
        (root / "sub" / "dog").mkdir()
        root = root / "sub"
    with pytest.raises(InvalidArgumentError) as err:
        load(f"folder:{root}")
    msg = str(err.value)
    assert needle in msg and str(root) in msg and "\n" not in msg and "PATH/<class_name>/" in msg


def test_folder_argument_errors(tmp_path):
    root = write_folder(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(InvalidArgumentError, match="validation_split"):
        load(f"folder:{root}", validation_split=1.0)
    with pytest.raises(InvalidArgumentError, match="split='train'"):
        load(f"folder:{root}", split="test")


def test_tf_data_types():
    with tfds.testing.mock_data(num_examples=2):
        data = load("celeb_a", image_size=8)
    assert isinstance(data.train, tf.data.Dataset)
    assert data.train.element_spec[0].shape.as_list() == [None, 8, 8, 3]
    assert data.train.element_spec[1].shape.as_list() == [None, 40]
