"""Typed fields of parsed JSON (or TOML) from outside: the one set of readers, each
raising the caller's error type (``BadGenesis`` for a genesis, ``BadEncoding`` by
default) with the field's name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.errors import BadEncoding, LedgerError

Error = type[LedgerError]


def exact_keys(obj: Any, keys: set[str], what: str, error: Error = BadEncoding) -> None:
    if not isinstance(obj, Mapping):
        raise error(f"{what} must be an object")
    extra, missing = set(obj) - keys, keys - set(obj)
    if extra or missing:
        raise error(f"{what}: unexpected keys {sorted(extra)}, missing keys {sorted(missing)}")


def as_int(value: Any, what: str, error: Error = BadEncoding) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise error(f"{what} must be a non-negative integer")
    return value


def as_hex(value: Any, what: str, error: Error = BadEncoding) -> bytes:
    """Strict lower-case hex without prefix."""
    if not isinstance(value, str):
        raise error(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise error(f"{what} is not hex") from exc
    if raw.hex() != value:
        raise error(f"{what} must be lower-case hex without prefix")
    return raw


def as_list(value: Any, what: str, error: Error = BadEncoding) -> list[Any]:
    if not isinstance(value, list):
        raise error(f"{what} must be a list")
    return value


def as_str(value: Any, what: str, error: Error = BadEncoding) -> str:
    if not isinstance(value, str):
        raise error(f"{what} must be a string")
    return value
