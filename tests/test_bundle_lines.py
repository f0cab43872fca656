"""The bundle line reader's fast path accepts exactly the canonical lines, with the same
fields as the general JSON path; everything else goes to the JSON path for its reason."""

from __future__ import annotations

import dataclasses
import io
import json
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.block import MAX_BLOCK_BYTES, MAX_CERTIFICATE_BYTES, Block, BlockHeader, CommitCertificate, CommitSignature
from ledger.errors import LedgerError, Oversized
from ledger.genesis import MAX_VALIDATORS, ChainParams
from verifier import bundle
from verifier.bundle import NonCanonical, _canonical_fields, _parse_line, block_line


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


# --- reading lines with a bound ----------------------------------------------------------
def _reader(data: bytes, buffer: int = 64) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(data), buffer_size=buffer)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), max_size=8), st.booleans(),
       st.sampled_from([b"", b'{"block": "']))
def test_lines_read_back_exactly_across_buffers(lines: list[bytes], last_newline: bool, head: bytes) -> None:
    """Whatever the buffer boundaries (a 64-byte buffer and 16-byte reads here), lines
    come back exactly as split, the last one with or without its newline."""
    data = b"\n".join(head + line for line in lines) + (b"\n" if last_newline and lines else b"")
    fh = _reader(data)
    got = []
    with mock.patch.object(bundle, "_READ_BUFFER", 16):
        while raw := bundle._next_line(fh, max_line=1000):
            got.append(bytes(raw))
    assert got == io.BytesIO(data).readlines()


def test_a_line_longer_than_the_chain_allows_is_refused_after_reading_only_that_much() -> None:
    for head in (b'{"block": "', b"x"):
        fh = _reader(head + b"0" * 10_000 + b"\n", buffer=1024)
        with pytest.raises(Oversized, match="longer than 500 bytes"):
            bundle._next_line(fh, max_line=500)
        assert fh.tell() <= 501


def test_a_long_line_that_cannot_be_canonical_is_measured_not_kept() -> None:
    """Longer than the part kept to name its fault, shorter than the chain's longest line."""
    with mock.patch.object(bundle, "_DIAGNOSED_LINE_BYTES", 100):
        fh = _reader(b"y" * 300 + b"\n" + b"z\n")
        with pytest.raises(NonCanonical, match="line of 301 bytes does not begin as a block line does"):
            bundle._next_line(fh, max_line=1000)
        assert bundle._next_line(fh, max_line=1000) == b"z\n"  # and the next line is where it should be


def test_the_largest_block_a_chain_allows_fits_its_longest_line() -> None:
    """Fails when the bound undercounts a part of the block (ballots at their size limit,
    the widest header, a last commit signed by every validator genesis allows)."""
    params = ChainParams(max_block_ballots=7, max_ballot_bytes=5000, contracts=False)
    big = 2**256 - 1
    header = BlockHeader("c" * 64, big, big, bytes(32), bytes(33), bytes(32), big, bytes(32), bytes(32), bytes(32),
                         bytes(32))
    signatures = tuple(CommitSignature(i, bytes(65)) for i in range(MAX_VALIDATORS))
    commit = CommitCertificate("c" * 64, big, big, bytes(32), signatures)
    block = Block(header, (b"\xaa" * 5000,) * 7, (), commit)
    assert len(block.encode()) <= bundle.max_block_bytes(params)
    assert len(commit.encode()) <= MAX_CERTIFICATE_BYTES
    assert bundle.max_block_bytes(params) < len(block.encode()) + MAX_CERTIFICATE_BYTES  # and not far above
    assert bundle.max_block_bytes(dataclasses.replace(params, contracts=True)) == MAX_BLOCK_BYTES
