"""Checkpoints as ``.npz`` archives: numbers only, so loading a file never runs code.

PyTorch's ``torch.save`` pickles; a pickle can execute anything when loaded. tinybn keeps
a state_dict (names → numpy arrays) in numpy's zip-of-arrays format instead and loads it
with ``allow_pickle=False``: a file that holds Python objects is refused.

Saving is atomic: the archive is written to a temporary file in the target's folder,
flushed to disk, then renamed over the target, so an interrupted save leaves the old
checkpoint as it was. Loading reads each member's .npy header first and refuses anything
that is not an array of numbers, before reading the data (a small file cannot make it
read gigabytes).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinybn.files import write_atomically
from tinybn.tensor import Tensor

# names np.savez takes as its own keyword arguments, so they cannot be array names
_RESERVED = {"file", "allow_pickle"}
_NUMERIC_KINDS = "fiub"  # float, signed and unsigned int, bool: what save writes
# deflate cannot shrink data by more than about 1032:1; a member declaring more is forged
_MAX_DEFLATE_RATIO = 1100


def save(state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``state_dict`` (str → numpy array, Tensor or number) to ``path`` as .npz.

    The file is written at exactly ``path`` (np.savez would append ".npz" to a bare name),
    atomically: into a temporary file beside it, fsync'ed, then ``os.replace``'d over
    ``path``. If anything fails part-way, an existing file at ``path`` is left unchanged.
    Raises TypeError for a non-string key or a value that is not numeric (object arrays
    would need pickle), ValueError for a key np.savez reserves, IsADirectoryError or
    FileNotFoundError for a path that is a folder or in a folder that does not exist.

    Examples:
        >>> import os, tempfile
        >>> import tinybn as tb
        >>> from tinybn import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> tb.save(nn.BatchNorm1d(2).state_dict(), path)
        >>> sorted(tb.load(path))
        ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
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
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                f"save: {key!r} is not a numeric array (dtype {array.dtype}); only numbers "
                "can be saved without pickle"
            )
        arrays[key] = array
    try:
        write_atomically(path, lambda file: np.savez(file, **arrays))  # type: ignore[arg-type]
    except (IsADirectoryError, FileNotFoundError) as error:
        if error.filename is not None:  # an OSError of the file system, not our check
            raise
        raise type(error)(f"save: {error}") from None


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an .npz checkpoint written by ``save`` into a dict of numpy arrays (file order).

    Never runs code from the file (no pickle). Raises ValueError, saying what the file is,
    for anything but a zip of .npy arrays of numbers: an empty file, a pickle, a single
    .npy array, a ``torch.save`` file, a truncated or corrupt archive (a failed CRC check
    is reported as such), a member that is not an .npy array, or an array of Python
    objects. Each member's header is checked against its size in the archive before its
    data is read, and no more than the declared data is read.

    Examples:
        >>> import os, tempfile
        >>> import tinybn as tb
        >>> from tinybn import nn
        >>> path = os.path.join(tempfile.mkdtemp(), "bn.npz")
        >>> tb.save(nn.BatchNorm1d(2).state_dict(), path)
        >>> layer = nn.BatchNorm1d(2)
        >>> layer.load_state_dict(tb.load(path))
        LoadResult(missing_keys=[], unexpected_keys=[])
    """
    name = repr(os.fspath(path))
    with open(path, "rb") as file:
        start = file.read(8)
    if not start:
        raise ValueError(f"load: {name} is empty (0 bytes), not an .npz checkpoint")
    if start.startswith(b"\x93NUMPY"):
        raise ValueError(f"load: {name} holds a single .npy array, not an .npz state_dict")
    if start[:1] == b"\x80":
        raise ValueError(
            f"load: {name} is a Python pickle (as written by pickle or an old torch.save), "
            "not an .npz checkpoint; it will not be unpickled"
        )
    if not start.startswith(b"PK"):
        raise ValueError(
            f"load: {name} is not an .npz checkpoint (not a zip archive; it starts with {start!r})"
        )
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(
            f"load: {name} is a truncated or corrupt zip archive, not a readable .npz "
            f"checkpoint ({error})"
        ) from None
    with archive:
        members = archive.infolist()
        _check_member_names(members, name)
        state: dict[str, np.ndarray] = {}
        for member in members:
            state[member.filename[: -len(".npy")]] = _read_member(archive, member, name)
    return state


def _check_member_names(members: list[zipfile.ZipInfo], name: str) -> None:
    names = [m.filename for m in members]
    if any(n.endswith("data.pkl") for n in names):
        raise ValueError(
            f"load: {name} is a PyTorch torch.save file (a zip holding pickled data), not an "
            "npz checkpoint; it will not be unpickled. In PyTorch, save the state_dict as "
            "numpy arrays: tb.save({k: v.numpy() for k, v in sd.items()}, path)"
        )
    for n in names:
        if not n.endswith(".npy"):
            raise ValueError(
                f"load: {name} is a zip archive but not an .npz checkpoint: its member {n!r} "
                "is not an .npy array"
            )
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"load: {name} is a corrupt .npz: two members are named {duplicate!r}")


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str) -> np.ndarray:
    """One .npy member: header checked (numeric dtype, data size = the member's size),
    then exactly that many bytes read; a CRC or decompression error is reported as such."""
    key = member.filename[: -len(".npy")]
    if member.compress_type != zipfile.ZIP_STORED and (
        member.file_size > _MAX_DEFLATE_RATIO * member.compress_size + 4096
    ):
        raise ValueError(
            f"load: entry {key!r} of {name} claims {member.file_size} bytes from "
            f"{member.compress_size} compressed ones, more than compression can give: "
            "the file is corrupt or forged"
        )
    try:
        with archive.open(member) as stream:
            dtype, shape, fortran_order, header_size = _read_header(stream, key, name)
            expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if member.file_size != expected:
                raise ValueError(
                    f"load: entry {key!r} of {name} is corrupt: its header describes "
                    f"{expected} bytes ({dtype}, shape {shape}), the archive holds "
                    f"{member.file_size}"
                )
            stream.seek(0)  # read_array reads the header again
            array = np.lib.format.read_array(stream, allow_pickle=False)
            if stream.read(1):  # also completes the CRC check of the member
                raise ValueError(f"load: entry {key!r} of {name} has data past its array")
    except zipfile.BadZipFile as error:
        what = "fails its CRC check" if "CRC" in str(error) else "is corrupt"
        raise ValueError(
            f"load: entry {key!r} of {name} {what}: the file is damaged ({error})"
        ) from None
    except (EOFError, OSError, zlib.error) as error:
        raise ValueError(
            f"load: entry {key!r} of {name} is truncated or corrupt ({error})"
        ) from None
    except (ValueError, TypeError) as error:
        if str(error).startswith("load:"):
            raise
        raise ValueError(f"load: entry {key!r} of {name} is corrupt ({error})") from None
    return array


def _read_header(stream: Any, key: str, name: str) -> tuple[np.dtype, tuple, bool, int]:
    """(dtype, shape, fortran_order, header size in bytes) from an .npy header; ValueError
    for a non-numeric dtype (an object array would need pickle)."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    except ValueError as error:
        raise ValueError(
            f"load: entry {key!r} of {name} is not a valid .npy array ({error})"
        ) from None
    if dtype.hasobject:
        raise ValueError(
            f"load: entry {key!r} of {name} holds Python objects, which would need pickle "
            "to load; refused"
        )
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise ValueError(
            f"load: entry {key!r} of {name} is not an array of numbers (dtype {dtype}); refused"
        )
    return dtype, shape, fortran_order, stream.tell()


__all__ = ["save", "load"]
