"""eth_getProof's Merkle-Patricia proofs of the registry's storage, checked offline
(ballotledger.state_proof) against each block's state root, and tampered proofs refused
by the check that names what is wrong."""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ballotledger.state_proof import (
    DEFINITION_HASH_FIELD,
    ELECTIONS_SLOT,
    PHASE_FIELD,
    RESULTS_SLOT,
    StateProofFailed,
    check_account_proof,
    definition_hash_slot,
    phase_slot,
    result_slots,
)
from contracts import REGISTRY_ADDRESS, Phase, registry
from ledger.hashing import keccak256

from .helpers import new_election
from .test_eth_rpc import EID, Served

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    s = Served()
    reg = registry()
    e = new_election(s.kit)
    s.chain.add([s.tx(reg.define_election(e))])                          # 1
    s.chain.add([s.tx(reg.close_election(EID))])                         # 2
    s.chain.add([s.tx(reg.publish_result(EID, [4, 0, 7]))])              # 3
    yield s


def _proof(s: Served, slots: list[int], height: int) -> Any:
    answer = asyncio.run(s.methods.get_proof("0x" + REGISTRY_ADDRESS.hex(), [hex(x) for x in slots], hex(height)))
    return json.loads(json.dumps(answer))  # as it crosses the wire


def _root(s: Served, height: int) -> bytes:
    return s.methods.state_root_at(height)


def test_the_phase_and_result_are_proven_at_every_height(served: Served) -> None:
    s = served
    expected = {0: Phase.OPEN, 1: Phase.OPEN, 2: Phase.CLOSED, 3: Phase.TALLIED}
    for height, phase in expected.items():
        slots = [phase_slot(EID), definition_hash_slot(EID), *result_slots(EID)]
        proven = check_account_proof(_root(s, height), REGISTRY_ADDRESS, _proof(s, slots, height), slots)
        assert proven.storage[slots[0]] == phase == s.executor.election_phase(_root(s, height), EID)
        assert proven.storage[slots[1]].to_bytes(32, "big") == keccak256(s.kit.genesis.elections[0].encode())
        assert proven.storage[slots[2]] == (3 if height == 3 else 0)
    counts = result_slots(EID, 3)
    proven = check_account_proof(_root(s, 3), REGISTRY_ADDRESS, _proof(s, counts, 3), counts)
    assert [proven.storage[x] for x in counts] == [4, 0, 7]
    # an election the registry does not hold: its phase slot is proven empty
    absent = [phase_slot("no-such-election")]
    assert check_account_proof(_root(s, 3), REGISTRY_ADDRESS, _proof(s, absent, 3), absent).storage == {absent[0]: 0}


def _tamper_node(nodes: list[str], index: int) -> None:
    raw = bytearray(bytes.fromhex(nodes[index][2:]))
    raw[len(raw) // 2] ^= 0x01
    nodes[index] = "0x" + raw.hex()


TAMPERS = {
    "account node": (lambda a: _tamper_node(a["accountProof"], -1), "account_proof"),
    "account root node": (lambda a: _tamper_node(a["accountProof"], 0), "account_proof"),
    "account proof cut": (lambda a: a["accountProof"].pop(), "account_proof"),
    "storage hash": (lambda a: a.update(storageHash="0x" + "11" * 32), "account_fields"),
    "nonce": (lambda a: a.update(nonce="0x7"), "account_fields"),
    "storage node": (lambda a: _tamper_node(a["storageProof"][0]["proof"], -1), "storage_proof"),
    "storage proof of another slot": (
        lambda a: a["storageProof"][0].update(proof=a["storageProof"][1]["proof"]), "storage_proof"),
    "slot dropped": (lambda a: a["storageProof"].pop(0), "storage_proof"),
    "value": (lambda a: a["storageProof"][0].update(value="0x2"), "storage_value"),
    "node too long": (lambda a: a["accountProof"].append("0x" + "00" * 2000), "proof_shape"),
    "not hex": (lambda a: a.update(storageHash="banana"), "proof_shape"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_a_tampered_proof_fails_its_named_check(served: Served, name: str) -> None:
    """Each change to an honest answer (the phase proven CLOSED at height 2) is refused by
    the check that names it. Fails when check_account_proof trusts the answer's fields
    (checked by hand: the 'value' and 'storage hash' tampers then passed)."""
    s = served
    slots = [phase_slot(EID), definition_hash_slot(EID)]
    honest = _proof(s, slots, 2)
    assert check_account_proof(_root(s, 2), REGISTRY_ADDRESS, honest, slots).storage[slots[0]] == Phase.CLOSED
    answer = copy.deepcopy(honest)
    tamper, check = TAMPERS[name]
    tamper(answer)
    with pytest.raises(StateProofFailed) as info:
        check_account_proof(_root(s, 2), REGISTRY_ADDRESS, answer, slots)
    assert info.value.code == check, info.value.message
    # the honest answer against another height's state root proves nothing either
    with pytest.raises(StateProofFailed) as other:
        check_account_proof(_root(s, 3), REGISTRY_ADDRESS, honest, slots)
    assert other.value.code in ("account_proof", "account_fields")


def test_slots_follow_the_compilers_storage_layout() -> None:
    """The slots state_proof reads are where vyper 0.4 puts elections, results and the
    Election struct's phase and definition_hash fields."""
    out = subprocess.run([str(Path(sys.executable).parent / "vyper"), "-f", "layout",
                          str(ROOT / "contracts" / "ElectionRegistry.vy")],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    layout = json.loads(out)["storage_layout"]
    assert layout["elections"]["slot"] == ELECTIONS_SLOT and layout["results"]["slot"] == RESULTS_SLOT
    source = (ROOT / "contracts" / "ElectionRegistry.vy").read_text()
    struct = source.split("struct Election:\n", 1)[1].split("\n\n", 1)[0]
    fields = [line.split(":", 1)[0].strip() for line in struct.splitlines() if line.strip()]
    assert fields.index("phase") == PHASE_FIELD and fields.index("definition_hash") == DEFINITION_HASH_FIELD
