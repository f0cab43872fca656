"""Files from outside, read only up to a size known in advance; files written whole.

A file larger than any valid one of its kind is refused by its size, before a byte of it
is read; one that grows while it is read is cut off one byte past the limit. What the
file holds is then parsed by a bounded reader (``ledger.jsonbound`` for JSON). A file is
written with :func:`write_atomic`: a reader sees the old file or the new one, never part.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ledger import jsonbound
from ledger.errors import Oversized
from ledger.genesis import Genesis, max_genesis_json_bytes


def read_bounded(path: Path, max_bytes: int, *, what: str | None = None) -> bytes:
    """The bytes of ``path``, or ``Oversized`` (naming ``what``, else the path) if there
    are more than ``max_bytes``. ``OSError`` is the caller's to report."""
    name = str(path) if what is None else what
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size  # 0 for pipes and devices: the read below still bounds them
        if size > max_bytes:
            raise Oversized(f"{name}: {size} bytes exceeds the limit of {max_bytes}")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Oversized(f"{name}: more than {max_bytes} bytes, the limit")
    return data


def load_json(path: Path, *, max_bytes: int, max_depth: int, what: str | None = None) -> Any:
    """A JSON file, bounded in size before it is read and in depth before it is parsed
    (``Oversized``, ``TooDeep``, ``BadEncoding``; ``OSError`` is the caller's)."""
    name = str(path) if what is None else what
    return jsonbound.loads(read_bounded(path, max_bytes, what=name), max_bytes=max_bytes, max_depth=max_depth,
                           what=name)


def load_genesis(path: Path) -> Genesis:
    """A genesis file, refused unread if larger than any genesis can be (``Oversized``),
    then parsed by :meth:`Genesis.from_json`; messages name the file."""
    return Genesis.from_json(read_bounded(path, max_genesis_json_bytes()), what=str(path))


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, replace: bool = True) -> None:
    """Write ``data`` to a new file of ``mode`` beside ``path``, synced, then put it at
    ``path`` and sync the directory. The new file is created owner-only and only then
    given ``mode``, so a secret (mode 0600) is never readable by others, not even for a
    moment; whatever was at ``path`` (a file of another mode, a link) is replaced, never
    written through. ``replace=False``: refuse with ``FileExistsError`` if anything is at
    ``path``, even one that appears meanwhile (the new file is linked in, and a link
    never replaces)."""
    if not replace and os.path.lexists(path):
        raise FileExistsError(f"{path} exists; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode != 0o600:
                os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} exists; refusing to replace it") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by its path (a directory: the entries made in it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
