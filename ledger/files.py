"""Files from outside, read only up to a size known in advance.

A file larger than any valid one of its kind is refused by its size, before a byte of it
is read; one that grows while it is read is cut off one byte past the limit. What the
file holds is then parsed by a bounded reader (``ledger.jsonbound`` for JSON).
"""

from __future__ import annotations

import os
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
