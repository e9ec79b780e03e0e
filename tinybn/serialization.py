"""Checkpoints as ``.npz`` archives: numbers only, so loading a file never runs code.

PyTorch's ``torch.save`` pickles; a pickle can execute anything when loaded. tinybn keeps
a state_dict (names → numpy arrays) in numpy's zip-of-arrays format instead and loads it
with ``allow_pickle=False``: a file that holds Python objects is refused.
"""

from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinybn.tensor import Tensor

# names np.savez takes as its own keyword arguments, so they cannot be array names
_RESERVED = {"file", "allow_pickle"}


def save(state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``state_dict`` (str → numpy array, Tensor or number) to ``path`` as .npz.

    The file is written at exactly ``path`` (np.savez would append ".npz" to a bare name).
    Raises TypeError for a non-string key or a value that is not numeric (object arrays
    would need pickle), ValueError for a key np.savez reserves.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save: expected a mapping of names to arrays, got {type(state_dict)}")
    arrays = OrderedDict()
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"save: keys must be strings, got {key!r}")
        if key in _RESERVED:
            raise ValueError(f"save: {key!r} cannot be used as an array name in an .npz file")
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if array.dtype.kind not in "fiub":
            raise TypeError(
                f"save: {key!r} is not a numeric array (dtype {array.dtype}); only numbers "
                "can be saved without pickle"
            )
        arrays[key] = array
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an .npz checkpoint written by ``save`` into a dict of numpy arrays (file order).

    Uses ``allow_pickle=False``: an archive holding object arrays, or a pickle file, raises
    ValueError naming the file, and no code from the file is run.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:  # numpy refuses pickled data with a ValueError
        raise ValueError(
            f"load: {os.fspath(path)!r} is not a numeric .npz checkpoint and will not be "
            f"unpickled ({error})"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"load: {os.fspath(path)!r} holds a single .npy array, not an .npz state_dict"
        )
    with archive:
        state: dict[str, np.ndarray] = {}
        for key in archive.files:
            try:
                state[key] = archive[key]
            except (ValueError, zipfile.BadZipFile) as error:
                raise ValueError(
                    f"load: entry {key!r} of {os.fspath(path)!r} holds Python objects, which "
                    f"would need pickle to load; refused ({error})"
                ) from None
    return state


__all__ = ["save", "load"]
