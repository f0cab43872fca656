"""Election bundles on disk: ``genesis.json`` and ``blocks.jsonl``.

Each line of ``blocks.jsonl`` is ``{"block": HEX, "certificate": HEX}``: the canonical
encodings themselves, so every byte of the file is covered by a hash or a signature.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
README         this text (checked too: every file in a bundle is covered).

Check it with:  ballotledger verify THIS_DIRECTORY [--pin-genesis HASH] [--json]
"""
GENESIS_FILE = "genesis.json"
BLOCKS_FILE = "blocks.jsonl"


class UnusableBundle(LedgerError):
    """The input cannot be read at all (missing files, not a bundle): exit code 2."""

    code = "unusable_input"


class NonCanonical(BadEncoding):
    """A bundle file that parses but is not byte-for-byte the form ballotledger writes."""

    code = "non_canonical"


@dataclass(frozen=True)
class BundleLine:
    line_number: int
    block: bytes
    certificate: bytes


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


def iter_block_lines(directory: Path) -> Iterator[BundleLine]:
    """Stream ``blocks.jsonl``; a malformed line raises BadEncoding naming the line."""
    path = directory / BLOCKS_FILE
    if not path.is_file():
        raise UnusableBundle(f"{path} not found: not an election bundle")
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict) or set(obj) != {"block", "certificate"}:
                    raise BadEncoding('each line must be {"block": HEX, "certificate": HEX}')
                block_hex, cert_hex = obj["block"], obj["certificate"]
                line = BundleLine(
                    number, decode_hex_field(block_hex, "block"), decode_hex_field(cert_hex, "certificate")
                )
                # The fields are canonical hex now, so the canonical line is built from
                # them as they stand (no second hex encoding of megabytes per block).
                if raw != _line_text(block_hex, cert_hex).encode():
                    raise NonCanonical("line is not in canonical form (as written by ballotledger)")
                yield line
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadEncoding(f"not JSON: {exc}", where=f"{BLOCKS_FILE} line {number}") from exc
            except LedgerError as exc:
                raise exc.at(f"{BLOCKS_FILE} line {number}") from None


def block_line(block: bytes, certificate: bytes) -> str:
    """The one canonical line for a block and its certificate."""
    return _line_text(block.hex(), certificate.hex())


def _line_text(block_hex: str, cert_hex: str) -> str:
    # What json.dumps writes for this object (hex needs no escaping), without its encoder.
    return f'{{"block": "{block_hex}", "certificate": "{cert_hex}"}}\n'

