"""Download path for the MNIST family through tensorflow-datasets.

Used only when the IDX files are not found locally. Needs the optional extra
`jdfa[tfds]` (tensorflow-datasets and tensorflow) and internet on first use;
tensorflow-datasets keeps its own copy afterwards (in `~/tensorflow_datasets`
or `$TFDS_DATA_DIR`). The import is lazy so that `jdfa` never needs
TensorFlow otherwise.
"""

import numpy as np

from .errors import DataError


def fetch(name: str, split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load `split` of the TFDS dataset `name` ("mnist", "fashion_mnist", "kmnist").

    `data_dir` is tensorflow-datasets' own storage folder (None: its default).
    Returns (images uint8 (n, 28, 28, 1), labels int64 (n,)) as NumPy arrays.
    Raises DataError if tensorflow-datasets is not installed or fails (e.g.
    offline); the message carries the reason.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError(
            f"tensorflow-datasets is not installed ({err}); install jdfa[tfds]"
        ) from err
    try:
        images, labels = tfds.as_numpy(
            tfds.load(name, split=split, batch_size=-1, as_supervised=True, data_dir=data_dir)
        )
    # tensorflow-datasets surfaces network, checksum and TensorFlow failures
    # as many unrelated types; all of them mean "the download path failed".
    except Exception as err:
        raise DataError(
            f"tensorflow-datasets could not load {name!r} split {split!r}: {err}"
        ) from err
    return np.asarray(images), np.asarray(labels)
