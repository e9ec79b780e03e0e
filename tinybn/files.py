"""Writing files so that a reader never sees half of one: write beside, fsync, rename.

``write_atomically(path, write)`` hands ``write`` a temporary file in ``path``'s folder,
flushes it to disk, then ``os.replace``s it over ``path`` (atomic on POSIX and Windows).
If ``write`` fails or is interrupted, the temporary file is removed and an existing file
at ``path`` is left as it was. Used by ``tb.save``, the demos' results.json and the
benchmarks' results.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary binary file, then move it to ``path`` whole.

    Raises IsADirectoryError if ``path`` is a folder and FileNotFoundError if its folder
    does not exist (both before anything is written).
    """
    target = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise IsADirectoryError(f"{os.fspath(path)!r} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder {folder!r} does not exist")
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _new_file_mode(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """``Path(path).write_text(text)`` (UTF-8), atomically."""
    data = text.encode("utf-8")
    write_atomically(path, lambda file: None if file.write(data) else None)


def unwritable_folder_reason(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written in ``folder`` (creating it if needed), or None if they can.

    The reason is one line, e.g. "is a file, not a folder" or "Permission denied"; it is
    found by trying (creating the folder, then a temporary file in it), so it is right
    also for read-only file systems and for root.
    """
    folder = os.fspath(folder)
    if folder == "":
        return "is empty; give a folder name (use . for the current folder)"
    if os.path.exists(folder) and not os.path.isdir(folder):
        return "is a file, not a folder"
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"cannot be written: {error.strerror or error}"
    return None


def _new_file_mode(target: str) -> int:
    """The permissions ``open(target, "w")`` would give: the existing file's, or 0o666 less
    the umask (mkstemp makes its file 0o600)."""
    try:
        return os.stat(target).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: str) -> None:
    """Flush the rename to disk too (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


__all__ = ["write_atomically", "write_text_atomically", "unwritable_folder_reason"]
