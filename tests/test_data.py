"""jdfa.data: IDX reader, cache, lookup order, notMNIST, XOR and the tfds path."""

import gzip
import io
import os
import struct
import sys
import tarfile
import types
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from jdfa import data
from jdfa.data import DataError, cache, idx, mnist, notmnist
from jdfa.data import tfds as data_tfds

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test away from the user's data, cache and home folder."""
    monkeypatch.setenv("JDFA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("JDFA_DATA_DIR", raising=False)


@pytest.fixture
def no_tfds(monkeypatch):
    """Make `import tensorflow_datasets` fail, as on a machine without it."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)


# ---------------------------------------------------------------- IDX files


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def make_idx_dataset(folder: Path, seed=0, n_train=7, n_test=5, gz=True):
    """The four MNIST files with random 4x3 images; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 4, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        image_stem, label_stem = mnist.FILES[split]
        write_idx(folder / (image_stem + ".gz" * gz), images, gz)
        write_idx(folder / (label_stem + ".gz" * gz), labels, gz)
        arrays[split] = images, labels
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_idx_reads_images_and_labels(tmp_path, gz):
    images = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    labels = np.array([3, 9], dtype=np.uint8)
    got_images = idx.read_images(write_idx(tmp_path / "i", images, gz))
    got_labels = idx.read_labels(write_idx(tmp_path / "l", labels, gz))
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("split", data.SPLITS)
def test_load_converts_idx_to_flat_float32_and_int32(tmp_path, split):
    arrays = make_idx_dataset(tmp_path / "d")
    images, labels = data.load("mnist", split, tmp_path / "d")
    raw_images, raw_labels = arrays[split]
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.shape == (len(raw_images), 12) and labels.shape == (len(raw_labels),)
    expected = raw_images.reshape(len(raw_images), -1) / np.float32(255)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, raw_labels)


def test_load_reads_plain_idx_files(tmp_path):
    arrays = make_idx_dataset(tmp_path, gz=False)
    _, labels = data.load("kmnist", "test", tmp_path)
    np.testing.assert_array_equal(labels, arrays["test"][1])


def test_idx_truncated_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((10, 28, 28), np.uint8))[:-100])
    message = r"train-images-idx3-ubyte is truncated.*\(10, 28, 28\).*Download it again"
    with pytest.raises(DataError, match=message):
        idx.read_images(path)


def test_idx_too_short_for_a_header(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short for an IDX header"):
        idx.read_labels(path)
    path.write_bytes(struct.pack(">I", 0x803) + b"\x00")
    with pytest.raises(DataError, match="the header alone needs 16"):
        idx.read_images(path)


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "l"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"junk")
    with pytest.raises(DataError, match="has trailing bytes"):
        idx.read_labels(path)


def test_idx_wrong_magic(tmp_path):
    labels = write_idx(tmp_path / "labels", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"magic number 0x00000801, expected 0x00000803.*swapped"):
        idx.read_images(labels)
    text = tmp_path / "text"
    text.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"magic number 0x3c68746d, expected 0x00000801"):
        idx.read_labels(text)


def test_idx_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((3, 4, 4), np.uint8)))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"cut.gz is a corrupt or incomplete gzip .*again"):
        idx.read_images(cut)
    garbled = tmp_path / "garbled.gz"
    garbled.write_bytes(good[:10] + b"\xff" * 40)
    with pytest.raises(DataError, match="garbled.gz is a corrupt or incomplete gzip file"):
        idx.read_images(garbled)


def test_mismatched_image_and_label_counts(tmp_path):
    make_idx_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), gz=True)
    with pytest.raises(DataError, match=r"holds 5 images but .*t10k-labels-idx1.* holds 4 labels"):
        data.load("mnist", "test", tmp_path)


# ------------------------------------------------------------- real MNIST


