"""Election bundles on disk: ``genesis.json`` and ``blocks.jsonl``.

Each line of ``blocks.jsonl`` is ``{"block": HEX, "certificate": HEX}``: the canonical
encodings themselves, so every byte of the file is covered by a hash or a signature.
"""

from __future__ import annotations

import binascii
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ledger import jsonbound
from ledger.ballot import MAX_ENVELOPE_BYTES
from ledger.block import MAX_BLOCK_BYTES, MAX_CERTIFICATE_BYTES, MAX_HEADER_BYTES
from ledger.errors import BadEncoding, LedgerError, Oversized, TooDeep
from ledger.files import read_bounded
from ledger.genesis import ChainParams, Genesis, decode_hex_field, max_genesis_json_bytes

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
RESULTS_FILE = "results.json"
README_FILE = "README"
REGISTRY_ARTIFACT_FILE = "contracts/ElectionRegistry.json"


def bundle_files(genesis: Genesis) -> list[str]:
    """Every file a bundle of this chain holds, each covered by the verifier."""
    files = [GENESIS_FILE, BLOCKS_FILE, RESULTS_FILE, README_FILE]
    return [*files, REGISTRY_ARTIFACT_FILE] if genesis.params.contracts else files


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


class MissingFile(LedgerError):
    """A file every bundle holds is absent: not the bundle export writes (exit code 1)."""

    code = "missing_file"


class NonCanonical(BadEncoding):
    """A bundle file that parses but is not byte-for-byte the form ballotledger writes."""

    code = "non_canonical"


class StateMismatch(UnusableBundle):
    """A saved verification state that does not belong to this bundle (exit code 2)."""

    code = "state_mismatch"


class OversizedInput(UnusableBundle, Oversized):
    """A file, or a line of one, larger than any valid one: not read (exit code 2)."""

    code = "oversized"


class TooDeepInput(UnusableBundle, TooDeep):
    """JSON nested deeper than any valid file of its kind: not parsed (exit code 2)."""

    code = "too_deep"


def unreadable(exc: Oversized | TooDeep, where: str) -> UnusableBundle:
    """A size or depth refusal of a bounded reader, as the unusable input it makes a
    bundle: the verifier will not read such input, so it cannot check it."""
    kind = TooDeepInput if isinstance(exc, TooDeep) else OversizedInput
    return kind(exc.message, where=where if exc.where is None else f"{where}: {exc.where}")


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
    try:
        raw = read_bounded(path, max_genesis_json_bytes(), what=GENESIS_FILE)
        genesis = Genesis.from_json(raw, what=GENESIS_FILE)
    except (Oversized, TooDeep) as exc:
        raise unreadable(exc, GENESIS_FILE) from None
    except OSError as exc:
        raise UnusableBundle(f"cannot read {path}: {exc.strerror}") from None
    # One canonical text per genesis, so no byte of the file can change unnoticed.
    if raw != genesis.to_json().encode():
        raise NonCanonical("genesis.json is not in canonical form (as written by ballotledger)", where=GENESIS_FILE)
    return genesis


def max_block_bytes(params: ChainParams) -> int:
    """The largest block encoding a chain with these parameters can accept: its ballots
    at their limits beside the largest header and last commit; on a chain that runs
    contracts, transactions may fill a block up to the decoders' ceiling."""
    if params.contracts:
        return MAX_BLOCK_BYTES
    ballot = min(params.max_ballot_bytes, MAX_ENVELOPE_BYTES) + _ITEM_PREFIX
    ballots = _LIST_PREFIX + params.max_block_ballots * ballot
    last_commit = _LIST_PREFIX + MAX_CERTIFICATE_BYTES
    return min(MAX_BLOCK_BYTES, _LIST_PREFIX + MAX_HEADER_BYTES + _ITEM_PREFIX + ballots + 1 + last_commit)


def max_line_bytes(genesis: Genesis) -> int:
    """The longest line of this chain's blocks.jsonl that can be valid (its newline included)."""
    return (len(_LINE_HEAD) + 2 * max_block_bytes(genesis.params) + len(_LINE_MID)
            + 2 * MAX_CERTIFICATE_BYTES + len(_LINE_TAIL))


