"""MNIST, Fashion-MNIST and KMNIST: IDX files on disk, else tensorflow-datasets.

All three use the same four file names, plain or gzipped:
`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte` (`.gz` optional; a plain file is preferred when
both exist). Decoded files are cached as `.npz` (see `jdfa.data.cache`).
"""

import os
from pathlib import Path

import numpy as np

from . import cache, idx, locate
from . import tfds as _tfds
from .errors import DataError

NAMES = ("mnist", "fashion_mnist", "kmnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_file(folder: Path, stem: str) -> Path | None:
    """`folder/stem` or `folder/stem.gz`, whichever exists first; else None."""
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _read_cached(name: str, split: str, images_path: Path, labels_path: Path):
    def build():
        images, labels = idx.read_pair(images_path, labels_path)
        return {"images": images, "labels": labels}

    arrays = cache.cached(f"{name}-{split}", [images_path, labels_path], build)
    return arrays["images"], arrays["labels"]


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load `split` ("train" or "test") of `name` (one of NAMES).

    Searches the folders of `locate.candidates`, then (if `download`) falls
    back to tensorflow-datasets. Returns (images uint8 (n, 28, 28) or
    (n, 28, 28, 1), labels integer (n,)). Raises DataError when the data is
    nowhere to be found or is damaged.
    """
    stems = FILES[split]
    looked = []
    for folder in locate.candidates(name, data_dir):
        if not folder.is_dir():
            looked.append(f"  - {folder} (no such folder)\n")
            continue
        found = [find_file(folder, stem) for stem in stems]
        if None not in found:
            return _read_cached(name, split, *found)
        missing = " and ".join(f"{s}[.gz]" for s, f in zip(stems, found) if f is None)
        looked.append(f"  - {folder} (missing {missing})\n")

    if download:
        try:
            return _tfds.fetch(name, split)
        except DataError as err:
            reason, cause = f"The download path failed: {err}.", err
    else:
        reason, cause = "Downloading was turned off (download=False).", None
    raise DataError(
        f"{name} {split!r} split not found: looked for {stems[0]}[.gz] and "
        f"{stems[1]}[.gz] in:\n{''.join(looked)}{locate.search_notes(name, data_dir)}"
        f"{reason}\n"
        f"To fix: set JDFA_DATA_DIR or pass data_dir= (--data-dir on the command line) "
        f"to a folder holding these files, directly or in a subfolder named {name!r}; or install jdfa[tfds] "
        f"on a machine with internet so that tensorflow-datasets downloads them."
    ) from cause
