"""Atomic file writes: the one way this project writes a file that must never be half-written.

A crash at any moment leaves either the old file or the new one, never a torn mix: the data
goes to a temporary file in the same directory, is fsynced, and is renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes"]


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], None],
    *,
    text: bool = False,
    previous: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``path`` atomically with ``write(file)``.

    :param path: the target file; its directory is created if needed.
    :param write: called once with the open temporary file (binary, or text with
        ``newline=""`` when ``text``).
    :param text: open the temporary file in text mode (UTF-8).
    :param previous: if given and ``path`` exists, the old file is renamed to this path only
        after the new one is complete, so a crash keeps at least one whole file.
    :return: ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mode = "w" if text else "wb"
        encoding = "utf-8" if text else None
        with os.fdopen(fd, mode, encoding=encoding, newline="" if text else None) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide run outputs from other users
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, previous: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(data), previous=previous)
