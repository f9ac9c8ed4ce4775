"""Where dataset files are looked for on disk.

Search order: the explicit `data_dir`, then `$JDFA_DATA_DIR`. Each may hold
the files directly or in a subfolder named after the dataset, so both
`JDFA_DATA_DIR=/data` (with `/data/mnist/...`) and `JDFA_DATA_DIR=/data/mnist`
work. The subfolder is tried first. A base folder named after a *different*
dataset is not searched directly: MNIST, Fashion-MNIST and KMNIST use the
same file names, and `JDFA_DATA_DIR=/data/mnist` must not make
`load("fashion_mnist", ...)` return MNIST digits.
"""

import os
from pathlib import Path

DATASETS = ("mnist", "fashion_mnist", "kmnist", "notmnist", "xor", "sotu")


def _bases(data_dir: str | os.PathLike | None) -> list[Path]:
    given = [data_dir, os.environ.get("JDFA_DATA_DIR") or None]
    return [Path(base).expanduser() for base in given if base is not None]


def _named_after_other(name: str, base: Path) -> bool:
    return base.name.lower() in DATASETS and base.name.lower() != name


def candidates(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """Folders that may hold dataset `name`, in search order.

    For each of `data_dir` and `$JDFA_DATA_DIR` that is given: `<base>/<name>`,
    then `<base>` unless it is named after another dataset. The folders need
    not exist; callers check.
    """
    found = []
    for base in _bases(data_dir):
        found.append(base / name)
        if not _named_after_other(name, base):
            found.append(base)
    return found


def search_notes(name: str, data_dir: str | os.PathLike | None) -> str:
    """Lines for error messages on the places `candidates` left out, and why."""
    notes = []
    if data_dir is None:
        notes.append("no data_dir was passed")
    if not os.environ.get("JDFA_DATA_DIR"):
        notes.append("JDFA_DATA_DIR is not set")
    notes += [
        f"{base} itself was not searched: it is named after another dataset"
        for base in _bases(data_dir)
        if _named_after_other(name, base)
    ]
    return "".join(f"  ({note})\n" for note in notes)
