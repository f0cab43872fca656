"""JSON from outside, parsed only once its size and nesting are known to be bounded.

The standard library's parser recurses once per nested array or object, in C. A process
that has imported py-evm runs with a recursion limit of 100,000 (``eth`` and ``py_ecc``
raise it at import), so a body of 100,000 ``[`` overflows the C stack long before Python
would raise ``RecursionError``: a crash, not an error. Every JSON document that arrives
from outside (RPC and HTTP bodies, bundles, genesis, config, checkpoints, receipts) is
therefore measured first, by a scan that does not recurse, and only then parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ledger.errors import BadEncoding, Oversized, TooDeep

DEFAULT_MAX_DEPTH = 32

# A string literal (escapes included) or one bracket; strings are matched whole so the
# brackets inside them are skipped. An unterminated string runs to the end of the input
# (its closing quote is optional), so no input makes the scan restart at every quote.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]')
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


def bracket_depth(data: bytes, tokens: re.Pattern[bytes] = _TOKENS) -> int:
    """The deepest nesting of brackets in ``data``, with ``tokens`` matching each bracket
    alone and each string (or comment) whole, so the brackets inside those are skipped.

    Iterative and linear in the input; malformed input still gets a number (the parser
    that runs next says what is wrong with it). ``node.tomlbound`` scans TOML with it.
    """
    depth = deepest = 0
    for match in tokens.finditer(data):
        first = match.group()[0]
        if first in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif first in _CLOSERS:
            depth -= 1
    return deepest


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON document (0 for a scalar)."""
    return bracket_depth(data)


def check_bounds(
    raw: bytes, *, max_bytes: int, max_depth: int, what: str, tokens: re.Pattern[bytes] = _TOKENS
) -> None:
    """Size, then nesting depth: ``Oversized`` or ``TooDeep`` naming ``what``."""
    if len(raw) > max_bytes:
        raise Oversized(f"{what}: {len(raw)} bytes exceeds the limit of {max_bytes}")
    # No document nests deeper than it has openers: most never need the scan.
    if raw.count(b"[") + raw.count(b"{") > max_depth and (depth := bracket_depth(raw, tokens)) > max_depth:
        raise TooDeep(f"{what}: nested {depth} levels deep, the limit is {max_depth}")


def loads(
    data: bytes | str,
    *,
    max_bytes: int,
    max_depth: int = DEFAULT_MAX_DEPTH,
    what: str = "JSON document",
) -> Any:
    """``json.loads`` for input from outside: size, then depth, then the parse.

    Raises ``Oversized``, ``TooDeep`` or ``BadEncoding`` (never ``RecursionError`` or a
    ``ValueError`` of the parser), each naming ``what``.
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    check_bounds(raw, max_bytes=max_bytes, max_depth=max_depth, what=what)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadEncoding(f"{what}: not valid JSON ({exc})") from None
