"""Saved checkpoints and the proof that a newer log extends an older one.

An observer saves the quorum-signed checkpoint now and then; later, a consistency proof
between an old and a new checkpoint shows the old log is a prefix of the new. A rewrite
of history, or a fork shown to different observers, cannot pass this check even if
every node tells the same story, because the old checkpoint was signed by a quorum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import merkle
from ledger.block import MAX_CHECKPOINT_BYTES, Checkpoint
from ledger.errors import BadConsistencyProof, BadEncoding, LedgerError, WrongChain
from ledger.files import load_json
from ledger.genesis import Genesis, ValidatorSet, decode_hex_field

CHECKPOINT_FORMAT = "ballot-ledger/checkpoint/v1"
# Room for the summary beside the checkpoint's hex (format, chain id, genesis hash, height,
# log size and root) with its keys and layout, at its widest.
_SUMMARY_BYTES = 2048
MAX_CHECKPOINT_FILE_BYTES = 2 * MAX_CHECKPOINT_BYTES + _SUMMARY_BYTES


class ConflictingCheckpoints(LedgerError):
    """Two quorum-signed checkpoints for one height that differ: evidence of a fork."""

    code = "conflicting_checkpoints"


@dataclass(frozen=True)
class SavedCheckpoint:
    chain_id: str
    genesis_hash: bytes
    checkpoint: Checkpoint

    def to_json(self) -> str:
        h = self.checkpoint.header
        obj = {
            "format": CHECKPOINT_FORMAT,
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash.hex(),
            "height": h.height,
            "log_size": h.log_size,
            "log_root": h.log_root.hex(),
            "checkpoint": self.checkpoint.encode().hex(),
        }
        return json.dumps(obj, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> SavedCheckpoint:
        try:
            obj: Any = load_json(path, max_bytes=MAX_CHECKPOINT_FILE_BYTES, max_depth=1)
            if obj.get("format") != CHECKPOINT_FORMAT:
                raise BadEncoding(f"{path} is not a {CHECKPOINT_FORMAT} file")
            cp = Checkpoint.decode(decode_hex_field(obj["checkpoint"], "checkpoint"))
            saved = cls(str(obj["chain_id"]), decode_hex_field(obj["genesis_hash"], "genesis_hash"), cp)
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise BadEncoding(f"{path}: {exc}") from exc
        h = cp.header
        # The summary fields are for people; they must agree with the signed header.
        if (obj.get("height"), obj.get("log_size"), obj.get("log_root")) != (h.height, h.log_size, h.log_root.hex()):
            raise BadEncoding(f"{path}: summary fields disagree with the signed checkpoint")
        return saved

    def check(self, genesis: Genesis, validators: ValidatorSet | None = None) -> None:
        """``validators``: the set in force at the checkpoint's height where a set change
        made it other than genesis's (``ledger.rules.validators_at`` on the chain)."""
        if self.genesis_hash != genesis.hash() or self.checkpoint.header.chain_id != genesis.chain_id:
            raise WrongChain("checkpoint belongs to another chain or genesis")
        self.checkpoint.check(validators or genesis.validators)


def compare(genesis: Genesis, old: SavedCheckpoint, new: SavedCheckpoint, proof: list[bytes]) -> None:
    """Raise unless both checkpoints are quorum-signed and ``new`` extends ``old``."""
    old.check(genesis)
    new.check(genesis)
    oh, nh = old.checkpoint.header, new.checkpoint.header
    if oh.height == nh.height and oh.hash() != nh.hash():
        raise ConflictingCheckpoints(f"two different quorum-signed blocks at height {oh.height}")
    if nh.height < oh.height or nh.log_size < oh.log_size:
        raise BadConsistencyProof("the 'new' checkpoint is older than the 'old' one")
    merkle.verify_consistency(oh.log_size, nh.log_size, oh.log_root, nh.log_root, proof)