@pytest.fixture
def shared_mnist():
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the real MNIST files are not in {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.mark.parametrize(
    "split, n, counts", [("train", 60000, TRAIN_COUNTS), ("test", 10000, TEST_COUNTS)]
)
def test_real_mnist(shared_mnist, tmp_path, split, n, counts):
    images, labels = data.load("mnist", split, shared_mnist)
    assert images.shape == (n, 784) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int32
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels).tolist() == counts
    # The shared folder is read-only: the cache must have gone to JDFA_CACHE_DIR.
    assert list((tmp_path / "cache").glob(f"mnist-{split}.jdfa-*.npz"))
    assert not list(shared_mnist.glob("*.npz"))


@pytest.mark.parametrize("where", ["folder", "parent"])
def test_real_mnist_through_env(shared_mnist, monkeypatch, where):
    env = shared_mnist if where == "folder" else shared_mnist.parent
    monkeypatch.setenv("JDFA_DATA_DIR", str(env))
    _, labels = data.load("mnist", "test")
    assert np.bincount(labels).tolist() == TEST_COUNTS


# ------------------------------------------------------------------ cache


def test_second_load_comes_from_cache(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "d")
    first = data.load("mnist", "train", tmp_path / "d")
    assert len(list((tmp_path / "cache").glob("mnist-train.jdfa-*.npz"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(idx, "read_pair", no_decoding)
    second = data.load("mnist", "train", tmp_path / "d")
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


def test_changed_source_invalidates_cache(tmp_path):
    arrays = make_idx_dataset(tmp_path / "d")
    data.load("mnist", "test", tmp_path / "d")
    images_path = tmp_path / "d" / "t10k-images-idx3-ubyte.gz"
    stat = images_path.stat()
    new_images = 255 - arrays["test"][0]
    write_idx(images_path, new_images, gz=True)
    # Same size on disk is not guaranteed; force a different mtime anyway so
    # the test does not depend on the file system's clock resolution.
    os.utime(images_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    images, _ = data.load("mnist", "test", tmp_path / "d")
    np.testing.assert_array_equal(images, new_images.reshape(len(new_images), -1) / np.float32(255))
    assert len(list((tmp_path / "cache").glob("mnist-test.jdfa-*.npz"))) == 1


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    make_idx_dataset(tmp_path / "d")
    first, _ = data.load("mnist", "test", tmp_path / "d")
    (cached,) = (tmp_path / "cache").glob("mnist-test.jdfa-*.npz")
    cached.write_bytes(b"not a zip file")
    again, _ = data.load("mnist", "test", tmp_path / "d")
    np.testing.assert_array_equal(first, again)


def test_cache_goes_next_to_writable_sources_else_home(tmp_path, monkeypatch):
    monkeypatch.delenv("JDFA_CACHE_DIR")
    make_idx_dataset(tmp_path / "writable")
    data.load("mnist", "test", tmp_path / "writable")
    assert list((tmp_path / "writable").glob("mnist-test.jdfa-*.npz"))

    make_idx_dataset(tmp_path / "readonly")
    (tmp_path / "readonly").chmod(0o555)
    try:
        data.load("mnist", "test", tmp_path / "readonly")
        assert not list((tmp_path / "readonly").glob("*.npz"))
        assert list((tmp_path / "home" / ".cache" / "jdfa").glob("mnist-test.jdfa-*.npz"))
    finally:
        (tmp_path / "readonly").chmod(0o755)


def test_cache_fingerprint_tracks_size_and_mtime(tmp_path):
    source = tmp_path / "f"
    source.write_bytes(b"abc")
    before = cache.fingerprint([source])
    source.write_bytes(b"abcd")
    assert cache.fingerprint([source]) != before


# ----------------------------------------------------------- lookup order


def fail_download(*args, **kwargs):
    raise AssertionError("the download path was used although local files exist")


def test_explicit_data_dir_beats_env_beats_download(tmp_path, monkeypatch):
    explicit = make_idx_dataset(tmp_path / "explicit", seed=1)
    env = make_idx_dataset(tmp_path / "env", seed=2)
    monkeypatch.setenv("JDFA_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(data_tfds, "fetch", fail_download)

    _, labels = data.load("mnist", "train", tmp_path / "explicit")
    np.testing.assert_array_equal(labels, explicit["train"][1])
    _, labels = data.load("mnist", "train")
    np.testing.assert_array_equal(labels, env["train"][1])
    _, labels = data.load("mnist", "train", tmp_path / "empty")  # falls through to the env
    np.testing.assert_array_equal(labels, env["train"][1])

    downloaded = np.full((3, 28, 28, 1), 255, np.uint8), np.array([4, 5, 6])
    monkeypatch.setattr(data_tfds, "fetch", lambda name, split: downloaded)
    monkeypatch.delenv("JDFA_DATA_DIR")
    images, labels = data.load("mnist", "train")
    assert images.shape == (3, 784) and labels.tolist() == [4, 5, 6]


@pytest.mark.parametrize("how", ["data_dir", "env"])
def test_subfolder_named_after_dataset(tmp_path, monkeypatch, how):
    arrays = make_idx_dataset(tmp_path / "root" / "fashion_mnist")
    monkeypatch.setattr(data_tfds, "fetch", fail_download)
    if how == "env":
        monkeypatch.setenv("JDFA_DATA_DIR", str(tmp_path / "root"))
    _, labels = data.load("fashion_mnist", "test", tmp_path / "root" if how == "data_dir" else None)
    np.testing.assert_array_equal(labels, arrays["test"][1])


def test_folder_named_after_another_dataset_is_not_used(tmp_path, monkeypatch, no_tfds):
    make_idx_dataset(tmp_path / "mnist")
    monkeypatch.setenv("JDFA_DATA_DIR", str(tmp_path / "mnist"))
    with pytest.raises(DataError, match=r"mnist itself was not searched: it is named after"):
        data.load("fashion_mnist", "train")


def test_missing_everywhere_lists_every_place(tmp_path, monkeypatch, no_tfds):
    (tmp_path / "env").mkdir()
    images_only = tmp_path / "env" / "train-images-idx3-ubyte.gz"
    write_idx(images_only, np.zeros((2, 4, 4), np.uint8), gz=True)
    monkeypatch.setenv("JDFA_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DataError) as caught:
        data.load("mnist", "train", tmp_path / "nowhere")
    message = str(caught.value)
    for place in ["nowhere/mnist", "nowhere", "env/mnist"]:
        assert f"{tmp_path / place} (no such folder)" in message
    assert f"{tmp_path / 'env'} (missing train-labels-idx1-ubyte[.gz])" in message
    assert "tensorflow-datasets is not installed" in message
    assert "set JDFA_DATA_DIR or pass data_dir=" in message and "jdfa[tfds]" in message


def test_missing_without_any_folder_or_download(tmp_path):
    with pytest.raises(DataError) as caught:
        data.load("kmnist", "test", download=False)
    message = str(caught.value)
    assert "t10k-images-idx3-ubyte[.gz]" in message and "t10k-labels-idx1-ubyte[.gz]" in message
    assert "no data_dir was passed" in message and "JDFA_DATA_DIR is not set" in message
    assert "download=False" in message


def test_unknown_name_or_split():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, kmnist, notmnist, xor"):
        data.load("cifar10", "train")
    with pytest.raises(ValueError, match="valid splits: train, test"):
        data.load("mnist", "validation")


# --------------------------------------------------------------- notMNIST

CORRUPT = 3  # a zero-byte file, a truncated PNG and garbage bytes; see make_notmnist


def glyph(letter: str, i: int, side: int = 28) -> np.ndarray:
    """A distinct 28x28 grey image of `letter`: the i-th shifts and dims it."""
    image = Image.new("L", (side, side), 0)
    ImageDraw.Draw(image).text((4 + i, 6 + i), letter, fill=255 - 20 * i)
    return np.asarray(image)


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def make_notmnist(root: Path, variant: str, per_letter: int, damaged: bool = True):
    """notMNIST_<variant>/<letter>/*.png as in the real archives, plus damaged files.

    Returns (images uint8 (n, 28, 28), labels (n,)) of the good images in the
    order the loader must produce: sorted by path.
    """
    folder = root / f"notMNIST_{variant}"
    good = {}
    for label, letter in enumerate("ABCDEFGHIJ"):
        (folder / letter).mkdir(parents=True)
        for i in range(per_letter):
            name = f"{letter}/{variant}{i:02d}.png"
            good[name] = glyph(letter, i), label
            (folder / name).write_bytes(png_bytes(good[name][0]))
    if damaged:
        (folder / "A" / "empty.png").write_bytes(b"")
        (folder / "C" / "cut.png").write_bytes(png_bytes(glyph("C", 9))[:60])
        (folder / "E" / "garbage.png").write_bytes(os.urandom(200))
        (folder / "J" / "big.png").write_bytes(png_bytes(np.zeros((32, 32), np.uint8)))
    order = sorted(good)
    return np.stack([good[n][0] for n in order]), np.array([good[n][1] for n in order])


def tar_up(folder: Path) -> Path:
    archive = folder.with_name(folder.name + ".tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def decode_all(source: Path):
    with pytest.warns(UserWarning):
        return notmnist.decode_source(source)


@pytest.mark.parametrize("form", ["archive", "folder"])
def test_notmnist_decodes_and_counts_skipped_files(tmp_path, form):
    expected_images, expected_labels = make_notmnist(tmp_path / "src", "small", per_letter=4)
    source = tmp_path / "src" / "notMNIST_small"
    if form == "archive":
        source = tar_up(source)
    total = 40 + CORRUPT + 1
    with pytest.warns(UserWarning) as record:
        images, labels = notmnist.decode_source(source)
    assert [str(w.message) for w in record] == [
        "skipped 3 unreadable images and 1 image of the wrong size (not 28x28)"
        f" of {total} in {source.name}"
    ]
    assert images.shape == (40, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_notmnist_small_only_split_is_fixed_and_disjoint(tmp_path):
    make_notmnist(tmp_path, "small", per_letter=5)
    tar_up(tmp_path / "notMNIST_small")
    all_images, all_labels = decode_all(tmp_path / "notMNIST_small.tar.gz")
    with pytest.warns(UserWarning, match="skipped 3 unreadable images"):
        train_x, train_y = data.load("notmnist", "train", tmp_path)
    test_x, test_y = data.load("notmnist", "test", tmp_path)
    assert train_x.shape == (45, 784) and test_x.shape == (5, 784)
    assert train_x.dtype == np.float32 and train_y.dtype == np.int32
    assert 0.0 <= train_x.min() and train_x.max() <= 1.0

    train_index = notmnist.split_indices(50, "train")
    test_index = notmnist.split_indices(50, "test")
    assert not set(train_index) & set(test_index) and len(train_index) + len(test_index) == 50
    np.testing.assert_array_equal(train_y, all_labels[train_index])
    np.testing.assert_array_equal(test_x, all_images[test_index].reshape(5, -1) / np.float32(255))
    # Fixed: the same split from a fresh decode, and from the extracted folder.
    np.testing.assert_array_equal(notmnist.split_indices(50, "test"), test_index)
    (tmp_path / "notMNIST_small.tar.gz").unlink()
    with pytest.warns(UserWarning):
        _, folder_test_y = data.load("notmnist", "test", tmp_path)
    np.testing.assert_array_equal(folder_test_y, test_y)


def test_notmnist_large_is_train_and_small_is_test(tmp_path):
    _, small_labels = make_notmnist(tmp_path / "data", "small", per_letter=2, damaged=False)
    large_images, large_labels = make_notmnist(
        tmp_path / "data", "large", per_letter=3, damaged=False
    )
    tar_up(tmp_path / "data" / "notMNIST_large")
    train_x, train_y = data.load("notmnist", "train", tmp_path / "data")
    test_x, test_y = data.load("notmnist", "test", tmp_path / "data")
    assert train_x.shape == (30, 784) and test_x.shape == (20, 784)
    np.testing.assert_array_equal(train_x, large_images.reshape(30, -1) / np.float32(255))
    np.testing.assert_array_equal(train_y, large_labels)
    np.testing.assert_array_equal(test_y, small_labels)


def test_notmnist_cache_hit_does_not_decode_or_warn(tmp_path, monkeypatch):
    make_notmnist(tmp_path / "notmnist", "small", per_letter=2)
    with pytest.warns(UserWarning):
        first = data.load("notmnist", "test", tmp_path)  # found through the subfolder
    monkeypatch.setattr(notmnist, "decode_png", fail_download)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = data.load("notmnist", "test", tmp_path)
    np.testing.assert_array_equal(first[0], second[0])


def test_notmnist_missing_letter(tmp_path):
    make_notmnist(tmp_path, "small", per_letter=1, damaged=False)
    for file in (tmp_path / "notMNIST_small" / "D").iterdir():
        file.unlink()
    with pytest.raises(DataError, match="no readable images for letter\\(s\\) D"):
        notmnist.decode_source(tmp_path / "notMNIST_small")


def test_notmnist_damaged_archive(tmp_path):
    make_notmnist(tmp_path, "small", per_letter=2, damaged=False)
    archive = tar_up(tmp_path / "notMNIST_small")
    archive.write_bytes(archive.read_bytes()[:300])
    with pytest.raises(DataError, match="notMNIST_small.tar.gz is a corrupt or incomplete archive"):
        data.load("notmnist", "train", tmp_path)


def test_notmnist_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as caught:
        data.load("notmnist", "train", tmp_path / "nothing")
    message = str(caught.value)
    assert f"{tmp_path / 'nothing' / 'notmnist'}\n" in message
    assert f"could not download {notmnist.URL.format(variant='small')}" in message
    assert notmnist.URL.startswith("http://yaroslavvb.com/upload/notMNIST/")
    assert "set JDFA_DATA_DIR or pass data_dir=" in message
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_notmnist_download_lands_in_cache(tmp_path, monkeypatch):
    make_notmnist(tmp_path / "server", "small", per_letter=1, damaged=False)
    payload = tar_up(tmp_path / "server" / "notMNIST_small").read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    images, labels = data.load("notmnist", "train")
    assert images.shape == (9, 784)
    assert (tmp_path / "cache" / "notmnist" / "notMNIST_small.tar.gz").read_bytes() == payload


# -------------------------------------------------------------------- xor


@pytest.mark.parametrize("split", ["train", "test"])
def test_xor_truth_table(split):
    images, labels = data.load("xor", split)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(labels, [0, 1, 1, 0])


# ------------------------------------------------------------------- tfds


def test_tfds_download_path_for_real(tmp_path):
    pytest.importorskip("tensorflow_datasets", reason="needs jdfa[tfds] and internet")
    images, labels = data.load("mnist", "test")
    assert images.shape == (10000, 784) and images.dtype == np.float32
    assert np.bincount(labels).tolist() == TEST_COUNTS


def test_tfds_conversion_with_a_fake_module(monkeypatch):
    raw_images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28, 1)
    calls = []

    def fake_load(name, **kwargs):
        calls.append((name, kwargs))
        return ("images tensor", "labels tensor")

    fake = types.ModuleType("tensorflow_datasets")
    fake.load = fake_load
    fake.as_numpy = lambda tensors: (raw_images, np.array([7, 1], dtype=np.int64))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)

    images, labels = data.load("fashion_mnist", "test")
    arguments = {"split": "test", "batch_size": -1, "as_supervised": True, "data_dir": None}
    assert calls == [("fashion_mnist", arguments)]
    assert images.shape == (2, 784) and images.dtype == np.float32
    np.testing.assert_array_equal(images, raw_images.reshape(2, -1) / np.float32(255))
    assert labels.dtype == np.int32 and labels.tolist() == [7, 1]


def test_tfds_failure_becomes_data_error(monkeypatch):
    def offline_load(*args, **kwargs):
        raise ConnectionError("network unreachable")

    fake = types.ModuleType("tensorflow_datasets")
    fake.load, fake.as_numpy = offline_load, lambda tensors: tensors
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    with pytest.raises(DataError, match=r"tensorflow-datasets could not load 'mnist'.*unreachable"):
        data.load("mnist", "train")
