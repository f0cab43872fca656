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

from ledger.errors import BadEncoding
from ledger.files import read_bounded
from ledger.jsonbound import bracket_depth, check_bounds

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


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays, inline tables and table headers in ``data``."""
    return bracket_depth(data, _TOKENS)


def loads(data: bytes, *, max_bytes: int, max_depth: int, what: str = "TOML document") -> dict[str, Any]:
    """``tomllib.loads`` for input from outside: size, then depth, then the parse.

    Raises ``Oversized``, ``TooDeep`` or ``BadEncoding``, each naming ``what``."""
    check_bounds(data, max_bytes=max_bytes, max_depth=max_depth, what=what, tokens=_TOKENS)
    try:
        return tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadEncoding(f"{what} is not valid TOML: {exc}") from None


def load(path: Path, *, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """A TOML file, refused unread if larger than ``max_bytes``; errors name the file
    (``OSError`` is the caller's to report)."""
    return loads(read_bounded(path, max_bytes), max_bytes=max_bytes, max_depth=max_depth, what=str(path))
