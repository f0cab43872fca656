"""The bundle line reader's fast path accepts exactly the canonical lines, with the same
fields as the general JSON path; everything else goes to the JSON path for its reason."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from verifier.bundle import _canonical_fields, _parse_line, block_line


def _json_path(raw: bytes) -> tuple[bytes, bytes] | None:
    """What the general path makes of a line (the JSON object, then the canonical check)."""
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict) or set(obj) != {"block", "certificate"}:
            return None
        block, cert = obj["block"], obj["certificate"]
        if not isinstance(block, str) or not isinstance(cert, str):
            return None
        if raw != f'{{"block": "{block}", "certificate": "{cert}"}}\n'.encode():
            return None
        fields = bytes.fromhex(block), bytes.fromhex(cert)
        if fields[0].hex() != block or fields[1].hex() != cert:
            return None
        return fields
    except (ValueError, UnicodeDecodeError):
        return None


_LINE_ALPHABET = b'{}":, \nabcdefABCDEF0123456789xblockertifat'


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40), st.data())
def test_fast_path_accepts_exactly_what_the_json_path_accepts(block: bytes, cert: bytes, data: st.DataObject) -> None:
    line = bytearray(block_line(block, cert).encode())
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(line) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        byte = data.draw(st.sampled_from(list(_LINE_ALPHABET)))
        if action == "replace":
            line[at] = byte
        elif action == "delete" and len(line) > 1:
            del line[at]
        else:
            line.insert(at, byte)
    raw = bytes(line)
    assert _canonical_fields(raw) == _json_path(raw)


def test_unchanged_line_reads_back() -> None:
    line = _parse_line(block_line(b"\x01\xab", b"\xcd").encode(), 7, 99, b"")
    assert (line.block, line.certificate, line.line_number, line.end_offset) == (b"\x01\xab", b"\xcd", 7, 99)


def test_odd_or_upper_case_hex_is_refused_with_a_reason() -> None:
    for raw in (b'{"block": "0", "certificate": ""}\n', b'{"block": "AB", "certificate": ""}\n'):
        try:
            _parse_line(raw, 1, len(raw), b"")
        except LedgerError as exc:
            assert exc.code in ("bad_encoding", "non_canonical"), exc.code
        else:
            raise AssertionError(f"{raw!r} was accepted")
