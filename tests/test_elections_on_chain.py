"""Elections defined after genesis by an authority transaction: the registry keeps the
canonical definition, the chain's rules read definitions and phases from it, and the
verifier replays and counts such an election like a genesis one."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from eth_abi.abi import decode as abi_decode
from hypothesis import given, settings
from hypothesis import strategies as st

from ballotledger.election_kit import ElectionKit, make_election
from contracts import REGISTRY_ADDRESS, InvalidDefinition, registry
from contracts.engine import EvmExecutor, memory_state_db, sign_transaction
from ledger import codec
from ledger.assemble import assemble_block
from ledger.ballot import BallotEnvelope
from ledger.block import Block, CommitCertificate, transactions_hash
from ledger.chain import Chain
from ledger.elections import Elections
from ledger.errors import BadEncoding, LedgerError
from ledger.genesis import ENCRYPTED_SCHEME, MAX_DEFINITION_BYTES, ChainParams, Contest, ElectionDef
from ledger.group import base_mul
from ledger.rules import apply_block, check_admissible, elections_at
from ledger.tally import Tally
from node.gateway.directory import BadDirectoryAnswer, parse_elections
from tests.helpers import certify, write_bundle
from verifier.verify import verify_bundle

LATER = "budget-2027"

# --- the canonical definition ------------------------------------------------------------
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_id = st.from_regex(r"^[a-z0-9][a-z0-9._-]{0,20}$", fullmatch=True)


@st.composite
def definitions(draw: st.DrawFn) -> ElectionDef:
    opens = draw(st.integers(0, 2**63))
    base = {
        "election_id": draw(_id), "question": draw(_text), "credential_root": draw(st.binary(min_size=32, max_size=32)),
        "credential_count": draw(st.integers(0, 2**64 - 1)), "opens_at_ms": opens,
        "closes_at_ms": draw(st.integers(opens + 1, 2**64 - 1)),
        "revoting": draw(st.sampled_from(["first-counts", "last-counts"])),
    }
    if draw(st.booleans()):
        return ElectionDef(**base, choices=tuple(draw(st.lists(_text, min_size=1, max_size=5))))
    contests = tuple(
        Contest(draw(_text), tuple(draw(st.lists(_text, min_size=n, max_size=n))), draw(st.integers(1, n)))
        for n in draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    )
    key = base_mul(draw(st.integers(1, 2**200)))
    assert key is not None
    if draw(st.booleans()):  # the trustees' ceremony makes the key
        n = draw(st.integers(1, 5))
        trustees = tuple(point.encode() for k in range(n) if (point := base_mul(1000 + k)) is not None)
        return ElectionDef(**base, choices=(), payload_scheme=ENCRYPTED_SCHEME, contests=contests,
                           trustees=trustees, threshold=draw(st.integers(1, n)))
    return ElectionDef(**base, choices=(), payload_scheme=ENCRYPTED_SCHEME, contests=contests, joint_key=key.encode())


@settings(max_examples=60, deadline=None)
@given(definitions())
def test_definition_round_trips(election: ElectionDef) -> None:
    encoded = election.encode()
    assert ElectionDef.decode(encoded) == election
    assert ElectionDef.decode(encoded).encode() == encoded


@settings(max_examples=60, deadline=None)
@given(definitions(), st.binary(min_size=1, max_size=3))
def test_definition_with_trailing_bytes_is_refused(election: ElectionDef, extra: bytes) -> None:
    with pytest.raises(BadEncoding):
        ElectionDef.decode(election.encode() + extra)


def test_definition_refusals_name_what_is_wrong() -> None:
    good = make_election().election
    item = good.item()
    assert isinstance(item, list)
    cases = {
        "leading zero": codec.encode([*item[:4], b"\x00" + item[4], *item[5:]]),
        "closes before it opens": codec.encode([*item[:5], item[6], item[5], *item[7:]]),
        "expected 9, 11 or 13 fields": codec.encode(item[:8]),
        "exceeds": b"\x00" * (MAX_DEFINITION_BYTES + 1),
    }
    for expected, data in cases.items():
        with pytest.raises(BadEncoding, match=expected):
            ElectionDef.decode(data)


# --- on a chain ---------------------------------------------------------------------------
def _later_election(k: ElectionKit) -> ElectionDef:
    return ElectionDef(
        election_id=LATER, question="Adopt the budget?", choices=("yes", "no"),
        credential_root=k.credentials.root, credential_count=len(k.credentials),
        opens_at_ms=k.genesis.genesis_time_ms, closes_at_ms=k.genesis.genesis_time_ms + 86_400_000,
        revoting="last-counts",
    )


class Run:
    """One validator's chain with contracts, block by block."""

    def __init__(self, path: Path) -> None:
        self.kit = make_election(voters=12, seed="later-elections", params=ChainParams(contracts=True))
        self.genesis = self.kit.genesis
        self.engine = EvmExecutor(self.genesis, memory_state_db())
        self.chain = Chain(path, self.genesis, self.engine)
        self.nonce = 0
        self.last: CommitCertificate | None = None
        self.blocks: list[tuple[Block, CommitCertificate]] = []
        self.tally = Tally(self.genesis)

    def tx(self, data: bytes) -> bytes:
        return sign_transaction(self.kit.authority_key, chain_id=self.engine.chain_id, nonce=self.nonce,
                                to=REGISTRY_ADDRESS, data=data)

    def block(self, ballots: Sequence[bytes] = (), txs: Sequence[bytes] = ()) -> Block:
        tip = self.chain.store.tip
        return assemble_block(self.genesis, tip, list(ballots), time_ms=tip.time_ms + 1000,
                              proposer=self.kit.validator_keys[0].public_key, last_commit=self.last,
                              transactions=list(txs), engine=self.engine)

    def commit(self, block: Block) -> None:
        cert = certify(self.kit, block)
        effects = self.chain.commit(block, cert)
        self.tally.record_block(effects)
        self.nonce += len(block.transactions)
        self.last = cert
        self.blocks.append((block, cert))

    def ballot(self, voter: int, election: str, payload: bytes) -> bytes:
        key = self.kit.voters[voter]
        return BallotEnvelope.create(key, chain_id=self.genesis.chain_id, election_id=election,
                                     proof=self.kit.credentials.proof(key.public_key), payload=payload).encode()

    def admissible(self, raw: bytes) -> str:
        tip = self.chain.store.tip
        try:
            check_admissible(self.genesis, raw, tip.time_ms + 1000,
                             elections=elections_at(self.genesis, tip.state_root, self.engine))
        except LedgerError as exc:
            return exc.code
        return "ok"

    def write_bundle(self, out: Path) -> Path:
        return write_bundle(out, self.genesis, self.blocks, self.tally)


