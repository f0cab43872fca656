"""Election bundles on disk: ``genesis.json`` and ``blocks.jsonl``.

Each line of ``blocks.jsonl`` is ``{"block": HEX, "certificate": HEX}``: the canonical
encodings themselves, so every byte of the file is covered by a hash or a signature.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ledger.errors import BadEncoding, LedgerError
from ledger.genesis import Genesis, decode_hex_field

BUNDLE_README = """\
ballot-ledger election bundle (format v1)

genesis.json   the chain's genesis: chain id, validators, election authority, parameters
               and election definitions. Its keccak256 over the canonical encoding is
               the genesis hash observers pin (ballotledger verify --pin-genesis HASH).
blocks.jsonl   one committed block per line, from height 1, as
               {"block": HEX, "certificate": HEX}: the block's canonical RLP encoding
               and the commit certificate (precommits of more than 2/3 of the voting
               power) that finalized it. Nothing else: every byte is hashed or signed.
results.json   the result as published by the node; the verifier recomputes the tally
               from the ballots and fails if this claim differs.
contracts/ElectionRegistry.json
               (chains that run contracts) the election registry's compiled artifact:
               ABI, init and runtime bytecode, compiler, source hash. Genesis deploys
               it at 0x00000000000000000000000000000000000ba110; the verifier checks
               this file is the artifact it deploys and that the replayed chain's code
               at that address is its runtime bytecode. Use the ABI to read the
               registry with Ethereum tools through a node's JSON-RPC.
README         this text (checked too: every file in a bundle is covered).

Check it with:  ballotledger verify THIS_DIRECTORY [--pin-genesis HASH] [--json]
"""
GENESIS_FILE = "genesis.json"
BLOCKS_FILE = "blocks.jsonl"
REGISTRY_ARTIFACT_FILE = "contracts/ElectionRegistry.json"


def write_contract_artifacts(out: Path, genesis: Genesis) -> None:
    """The registry's artifact, byte for byte as this software deploys it (contracts only)."""
    if genesis.params.contracts:
        (out / REGISTRY_ARTIFACT_FILE).parent.mkdir(parents=True, exist_ok=True)
        (out / REGISTRY_ARTIFACT_FILE).write_bytes(registry_artifact_bytes())


def registry_artifact_bytes() -> bytes:
    from contracts import ARTIFACTS  # the verifier loads the artifact, never the compiler

    return (ARTIFACTS / "ElectionRegistry.json").read_bytes()


class UnusableBundle(LedgerError):
    """The input cannot be read at all (missing files, not a bundle): exit code 2."""

    code = "unusable_input"


class NonCanonical(BadEncoding):
    """A bundle file that parses but is not byte-for-byte the form ballotledger writes."""

    code = "non_canonical"


class StateMismatch(UnusableBundle):
    """A saved verification state that does not belong to this bundle (exit code 2)."""

    code = "state_mismatch"


@dataclass(frozen=True)
class BundleLine:
    line_number: int
    block: bytes
    certificate: bytes
    end_offset: int = 0  # where the next line starts in blocks.jsonl
    prefix_sha256: bytes = b""  # of blocks.jsonl up to end_offset (when asked for)


@dataclass(frozen=True)
class ResumePoint:
    """Where a saved verification stopped: lines done, the byte after them, and the sha256
    of those bytes (so a bundle changed before that point is not taken as verified)."""

    lines: int
    offset: int
    prefix_sha256: bytes


def read_genesis(directory: Path) -> Genesis:
    path = directory / GENESIS_FILE
    if not path.is_file():
        raise UnusableBundle(f"{path} not found: not an election bundle")
    raw = path.read_bytes()
    genesis = Genesis.from_json(raw)
    # One canonical text per genesis, so no byte of the file can change unnoticed.
    if raw != genesis.to_json().encode():
        raise NonCanonical("genesis.json is not in canonical form (as written by ballotledger)", where=GENESIS_FILE)
    return genesis


