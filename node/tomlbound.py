"""TOML config files, parsed only once their size and nesting are known to be bounded.

``tomllib`` recurses once per nested array or inline table, so a config file of a few
hundred kilobytes of ``[`` raises ``RecursionError`` instead of a parse error. Like JSON
from outside (``ledger.jsonbound``), a config is therefore measured first, by a scan
that does not recurse, and only then parsed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ledger.errors import BadEncoding, Oversized, TooDeep
from ledger.files import read_bounded

# Strings and comments are matched whole so the brackets inside them are skipped; an
# unterminated one runs to the end of the input (its closing is optional), so no input
# makes the scan restart at every quote. Each character matches one way only: linear.
_TOKENS = re.compile(
    rb'"""(?:[^"\\]|\\.|"(?!""))*(?:""")?'  # multi-line basic string
    rb"|'''(?:[^']|'(?!''))*(?:''')?"  # multi-line literal string
    rb'|"(?:[^"\\\n]|\\.)*"?'  # basic string
    rb"|'[^'\n]*'?"  # literal string
    rb"|#[^\n]*"  # comment
    rb"|[\[\]{}]",
    re.DOTALL,
)
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays, inline tables and table headers in ``data``.

    Iterative and linear in the input; malformed input still gets a number (the parser
    that runs next says what is wrong with it)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        first = match.group()[0]
        if first in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif first in _CLOSERS:
            depth -= 1
    return deepest


def loads(data: bytes, *, max_bytes: int, max_depth: int, what: str = "TOML document") -> dict[str, Any]:
    """``tomllib.loads`` for input from outside: size, then depth, then the parse.

    Raises ``Oversized``, ``TooDeep`` or ``BadEncoding``, each naming ``what``."""
    if len(data) > max_bytes:
        raise Oversized(f"{what}: {len(data)} bytes exceeds the limit of {max_bytes}")
    if data.count(b"[") + data.count(b"{") > max_depth and (depth := nesting_depth(data)) > max_depth:
        raise TooDeep(f"{what}: nested {depth} levels deep, the limit is {max_depth}")
    try:
        return tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadEncoding(f"{what} is not valid TOML: {exc}") from None


def load(path: Path, *, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """A TOML file, refused unread if larger than ``max_bytes``; errors name the file
    (``OSError`` is the caller's to report)."""
    return loads(read_bounded(path, max_bytes), max_bytes=max_bytes, max_depth=max_depth, what=str(path))
