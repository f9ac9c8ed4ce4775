"""notMNIST (Yaroslav Bulatov, 2011): letters A..J in many fonts, 28x28 grey.

Not in tensorflow-datasets. Accepted sources, in a data folder (see
`jdfa.data.locate`): `notMNIST_small.tar.gz` and `notMNIST_large.tar.gz`, or
their extracted folders `notMNIST_small/` and `notMNIST_large/` (the archive
is preferred when both exist). Either holds one folder per letter A..J of
28x28 greyscale PNGs; the label is the letter's index, A=0 .. J=9. The tar is
read directly, without extracting.

The real archives contain some unreadable PNGs (empty or cut short). They,
and any image that is not 28x28, are skipped, with one warning that counts
them; the warning is given when a source is decoded, not on cache hits.

Splits: with both variants present, train = large and test = small, the
common practice (small was cleaned by hand, large was not; the two are
known to share some images). With only one present, it is split 90/10 by a fixed
permutation, `numpy.random.default_rng(0).permutation(n)`: its first
`n // 10` indices are the test split, the rest the train split, each kept in
file order. The split is not stratified.

With `download=True` and no local copy, `notMNIST_small.tar.gz` (about 8 MB)
is fetched from the original URL into `<cache root>/notmnist` (see
`jdfa.data.cache.root`); fetch the large one with `fetch_archive("large", folder)`.
"""

import io
import os
import shutil
import tarfile
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from . import cache, locate
from .errors import DataError

URL = "http://yaroslavvb.com/upload/notMNIST/notMNIST_{variant}.tar.gz"
VARIANTS = ("small", "large")
LETTERS = tuple("ABCDEFGHIJ")
SIDE = 28
SPLIT_SEED = 0
TEST_FRACTION_DENOMINATOR = 10


def find_sources(folder: Path) -> dict[str, Path]:
    """The notMNIST sources in `folder`: {"small": path, "large": path}, either may be absent."""
    sources = {}
    for variant in VARIANTS:
        archive = folder / f"notMNIST_{variant}.tar.gz"
        extracted = folder / f"notMNIST_{variant}"
        if archive.is_file():
            sources[variant] = archive
        elif extracted.is_dir():
            sources[variant] = extracted
    return sources


def _label(relative_name: str) -> int | None:
    # Only `<letter>/<file>.png` counts; whatever sits above the letter
    # folders (e.g. `notMNIST_small/` or `./`) is ignored.
    parts = PurePosixPath(relative_name).parts
    if len(parts) < 2 or not parts[-1].lower().endswith(".png") or parts[-2] not in LETTERS:
        return None
    return LETTERS.index(parts[-2])


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and _label(member.name) is not None:
                    yield member.name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(
            f"{path} is a corrupt or incomplete archive ({err}). Delete it and "
            f"download it again from {URL.format(variant='small')} (or _large)."
        ) from err


def _folder_members(path: Path) -> Iterator[tuple[str, bytes]]:
    for file in sorted(path.glob("*/*")):
        name = file.relative_to(path).as_posix()
        if file.is_file() and _label(name) is not None:
            yield name, file.read_bytes()


