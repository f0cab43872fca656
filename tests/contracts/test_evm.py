"""The registry's lifecycle and refusals, executed on real py-evm through node.evm."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from contracts import (
    REGISTRY_ADDRESS,
    SYSTEM_ADDRESS,
    BadDefinition,
    BadResult,
    ContractError,
    ElectionExists,
    ElectionUnknown,
    Phase,
    election_key,
    load_artifact,
    question_hash,
    registry,
)
from ledger.crypto import address_of
from ledger.elections import Elections
from ledger.errors import LedgerError, UnknownElection
from ledger.hashing import ZERO_HASH, keccak256
from node.evm import (
    CheckpointInput,
    EvmError,
    EvmExecutor,
    InvalidTransaction,
    LevelStateDB,
    NotAuthority,
    NotAuthoritySender,
    NotSystem,
    UnknownStateRoot,
    WrongPhase,
    evm_chain_id,
    open_executor,
    system_call_hash,
)

from .helpers import STRANGER, Driver, kit, new_election

EID = "board-2026"


def _open(ex: EvmExecutor, root: bytes, time_ms: int) -> frozenset[str]:
    """The elections open (registry phase and window) at ``time_ms`` on ``root``."""
    elections = ex.elections(root)
    return frozenset(e.election_id for e in elections if elections.is_open(e, time_ms))


@pytest.fixture()
def d() -> Driver:
    return Driver(EvmExecutor(kit().genesis), kit())


def test_chain_id_is_derived_from_the_ledger_chain_id() -> None:
    assert evm_chain_id("demo-chain") == evm_chain_id("demo-chain")
    assert evm_chain_id("demo-chain") != evm_chain_id("other-chain")
    assert 0 < evm_chain_id("demo-chain") < 2**48


def test_genesis_deploys_registry_with_genesis_elections_open(d: Driver) -> None:
    ex, root, g = d.executor, d.root, d.kit.genesis
    assert ex.get_code(root, REGISTRY_ADDRESS) != b""
    reg = registry()
    (authority,) = reg.fn("AUTHORITY").decode(ex.call(root, REGISTRY_ADDRESS, reg.fn("AUTHORITY").encode()))
    assert bytes.fromhex(authority[2:]) == address_of(g.authority)
    assert ex.election_phase(root, EID) == Phase.OPEN
    e = g.elections[0]
    assert ex.is_open(root, EID, e.opens_at_ms)
    assert not ex.is_open(root, EID, e.opens_at_ms - 1)
    assert not ex.is_open(root, EID, e.closes_at_ms)
    assert _open(ex, root, e.opens_at_ms) == frozenset({EID})
    assert ex.election_phase(root, "no-such") == Phase.NONE
    assert not ex.is_open(root, "no-such", e.opens_at_ms)
    record = reg.decode_election(ex.call(root, REGISTRY_ADDRESS, reg.fn("election").encode(election_key(EID))))
    assert record.question_hash == question_hash(e)
    assert record.credential_root == e.credential_root and record.credential_count == e.credential_count
    assert (record.opens_at_ms, record.closes_at_ms, record.choice_count) == (e.opens_at_ms, e.closes_at_ms, 3)
    # the genesis state is a function of the genesis alone
    assert EvmExecutor(g).genesis_state_root() == root


def test_full_lifecycle_with_an_event_for_every_transition(d: Driver) -> None:
    reg, ex = d.reg, d.executor
    e = new_election(d.kit)
    gateway = keccak256(b"gateway-key")
    r = d.block([d.tx(reg.define_election(e, gateways=[gateway]))])
    assert r.outcomes[0].success and not r.outcomes[0].system and r.outcomes[-1].system
    names = [n for n, _ in d.events(r)]
    assert names == ["ElectionDefined", "PhaseChanged", "GatewaySet", "Checkpoint"]
    assert ex.election_phase(d.root, e.election_id) == Phase.SETUP
    assert not ex.is_open(d.root, e.election_id, e.opens_at_ms + 1)

    trustees = keccak256(b"trustees")
    r = d.block([d.tx(reg.set_trustees_key(e.election_id, trustees)),
                 d.tx(reg.set_gateway(e.election_id, keccak256(b"gw2"), True)),
                 d.tx(reg.open_election(e.election_id))])
    assert all(o.success for o in r.outcomes)
    assert [n for n, _ in d.events(r)] == ["TrusteesKeySet", "GatewaySet", "PhaseChanged", "Checkpoint"]
    assert ex.election_phase(d.root, e.election_id) == Phase.OPEN
    assert ex.is_open(d.root, e.election_id, e.opens_at_ms + 1)
    (is_gw,) = reg.fn("is_gateway").decode(
        ex.call(d.root, REGISTRY_ADDRESS, reg.fn("is_gateway").encode(election_key(e.election_id), gateway)))
    assert is_gw

    d.block(ballots=[(EID, 3)])
    r = d.block([d.tx(reg.close_election(e.election_id))])
    fields = d.events(r)[0][1]
    assert fields["old_phase"] == Phase.OPEN and fields["new_phase"] == Phase.CLOSED
    assert not ex.is_open(d.root, e.election_id, e.opens_at_ms + 1)

    r = d.block([d.tx(reg.publish_result(e.election_id, [5, 3]))])
    assert [n for n, _ in d.events(r)] == ["PhaseChanged", "ResultPublished", "Checkpoint"]
    assert d.events(r)[1][1]["counts"] == (5, 3)
    assert ex.election_phase(d.root, e.election_id) == Phase.TALLIED
    (counts,) = reg.fn("result").decode(ex.call(d.root, REGISTRY_ADDRESS, reg.fn("result").encode(
        election_key(e.election_id))))
    assert list(counts) == [5, 3]
    record = reg.decode_election(ex.call(d.root, REGISTRY_ADDRESS, reg.fn("election").encode(
        election_key(e.election_id))))
    assert record.trustees_key_hash == trustees and record.revoting == 1 and record.phase == Phase.TALLIED
    assert ex.get_nonce(d.root, ex.authority) == 6


def test_checkpoint_records_log_and_ballots_per_election(d: Driver) -> None:
    reg, ex = d.reg, d.executor
    r1 = d.block(ballots=[(EID, 4)])
    d.block()
    r3 = d.block(ballots=[(EID, 2)])
    for name, expected in (("last_height", 3), ("log_size", 6), ("log_root", keccak256((6).to_bytes(8, "big")))):
        (value,) = reg.fn(name).decode(ex.call(d.root, REGISTRY_ADDRESS, reg.fn(name).encode()))
        assert value == expected
    record = reg.decode_election(ex.call(d.root, REGISTRY_ADDRESS, reg.fn("election").encode(election_key(EID))))
    assert record.ballots == 6
    name, fields = d.events(r3)[0]
    assert name == "Checkpoint" and fields["height"] == 3 and fields["log_size"] == 6
    system = r1.outcomes[-1]
    assert system.sender == SYSTEM_ADDRESS and system.tx_hash == system_call_hash(d.kit.genesis.chain_id, 1)
    assert system.cumulative_gas_used == 0 and system.gas_used > 0  # not charged to the block


def test_checkpoint_input_from_a_ledger_block() -> None:
    from ledger.assemble import assemble_block
    from ledger.state import ChainTip

    k = kit()
    ballots = [k.ballot(i, i % 3).encode() for i in range(3)]
    block = assemble_block(k.genesis, ChainTip.at_genesis(k.genesis), ballots, time_ms=k.genesis.genesis_time_ms + 1,
                           proposer=k.validator_keys[0].public_key, last_commit=None)
    cp = CheckpointInput.of_ledger_block(Elections.of_genesis(k.genesis), block)
    assert cp == (3, block.header.log_root, ((EID, 3),))
    with pytest.raises(EvmError):
        CheckpointInput.of_block(Elections.of_genesis(k.genesis), 1, ZERO_HASH, ["not-in-genesis"])


# --- refusals ---------------------------------------------------------------------------
def test_transaction_signed_by_a_stranger_invalidates_the_block(d: Driver) -> None:
    tx = d.tx(d.reg.close_election(EID), key=STRANGER, nonce=0)
    with pytest.raises(NotAuthoritySender) as info:
        d.block([tx])
    assert info.value.code == "not_authority" and info.value.where == "transaction 0"
    assert d.executor.election_phase(d.root, EID) == Phase.OPEN


@pytest.mark.parametrize("call", ["close_election", "open_election", "publish_result", "define_election",
                                  "set_gateway", "set_trustees_key"])
def test_contract_refuses_every_authority_call_from_another_sender(d: Driver, call: str) -> None:
    reg = d.reg
    data = {
        "close_election": reg.close_election(EID),
        "open_election": reg.open_election(EID),
        "publish_result": reg.publish_result(EID, [1, 2, 3]),
        "define_election": reg.define_election(new_election(d.kit)),
        "set_gateway": reg.set_gateway(EID, ZERO_HASH, True),
        "set_trustees_key": reg.set_trustees_key(EID, ZERO_HASH),
    }[call]
    with pytest.raises(NotAuthority) as info:
        d.executor.call(d.root, REGISTRY_ADDRESS, data, sender=address_of(STRANGER.public_key))
    assert info.value.code == "not_authority"


def test_wrong_phase_reverts_and_leaves_the_phase(d: Driver) -> None:
    reg, ex = d.reg, d.executor
    r = d.block([d.tx(reg.open_election(EID))])  # already OPEN
    tx = r.outcomes[0]
    assert not tx.success and tx.revert_code == "wrong_phase" and tx.logs == ()
    assert tx.gas_used > 21_000
    assert ex.election_phase(d.root, EID) == Phase.OPEN
    assert ex.get_nonce(d.root, ex.authority) == 1  # a reverted transaction still uses its nonce
    with pytest.raises(WrongPhase):  # the mempool's pre-flight says so before inclusion
        ex.check_transaction(d.root, d.tx(reg.open_election(EID), nonce=1), height=d.height + 1, time_ms=d.time_ms)


def test_result_before_close_is_refused(d: Driver) -> None:
    reg = d.reg
    r = d.block([d.tx(reg.publish_result(EID, [1, 2, 3]))])
    assert r.outcomes[0].revert_code == "wrong_phase"
    with pytest.raises(WrongPhase):
        d.executor.check_transaction(d.root, d.tx(reg.publish_result(EID, [1, 2, 3]), nonce=d.nonce),
                                     height=d.height + 1, time_ms=d.time_ms)
    d.block([d.tx(reg.close_election(EID))])
    r = d.block([d.tx(reg.publish_result(EID, [1, 2])), d.tx(reg.publish_result(EID, [1, 2, 3])),
                 d.tx(reg.publish_result(EID, [1, 2, 3]))])
    assert [o.revert_code for o in r.outcomes[:3]] == ["bad_result", None, "wrong_phase"]
    assert d.executor.election_phase(d.root, EID) == Phase.TALLIED
    with pytest.raises(WrongPhase):  # no reopening once tallied
        d.executor.call(d.root, REGISTRY_ADDRESS, reg.close_election(EID), sender=d.executor.authority)


def test_definition_refusals(d: Driver) -> None:
    reg, ex, auth = d.reg, d.executor, d.executor.authority
    with pytest.raises(ElectionExists):
        ex.call(d.root, REGISTRY_ADDRESS, reg.define_election(d.kit.genesis.elections[0]), sender=auth)
    bad = reg.fn("define_election").encode(election_key("x"), ZERO_HASH, 2, 10, 10, ZERO_HASH, 1, ZERO_HASH, [], 0,
                                           b"", [], 0)
    with pytest.raises(BadDefinition):
        ex.call(d.root, REGISTRY_ADDRESS, bad, sender=auth)
    with pytest.raises(ElectionUnknown) as info:
        ex.call(d.root, REGISTRY_ADDRESS, reg.open_election("no-such"), sender=auth)
    assert isinstance(info.value, UnknownElection) and isinstance(info.value, LedgerError)
    with pytest.raises(WrongPhase):  # trustees only during setup
        ex.call(d.root, REGISTRY_ADDRESS, reg.set_trustees_key(EID, ZERO_HASH), sender=auth)
    with pytest.raises(BadResult):
        d.block([d.tx(reg.close_election(EID))])
        ex.call(d.root, REGISTRY_ADDRESS, reg.publish_result(EID, [1]), sender=auth)


def test_checkpoint_only_from_the_system_sender(d: Driver) -> None:
    reg, ex = d.reg, d.executor
    data = reg.checkpoint(1, 5, ZERO_HASH, [])
    with pytest.raises(NotSystem):
        ex.call(d.root, REGISTRY_ADDRESS, data, sender=address_of(STRANGER.public_key))
    with pytest.raises(NotSystem):
        ex.call(d.root, REGISTRY_ADDRESS, data, sender=ex.authority)
    r = d.block([d.tx(data)], ballots=[(EID, 2)])  # the authority's own transaction cannot checkpoint either
    assert r.outcomes[0].revert_code == "not_system"
    (height,) = reg.fn("last_height").decode(ex.call(d.root, REGISTRY_ADDRESS, reg.fn("last_height").encode()))
    assert height == 1  # only the block's own system call counted
    # the system sender may not skip or repeat heights, nor shrink the log
    for bad in (reg.checkpoint(1, 9, ZERO_HASH, []), reg.checkpoint(3, 9, ZERO_HASH, []),
                reg.checkpoint(2, 1, ZERO_HASH, [(EID, 1)])):
        with pytest.raises(ContractError):
            ex.call(d.root, REGISTRY_ADDRESS, bad, sender=SYSTEM_ADDRESS)


def test_a_failing_checkpoint_call_is_an_evm_error(d: Driver) -> None:
    with pytest.raises(EvmError) as info:
        d.executor.execute_block(d.root, 1, d.time_ms + 1, [], CheckpointInput(1, ZERO_HASH, (("no-such", 1),)))
    assert info.value.code == "evm_error" and "unknown_election" in info.value.message


def test_invalid_transactions_invalidate_the_block(d: Driver) -> None:
    reg, ex = d.reg, d.executor
    good = d.tx(reg.close_election(EID), nonce=0)
    cases = {
        "wrong chain id": d.tx(reg.close_election(EID), nonce=0, chain_id=ex.chain_id + 1),
        "bad nonce": d.tx(reg.close_election(EID), nonce=5),
        "garbage": b"\x02\xc0",
        "empty": b"",
        "trailing byte": good + b"\x00",
        "blob type": b"\x03" + good[1:],
    }
    for what, raw in cases.items():
        with pytest.raises(InvalidTransaction) as info:
            ex.execute_block(d.root, 1, d.time_ms + 1, [raw], CheckpointInput(0, ZERO_HASH, ()))
        assert info.value.where == "transaction 0", what
    with pytest.raises(InvalidTransaction):  # the same nonce twice in one block
        ex.execute_block(d.root, 1, d.time_ms + 1, [good, good], CheckpointInput(0, ZERO_HASH, ()))
    with pytest.raises(InvalidTransaction):  # a fee the authority cannot pay (it has no balance)
        paid = {"nonce": 0, "gasPrice": 1, "gas": 100_000, "to": "0x" + REGISTRY_ADDRESS.hex(),
                "value": 0, "data": reg.close_election(EID), "chainId": ex.chain_id}
        signed = Account.sign_transaction(paid, d.kit.authority_key.secret)
        ex.execute_block(d.root, 1, d.time_ms + 1, [bytes(signed.raw_transaction)], CheckpointInput(0, ZERO_HASH, ()))


def test_legacy_eip155_transaction_from_an_independent_signer(d: Driver) -> None:
    reg, ex = d.reg, d.executor
    tx = {"nonce": 0, "gasPrice": 0, "gas": 200_000, "to": "0x" + REGISTRY_ADDRESS.hex(), "value": 0,
          "data": reg.close_election(EID), "chainId": ex.chain_id}
    signed = Account.sign_transaction(tx, d.kit.authority_key.secret)
    r = d.block([bytes(signed.raw_transaction)])
    assert r.outcomes[0].success and r.outcomes[0].tx_hash == bytes(signed.hash)
    assert ex.election_phase(d.root, EID) == Phase.CLOSED
    # without EIP-155 replay protection a transaction is refused
    pre155 = Account.sign_transaction({k: v for k, v in tx.items() if k != "chainId"} | {"nonce": 1},
                                      d.kit.authority_key.secret)
    with pytest.raises(InvalidTransaction):
        d.block([bytes(pre155.raw_transaction)])


def test_authority_may_deploy_a_contract(d: Driver) -> None:
    code = load_artifact("NaiveBallotBox").bytecode
    r = d.block([d.tx(code, to=None)])
    created = r.outcomes[0].contract_address
    assert r.outcomes[0].success and created is not None and r.outcomes[0].to is None
    assert d.executor.get_code(d.root, created) == load_artifact("NaiveBallotBox").bytecode_runtime


def test_unknown_state_root_is_refused(d: Driver) -> None:
    with pytest.raises(UnknownStateRoot):
        d.executor.election_phase(keccak256(b"nowhere"), EID)


# --- determinism and LevelDB --------------------------------------------------------------
def _script(d: Driver) -> list[bytes]:
    reg = d.reg
    e = new_election(d.kit)
    d.block([d.tx(reg.define_election(e))], ballots=[(EID, 2)])
    d.block([d.tx(reg.open_election(e.election_id)), d.tx(reg.open_election(EID))])
    d.block(ballots=[(EID, 5)])
    d.block([d.tx(reg.close_election(EID))])
    d.block([d.tx(reg.publish_result(EID, [3, 2, 2]))])
    return [r.state_root for r in d.results]


def test_state_roots_are_deterministic_across_leveldb_dirs(tmp_path: Path) -> None:
    k = kit()
    a = open_executor(k.genesis, path=tmp_path / "a")
    b = open_executor(k.genesis, path=tmp_path / "b")
    mem = EvmExecutor(k.genesis)
    roots_a, roots_b, roots_m = _script(Driver(a, k)), _script(Driver(b, k)), _script(Driver(mem, k))
    assert roots_a == roots_b == roots_m
    assert len(set(roots_a)) == len(roots_a)
    assert a.genesis_state_root() == b.genesis_state_root() == mem.genesis_state_root()
    # the state survives closing and reopening the database
    assert isinstance(a.db, LevelStateDB)
    a.db.close()
    b.db.close()
    again = open_executor(k.genesis, path=tmp_path / "a")
    assert again.election_phase(roots_a[-1], EID) == Phase.TALLIED
    assert again.election_phase(roots_a[0], EID) == Phase.OPEN  # older states stay readable
    assert isinstance(again.db, LevelStateDB)
    again.db.close()


def test_state_in_a_prefix_of_a_shared_leveldb(tmp_path: Path) -> None:
    import plyvel

    k = kit()
    raw = plyvel.DB(str(tmp_path / "store"), create_if_missing=True)
    raw.put(b"ledger-key", b"untouched")
    ex = open_executor(k.genesis, store_db=raw)
    roots = _script(Driver(ex, k))
    assert roots == _script(Driver(EvmExecutor(k.genesis), k))
    assert raw.get(b"ledger-key") == b"untouched"
    assert all(key.startswith(b"evm/") for key, _ in raw if key != b"ledger-key")
    raw.close()


def test_elections_carried_over_blocks_without_transactions_match_the_contract(tmp_path: Path) -> None:
    k = kit()
    ex = open_executor(k.genesis, path=tmp_path / "s")
    d = Driver(ex, k)
    e = k.genesis.elections[0]
    t = e.opens_at_ms + 5
    assert _open(ex, d.root, t) == frozenset({EID})
    d.block(ballots=[(EID, 1)])
    d.block()
    assert _open(ex, d.root, t) == frozenset({EID})  # carried over, no EVM call
    assert _open(ex, d.root, e.closes_at_ms) == frozenset()
    d.block([d.tx(d.reg.close_election(EID))])  # a transaction: read again from the contract
    assert _open(ex, d.root, t) == frozenset()
    d.block()
    roots = [r.state_root for r in d.results]
    assert isinstance(ex.db, LevelStateDB)
    ex.db.close()
    fresh = open_executor(k.genesis, path=tmp_path / "s")  # no carried knowledge: every answer from the EVM
    for root, expected in zip(roots, [{EID}, {EID}, set(), set()], strict=True):
        assert _open(fresh, root, t) == expected
        assert fresh.is_open(root, EID, t) == (EID in expected)
    assert isinstance(fresh.db, LevelStateDB)
    fresh.db.close()


def test_execute_block_takes_a_plain_tuple_checkpoint(d: Driver) -> None:
    a = d.executor.execute_block(d.root, 1, d.time_ms + 1, [], (3, ZERO_HASH, [(EID, 3)]))
    other = EvmExecutor(d.kit.genesis)
    cp = CheckpointInput(3, ZERO_HASH, ((EID, 3),))
    b = other.execute_block(other.genesis_state_root(), 1, d.time_ms + 1, [], cp)
    assert a.state_root == b.state_root
