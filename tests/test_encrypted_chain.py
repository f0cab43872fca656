"""Encrypted elections on the chain: genesis carries the contests and the joint key, every
admission point checks the ballot's proofs with the one rule, and nothing counts choices.

The proofs themselves are tested in tests/crypto; here, that the chain runs them: a
ballot whose proofs fail is refused by block application, the mempool and the gateway's
check with ``bad_ballot_proof`` and its location, and a block carrying one leaves no trace.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path

import pytest

from ballotledger.election_kit import DEMO_CONTESTS, ElectionKit, make_election
from contracts import REGISTRY_ADDRESS, choice_count, question_hash, registry, trustees_key_hash
from contracts.engine import EvmExecutor
from ledger.assemble import assemble_block
from ledger.ballot import BallotEnvelope
from ledger.chain import Chain
from ledger.elections import Elections
from ledger.elgamal import Ciphertext, EncryptedSum, decrypt_with_secret, discrete_log
from ledger.encrypted_ballot import EncryptedBallot, check_opening
from ledger.errors import BadGenesis, LedgerError
from ledger.genesis import ENCRYPTED_SCHEME, ChainParams, Contest, Genesis
from ledger.group import base_mul
from ledger.hashing import keccak256
from ledger.rules import ballot_context, check_admissible
from ledger.tally import Tally
from ledger.voter import selection_vectors
from node.gateway.admission import check_submission
from node.gateway.problems import Problem
from node.mempool import Mempool
from tests.crypto.helpers import forge_ballot
from tests.helpers import certify, next_block


@lru_cache(maxsize=2)
def ekit(revoting: str = "first-counts") -> ElectionKit:
    contests = (*DEMO_CONTESTS, Contest("Approve the budget?", ("yes", "no"), 1))
    return make_election(voters=8, seed=f"enc-{revoting}", contests=contests, revoting=revoting)


def _forged(k: ElectionKit, voter: int, actual: list[list[int]], claimed: list[list[int]]) -> bytes:
    """A signed ballot from a cheating client: ``actual`` encrypted, proofs claiming ``claimed``."""
    key = k.voters[voter]
    context = ballot_context(k.genesis.chain_id, k.election, key.public_key)
    limits = [c.limit for c in k.election.contests]
    sums = [min(sum(row), limit) for row, limit in zip(claimed, limits, strict=True)]  # lie within the limit
    payload = forge_ballot(context, actual, claimed, sums).encode()
    return BallotEnvelope.create(key, chain_id=k.genesis.chain_id, election_id=k.election_id,
                                 proof=k.credentials.proof(key.public_key), payload=payload).encode()


def test_genesis_round_trips_and_its_hash_covers_contests_and_key() -> None:
    k = ekit()
    g = k.genesis
    assert Genesis.from_json(g.to_json()) == g
    assert Genesis.from_json(g.to_json()).hash() == g.hash()
    obj = json.loads(g.to_json())
    assert obj["elections"][0]["payload_scheme"] == ENCRYPTED_SCHEME
    for mutate in (lambda e: e["contests"][1].update(limit=2),
                   lambda e: e["contests"][0]["choices"].append("zed"),
                   lambda e: e.update(joint_key=base_mul(7).encode().hex())):  # type: ignore[union-attr]
        changed = json.loads(g.to_json())
        mutate(changed["elections"][0])
        assert Genesis.from_json_obj(changed).hash() != g.hash()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda e: e.pop("joint_key"), "missing keys"),
        (lambda e: e.update(joint_key="02" + "00" * 32), "joint key"),
        (lambda e: e.update(contests=[]), "contests"),
        (lambda e: e.update(choices=["yes"]), "choices are in its contests"),
        (lambda e: e["contests"][0].update(limit=0), "limit"),
        (lambda e: e["contests"][0].update(limit=6), "limit"),
    ],
)
def test_malformed_encrypted_definitions_are_refused(mutate: object, match: str) -> None:
    obj = json.loads(ekit().genesis.to_json())
    mutate(obj["elections"][0])  # type: ignore[operator]
    with pytest.raises(BadGenesis, match=match):
        Genesis.from_json_obj(obj)


def test_honest_encrypted_ballots_enter_blocks_and_nothing_counts_choices(tmp_path: Path) -> None:
    k = ekit()
    ballots = [k.encrypted_ballot(v, [[v % 5], [v % 2]])[0] for v in range(4)]
    with Chain(tmp_path / "db", k.genesis) as chain:
        block = next_block(k, chain.store.tip, [b.encode() for b in ballots], None)
        effects = chain.commit(block, certify(k, block))
        assert [c.tracking_code for c in effects.ballots] == [b.tracking_code for b in ballots]
        tally = Tally(k.genesis)
        tally.record_block(effects)
        shown = tally.to_json_obj()["elections"][k.election_id]
        assert shown == {"ballots_recorded": 4, "ballots_counted": 4}  # no per-choice counts exist


def test_payload_holds_no_plaintext_and_the_opening_decrypts_it() -> None:
    k = ekit()
    envelope, opening = k.encrypted_ballot(3, [[2], [1]])
    assert opening.choices == tuple(tuple(v) for v in selection_vectors(k.election, [[2], [1]]))
    ballot = EncryptedBallot.decode(envelope.payload, max_size=len(envelope.payload))
    check_opening(ballot_context(k.genesis.chain_id, k.election, envelope.credential), ballot, opening)
    # decrypting with the kit's key gives the choices back: g^m = beta / alpha^x
    assert k.election_secret is not None
    selected = []
    for contest in ballot.contests:
        row = []
        for selection in contest.selections:
            ct: Ciphertext = selection.ciphertext
            row.append(discrete_log(decrypt_with_secret(EncryptedSum.of([ct]), k.election_secret), 1))
        selected.append(row)
    assert selected == [[0, 0, 1, 0, 0], [0, 1]]


@pytest.mark.parametrize(
    ("actual", "claimed", "where"),
    [
        ([[0, 2, 0, 0, 0], [1, 0]], [[0, 1, 0, 0, 0], [1, 0]], "contest 0 selection 1"),
        ([[1, 1, 0, 0, 0], [1, 0]], [[1, 1, 0, 0, 0], [1, 0]], "contest 0"),
        ([[1, 0, 0, 0, 0], [1, 1]], [[1, 0, 0, 0, 0], [1, 1]], "contest 1"),
    ],
)
def test_a_ballot_whose_proofs_fail_is_refused_everywhere(
    tmp_path: Path, actual: list[list[int]], claimed: list[list[int]], where: str
) -> None:
    k = ekit()
    good = k.encrypted_ballot(0, [[1], [0]])[0].encode()
    bad = _forged(k, 1, actual, claimed)
    time_ms = k.genesis.genesis_time_ms + 1000
    with pytest.raises(LedgerError) as info:
        check_admissible(k.genesis, bad, time_ms, elections=Elections.of_genesis(k.genesis))
    assert info.value.code == "bad_ballot_proof" and info.value.where is not None
    assert info.value.where.startswith(f"payload: {where}")
    with Chain(tmp_path / "db", k.genesis) as chain:
        pool = Mempool(k.genesis, chain.store)
        with pytest.raises(LedgerError, match="bad_ballot_proof"):
            pool.admit(bad, time_ms)
        assert len(pool) == 0
        with pytest.raises(Problem) as problem:
            check_submission(k.genesis, Elections.of_genesis(k.genesis), k.election_id, bad, time_ms)
        assert problem.value.code == "bad_ballot_proof" and problem.value.status == 422
        before = chain.store.tip
        block = next_block(k, before, [good, bad], None)
        with pytest.raises(LedgerError) as refused:
            chain.commit(block, certify(k, block))
        assert refused.value.code == "bad_ballot_proof"
        assert refused.value.where == f"block 1 ballot 1: payload: {where}"
        assert chain.store.tip == before and chain.store.log_size == 0


def test_a_payload_moved_to_another_credential_or_election_is_refused() -> None:
    k, other = ekit(), ekit("last-counts")
    envelope = k.encrypted_ballot(0, [[4], [1]])[0]
    thief = k.voters[1]
    moved = BallotEnvelope.create(thief, chain_id=k.genesis.chain_id, election_id=k.election_id,
                                  proof=k.credentials.proof(thief.public_key), payload=envelope.payload)
    with pytest.raises(LedgerError, match="bad_ballot_proof"):
        check_admissible(k.genesis, moved.encode(), k.genesis.genesis_time_ms + 1,
            elections=Elections.of_genesis(k.genesis))
    # the other kit's election has the same id and shape but its own joint key
    voter = other.voters[0]
    elsewhere = BallotEnvelope.create(voter, chain_id=other.genesis.chain_id, election_id=other.election_id,
                                      proof=other.credentials.proof(voter.public_key),
                                      payload=other.encrypted_ballot(0, [[4], [1]])[0].payload)
    assert check_admissible(other.genesis, elsewhere.encode(), other.genesis.genesis_time_ms + 1,
        elections=Elections.of_genesis(other.genesis))
    stolen = BallotEnvelope.create(k.voters[0], chain_id=k.genesis.chain_id, election_id=k.election_id,
                                   proof=k.credentials.proof(k.voters[0].public_key), payload=elsewhere.payload)
    with pytest.raises(LedgerError, match="bad_ballot_proof"):
        check_admissible(k.genesis, stolen.encode(), k.genesis.genesis_time_ms + 1,
            elections=Elections.of_genesis(k.genesis))


def test_a_forged_signature_costs_no_proof_check() -> None:
    """The signature is checked before the proofs: a ballot with a bad signature is
    refused as bad_signature even when its proofs are bad too."""
    k = ekit()
    bad = BallotEnvelope.decode(_forged(k, 1, [[0, 2, 0, 0, 0], [1, 0]], [[0, 1, 0, 0, 0], [1, 0]]))
    forged = dataclasses.replace(bad, signature=k.encrypted_ballot(2, [[0], [0]])[0].signature)
    with pytest.raises(LedgerError, match="bad_signature"):
        check_admissible(k.genesis, forged.encode(), k.genesis.genesis_time_ms + 1,
            elections=Elections.of_genesis(k.genesis))


def test_an_encrypted_election_runs_on_a_chain_with_the_registry(tmp_path: Path) -> None:
    """Genesis defines the encrypted election in the registry (its question hash covers
    the contests and joint key; the trustees' key hash is the joint key's), and blocks
    of encrypted ballots re-execute to the same state root."""
    k = make_election(voters=4, seed="enc-evm", contests=ekit().election.contests,
                      params=ChainParams(contracts=True))
    engine = EvmExecutor(k.genesis)
    with Chain(tmp_path / "db", k.genesis, engine) as chain:
        record = registry().decode_election(engine.call(
            chain.store.tip.state_root, REGISTRY_ADDRESS,
            registry().fn("election").encode(keccak256(k.election_id.encode()))))
        assert record.question_hash == question_hash(k.election)
        assert record.choice_count == choice_count(k.election) == 7
        assert record.trustees_key_hash == trustees_key_hash(k.election) == keccak256(k.election.joint_key)
        ballots = [k.encrypted_ballot(v, [[v], [1]])[0].encode() for v in range(3)]
        block = assemble_block(k.genesis, chain.store.tip, ballots, time_ms=k.genesis.genesis_time_ms + 1000,
                               proposer=k.validator_keys[0].public_key, last_commit=None, engine=engine)
        effects = chain.commit(block, certify(k, block))
        assert len(effects.ballots) == 3 and chain.store.tip.state_root == block.header.state_root
