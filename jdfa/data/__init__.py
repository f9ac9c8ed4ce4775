"""Datasets for jdfa: MNIST, Fashion-MNIST, KMNIST, notMNIST and XOR (images and labels), and the
byte-level text corpus ``sotu`` (tokens and next tokens, `jdfa.data.text`).

    images, labels = jdfa.data.load("mnist", "train")
    tokens, next_tokens = jdfa.data.load("sotu", "train", context=64)

Files are looked for in `data_dir`, then `$JDFA_DATA_DIR` (directly or in a
subfolder named after the dataset); if absent they are downloaded
(tensorflow-datasets for the MNIST family, the original archive for
notMNIST; the text corpus is never downloaded: its error says how to get
it). Decoded arrays are cached as `.npz` in `$JDFA_CACHE_DIR`, else
next to the source files if writable, else `~/.cache/jdfa`. Every problem
with the data raises `DataError`, whose message says what to do.
"""

import os

import numpy as np

from . import mnist, notmnist, text
from .errors import DataError
from .locate import DATASETS

__all__ = ["DATASETS", "SPLITS", "TEXT_DATASETS", "DataError", "load", "vocabulary", "xor"]

SPLITS = ("train", "test")
TEXT_DATASETS = (text.NAME,)  # examples of tokens, labels the next tokens


def vocabulary(name: str) -> int | None:
    """The number of token values of text dataset ``name`` (`TEXT_DATASETS`: 256, the byte values,
    not only those its text uses), so every language model of it has the same output size; None for
    a dataset of images and class labels."""
    return text.VOCAB if name in TEXT_DATASETS else None


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The XOR truth table: images float32 (4, 2), labels int32 (4,) = [0, 1, 1, 0]."""
    images = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    labels = np.array([0, 1, 1, 0], dtype=np.int32)
    return images, labels


def _to_model_arrays(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Every loader hands over raw bytes; scaling happens here only, so no
    # source can end up in [0, 255] by mistake.
    if images.dtype != np.uint8:
        raise DataError(f"expected uint8 pixels from the loader, got {images.dtype}")
    flat = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return flat, labels.astype(np.int32)


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    context: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the `split` ("train" or "test") of dataset `name` (see DATASETS).

    Returns (images, labels) as NumPy arrays: images float32 (n, features) in
    [0, 1] (784 features for the 28x28 datasets, 2 for xor), labels int32
    (n,) in 0..9 (0..1 for xor). `xor` is the 4-row truth table for either
    split. A text dataset (`TEXT_DATASETS`) gives int32 (n, context) tokens and the next token
    at each position (`jdfa.data.text`). `data_dir` is searched first, then `$JDFA_DATA_DIR`; with
    `download=False` nothing is fetched. Raises ValueError for an unknown
    name or split and DataError (a ValueError) for missing or bad data.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if name == "xor":
        return xor()
    if name in TEXT_DATASETS:
        return text.load(split, data_dir, context)
    if name == "notmnist":
        return _to_model_arrays(*notmnist.load(split, data_dir, download))
    return _to_model_arrays(*mnist.load(name, split, data_dir, download))
