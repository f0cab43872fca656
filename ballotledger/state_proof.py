"""An election's phase and published result, proven from the registry's storage against
the state root of a quorum-signed checkpoint, offline (``ballotledger state verify``).

Pure: it takes an ``eth_getProof`` answer (EIP-1186) as JSON and a state root the caller
trusts (one in a checkpoint whose certificate it checked), and either returns the proven
storage or raises :class:`StateProofFailed` naming the check that failed, in this order:

a) ``proof_shape``: the answer is an object with the fields EIP-1186 gives, hex where it
   should be, at most :data:`MAX_PROOF_NODES` nodes of at most :data:`MAX_NODE_BYTES` each
   a proof (so nothing unbounded is decoded);
b) ``account_proof``: the account proof leads from the state root to an account, keyed
   by keccak256(address), whose RLP is [nonce, balance, storage root, code hash];
c) ``account_fields``: the answer's nonce, balance, storageHash and codeHash are the
   proven account's;
d) ``storage_proof``: each slot asked for is answered, and its proof leads from the proven
   storage root to the slot (keyed by keccak256 of the 32-byte slot) or shows it empty;
e) ``storage_value``: each slot's value in the answer is the proven one.

Where the registry keeps an election (Vyper 0.4 storage layout, checked against the
compiler's own by a test): ``elections`` is slot 0 and ``results`` slot 1; a HashMap's
entry for key k of the map at slot s starts at keccak256(s || k); an ``Election`` takes
one slot a field in declaration order (``phase`` is field 8, ``definition_hash`` 10); a
DynArray keeps its length in its first slot and item i at i + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from trie.hexary import HexaryTrie

from contracts import election_key
from ledger.errors import LedgerError
from ledger.hashing import keccak256

ELECTIONS_SLOT = 0
RESULTS_SLOT = 1
PHASE_FIELD = 8
DEFINITION_HASH_FIELD = 10
MAX_CHOICES = 255
MAX_PROOF_NODES = 64  # a 32-byte key is 64 nibbles: no path through a trie is longer
MAX_NODE_BYTES = 1024  # a branch node of 16 hashes and a value is under 600 bytes


class StateProofFailed(LedgerError):
    """A proof that does not prove what it claims; ``code`` names the failed check."""

    code = "bad_state_proof"

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        self.code = check


def mapping_slot(slot: int, key: bytes) -> int:
    """Where a Vyper HashMap at ``slot`` keeps the entry for the 32-byte ``key``."""
    return int.from_bytes(keccak256(slot.to_bytes(32, "big") + key), "big")


def phase_slot(election_id: str) -> int:
    return mapping_slot(ELECTIONS_SLOT, election_key(election_id)) + PHASE_FIELD


def definition_hash_slot(election_id: str) -> int:
    return mapping_slot(ELECTIONS_SLOT, election_key(election_id)) + DEFINITION_HASH_FIELD


def result_slots(election_id: str, choices: int | None = None) -> list[int]:
    """The result's length slot, then (given how many) each count's slot."""
    base = mapping_slot(RESULTS_SLOT, election_key(election_id))
    return [base] if choices is None else [base + 1 + i for i in range(choices)]


@dataclass(frozen=True)
class ProvenAccount:
    state_root: bytes
    address: bytes
    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes
    storage: dict[int, int]  # slot -> value, for every slot asked for


def _hex(value: Any, what: str, *, size: int | None = None, max_size: int = 32) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 2 + 2 * max_size:
        raise StateProofFailed("proof_shape", f"{what} is not hex of at most {max_size} bytes")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise StateProofFailed("proof_shape", f"{what} is not hex") from None
    if size is not None and len(raw) != size:
        raise StateProofFailed("proof_shape", f"{what} is not {size} bytes")
    return raw


def _quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or not 3 <= len(value) <= 66:
        raise StateProofFailed("proof_shape", f"{what} is not a quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise StateProofFailed("proof_shape", f"{what} is not a quantity") from None


def _nodes(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_NODES:
        raise StateProofFailed("proof_shape", f"{what} is not a list of at most {MAX_PROOF_NODES} nodes")
    return [_hex(n, f"{what}[{i}]", max_size=MAX_NODE_BYTES) for i, n in enumerate(value)]


def _prove(root: bytes, key: bytes, nodes: Sequence[bytes], check: str, what: str) -> bytes:
    """The value the proof shows under ``key`` in the trie of ``root`` (b"" if none)."""
    try:
        decoded = [rlp.decode(n) for n in nodes]
        return bytes(HexaryTrie.get_from_proof(root, key, decoded))  # type: ignore[no-untyped-call]
    except Exception as exc:  # a proof from outside: any failure to walk it means "not proven"
        raise StateProofFailed(check, f"{what} does not lead from root {root.hex()}: {exc!r}") from None


def check_account_proof(state_root: bytes, address: bytes, answer: Any, slots: Sequence[int]) -> ProvenAccount:
    """The account and slots an ``eth_getProof(address, slots)`` answer proves against
    ``state_root``, or StateProofFailed naming the check (module docstring)."""
    if not isinstance(answer, dict):
        raise StateProofFailed("proof_shape", "the answer is not an object")
    account_nodes = _nodes(answer.get("accountProof"), "accountProof")
    claimed = (
        _quantity(answer.get("nonce"), "nonce"),
        _quantity(answer.get("balance"), "balance"),
        _hex(answer.get("storageHash"), "storageHash", size=32),
        _hex(answer.get("codeHash"), "codeHash", size=32),
    )
    raw_slots = answer.get("storageProof")
    if not isinstance(raw_slots, list) or len(raw_slots) > len(slots):
        raise StateProofFailed("proof_shape", "storageProof is not a list of the slots asked for")
    answered: dict[int, tuple[int, list[bytes]]] = {}
    for i, item in enumerate(raw_slots):
        if not isinstance(item, dict):
            raise StateProofFailed("proof_shape", f"storageProof[{i}] is not an object")
        key = int.from_bytes(_hex(item.get("key"), f"storageProof[{i}].key"), "big")
        answered[key] = (_quantity(item.get("value"), f"storageProof[{i}].value"),
                         _nodes(item.get("proof"), f"storageProof[{i}].proof"))

    encoded = _prove(state_root, keccak256(address), account_nodes, "account_proof", "the account proof")
    if not encoded:
        raise StateProofFailed("account_proof", f"the proof shows no account at {address.hex()}")
    try:
        fields = rlp.decode(encoded)
        nonce, balance, storage_root, code_hash = fields
        proven = (int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"), bytes(storage_root), bytes(code_hash))
    except Exception as exc:  # an account leaf from outside that is not [n, b, root, hash]
        raise StateProofFailed("account_proof", f"the proven account does not decode: {exc!r}") from None
    if claimed != proven:
        raise StateProofFailed("account_fields", "the answer's account fields are not the proven account's")

    values: dict[int, int] = {}
    for slot in slots:
        if slot not in answered:
            raise StateProofFailed("storage_proof", f"slot {slot:#x} was asked for and not answered")
        value, nodes = answered[slot]
        raw = _prove(proven[2], keccak256(slot.to_bytes(32, "big")), nodes, "storage_proof", f"slot {slot:#x}'s proof")
        try:
            stored = int.from_bytes(rlp.decode(raw), "big") if raw else 0
        except Exception as exc:  # a storage leaf from outside that is not an RLP string
            raise StateProofFailed("storage_proof", f"slot {slot:#x}'s proven value does not decode: {exc!r}") from None
        if stored != value:
            raise StateProofFailed("storage_value", f"slot {slot:#x} holds {stored}, the answer says {value}")
        values[slot] = value
    return ProvenAccount(state_root, address, *proven, values)