@pytest.fixture()
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(tmp_path / "db")
    yield r
    r.chain.close()


def test_an_election_defined_after_genesis_is_counted_and_verified(run: Run, tmp_path: Path) -> None:
    """Fails when the rules look elections up in the genesis instead of the registry."""
    later = _later_election(run.kit)
    reg = registry()
    assert run.admissible(run.ballot(0, LATER, b"\x00")) == "unknown_election"

    run.commit(run.block(txs=[run.tx(reg.define_election(later))]))
    assert run.chain.definitions[LATER] == later
    known = run.engine.elections(run.chain.store.tip.state_root)
    assert [e.election_id for e in known] == [run.kit.election_id, LATER] and known.phase(LATER) == "setup"
    early = run.ballot(0, LATER, b"\x00")
    assert run.admissible(early) == "election_not_open"
    with pytest.raises(LedgerError, match="election_not_open") as info:  # a proposer cannot sneak it in
        run.chain.check(run.block([early]))
    assert info.value.where == "block 2 ballot 0"

    run.commit(run.block(txs=[run.tx(reg.open_election(LATER))]))
    assert run.admissible(early) == "ok"
    ballots = [early, run.ballot(1, LATER, b"\x01"), run.ballot(2, LATER, b"\x01"),
               run.ballot(0, LATER, b"\x01"),  # voter 0 changes their mind: last counts
               run.ballot(3, run.kit.election_id, b"\x02")]
    run.commit(run.block(ballots))
    assert run.tally.elections[LATER].to_json_obj() == {
        "ballots_recorded": 4, "ballots_counted": 3, "tally": {"yes": 0, "no": 3}}

    bundle = tmp_path / "bundle"
    run.write_bundle(bundle)
    for jobs in (1, 2):
        report = verify_bundle(bundle, jobs=jobs)
        assert report.valid, report.failure
        assert report.ballots == 5
    results = json.loads((bundle / "results.json").read_text())["elections"]
    assert results[LATER]["tally"] == {"yes": 0, "no": 3}