def decode_png(data: bytes) -> np.ndarray | None:
    """Decode PNG bytes to a uint8 greyscale array (h, w); None if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8)
    # Damaged files make Pillow raise OSError, SyntaxError, ValueError,
    # struct.error and more, depending on where the damage is.
    except Exception:
        return None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def decode_source(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode every PNG of a notMNIST archive or extracted folder.

    Returns (images uint8 (n, 28, 28), labels uint8 (n,)) sorted by file
    path, so the order is deterministic. Skipped files are counted in one
    warning. Raises DataError if the archive is damaged or a letter has no
    readable image (not the notMNIST layout).
    """
    members = _tar_members(path) if path.is_file() else _folder_members(path)
    # Decode while streaming and sort the small results, so the encoded
    # bytes of a whole archive are never held at once.
    results = sorted(((name, decode_png(data)) for name, data in members), key=lambda r: r[0])
    decoded, unreadable, wrong_size, total = [], 0, 0, len(results)
    for name, image in results:
        if image is None:
            unreadable += 1
        elif image.shape != (SIDE, SIDE):
            wrong_size += 1
        else:
            decoded.append((image, _label(name)))
    if unreadable or wrong_size:
        skipped = []
        if unreadable:
            skipped.append(_plural(unreadable, "unreadable image"))
        if wrong_size:
            skipped.append(f"{_plural(wrong_size, 'image')} of the wrong size (not {SIDE}x{SIDE})")
        warnings.warn(f"skipped {' and '.join(skipped)} of {total} in {path.name}", stacklevel=2)

    images = np.array([image for image, _ in decoded], dtype=np.uint8).reshape(-1, SIDE, SIDE)
    labels = np.array([label for _, label in decoded], dtype=np.uint8)
    empty = [LETTERS[i] for i, count in enumerate(np.bincount(labels, minlength=len(LETTERS))) if count == 0]
    if empty:
        raise DataError(
            f"{path} has no readable images for letter(s) {', '.join(empty)}. A notMNIST "
            f"source holds one folder per letter A..J of {SIDE}x{SIDE} PNGs; "
            f"download a complete one from {URL.format(variant='small')} (or _large)."
        )
    return images, labels


def split_indices(n: int, split: str) -> np.ndarray:
    """Indices (int64, sorted) of `split` in the fixed 90/10 split of n examples."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = n // TEST_FRACTION_DENOMINATOR
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def _decode_cached(variant: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    def build():
        images, labels = decode_source(path)
        return {"images": images, "labels": labels}

    arrays = cache.cached(f"notmnist-{variant}", [path], build)
    return arrays["images"], arrays["labels"]


def select(sources: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (n, 28, 28) and labels uint8 (n,) of `split` from `sources`."""
    if len(sources) == 2:
        variant = "large" if split == "train" else "small"
        return _decode_cached(variant, sources[variant])
    ((variant, path),) = sources.items()
    images, labels = _decode_cached(variant, path)
    keep = split_indices(len(labels), split)
    return images[keep], labels[keep]


def fetch_archive(variant: str, folder: Path) -> Path:
    """Fetch `notMNIST_<variant>.tar.gz` from the original URL into `folder`.

    Returns the archive's path. Raises DataError when offline or the server
    fails; nothing partial is left behind.
    """
    url = URL.format(variant=variant)
    destination = Path(folder) / f"notMNIST_{variant}.tar.gz"
    partial = destination.with_name(f"{destination.name}.part")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
        os.replace(partial, destination)
    except OSError as err:  # URLError and socket timeouts are OSErrors
        partial.unlink(missing_ok=True)
        raise DataError(f"could not download {url} ({err})") from err
    return destination


def download_dir() -> Path:
    """Where `load` puts a downloaded archive: `<cache root>/notmnist`."""
    return cache.root() / "notmnist"


def load(
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load `split` ("train" or "test") of notMNIST.

    Searches the folders of `locate.candidates`, then `download_dir()`; the
    first folder holding any notMNIST source is used. If none does and
    `download` is true, fetches the small archive. Returns (images uint8
    (n, 28, 28), labels uint8 (n,)). Raises DataError when nothing is found.
    """
    looked = []
    for folder in [*locate.candidates("notmnist", data_dir), download_dir()]:
        sources = find_sources(folder) if folder.is_dir() else {}
        if sources:
            return select(sources, split)
        looked.append(f"  - {folder}\n")

    if download:
        try:
            archive = fetch_archive("small", download_dir())
        except DataError as err:
            reason, cause = f"The download failed: {err}.", err
        else:
            return select({"small": archive}, split)
    else:
        reason, cause = "Downloading was turned off (download=False).", None
    notes = locate.search_notes("notmnist", data_dir)
    raise DataError(
        "notMNIST not found: looked for notMNIST_small.tar.gz, notMNIST_large.tar.gz "
        f"or their extracted folders in:\n{''.join(looked)}{notes}"
        f"{reason}\n"
        "To fix: on a machine with internet, download "
        f"{URL.format(variant='small')} (and/or _large), then put it in a folder "
        "and set JDFA_DATA_DIR or pass data_dir= (--data-dir on the command line) to that "
        "folder (or to its parent, with the files in a subfolder named 'notmnist')."
    ) from cause
