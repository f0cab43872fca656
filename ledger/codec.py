"""Canonical RLP: a small, strict encoder/decoder and typed field readers.

Our own rather than pyrlp's because the hot paths (a ballot decoded at admission, every
ballot again at replay) run it millions of times; the tests check it against pyrlp.
Decoding refuses every non-canonical form, so each value has exactly one encoding and
``decode(encode(x)) == x`` and ``encode(decode(b)) == b`` both hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from ledger.errors import BadEncoding, Oversized

Item: TypeAlias = bytes | list["Item"]
MAX_INT_BYTES = 32


def _length_prefix(length: int, short_base: int) -> bytes:
    if length < 56:
        return bytes([short_base + length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([short_base + 55 + len(raw)]) + raw


def list_header(payload_length: int) -> bytes:
    """The prefix of a list whose items' encodings total ``payload_length`` bytes."""
    return _length_prefix(payload_length, 0xC0)


def encode(item: Item | Sequence[Item]) -> bytes:
    """Encode bytes or (nested) lists of bytes."""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _length_prefix(len(item), 0x80) + item
    body = b"".join([encode(x) for x in item])
    return _length_prefix(len(body), 0xC0) + body


def read_header(data: bytes, pos: int, end: int) -> tuple[bool, int, int]:
    """Return (is_list, payload_start, payload_end) of the item at ``pos``."""
    if pos >= end:
        raise BadEncoding("unexpected end of data")
    b0 = data[pos]
    if b0 < 0x80:
        return False, pos, pos + 1
    if b0 < 0xB8:
        n = b0 - 0x80
        if n == 1 and pos + 1 < end and data[pos + 1] < 0x80:
            raise BadEncoding("single byte below 0x80 must encode as itself")
        start = pos + 1
        is_list = False
    elif b0 < 0xC0:
        n, start = _long_length(data, pos, end, b0 - 0xB7)
        is_list = False
    elif b0 < 0xF8:
        n = b0 - 0xC0
        start = pos + 1
        is_list = True
    else:
        n, start = _long_length(data, pos, end, b0 - 0xF7)
        is_list = True
    stop = start + n
    if stop > end:
        raise BadEncoding("item runs past the end of its container")
    return is_list, start, stop


def _long_length(data: bytes, pos: int, end: int, size_len: int) -> tuple[int, int]:
    start = pos + 1 + size_len
    if start > end:
        raise BadEncoding("truncated length")
    raw = data[pos + 1 : start]
    if raw[0] == 0:
        raise BadEncoding("length with leading zero")
    n = int.from_bytes(raw, "big")
    if n < 56:
        raise BadEncoding("long length form used for a short item")
    return n, start


_HASH_PREFIXES = b"\xa0" * 2048


def is_hash_list(data: bytes, start: int, stop: int) -> bool:
    """Whether the list payload [start, stop) is a sequence of 32-byte strings (possibly
    none). 0xa0 is the only canonical prefix of a 32-byte string, so this is exactly
    what the generic decoder would accept as such a list; one slice compares all prefixes."""
    span = stop - start
    return span % 33 == 0 and data[start:stop:33] == _HASH_PREFIXES[: span // 33]


def read_hash_list(data: bytes, start: int, stop: int) -> list[bytes] | None:
    """The payload [start, stop) as a list of 32-byte strings, or None if it is not one."""
    if is_hash_list(data, start, stop):
        return [data[p + 1 : p + 33] for p in range(start, stop, 33)]
    return None


def _decode_at(data: bytes, pos: int, end: int) -> tuple[Item, int]:
    is_list, start, stop = read_header(data, pos, end)
    if not is_list:
        return data[start:stop], stop
    if stop > start:
        hashes = read_hash_list(data, start, stop)  # fast path: proof paths
        if hashes is not None:
            return list(hashes), stop
    items: list[Item] = []
    p = start
    while p < stop:
        item, p = _decode_at(data, p, stop)
        items.append(item)
    return items, stop


def decode(data: bytes, *, max_size: int | None = None) -> Item:
    """Decode exactly one item; trailing bytes are refused."""
    if max_size is not None and len(data) > max_size:
        raise Oversized(f"{len(data)} bytes exceeds the limit of {max_size}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadEncoding("expected bytes")
    data = bytes(data)
    item, end = _decode_at(data, 0, len(data))
    if end != len(data):
        raise BadEncoding(f"{len(data) - end} trailing bytes")
    return item


# --- typed field readers ---------------------------------------------------------------
def as_list(item: Item, n_fields: int | None, what: str) -> list[Item]:
    if not isinstance(item, list):
        raise BadEncoding(f"{what}: expected a list")
    if n_fields is not None and len(item) != n_fields:
        raise BadEncoding(f"{what}: expected {n_fields} fields, got {len(item)}")
    return item


def as_bytes(item: Item, what: str, *, size: int | None = None, max_size: int | None = None) -> bytes:
    if not isinstance(item, bytes):
        raise BadEncoding(f"{what}: expected bytes, got a list")
    if size is not None and len(item) != size:
        raise BadEncoding(f"{what}: expected {size} bytes, got {len(item)}")
    if max_size is not None and len(item) > max_size:
        raise Oversized(f"{what}: {len(item)} bytes exceeds the limit of {max_size}")
    return item


def as_int(item: Item, what: str) -> int:
    """A non-negative integer: big-endian, no leading zeros, zero as the empty string."""
    raw = as_bytes(item, what, max_size=MAX_INT_BYTES)
    if raw[:1] == b"\x00":
        raise BadEncoding(f"{what}: integer with leading zero")
    return int.from_bytes(raw, "big")


def as_text(item: Item, what: str, *, max_size: int) -> str:
    raw = as_bytes(item, what, max_size=max_size)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEncoding(f"{what}: not UTF-8") from exc


def as_bytes_list(
    item: Item, what: str, *, size: int | None = None, max_items: int | None = None
) -> tuple[bytes, ...]:
    items = as_list(item, None, what)
    if max_items is not None and len(items) > max_items:
        raise Oversized(f"{what}: {len(items)} items exceeds the limit of {max_items}")
    for i, x in enumerate(items):
        # Checked inline (no per-item call or message formatting): this runs for every
        # hash of every credential proof.
        if not isinstance(x, bytes) or (size is not None and len(x) != size):
            as_bytes(x, f"{what}[{i}]", size=size)
    return tuple(items)  # type: ignore[arg-type]


def int_bytes(value: int) -> bytes:
    if value < 0:
        raise ValueError("RLP integers are non-negative")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")