def iter_block_lines(
    directory: Path, *, resume: ResumePoint | None = None, track_prefix: bool = False
) -> Iterator[BundleLine]:
    """Stream ``blocks.jsonl``; a malformed line raises BadEncoding naming the line.

    ``resume``: start after a saved point, once the bytes before it hash as they did.
    ``track_prefix``: give each line the sha256 of the file up to its end (for saving).
    """
    path = directory / BLOCKS_FILE
    if not path.is_file():
        raise UnusableBundle(f"{path} not found: not an election bundle")
    prefix = hashlib.sha256() if track_prefix or resume is not None else None
    with path.open("rb", buffering=_READ_BUFFER) as fh:
        number, offset = 0, 0
        if resume is not None:
            assert prefix is not None
            _hash_prefix(fh, resume.offset, prefix)
            if prefix.digest() != resume.prefix_sha256:
                raise StateMismatch(
                    f"{BLOCKS_FILE} is not the one verified up to line {resume.lines}: "
                    "its bytes before that point changed; verify again from the start"
                )
            number, offset = resume.lines, resume.offset
        for raw in fh:
            number += 1
            offset += len(raw)
            if prefix is not None:
                prefix.update(raw)
            try:
                yield _parse_line(raw, number, offset, prefix.digest() if track_prefix and prefix else b"")
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadEncoding(f"not JSON: {exc}", where=f"{BLOCKS_FILE} line {number}") from exc
            except LedgerError as exc:
                raise exc.at(f"{BLOCKS_FILE} line {number}") from None


def _hash_prefix(fh: BinaryIO, size: int, into: Any) -> None:
    left = size
    while left > 0:
        chunk = fh.read(min(left, 1 << 22))
        if not chunk:
            raise StateMismatch(f"{BLOCKS_FILE} is shorter than the {size} bytes already verified")
        into.update(chunk)
        left -= len(chunk)


_READ_BUFFER = 1 << 24  # lines are megabytes; a small buffer makes readline copy in pieces
_LINE_HEAD = b'{"block": "'
_LINE_MID = b'", "certificate": "'
_LINE_TAIL = b'"}\n'
_UPPER_HEX = (b"A", b"B", b"C", b"D", b"E", b"F")


def _canonical_fields(raw: bytes) -> tuple[bytes, bytes] | None:
    """The two fields of a line that is exactly in canonical form (what ``block_line``
    writes), straight from the bytes; None for any other line, which :func:`_parse_line`
    then reads as JSON to say what is wrong with it."""
    if not raw.startswith(_LINE_HEAD) or not raw.endswith(_LINE_TAIL):
        return None
    mid = raw.find(b'"', len(_LINE_HEAD))  # the tail's quote at the latest
    cert_start, cert_end = mid + len(_LINE_MID), len(raw) - len(_LINE_TAIL)
    if not raw.startswith(_LINE_MID, mid) or cert_start > cert_end:
        return None
    # a2b_hex refuses anything but hex digits; canonical hex is lower-case.
    if any(raw.find(upper) >= 0 for upper in _UPPER_HEX):
        return None
    view = memoryview(raw)
    try:
        return (binascii.a2b_hex(view[len(_LINE_HEAD) : mid]),
                binascii.a2b_hex(view[cert_start:cert_end]))
    except binascii.Error:
        return None


def _parse_line(raw: bytes, number: int, end_offset: int, prefix_sha256: bytes) -> BundleLine:
    fields = _canonical_fields(raw)
    if fields is not None:
        return BundleLine(number, fields[0], fields[1], end_offset, prefix_sha256)
    obj = json.loads(raw)
    if not isinstance(obj, dict) or set(obj) != {"block", "certificate"}:
        raise BadEncoding('each line must be {"block": HEX, "certificate": HEX}')
    block_hex, cert_hex = obj["block"], obj["certificate"]
    line = BundleLine(
        number, decode_hex_field(block_hex, "block"), decode_hex_field(cert_hex, "certificate"),
        end_offset, prefix_sha256,
    )
    # The fields are canonical hex now, so the canonical line is built from them as they
    # stand (no second hex encoding of megabytes per block).
    if raw != _line_text(block_hex, cert_hex).encode():
        raise NonCanonical("line is not in canonical form (as written by ballotledger)")
    return line


def block_line(block: bytes, certificate: bytes) -> str:
    """The one canonical line for a block and its certificate."""
    return _line_text(block.hex(), certificate.hex())


def _line_text(block_hex: str, cert_hex: str) -> str:
    # What json.dumps writes for this object (hex needs no escaping), without its encoder;
    # the same three pieces _canonical_fields reads.
    return f"{_LINE_HEAD.decode()}{block_hex}{_LINE_MID.decode()}{cert_hex}{_LINE_TAIL.decode()}"