def iter_block_lines(
    directory: Path,
    *,
    genesis: Genesis | None = None,
    resume: ResumePoint | None = None,
    track_prefix: bool = False,
) -> Iterator[BundleLine]:
    """Stream ``blocks.jsonl``; a malformed line raises BadEncoding naming the line, one
    longer than :func:`max_line_bytes` an ``OversizedInput`` (without reading it whole).

    ``genesis``: the bundle's (read from it if not given), for the longest line.
    ``resume``: start after a saved point, once the bytes before it hash as they did.
    ``track_prefix``: give each line the sha256 of the file up to its end (for saving).
    """
    path = directory / BLOCKS_FILE
    if not path.is_file():
        raise UnusableBundle(f"{path} not found: not an election bundle")
    max_line = max_line_bytes(read_genesis(directory) if genesis is None else genesis)
    prefix = hashlib.sha256() if track_prefix or resume is not None else None
    try:
        fh = path.open("rb", buffering=_READ_BUFFER)
    except OSError as exc:
        raise UnusableBundle(f"cannot read {path}: {exc.strerror}") from None
    with fh:
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
        while True:
            number += 1
            where = f"{BLOCKS_FILE} line {number}"
            try:
                raw = _next_line(fh, max_line)
                if not raw:
                    return
                offset += len(raw)
                if prefix is not None:
                    prefix.update(raw)
                line = _parse_line(raw, number, offset, prefix.digest() if track_prefix and prefix else b"")
            except (Oversized, TooDeep) as exc:
                raise unreadable(exc, where) from None
            except LedgerError as exc:
                raise exc.at(where) from None
            yield line


def _next_line(fh: BinaryIO, max_line: int) -> bytes | bytearray:
    """The next line (with its newline; the file's last bytes may lack one), b"" at the
    end; ``Oversized`` for a line longer than ``max_line``, found out without holding
    more than ``max_line`` bytes of it.

    Only a line that starts as every canonical line does is held up to ``max_line``;
    any other is invalid whatever follows, so just enough of it to say why is kept, and
    the rest is only measured."""
    head = fh.readline(len(_LINE_HEAD))
    if not head or head.endswith(b"\n"):
        return head
    fh.seek(-len(head), os.SEEK_CUR)  # still in the buffer: no system call
    keep = max_line if head == _LINE_HEAD else min(max_line, _DIAGNOSED_LINE_BYTES)
    line = _read_line(fh, keep + 1)
    if len(line) <= keep:
        return line
    length = len(line) if keep == max_line else len(line) + _skip_line(fh, max_line + 1 - len(line))
    if length > max_line:
        raise Oversized(f"line longer than {max_line} bytes, the longest a valid block line can be on this chain")
    raise NonCanonical(f"line of {length} bytes does not begin as a block line does: not in canonical form")


def _read_line(fh: BinaryIO, limit: int) -> bytes | bytearray:
    """The line at ``fh``, or its first ``limit`` bytes. A line that fits the read buffer
    (a block of up to 8 MiB) is one read; a longer one grows in place, so it is held
    once rather than once in pieces and again joined."""
    first = fh.readline(min(limit, _READ_BUFFER))
    if len(first) < min(limit, _READ_BUFFER) or first.endswith(b"\n") or len(first) == limit:
        return first
    line = bytearray(first)
    del first
    while len(line) < limit:
        chunk = fh.readline(min(_READ_BUFFER, limit - len(line)))
        line += chunk
        if not chunk or chunk.endswith(b"\n"):
            break
    return line


def _skip_line(fh: BinaryIO, budget: int) -> int:
    """Read past the rest of a line, at most ``budget`` bytes, keeping none; bytes read."""
    skipped = 0
    while skipped < budget:
        chunk = fh.readline(min(_SKIP_CHUNK, budget - skipped))
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            break
    return skipped


def _hash_prefix(fh: BinaryIO, size: int, into: Any) -> None:
    left = size
    while left > 0:
        chunk = fh.read(min(left, 1 << 22))
        if not chunk:
            raise StateMismatch(f"{BLOCKS_FILE} is shorter than the {size} bytes already verified")
        into.update(chunk)
        left -= len(chunk)


_READ_BUFFER = 1 << 24  # lines are megabytes; a small buffer makes readline copy in pieces
_DIAGNOSED_LINE_BYTES = 1 << 20  # a non-canonical line up to this long is parsed to say what is wrong
_SKIP_CHUNK = 1 << 20
_ITEM_PREFIX = 3  # the RLP prefix of an item shorter than 64 KiB
_LIST_PREFIX = 9  # the longest RLP prefix
_LINE_HEAD = b'{"block": "'
_LINE_MID = b'", "certificate": "'
_LINE_TAIL = b'"}\n'
_UPPER_HEX = (b"A", b"B", b"C", b"D", b"E", b"F")


def _canonical_fields(raw: bytes | bytearray) -> tuple[bytes, bytes] | None:
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


def _parse_line(raw: bytes | bytearray, number: int, end_offset: int, prefix_sha256: bytes) -> BundleLine:
    fields = _canonical_fields(raw)
    if fields is not None:
        return BundleLine(number, fields[0], fields[1], end_offset, prefix_sha256)
    # Its size is bounded by the reader (_next_line); its depth is one object of two strings.
    obj = jsonbound.loads(bytes(raw), max_bytes=len(raw), max_depth=1, what="line")
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

