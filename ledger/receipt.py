"""Voter receipts: a tracking code with an inclusion proof against a signed checkpoint.

A receipt alone convinces anyone holding the genesis (for the validator set) that the
ballot is in the log that a quorum of validators signed; nothing else need be trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger import jsonbound, merkle
from ledger.block import MAX_CHECKPOINT_BYTES, Checkpoint
from ledger.errors import BadEncoding, BadInclusionProof, LedgerError, WrongChain
from ledger.genesis import Genesis, ValidatorSet, decode_hex_field
from ledger.hashing import HASH_SIZE

RECEIPT_FORMAT = "ballot-ledger/receipt/v1"
# A log of fewer than 2**64 leaves has inclusion proofs of at most 64 hashes.
MAX_PROOF_HASHES = 64
# Room for the fields beside the checkpoint and the proof (format, two identifiers, the
# tracking code, two integers) with their keys and layout, at their widest.
_RECEIPT_FIELDS_BYTES = 2048
MAX_RECEIPT_JSON_BYTES = (
    2 * MAX_CHECKPOINT_BYTES + MAX_PROOF_HASHES * (2 * HASH_SIZE + 8) + _RECEIPT_FIELDS_BYTES
)
RECEIPT_JSON_DEPTH = 2  # the receipt object > its inclusion proof


@dataclass(frozen=True)
class Receipt:
    chain_id: str
    election_id: str
    tracking_code: bytes
    log_index: int
    height: int
    checkpoint: Checkpoint
    inclusion_proof: tuple[bytes, ...]

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "format": RECEIPT_FORMAT,
            "chain_id": self.chain_id,
            "election_id": self.election_id,
            "tracking_code": self.tracking_code.hex(),
            "log_index": self.log_index,
            "height": self.height,
            "checkpoint": self.checkpoint.encode().hex(),
            "inclusion_proof": [h.hex() for h in self.inclusion_proof],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_obj(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, what: str = "receipt") -> Receipt:
        """A receipt file: bounded in size and depth before it is parsed."""
        obj = jsonbound.loads(text, max_bytes=MAX_RECEIPT_JSON_BYTES, max_depth=RECEIPT_JSON_DEPTH, what=what)
        return cls.from_json_obj(obj)

    @classmethod
    def from_json_obj(cls, obj: Any) -> Receipt:
        try:
            if obj.get("format") != RECEIPT_FORMAT:
                raise BadEncoding(f"not a {RECEIPT_FORMAT} receipt")
            return cls(
                chain_id=str(obj["chain_id"]),
                election_id=str(obj["election_id"]),
                tracking_code=decode_hex_field(obj["tracking_code"], "tracking_code"),
                log_index=_nonneg(obj["log_index"], "log_index"),
                height=_nonneg(obj["height"], "height"),
                checkpoint=Checkpoint.decode(decode_hex_field(obj["checkpoint"], "checkpoint")),
                inclusion_proof=_proof(obj["inclusion_proof"]),
            )
        except LedgerError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise BadEncoding(f"receipt is malformed: {exc!r}") from exc

    def verify(self, genesis: Genesis, validators: ValidatorSet | None = None) -> None:
        """Raise unless the ballot is in the log under a quorum-signed checkpoint.

        ``validators``: the set in force at the checkpoint's height, where a set change
        made it other than genesis's (``ledger.rules.validators_at`` on the chain)."""
        header = self.checkpoint.header
        if self.chain_id != genesis.chain_id or header.chain_id != genesis.chain_id:
            raise WrongChain(f"receipt is for chain {self.chain_id!r}, not {genesis.chain_id!r}")
        self.checkpoint.check(validators or genesis.validators)
        if self.height > header.height:
            raise BadInclusionProof(
                f"receipt claims height {self.height}, after its checkpoint at {header.height}"
            )
        merkle.verify_inclusion(
            self.tracking_code, self.log_index, header.log_size, self.inclusion_proof, header.log_root
        )


def _proof(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_HASHES:
        raise BadEncoding(f"inclusion_proof must be a list of at most {MAX_PROOF_HASHES} hashes")
    return tuple(decode_hex_field(h, "inclusion_proof") for h in value)


def _nonneg(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadEncoding(f"{what} must be a non-negative integer")
    return value
