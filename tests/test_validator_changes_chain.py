"""Validator set changes on a chain with the registry (py-evm): the authority's
``change_validators`` call, the refusals every validator makes before one may enter a
block, the set in force at each height in headers and certificates, the event indexers
see, and the verifier's replay and its refusal of a removed validator's certificate."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ballotledger.election_kit import make_election
from contracts import REGISTRY_ADDRESS, registry
from contracts.engine import EvmExecutor, memory_state_db, sign_transaction
from ledger.assemble import assemble_block
from ledger.block import Block, Checkpoint, CommitCertificate
from ledger.chain import Chain
from ledger.crypto import SigningKey
from ledger.errors import LedgerError
from ledger.genesis import ChainParams, ValidatorInfo, ValidatorSet
from ledger.receipt import Receipt
from ledger.rules import validators_at
from ledger.tally import Tally
from ledger.validators import VALIDATOR_CHANGE_DELAY
from tests.helpers import write_bundle
from verifier.verify import verify_bundle

EXTRA = [SigningKey.from_seed(f"valset/extra/{i}".encode()) for i in range(3)]


class Run:
    """A 4-validator chain with contracts, block by block, certified by the set in force."""

    def __init__(self, path: Path) -> None:
        self.kit = make_election(validators=4, voters=4, seed="valset", params=ChainParams(contracts=True))
        self.genesis = self.kit.genesis
        self.engine = EvmExecutor(self.genesis, memory_state_db())
        self.chain = Chain(path, self.genesis, self.engine)
        self.keys = {k.public_key: k for k in (*self.kit.validator_keys, *EXTRA)}
        self.nonce = 0
        self.last: CommitCertificate | None = None
        self.blocks: list[tuple[Block, CommitCertificate]] = []

    def in_force(self, height: int) -> ValidatorSet:
        return validators_at(self.genesis, self.chain.store.tip.state_root, self.engine, height)

    def change(self, removed: SigningKey | None, added: SigningKey | None, name: str = "new") -> bytes:
        info = ValidatorInfo(name, added.public_key, 1) if added is not None else None
        data = registry().change_validators(removed.public_key if removed else b"", info)
        return sign_transaction(self.kit.authority_key, chain_id=self.engine.chain_id, nonce=self.nonce,
                                to=REGISTRY_ADDRESS, data=data)

    def block(self, txs: Sequence[bytes] = ()) -> Block:
        tip = self.chain.store.tip
        proposer = self.in_force(tip.height + 1).validators[0].public_key
        return assemble_block(self.genesis, tip, [], time_ms=tip.time_ms + 1000, proposer=proposer,
                              last_commit=self.last, transactions=list(txs), engine=self.engine)

    def certify(self, block: Block, signers: ValidatorSet | None = None) -> CommitCertificate:
        """By every member of ``signers`` (default: the set in force), each at its index there."""
        members = (signers or self.in_force(block.height)).validators
        return CommitCertificate.create([(i, self.keys[v.public_key]) for i, v in enumerate(members)],
                                        chain_id=self.genesis.chain_id, height=block.height, round_=0,
                                        block_hash=block.hash())

    def commit(self, block: Block) -> CommitCertificate:
        cert = self.certify(block)
        self.chain.commit(block, cert)
        self.nonce += len(block.transactions)
        self.last = cert
        self.blocks.append((block, cert))
        return cert


@pytest.fixture()
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(tmp_path / "db")
    yield r
    r.chain.close()


def _keys(validators: ValidatorSet) -> list[bytes]:
    return [v.public_key for v in validators.validators]


def test_add_remove_replace_in_force_from_their_heights_and_verified(run: Run, tmp_path: Path) -> None:
    genesis_keys = _keys(run.genesis.validators)
    v = run.kit.validator_keys
    add = run.block([run.change(None, EXTRA[0], "backup-centre")])
    run.commit(add)  # height 1: in force from 3
    # The event indexers see, with its effective height.
    outcome = run.engine.execute_block(run.engine.genesis_state_root(), 1, add.header.time_ms, add.transactions,
                                       (0, add.header.log_root, ()))
    events = [registry().decode_log(log.topics, log.data) for log in outcome.outcomes[0].logs]
    (name, fields), = [e for e in events if e is not None]
    assert name == "ValidatorSetChanged" and fields["effective_height"] == 1 + VALIDATOR_CHANGE_DELAY
    assert bytes(fields["added"]) == EXTRA[0].public_key and fields["name"] == "backup-centre"

    assert _keys(run.in_force(2)) == genesis_keys
    run.commit(run.block())  # height 2: still the genesis set
    assert run.blocks[-1][0].header.validator_set_hash == run.genesis.validators.hash()
    assert _keys(run.in_force(3)) == [*genesis_keys, EXTRA[0].public_key]
    run.commit(run.block([run.change(v[3], None)]))  # height 3: five validators; v3 out from 5
    assert run.blocks[-1][0].header.validator_set_hash == run.in_force(3).hash()
    assert len(run.blocks[-1][1].signatures) == 5  # the added validator signs from height 3
    run.commit(run.block([run.change(v[0], EXTRA[1], "recovery-site")]))  # height 4; v0 -> extra1 from 6
    run.commit(run.block())  # height 5: v3 removed
    assert _keys(run.in_force(5)) == [*genesis_keys[:3], EXTRA[0].public_key]
    run.commit(run.block())  # height 6: v0 replaced in its place
    assert _keys(run.in_force(6)) == [EXTRA[1].public_key, *genesis_keys[1:3], EXTRA[0].public_key]
    run.commit(run.block())  # height 7

    bundle = run_bundle(run, tmp_path / "bundle")
    report = verify_bundle(bundle)
    assert report.valid, report.failure

    # A certificate of height 5 signed with the removed v3's key (at the index it had) is
    # refused by the chain and by the verifier. Fails when certificates are checked
    # against the genesis set.
    block5, _ = run.blocks[4]
    forged = run.certify(block5, run.genesis.validators)
    with pytest.raises(LedgerError):
        forged.check(run.in_force(5), chain_id=run.genesis.chain_id, height=5, block_hash=block5.hash())
    tampered = tmp_path / "tampered"
    run_bundle(run, tampered, replace_certificate={5: forged})
    report = verify_bundle(tampered)
    assert not report.valid and "block 5 certificate" in str(report.failure)

    # Offline checks that know only genesis refuse a checkpoint made under another set
    # with a clear code, and pass with the set in force.
    late = Checkpoint(run.blocks[5][0].header, run.blocks[5][1])
    with pytest.raises(LedgerError) as refused:
        late.check(run.genesis.validators)
    assert refused.value.code == "bad_validator_set"
    late.check(run.in_force(6))
    receipt = Receipt(run.genesis.chain_id, run.kit.election_id, b"\x00" * 32, 0, 6, late, ())
    with pytest.raises(LedgerError, match="validator set"):
        receipt.verify(run.genesis)


def run_bundle(run: Run, out: Path, replace_certificate: dict[int, CommitCertificate] | None = None) -> Path:
    swap = replace_certificate or {}
    blocks = [(block, swap.get(block.height, cert)) for block, cert in run.blocks]
    return write_bundle(out, run.genesis, blocks, Tally(run.genesis))


@pytest.mark.parametrize(("what", "removed", "added"), [
    ("fewer than 4", 3, None),
    ("a duplicate key", None, 1),
    ("a key not in the set", "extra", None),
    ("replacing a key by itself", 2, 2),
])
def test_refused_changes_never_enter_a_block(run: Run, what: str, removed: object, added: object) -> None:
    """Every validator refuses the call before it may enter a block (bad_validator_change).
    Fails when the engine leaves the set's rules to the registry (which checks none)."""
    v = run.kit.validator_keys
    key = EXTRA[2] if removed == "extra" else v[removed] if isinstance(removed, int) else None
    new = v[added] if isinstance(added, int) else None
    tx = run.change(key, new)
    tip = run.chain.store.tip
    with pytest.raises(LedgerError) as refused:
        run.engine.check_transaction(tip.state_root, tx, height=tip.height + 1, time_ms=tip.time_ms + 1000)
    assert refused.value.code == "bad_validator_change", what
    with pytest.raises(LedgerError):
        run.block([tx])  # a proposer cannot build it either