def test_a_wrong_count_for_a_later_election_is_caught(run: Run, tmp_path: Path) -> None:
    later = _later_election(run.kit)
    reg = registry()
    run.commit(run.block(txs=[run.tx(reg.define_election(later))]))
    run.commit(run.block(txs=[run.tx(reg.open_election(LATER))]))
    run.commit(run.block([run.ballot(1, LATER, b"\x01")]))
    bundle = tmp_path / "bundle"
    run.write_bundle(bundle)
    results = json.loads((bundle / "results.json").read_text())
    results["elections"][LATER]["tally"] = {"yes": 1, "no": 0}
    (bundle / "results.json").write_text(json.dumps(results))
    report = verify_bundle(bundle)
    assert not report.valid and report.failure is not None
    assert report.failure["check"] == "published_result", report.failure


def test_a_define_call_must_be_exactly_what_its_definition_gives(run: Run) -> None:
    """Fails when the engine trusts the define call's other arguments (the EVM cannot
    decode the definition to check them)."""
    later = _later_election(run.kit)
    reg = registry()
    fn = reg.fn("define_election")

    def args(data: bytes) -> list[object]:
        return list(abi_decode(list(fn.inputs), data[4:]))[:10]

    honest = reg.define_election(later)
    lying_window = reg.define_election(dataclasses.replace(later, closes_at_ms=later.closes_at_ms + 1))
    # the scalar arguments of one definition with the definition bytes of another
    mixed = fn.encode(*args(lying_window), later.encode(), [], 0)
    not_a_definition = fn.encode(*args(honest), b"\x01\x02", [], 0)
    tip = run.chain.store.tip
    for data, message in ((mixed, "not the ones its definition gives"), (not_a_definition, "election definition")):
        with pytest.raises(InvalidDefinition, match=message):
            run.engine.check_transaction(tip.state_root, run.tx(data), height=1, time_ms=tip.time_ms + 1000)
        # as a dishonest proposer would send it: the header commits to the transaction
        empty = run.block()
        header = dataclasses.replace(empty.header, txs_hash=transactions_hash([run.tx(data)]))
        block = dataclasses.replace(empty, header=header, transactions=(run.tx(data),))
        with pytest.raises(LedgerError, match="bad_definition"):
            apply_block(run.genesis, tip, run.chain.store, block, engine=run.engine)
    run.commit(run.block(txs=[run.tx(honest)]))  # the honest call still goes through
    assert LATER in run.chain.definitions


def test_definitions_survive_a_restart_of_the_engine(run: Run, tmp_path: Path) -> None:
    """A node restarted later finds every definition from its state database alone."""
    run.commit(run.block(txs=[run.tx(registry().define_election(_later_election(run.kit)))]))
    fresh = EvmExecutor(run.genesis, run.engine.db)
    assert fresh.elections(run.chain.store.tip.state_root) == run.engine.elections(run.chain.store.tip.state_root)
    genesis_only = Elections.of_genesis(run.genesis)
    assert LATER not in genesis_only and genesis_only.in_open_phase(run.kit.election_id)


# --- the gateway's view -----------------------------------------------------------------------
def test_the_gateway_directory_refuses_what_a_validator_should_never_say() -> None:
    e = _later_election(make_election())
    row = {"definition": e.encode().hex(), "phase": "open"}
    defined, phases = parse_elections({"height": 3, "elections": [row]}, {})
    assert defined == [e] and phases == {LATER: "open"}
    changed = dataclasses.replace(e, question="Something else?")
    bad_answers = [
        None, {"elections": "x"}, {"elections": [{"definition": e.encode().hex(), "phase": "voting"}]},
        {"elections": [{"definition": "zz", "phase": "open"}]},
        {"elections": [row] * 257},
    ]
    for answer in bad_answers:
        with pytest.raises(BadDirectoryAnswer):
            parse_elections(answer, {})
    with pytest.raises(BadDirectoryAnswer, match="changed its definition"):
        parse_elections({"elections": [{"definition": changed.encode().hex(), "phase": "open"}]}, {LATER: e})
    with pytest.raises(BadEncoding):
        parse_elections({"elections": [{"definition": "00", "phase": "open"}]}, {})
