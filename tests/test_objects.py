"""Every wire object round-trips exactly and refuses truncation, extension and garbage."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.ballot import BallotEnvelope, CredentialProof
from ledger.block import Block, BlockHeader, Checkpoint, CommitCertificate, CommitSignature
from ledger.errors import BadEncoding, BadGenesis, LedgerError
from ledger.genesis import Genesis
from ledger.merkle import MerkleFrontier
from ledger.state import ChainTip
from tests.helpers import kit

h32 = st.binary(min_size=32, max_size=32)
pub = st.sampled_from([k.public_key for k in kit(4, 8).voters])
small_int = st.integers(min_value=0, max_value=2**64 - 1)
text_id = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)

proofs = st.builds(CredentialProof.of, index=small_int, path=st.lists(h32, max_size=5))
envelopes = st.builds(
    BallotEnvelope,
    chain_id=text_id,
    election_id=text_id,
    credential=pub,
    proof=proofs,
    payload=st.binary(max_size=100),
    signature=st.binary(min_size=64, max_size=64),
)
headers = st.builds(
    BlockHeader,
    chain_id=text_id,
    height=small_int,
    time_ms=small_int,
    parent_hash=h32,
    proposer=pub,
    validator_set_hash=h32,
    log_size=small_int,
    log_root=h32,
    state_root=h32,
    txs_hash=h32,
    last_commit_hash=h32,
)
signatures = st.lists(
    st.builds(CommitSignature, validator_index=st.integers(0, 10), signature=st.binary(min_size=64, max_size=64)),
    max_size=4,
).map(tuple)
certificates = st.builds(
    CommitCertificate, chain_id=text_id, height=small_int, round=st.integers(0, 1000), block_hash=h32,
    signatures=signatures,
)
blocks = st.builds(
    Block,
    header=headers,
    ballots=st.lists(envelopes.map(lambda e: e.encode()), max_size=3).map(tuple),
    transactions=st.just(()),
    last_commit=st.none() | certificates,
)
checkpoints = st.builds(Checkpoint, header=headers, certificate=certificates)


def _tip(size: int, height: int, t: int) -> ChainTip:
    frontier = MerkleFrontier()
    for i in range(size):
        frontier.append(i.to_bytes(32, "big"))
    return ChainTip("c", height, b"\x01" * 32, t, b"\x02" * 32, frontier.to_bytes())


tips = st.builds(_tip, st.integers(0, 40), small_int, small_int)

CASES: list[tuple[str, Any, Callable[[bytes], Any]]] = [
    ("ballot", envelopes, BallotEnvelope.decode),
    ("header", headers, BlockHeader.decode),
    ("certificate", certificates, CommitCertificate.decode),
    ("block", blocks, Block.decode),
    ("checkpoint", checkpoints, Checkpoint.decode),
    ("tip", tips, ChainTip.decode),
]


@pytest.mark.parametrize("name, strategy, decode", CASES, ids=[c[0] for c in CASES])
def test_round_trip_and_refusals(name: str, strategy: Any, decode: Callable[[bytes], Any]) -> None:
    @given(strategy, st.binary(min_size=1, max_size=3))
    def check(obj: Any, extra: bytes) -> None:
        encoded = obj.encode()
        back = decode(encoded)
        assert back == obj
        assert back.encode() == encoded
        # a fresh object built from the decoded fields re-encodes to the same bytes
        # (a decoded ballot keeps its input bytes, so this is the real canonicality check)
        assert dataclasses.replace(back).encode() == encoded
        for cut in range(len(encoded)):
            with pytest.raises(BadEncoding):
                decode(encoded[:cut])
        with pytest.raises(BadEncoding):
            decode(encoded + extra)

    check()


@given(envelopes, st.data())
def test_single_byte_change_never_decodes_to_the_same_ballot(env: BallotEnvelope, data: st.DataObject) -> None:
    encoded = bytearray(env.encode())
    pos = data.draw(st.integers(0, len(encoded) - 1))
    encoded[pos] ^= data.draw(st.integers(1, 255))
    try:
        other = BallotEnvelope.decode(bytes(encoded))
    except LedgerError:
        return
    assert other != env
    assert other.tracking_code != env.tracking_code


def test_genesis_json_round_trip_and_hash_covers_every_field() -> None:
    g = kit(4, 8).genesis
    back = Genesis.from_json(g.to_json())
    assert back == g and back.hash() == g.hash()
    obj = g.to_json_obj()
    obj["elections"][0]["choices"][0] = "YES"
    assert Genesis.from_json_obj(obj).hash() != g.hash()
    obj = g.to_json_obj()
    obj["validators"][0]["name"] = "renamed"
    assert Genesis.from_json_obj(obj).hash() != g.hash()


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda o: o.update(extra=1), "unexpected keys"),
        (lambda o: o.pop("authority"), "missing keys"),
        (lambda o: o.update(chain_id="Bad Chain"), "chain id"),
        (lambda o: o["validators"][0].update(power=0), "power must be positive"),
        (lambda o: o["validators"][1].update(public_key=o["validators"][0]["public_key"]), "duplicate"),
        (lambda o: o.update(authority="02" + "00" * 32), "bad public key"),
        (lambda o: o["elections"][0].update(closes_at_ms=0), "closes before it opens"),
        (lambda o: o["elections"][0].update(revoting="sometimes"), "revoting"),
        (lambda o: o["elections"][0].update(credential_root="AB" * 32), "lower-case hex"),
        (lambda o: o.update(genesis_time_ms=-1), "non-negative"),
        (lambda o: o.update(format="other"), "unknown genesis format"),
    ],
)
def test_bad_genesis_is_refused_with_reason(mutate: Callable[[dict[str, Any]], Any], match: str) -> None:
    obj = kit(4, 8).genesis.to_json_obj()
    mutate(obj)
    with pytest.raises(BadGenesis, match=match):
        Genesis.from_json_obj(obj)


def test_genesis_not_json() -> None:
    with pytest.raises(BadGenesis, match="not valid JSON"):
        Genesis.from_json(b"{nope")


def test_credential_proof_holds_only_an_encoded_hash_list() -> None:
    proof = CredentialProof.of(3, [b"\x01" * 32, b"\x02" * 32])
    assert proof.path == (b"\x01" * 32, b"\x02" * 32) and proof.depth == 2
    for bad in (b"\xa0" + b"\x01" * 31, b"\xa1" + b"\x01" * 32, b"\x00" * 33):
        with pytest.raises(BadEncoding):
            CredentialProof(3, bad)
    with pytest.raises(BadEncoding):
        CredentialProof.of(3, [b"\x01" * 31])
