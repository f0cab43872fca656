"""The chain rules: each refusal by name, and a stateful model over a real store."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger import merkle
from ledger.ballot import BallotEnvelope
from ledger.block import Block, BlockHeader, CommitCertificate
from ledger.chain import Chain
from ledger.crypto import SigningKey
from ledger.elections import Elections
from ledger.errors import LedgerError
from ledger.hashing import keccak256
from ledger.rules import apply_block, check_ballot
from ledger.state import ChainTip, EmptyView
from tests.helpers import certify, kit, next_block

K = kit(4, 24)
G = K.genesis


def _header(block: Block, **changes: object) -> Block:
    return dataclasses.replace(block, header=dataclasses.replace(block.header, **changes))


def _genesis_block(ballots: list[bytes] | None = None) -> Block:
    return next_block(K, ChainTip.at_genesis(G), ballots or [], None)


def _code(fn: Callable[[], object]) -> str:
    with pytest.raises(LedgerError) as info:
        fn()
    return info.value.code


def test_valid_first_block_applies() -> None:
    block = _genesis_block([K.ballot(0, 1).encode(), K.ballot(1, 2).encode()])
    effects = apply_block(G, ChainTip.at_genesis(G), EmptyView(), block)
    assert effects.tip.height == 1 and effects.tip.block_hash == block.hash()
    assert [c.tracking_code for c in effects.ballots] == [keccak256(b) for b in block.ballots]
    assert effects.tip.frontier().root() == merkle.root([keccak256(b) for b in block.ballots])


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda b: _header(b, chain_id="other"), "wrong_chain"),
        (lambda b: _header(b, height=2), "bad_height"),
        (lambda b: _header(b, parent_hash=b"\x09" * 32), "bad_parent"),
        (lambda b: _header(b, time_ms=G.genesis_time_ms), "bad_time"),
        (lambda b: _header(b, proposer=K.voters[0].public_key), "bad_proposer"),
        (lambda b: _header(b, validator_set_hash=b"\x00" * 32), "bad_validator_set"),
        (lambda b: _header(b, log_root=b"\x00" * 32), "bad_log_root"),
        (lambda b: _header(b, log_size=b.header.log_size + 1), "bad_log_root"),
        (lambda b: _header(b, state_root=b"\x07" * 32), "bad_state_root"),
        (lambda b: dataclasses.replace(b, transactions=(b"tx",)), "bad_transaction"),
        (lambda b: _header(b, last_commit_hash=b"\x01" * 32), "bad_last_commit"),
        (lambda b: dataclasses.replace(b, ballots=b.ballots[::-1]), "bad_log_root"),
        (lambda b: dataclasses.replace(b, ballots=b.ballots[:1]), "bad_log_root"),
        (lambda b: dataclasses.replace(b, ballots=(*b.ballots, b.ballots[0])), "duplicate_ballot"),
    ],
)
def test_header_and_body_rules(mutate: Callable[[Block], Block], code: str) -> None:
    block = _genesis_block([K.ballot(0, 1).encode(), K.ballot(1, 2).encode()])
    assert _code(lambda: apply_block(G, ChainTip.at_genesis(G), EmptyView(), mutate(block))) == code


def _forge(env: BallotEnvelope, **changes: object) -> bytes:
    return dataclasses.replace(env, **changes).encode()


def test_ballot_rules_by_code() -> None:
    env = K.ballot(3, 0)
    outsider = SigningKey.from_seed(b"outsider")
    cases = {
        "bad_signature": _forge(env, payload=b"\x01"),
        "not_in_credential_set": BallotEnvelope.create(
            outsider, chain_id=G.chain_id, election_id=K.election_id, proof=env.proof, payload=b"\x00"
        ).encode(),
        "wrong_chain": BallotEnvelope.create(
            K.voters[3], chain_id="elsewhere", election_id=K.election_id, proof=env.proof, payload=b"\x00"
        ).encode(),
        "unknown_election": BallotEnvelope.create(
            K.voters[3], chain_id=G.chain_id, election_id="nope", proof=env.proof, payload=b"\x00"
        ).encode(),
        "bad_encoding": env.encode()[:-1],
        "oversized": env.encode() + b"\x00" * G.params.max_ballot_bytes,
    }
    cases["bad_signature_payload"] = K.ballot(3, 9).encode()
    for expected, raw in cases.items():
        got = _code(lambda raw=raw: check_ballot(G, raw, elections=Elections.of_genesis(G)))
        assert got == ("bad_encoding" if expected == "bad_signature_payload" else expected), expected
    # a proof for another voter's slot does not prove this credential
    wrong_slot = _forge(env, proof=K.ballot(4, 0).proof)
    assert _code(lambda: check_ballot(G, wrong_slot, elections=Elections.of_genesis(G))) == "not_in_credential_set"


def test_one_counted_ballot_per_credential() -> None:
    first = K.ballot(5, 0).encode()
    second = K.ballot(5, 1).encode()
    block = _genesis_block([first, second])
    assert _code(lambda: apply_block(G, ChainTip.at_genesis(G), EmptyView(), block)) == "duplicate_credential"


def test_last_counts_policy_allows_revoting_and_counts_the_last() -> None:
    k = kit(1, 8, "last-counts")
    tip = ChainTip.at_genesis(k.genesis)
    block = next_block(k, tip, [k.ballot(1, 0).encode(), k.ballot(1, 2).encode()], None)
    effects = apply_block(k.genesis, tip, EmptyView(), block)
    assert [(c.election.election_id, c.envelope.credential, c.tracking_code) for c in effects.counted] == [
        (k.election_id, k.voters[1].public_key, keccak256(block.ballots[1]))
    ]


def test_election_window_is_enforced_at_block_time() -> None:
    election = G.elections[0]
    tip = ChainTip.at_genesis(G)
    late = next_block(K, tip, [K.ballot(0, 0).encode()], None, dt=election.closes_at_ms - tip.time_ms)
    assert _code(lambda: apply_block(G, tip, EmptyView(), late)) == "election_not_open"


def test_certificates_need_a_quorum_of_valid_distinct_signers() -> None:
    block = _genesis_block()
    check = lambda c: c.check(G.validators, chain_id=G.chain_id, height=1, block_hash=block.hash())  # noqa: E731
    check(certify(K, block, signers=3))
    assert _code(lambda: check(certify(K, block, signers=2))) == "insufficient_quorum"
    three = certify(K, block, signers=3)
    dup = dataclasses.replace(three, signatures=(three.signatures[0], three.signatures[0], three.signatures[1]))
    assert _code(lambda: check(dup)) == "bad_certificate"
    swapped = dataclasses.replace(
        three, signatures=(three.signatures[0], dataclasses.replace(three.signatures[1], validator_index=2),
                           dataclasses.replace(three.signatures[2], validator_index=3))
    )
    assert _code(lambda: check(swapped)) == "bad_signature"
    other_round = dataclasses.replace(three, round=1)
    assert _code(lambda: check(other_round)) == "bad_signature"
    assert _code(lambda: check(dataclasses.replace(three, height=2))) == "bad_certificate"


# --- the stateful model ---------------------------------------------------------------
class ChainModel(RuleBasedStateMachine):
    """Valid blocks extend the chain; every invalid block is refused and changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.chain = Chain(Path(self.dir.name) / "db", G)
        self.voted: set[int] = set()
        self.codes: list[bytes] = []
        self.last: CommitCertificate | None = None

    def teardown(self) -> None:
        self.chain.close()
        self.dir.cleanup()

    def _fresh_voters(self, n: int) -> list[int]:
        return [v for v in range(len(K.voters)) if v not in self.voted][:n]

    def _fresh_ballots(self, n: int, choice: int) -> list[bytes]:
        return [K.ballot(v, choice % 3).encode() for v in self._fresh_voters(n)]

    @rule(n=st.integers(0, 4), choice=st.integers(0, 2))
    def append_valid(self, n: int, choice: int) -> None:
        voters = self._fresh_voters(n)
        ballots = [K.ballot(v, choice) for v in voters]
        block = next_block(K, self.chain.store.tip, [b.encode() for b in ballots], self.last)
        cert = certify(K, block, signers=3)
        self.chain.commit(block, cert)
        self.voted.update(voters)
        self.codes.extend(b.tracking_code for b in ballots)
        self.last = cert

    @precondition(lambda self: bool(self.voted))
    @rule(choice=st.integers(0, 2))
    def refuse_double_vote(self, choice: int) -> None:
        voter = min(self.voted)
        block = next_block(K, self.chain.store.tip, [K.ballot(voter, choice).encode()], self.last)
        self._refused(block, {"duplicate_credential", "duplicate_ballot"})

    @rule(kind=st.sampled_from(["parent", "height", "root", "time", "lastcommit", "quorum", "badsig"]))
    def refuse_invalid(self, kind: str) -> None:
        tip = self.chain.store.tip
        block = next_block(K, tip, self._fresh_ballots(1, 0), self.last)
        cert = certify(K, block, signers=3)
        if kind == "parent":
            block = _header(block, parent_hash=keccak256(tip.block_hash))
        elif kind == "height":
            block = _header(block, height=tip.height + 2)
        elif kind == "root":
            block = _header(block, log_root=keccak256(block.header.log_root))
        elif kind == "time":
            block = _header(block, time_ms=tip.time_ms)
        elif kind == "lastcommit" and self.last is not None:
            block = dataclasses.replace(block, last_commit=dataclasses.replace(self.last, round=self.last.round + 1))
            block = _header(block, last_commit_hash=block.last_commit.hash())  # type: ignore[union-attr]
        elif kind == "quorum":
            cert = certify(K, block, signers=2)
        elif kind == "badsig":
            env = BallotEnvelope.decode(block.ballots[0]) if block.ballots else None
            if env is None:
                return
            block = next_block(K, tip, [_forge(env, payload=bytes([(env.payload[0] + 1) % 3]))], self.last)
        else:
            return
        if kind != "quorum":
            cert = certify(K, block, signers=3)
        self._refused(block, None, cert)

    def _refused(self, block: Block, codes: set[str] | None, cert: CommitCertificate | None = None) -> None:
        before = self.chain.store.tip
        with pytest.raises(LedgerError) as info:
            self.chain.commit(block, cert or certify(K, block, signers=3))
        if codes is not None:
            assert info.value.code in codes
        assert self.chain.store.tip == before

    @invariant()
    def store_matches_model(self) -> None:
        store = self.chain.store
        assert store.log_size == len(self.codes)
        assert store.tip.frontier().root() == merkle.root(self.codes)
        for i, code in enumerate(self.codes[-3:]):
            index = len(self.codes) - len(self.codes[-3:]) + i
            assert store.ballot_position(code) is not None
            assert store.ballot_position(code)[0] == index  # type: ignore[index]
            merkle.verify_inclusion(code, index, store.log_size, store.inclusion_proof(index, store.log_size),
                                    store.tip.frontier().root())


TestChainModel = ChainModel.TestCase


def test_header_decode_refuses_non_canonical() -> None:
    header = _genesis_block().header
    assert BlockHeader.decode(header.encode()) == header
