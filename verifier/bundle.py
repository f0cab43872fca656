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

GENESIS_FILE = "genesis.json"
BLOCKS_FILE = "blocks.jsonl"


class UnusableBundle(LedgerError):
    """The input cannot be read at all (missing files, not a bundle): exit code 2."""

    code = "unusable_input"


@dataclass(frozen=True)
class BundleLine:
    line_number: int
    block: bytes
    certificate: bytes


def read_genesis(directory: Path) -> Genesis:
    path = directory / GENESIS_FILE
    if not path.is_file():
        raise UnusableBundle(f"{path} not found: not an election bundle")
    return Genesis.from_json(path.read_bytes())


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
                yield BundleLine(
                    number,
                    decode_hex_field(obj["block"], "block"),
                    decode_hex_field(obj["certificate"], "certificate"),
                )
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadEncoding(f"not JSON: {exc}", where=f"{BLOCKS_FILE} line {number}") from exc
            except LedgerError as exc:
                raise exc.at(f"{BLOCKS_FILE} line {number}") from None


def block_line(block: bytes, certificate: bytes) -> str:
    return json.dumps({"block": block.hex(), "certificate": certificate.hex()}) + "\n"
