"""On-disk cache of decoded datasets, so that a second load is fast.

Decoded arrays are kept as an uncompressed `.npz` file. Where it goes:

1. `$JDFA_CACHE_DIR`, if set;
2. else the folder holding the source files, if it is writable;
3. else `~/.cache/jdfa`.

A folder whose permission bits deny writing counts as read-only even for root
(who may write anywhere), so a read-only shared data folder is never written
to. The cache file's name comes from the source paths; inside it is stored a
fingerprint of the sources (size and modification time of each file; for a
folder, of its immediate subfolders too). When a source changes, the
fingerprint no longer matches and the file is rebuilt in place, so a replaced
file is never served stale and old entries do not pile up. Editing a file
inside an extracted folder without adding, removing or renaming any file is
not detected; delete the cache file in that case.
"""

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

_FINGERPRINT = "_fingerprint"


def root() -> Path:
    """The per-user cache folder: `$JDFA_CACHE_DIR`, else `~/.cache/jdfa`."""
    env = os.environ.get("JDFA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "jdfa"


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def fingerprint(sources: Sequence[Path]) -> str:
    """A string that changes whenever one of the `sources` changes.

    Made of each source's resolved path, size and mtime in nanoseconds; for a
    folder also those of its immediate subfolders, whose mtimes change when
    files are added, removed or renamed in them.
    """
    entries = []
    for source in sources:
        source = Path(source).resolve()
        items = [source]
        if source.is_dir():
            items += sorted(p for p in source.iterdir() if p.is_dir())
        for item in items:
            stat = item.stat()
            entries.append([str(item), stat.st_size, stat.st_mtime_ns])
    return json.dumps(entries)


def location(label: str, sources: Sequence[Path]) -> Path:
    """The cache file for `label` (e.g. "mnist-train") built from `sources`."""
    resolved = [str(Path(s).resolve()) for s in sources]
    digest = hashlib.sha256("\n".join(resolved).encode()).hexdigest()[:16]
    if os.environ.get("JDFA_CACHE_DIR"):
        folder = root()
    else:
        beside = Path(resolved[0]).parent
        folder = beside if _writable(beside) else root()
    return folder / f"{label}.jdfa-{digest}.npz"


def _read(path: Path, expected: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as stored:
            if str(stored[_FINGERPRINT]) != expected:
                return None
            return {k: stored[k] for k in stored.files if k != _FINGERPRINT}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        # Missing, half-written or foreign file: rebuilding is always safe.
        return None


def _write(path: Path, arrays: dict[str, np.ndarray], stamp: str) -> None:
    # Write to a private temporary name and rename, so a concurrent reader or
    # an interrupted run never sees a partial file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, **{_FINGERPRINT: np.array(stamp)})
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        warnings.warn(
            f"could not write the dataset cache {path} ({err}); the data will be "
            "decoded again next time. Set JDFA_CACHE_DIR to a writable folder.",
            stacklevel=3,
        )


def cached(
    label: str,
    sources: Sequence[Path],
    build: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Return `build()`'s arrays, from the cache when `sources` are unchanged.

    `label` names the entry (e.g. "mnist-train"); `sources` are the files or
    folders `build` reads. On a miss `build` is called and its result stored.
    Returns a dict of arrays with the dtypes and shapes `build` produced.
    """
    path = location(label, sources)
    stamp = fingerprint(sources)
    arrays = _read(path, stamp)
    if arrays is None:
        arrays = build()
        _write(path, arrays, stamp)
    return arrays
