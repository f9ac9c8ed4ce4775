"""Reader for the IDX files of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a 4-byte big-endian magic number 0x000008NN (0x08 = unsigned
bytes, NN = number of dimensions), NN big-endian uint32 sizes, then the data
in C order. The files may be gzip-compressed; that is detected from the
content, not the file name.
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """Return the content of `path`, gunzipped if it is gzip data.

    Raises DataError if the gzip stream is corrupt or cut short.
    """
    raw = Path(path).read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(
            f"{path} is a corrupt or incomplete gzip file ({err}). "
            "Delete it and download it again."
        ) from err


def parse(buf: bytes, magic: int, source: str) -> np.ndarray:
    """Decode the IDX bytes `buf` into a uint8 array.

    `magic` is the expected magic number (IMAGES_MAGIC or LABELS_MAGIC); it
    fixes the number of dimensions. `source` names the file in messages.
    Returns a writable uint8 array whose shape is read from the header, e.g.
    (n, rows, cols) for images and (n,) for labels. Raises DataError on a
    wrong magic number or when the header's sizes disagree with the length.
    """
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(buf) < 4:
        raise DataError(
            f"{source} is truncated: {len(buf)} bytes, too short for an IDX header. "
            "Download it again."
        )
    (found,) = struct.unpack(">I", buf[:4])
    if found != magic:
        raise DataError(
            f"{source} has magic number 0x{found:08x}, expected 0x{magic:08x} "
            f"(unsigned bytes, {ndim}-D). Is it an IDX "
            f"{'image' if magic == IMAGES_MAGIC else 'label'} file? Check that "
            "image and label files are not swapped and that the file is not damaged."
        )
    if len(buf) < header:
        raise DataError(
            f"{source} is truncated: {len(buf)} bytes, the header alone needs {header}. "
            "Download it again."
        )
    shape = struct.unpack(f">{ndim}I", buf[4:header])
    expected = header + math.prod(shape)
    if len(buf) != expected:
        problem = "is truncated" if len(buf) < expected else "has trailing bytes"
        raise DataError(
            f"{source} {problem}: its header declares shape {shape}, "
            f"{expected} bytes in all, but the data is {len(buf)} bytes. "
            "Download it again."
        )
    return np.frombuffer(buf, np.uint8, offset=header).reshape(shape).copy()


def read_images(path: Path) -> np.ndarray:
    """Read an IDX image file (plain or gzipped): uint8 (n, rows, cols)."""
    return parse(read_bytes(path), IMAGES_MAGIC, str(path))


def read_labels(path: Path) -> np.ndarray:
    """Read an IDX label file (plain or gzipped): uint8 (n,)."""
    return parse(read_bytes(path), LABELS_MAGIC, str(path))


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files.

    Returns (images uint8 (n, rows, cols), labels uint8 (n,)). Raises
    DataError if the two files hold different numbers of examples.
    """
    images = read_images(images_path)
    labels = read_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels. The two files come from different datasets "
            "or releases, or one is damaged; replace both with a matching pair."
        )
    return images, labels
