"""Deterministic execution of a chain's EVM part on py-evm (Cancun rules).

Lives in ``contracts/`` rather than ``node/`` so that the verifier, which may not import
``node``, replays the same code; ``node/evm.py`` re-exports it for the node.

What a block does to the EVM state, in this order:

1. its transactions (standard signed Ethereum transactions: legacy with EIP-155, EIP-2930
   or EIP-1559; all signed by the election authority), each with py-evm's own gas
   accounting. The base fee is 0 and there is no block reward, so the authority needs no
   balance; a gas price above 0 fails for lack of funds.
2. one checkpoint call, ``ElectionRegistry.checkpoint(height, log_size, log_root,
   elections, ballots)``, sent by :data:`SYSTEM_ADDRESS` with no signature and no nonce,
   that every validator derives from the block alone (:class:`CheckpointInput`).

A transaction that the EVM refuses (bad signature, wrong chain id, wrong nonce, over the
block gas limit, not from the authority), or a ``define_election`` call whose definition
does not decode or whose other arguments are not exactly the ones it gives (a check the
EVM cannot make: :meth:`EvmExecutor._check_definition`), makes the whole block invalid
and raises; a
transaction that runs and reverts (a phase change in the wrong phase, say) is valid,
stays in the block with a failed receipt and changes nothing but the nonce, as on Ethereum.

The EVM block context: number = ledger height, timestamp = ``time_ms // 1000``,
coinbase = the zero address, gas limit :data:`BLOCK_GAS_LIMIT`, base fee 0, no blob
gas, ``prevrandao`` 0, ``BLOCKHASH`` always 0. The EVM chain id is
:func:`evm_chain_id` of the ledger chain id.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import rlp
from eth import EVM_RECURSION_LIMIT
from eth.abc import (
    AtomicDatabaseAPI,
    AtomicWriteBatchAPI,
    ComputationAPI,
    SignedTransactionAPI,
    StateAPI,
)
from eth.constants import BLANK_ROOT_HASH, CREATE_CONTRACT_ADDRESS, EMPTY_SHA3
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseAtomicDB, BaseDB
from eth.exceptions import Revert
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth.vm.message import Message
from eth_keys.datatypes import PrivateKey
from eth_typing import Address, BlockNumber, Hash32
from eth_utils.exceptions import ValidationError
from trie.hexary import HexaryTrie

from contracts import (
    REGISTRY_ADDRESS,
    SYSTEM_ADDRESS,
    ZERO_ADDRESS,
    EvmError,
    InvalidDefinition,
    InvalidTransaction,
    InvalidValidatorChange,
    NotAuthoritySender,
    Phase,
    UnknownStateRoot,
    election_key,
    registry,
    revert_error,
    revert_reason,
)
from contracts.ceremony import Ceremony, check_trustee_call, read_ceremony
from ledger.ballot import BallotEnvelope
from ledger.block import Block
from ledger.crypto import SigningKey, address_of
from ledger.elections import Elections
from ledger.errors import LedgerError
from ledger.genesis import ElectionDef, Genesis
from ledger.hashing import ZERO_HASH, keccak256, tag, tagged_hash
from ledger.tx_index import system_call_hash  # the index finds checkpoint calls by it
from ledger.validators import BadValidatorChange, ValidatorChange, ValidatorSchedule

# py-evm needs EVM_RECURSION_LIMIT (1024 nested calls' worth of frames) and raises the
# limit to it at import; py_ecc, which it imports for its precompiles, raises it to
# 100,000. At that depth a recursion in C (the stdlib JSON parser, say) overflows the
# thread's stack and kills the process instead of raising RecursionError. Input from
# outside is bounded in depth before it is parsed (ledger.jsonbound); this also puts the
# limit back to what execution needs, so anything missed fails cleanly.
if sys.getrecursionlimit() > EVM_RECURSION_LIMIT:
    sys.setrecursionlimit(EVM_RECURSION_LIMIT)

BLOCK_GAS_LIMIT = 30_000_000
SYSTEM_CALL_GAS = 30_000_000  # as EIP-4788; not counted against the block
CALL_GAS = 50_000_000  # eth_call cap
MAX_TRANSACTION_BYTES = 128 * 1024
ALLOWED_TX_TYPES = (0, 1, 2)  # legacy (EIP-155 only), EIP-2930, EIP-1559; no blobs
EVM_CHAIN_ID_TAG = tag("evm-chain-id/v1")
EMPTY_CODE_HASH = bytes(EMPTY_SHA3)

_VM = CancunVM
_STATE_CLASS = CancunVM.get_state_class()
_TX_BUILDER = CancunTransactionBuilder


def evm_chain_id(chain_id: str) -> int:
    """The EIP-155 chain id of a ledger chain: the first 6 bytes (big-endian) of
    keccak256(tag("evm-chain-id/v1") || utf8(chain id)), or 1 if that is 0.

    48 bits keep it an exact number in JavaScript and far below EIP-2294's bound.
    """
    n = int.from_bytes(tagged_hash(EVM_CHAIN_ID_TAG, chain_id.encode())[:6], "big")
    return n or 1


# --- state databases ----------------------------------------------------------------------
class _PlyvelWriteBatch(BaseDB, AtomicWriteBatchAPI):
    """Pending writes of one ``atomic_batch``, readable before they are committed."""

    def __init__(self, target: LevelStateDB) -> None:
        self._target = target
        self._pending: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        return self._target[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if key not in self:
            raise KeyError(key)
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        if key in self._pending:
            return self._pending[key] is not None
        return self._target._exists(key)


class LevelStateDB(BaseAtomicDB):
    """py-evm's AtomicDatabaseAPI over a plyvel database (or a ``prefixed_db`` of one).

    Trie nodes are content-addressed, so writing them before the block that needs them is
    committed never makes a state wrong: at worst a crash leaves unreferenced nodes. Give
    it a prefixed view of the ledger store's own LevelDB (``store_db.prefixed_db(b"evm/")``)
    and the store's synced per-block batch also makes these earlier writes durable (one
    LevelDB log, written in order); on a database of its own pass ``sync=True``.
    """

    def __init__(self, db: Any, *, sync: bool = False) -> None:
        self._db = db
        self._sync = sync
        self._owned: Any = None

    @classmethod
    def open(cls, path: str, *, sync: bool = False) -> LevelStateDB:
        from ledger.store import open_checked

        raw = open_checked(path, "the contract state", create_if_missing=True)
        db = cls(raw, sync=sync)
        db._owned = raw
        return db

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def snapshot(self) -> Any:
        """A LevelDB snapshot of the state as of now (backup); only of a database opened here."""
        if self._owned is None:
            raise ValueError("only a state database of its own can be snapshotted")
        return self._owned.snapshot()

    def __getitem__(self, key: bytes) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return cast(bytes, value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value, sync=self._sync)

    def __delitem__(self, key: bytes) -> None:
        if self._db.get(key) is None:
            raise KeyError(key)
        self._db.delete(key, sync=self._sync)

    def _exists(self, key: bytes) -> bool:
        return self._db.get(key) is not None

    @contextmanager
    def atomic_batch(self) -> Iterator[AtomicWriteBatchAPI]:
        batch = _PlyvelWriteBatch(self)
        yield batch  # an exception inside the context discards the batch
        self.write_pending(batch._pending)

    def write_pending(self, pending: dict[bytes, bytes | None]) -> None:
        if not pending:
            return
        with self._db.write_batch(sync=self._sync) as wb:
            for key, value in pending.items():
                if value is None:
                    wb.delete(key)
                else:
                    wb.put(key, value)


def memory_state_db() -> AtomicDB:
    """An in-memory state database (tests, and a verifier that replays in memory)."""
    return AtomicDB()


# --- block inputs and outputs ------------------------------------------------------------
class CheckpointInput(NamedTuple):
    """What the per-block checkpoint call records, all derived from the block itself:
    the ballot log's size and root after the block, and how many ballots each election
    gained in it (elections in definition order, those with none left out).

    A plain tuple ``(log_size, log_root, ((election_id, count), ...))`` is accepted
    wherever this is, so the ledger's rules need not import it.
    """

    log_size: int
    log_root: bytes
    ballots: Sequence[tuple[str, int]] = ()

    @classmethod
    def of_block(cls, elections: Elections, log_size: int, log_root: bytes,
                 election_ids: Iterable[str]) -> CheckpointInput:
        """From the election id of each ballot in the block (any order); ``elections``:
        those defined on the state the block builds on."""
        ids = list(election_ids)
        ordered = elections.ballot_counts(ids)
        if sum(n for _, n in ordered) != len(ids):
            unknown = sorted(set(ids) - {e for e, _ in ordered})
            raise EvmError(f"checkpoint names elections not defined on this state: {unknown}")
        return cls(log_size, log_root, ordered)

    @classmethod
    def of_ledger_block(cls, elections: Elections, block: Block) -> CheckpointInput:
        """From a whole ledger block (decodes its ballots): for replays and the RPC."""
        ids = [BallotEnvelope.decode(raw).election_id for raw in block.ballots]
        return cls.of_block(elections, block.header.log_size, block.header.log_root, ids)


@dataclass(frozen=True)
class EvmLog:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class TxOutcome:
    """One executed transaction (or the block's system call, always last)."""

    tx_hash: bytes
    raw: bytes  # the signed transaction; for the system call, its calldata
    system: bool
    sender: bytes
    to: bytes | None  # None for a contract creation
    nonce: int
    gas_limit: int
    gas_used: int
    cumulative_gas_used: int  # over the block's transactions (the system call adds none)
    success: bool
    logs: tuple[EvmLog, ...]
    contract_address: bytes | None
    revert_code: str | None  # the contract's revert reason (a ledger error code) if any
    output: bytes


@dataclass(frozen=True)
class BlockExecution:
    state_root: bytes
    outcomes: tuple[TxOutcome, ...]  # the block's transactions in order, then the system call
    gas_used: int


def checkpoint_log(height: int, log_size: int, log_root: bytes) -> EvmLog:
    """The one log the checkpoint call emits, built from the header alone (what the RPC
    serves for a block without transactions, without executing it)."""
    event = registry().events["Checkpoint"]
    return EvmLog(
        REGISTRY_ADDRESS,
        (event.topic, height.to_bytes(32, "big")),
        log_size.to_bytes(32, "big") + log_root,
    )


# --- transactions -------------------------------------------------------------------------
def decode_transaction(raw: bytes, chain_id: int) -> SignedTransactionAPI:
    """A signed transaction in its one canonical encoding, for this chain, or raise."""
    if not raw or len(raw) > MAX_TRANSACTION_BYTES:
        raise InvalidTransaction(f"transaction must be 1 to {MAX_TRANSACTION_BYTES} bytes")
    if raw[0] < 0x80 and raw[0] not in ALLOWED_TX_TYPES:
        raise InvalidTransaction(f"transaction type {raw[0]} is not allowed")
    try:
        tx = _TX_BUILDER.decode(raw)
        reencoded = tx.encode() if raw[0] < 0x80 else rlp.encode(tx)
        tx.check_signature_validity()
        tx.validate()
        sender = tx.sender
    except Exception as exc:  # a decoder boundary: any failure means "not a transaction"
        raise InvalidTransaction(f"undecodable or invalid transaction: {exc!r}") from exc
    if reencoded != raw:
        raise InvalidTransaction("transaction is not in its canonical encoding")
    if tx.chain_id != chain_id:
        raise InvalidTransaction(f"transaction is for chain id {tx.chain_id}, not {chain_id}")
    del sender
    return tx


def sign_transaction(
    key: SigningKey,
    *,
    chain_id: int,
    nonce: int,
    to: bytes | None,
    data: bytes,
    gas: int = 1_000_000,
    value: int = 0,
) -> bytes:
    """An EIP-1559 transaction signed by ``key`` with zero fees (what the chain charges)."""
    unsigned = _TX_BUILDER.new_unsigned_dynamic_fee_transaction(
        chain_id=chain_id,
        nonce=nonce,
        max_priority_fee_per_gas=0,
        max_fee_per_gas=0,
        gas=gas,
        to=Address(to) if to is not None else CREATE_CONTRACT_ADDRESS,
        value=value,
        data=data,
        access_list=(),
    )
    signed = unsigned.as_signed_transaction(PrivateKey(key.secret))
    return signed.encode()


# --- the executor -------------------------------------------------------------------------
class EvmExecutor:
    """Executes blocks and reads state for one chain, over one state database.

    Stateless apart from the database and caches: every method takes the state root to
    work on, so validators, block sync and the verifier share it and always agree.
    """

    def __init__(self, genesis: Genesis, db: AtomicDatabaseAPI | None = None) -> None:
        self.genesis = genesis
        self.db = db if db is not None else memory_state_db()
        self.chain_id = evm_chain_id(genesis.chain_id)
        self.authority = address_of(genesis.authority)
        self._registry = registry()
        self._genesis_root: bytes | None = None
        self._genesis_logs: tuple[EvmLog, ...] = ()
        # state root -> the elections defined there (see elections()); definitions by hash
        self._elections: OrderedDict[bytes, Elections] = OrderedDict()
        self._definitions: dict[bytes, ElectionDef] = {}
        # state root -> the validator set changes recorded there (see validator_changes())
        self._changes: OrderedDict[bytes, tuple[ValidatorChange, ...]] = OrderedDict()

    # -- building states -------------------------------------------------------------
    def _state(self, state_root: bytes, height: int, time_ms: int) -> StateAPI:
        if len(state_root) != 32:
            raise UnknownStateRoot("a state root is 32 bytes")
        if state_root != BLANK_ROOT_HASH and state_root not in self.db:
            raise UnknownStateRoot(f"no EVM state with root {state_root.hex()} in this database")
        context = ExecutionContext(
            coinbase=Address(ZERO_ADDRESS),
            timestamp=time_ms // 1000,
            block_number=BlockNumber(height),
            difficulty=0,
            mix_hash=Hash32(ZERO_HASH),
            gas_limit=BLOCK_GAS_LIMIT,
            prev_hashes=(),
            chain_id=self.chain_id,
            base_fee_per_gas=0,
            excess_blob_gas=0,
        )
        return _STATE_CLASS(self.db, context, Hash32(state_root))

    @staticmethod
    def _message(state: StateAPI, sender: bytes, to: bytes, data: bytes, *, gas: int,
                 value: int = 0) -> ComputationAPI:
        """An unsigned call (system call, genesis message or eth_call), no nonce, no fee."""
        message = Message(
            gas=gas,
            to=Address(to),
            sender=Address(sender),
            value=value,
            data=data,
            code=state.get_code(Address(to)),
            code_address=Address(to),
        )
        context = state.get_transaction_context_class()(gas_price=0, origin=Address(sender))
        computation = state.computation_class.apply_message(state, message, context)
        state.clear_transient_storage()
        return computation

    # -- genesis ---------------------------------------------------------------------
    def genesis_state_root(self) -> bytes:
        """Build (idempotently) and persist the genesis state; return its root.

        The registry's init code runs as a message from :data:`SYSTEM_ADDRESS` that
        creates it at :data:`REGISTRY_ADDRESS`; then, for each genesis election in order,
        ``define_election`` and ``open_election`` run as messages from the authority's
        address (unsigned and without nonces: their content is fixed by the genesis file
        the authority published). Genesis elections so start OPEN (one whose trustees'
        ceremony makes its key starts in SETUP) and the chain's time window still applies.
        Their events are kept (:meth:`genesis_logs`).
        """
        if self._genesis_root is not None:
            return self._genesis_root
        g = self.genesis
        state = self._state(BLANK_ROOT_HASH, 0, g.genesis_time_ms)
        create = Message(
            gas=SYSTEM_CALL_GAS,
            to=CREATE_CONTRACT_ADDRESS,
            sender=Address(SYSTEM_ADDRESS),
            value=0,
            data=b"",
            code=self._registry.init_code(self.authority),
            create_address=Address(REGISTRY_ADDRESS),
        )
        context = state.get_transaction_context_class()(gas_price=0, origin=Address(SYSTEM_ADDRESS))
        computation = state.computation_class.apply_create_message(state, create, context)
        if computation.is_error:
            raise EvmError(f"genesis: deploying the registry failed: {computation.error!r}")
        logs: list[EvmLog] = []
        for election in g.elections:
            definition = election.encode()
            self.db[keccak256(definition)] = definition
            calls = [("define_election", self._registry.define_election(election))]
            if not election.has_ceremony:  # an election with trustees opens once they made its key
                calls.append(("open_election", self._registry.open_election(election.election_id)))
            for what, data in calls:
                state.lock_changes()
                result = self._message(state, self.authority, REGISTRY_ADDRESS, data, gas=SYSTEM_CALL_GAS)
                _raise_if_failed(result, f"genesis: {what} {election.election_id}")
                logs.extend(_logs(result))
        state.persist()
        self._genesis_logs = tuple(logs)
        self._genesis_root = bytes(state.state_root)
        return self._genesis_root

    def genesis_logs(self) -> tuple[EvmLog, ...]:
        """The registry's events from building the genesis state (each genesis election's
        ElectionDefined and PhaseChanged), which Ethereum tools see as block 0's logs."""
        self.genesis_state_root()
        return self._genesis_logs

    # -- blocks ----------------------------------------------------------------------
    def execute_block(
        self,
        state_root: bytes,
        height: int,
        time_ms: int,
        transactions: Sequence[bytes],
        checkpoint: tuple[int, bytes, Sequence[tuple[str, int]]],
    ) -> BlockExecution:
        """Apply block ``height``'s transactions and its checkpoint call to ``state_root``.

        Persists the new state's trie nodes to the database and returns its root with one
        outcome per transaction and the system call last. Raises InvalidTransaction
        (located as ``transaction I``) if a transaction makes the block invalid, EvmError
        if the checkpoint call fails.
        """
        state = self._state(state_root, height, time_ms)
        outcomes: list[TxOutcome] = []
        cumulative = 0
        for i, raw in enumerate(transactions):
            try:
                outcome = self._apply_transaction(state, raw, cumulative)
            except InvalidTransaction as exc:
                raise exc.at(f"transaction {i}") from None
            cumulative = outcome.cumulative_gas_used
            outcomes.append(outcome)
        log_size, log_root, ballots = checkpoint
        calldata = self._registry.checkpoint(height, log_size, log_root, ballots)
        state.lock_changes()
        computation = self._message(state, SYSTEM_ADDRESS, REGISTRY_ADDRESS, calldata, gas=SYSTEM_CALL_GAS)
        if computation.is_error:  # never on a valid chain: the inputs come from checked ballots
            reason = _revert_code(computation)
            raise EvmError(f"the checkpoint call of block {height} failed: {reason}")
        outcomes.append(
            TxOutcome(
                tx_hash=system_call_hash(self.genesis.chain_id, height),
                raw=calldata,
                system=True,
                sender=SYSTEM_ADDRESS,
                to=REGISTRY_ADDRESS,
                nonce=0,
                gas_limit=SYSTEM_CALL_GAS,
                gas_used=SYSTEM_CALL_GAS - computation.get_gas_remaining(),
                cumulative_gas_used=cumulative,
                success=True,
                logs=_logs(computation),
                contract_address=None,
                revert_code=None,
                output=computation.output,
            )
        )
        state.persist()
        new_root = bytes(state.state_root)
        parent = self._elections.get(state_root)
        if not transactions and parent is not None:
            # The checkpoint call writes only ballot counts, height and log: a block
            # without transactions leaves every definition and phase as its parent had them.
            self._remember(new_root, parent)
        parent_changes = self._changes.get(state_root)
        if not transactions and parent_changes is not None:
            self._remember_changes(new_root, parent_changes)  # likewise the validator changes
        return BlockExecution(new_root, tuple(outcomes), cumulative)

    def _apply_transaction(self, state: StateAPI, raw: bytes, cumulative: int) -> TxOutcome:
        tx = decode_transaction(raw, self.chain_id)
        if tx.sender != self.authority and not self._registry.is_trustee_call(bytes(tx.to), bytes(tx.data)):
            raise NotAuthoritySender(f"transaction is signed by 0x{tx.sender.hex()}, not the election authority")
        if cumulative + tx.gas > BLOCK_GAS_LIMIT:
            raise InvalidTransaction(f"transaction gas {tx.gas} exceeds what is left of the block gas limit")
        preimage = self._check_call(state, bytes(tx.sender), bytes(tx.to), bytes(tx.data))
        state.lock_changes()
        try:
            computation = state.apply_transaction(tx)
        except ValidationError as exc:  # nonce, balance, fee cap, intrinsic gas
            raise InvalidTransaction(f"transaction refused by the EVM: {exc}") from exc
        gas_used = _VM.finalize_gas_used(tx, computation)
        success = not computation.is_error
        if preimage is not None and success:
            # Content-addressed beside the trie nodes, as contract code is: the hash the
            # registry keeps finds it (elections(), ceremony()).
            self.db[keccak256(preimage)] = preimage
        creates = tx.to == CREATE_CONTRACT_ADDRESS
        return TxOutcome(
            tx_hash=keccak256(raw),
            raw=raw,
            system=False,
            sender=bytes(tx.sender),
            to=None if creates else bytes(tx.to),
            nonce=tx.nonce,
            gas_limit=tx.gas,
            gas_used=gas_used,
            cumulative_gas_used=cumulative + gas_used,
            success=success,
            logs=_logs(computation),
            contract_address=bytes(computation.msg.storage_address) if creates and success else None,
            revert_code=None if success else _revert_code(computation),
            output=computation.output,
        )

    def _check_call(self, state: StateAPI, sender: bytes, to: bytes, data: bytes) -> bytes | None:
        """The checks the EVM cannot make, for the registry calls that need them (an
        election's definition, the trustees' ceremony and decryption shares); raises
        InvalidTransaction. Answers the bytes to keep under their hash, if any."""
        if to != REGISTRY_ADDRESS:
            return None
        definition = self._check_definition(data)
        if definition is not None:
            return definition
        change = self._registry.validator_change_call(data, int(state.execution_context.block_number))
        if change is not None:
            self._check_validator_change(_LiveRegistry(self, state), change)
            return None
        return check_trustee_call(_LiveRegistry(self, state), self.genesis.chain_id, sender, data)

    def _check_definition(self, data: bytes) -> bytes | None:
        """The definition a ``define_election`` call carries, after the checks the EVM
        cannot make: it decodes as a valid definition in its defined form, and every
        other argument is exactly what that definition gives. None for any other call."""
        try:
            call = self._registry.define_call_definition(data)
            if call is None:
                return None
            definition, gateways = call
            election = ElectionDef.decode(definition)
        except LedgerError as exc:
            raise InvalidDefinition(exc.message) from None
        if election.as_defined() != election:
            raise InvalidDefinition(f"define_election {election.election_id}: its trustees' ceremony makes its key")
        if self._registry.define_election(election, gateways=gateways) != data:
            raise InvalidDefinition(
                f"define_election {election.election_id}: its arguments are not the ones its definition gives"
            )
        return definition

    def _check_validator_change(self, reader: _LiveRegistry | _RootRegistry, change: ValidatorChange) -> None:
        """A change the set's rules refuse (ledger.validators) makes its block invalid."""
        schedule = ValidatorSchedule.build(self.genesis.validators, _read_changes(reader))
        try:
            schedule.with_change(change)
        except (BadValidatorChange, LedgerError) as exc:
            raise InvalidValidatorChange(f"change_validators: {exc.message}") from None

    def call_on(self, state: StateAPI, data: bytes) -> bytes:
        """A registry view on a state in the middle of a block, leaving it as it was."""
        snapshot = state.snapshot()
        try:
            computation = self._message(state, ZERO_ADDRESS, REGISTRY_ADDRESS, data, gas=CALL_GAS)
        finally:
            state.revert(snapshot)
        _raise_if_failed(computation, "call")
        return bytes(computation.output)

    def preimage(self, digest: bytes) -> bytes | None:
        """Bytes a registry call left under their keccak256 (definition, dealing, share)."""
        try:
            return bytes(self.db[digest])
        except KeyError:
            return None

    def check_transaction(self, state_root: bytes, raw: bytes, *, height: int, time_ms: int) -> TxOutcome:
        """Pre-flight one transaction on ``state_root`` (for mempool admission): raise
        InvalidTransaction if it would invalidate a block, the contract's own refusal
        (WrongPhase, NotAuthority, ...) if it would revert; nothing is persisted."""
        state = self._state(state_root, height, time_ms)
        outcome = self._apply_transaction(state, raw, 0)
        if not outcome.success:
            raise revert_error(outcome.output, "transaction")
        return outcome

    # -- reads -----------------------------------------------------------------------
    def call(
        self,
        state_root: bytes,
        to: bytes,
        data: bytes,
        *,
        sender: bytes = ZERO_ADDRESS,
        value: int = 0,
        gas: int = CALL_GAS,
        height: int = 0,
        time_ms: int = 0,
    ) -> bytes:
        """eth_call: run a message on ``state_root`` and return its output; nothing is
        persisted. A revert raises its ContractRevert subclass, other failures EvmError."""
        state = self._state(state_root, height, time_ms)
        computation = self._message(state, sender, to, data, gas=min(gas, CALL_GAS), value=value)
        _raise_if_failed(computation, "call")
        return computation.output

    def estimate_gas(self, state_root: bytes, to: bytes, data: bytes, *, sender: bytes = ZERO_ADDRESS) -> int:
        state = self._state(state_root, 0, 0)
        computation = self._message(state, sender, to, data, gas=CALL_GAS)
        _raise_if_failed(computation, "estimate")
        intrinsic = 21_000 + sum(4 if b == 0 else 16 for b in data)
        return intrinsic + CALL_GAS - computation.get_gas_remaining() + 10_000

    def _view(self, state_root: bytes, name: str, *args: Any) -> tuple[Any, ...]:
        fn = self._registry.fn(name)
        return fn.decode(self.call(state_root, REGISTRY_ADDRESS, fn.encode(*args)))

    def election_phase(self, state_root: bytes, election_id: str) -> Phase:
        """The election's phase in the registry (Phase.NONE if it has no such election)."""
        return Phase(self._view(state_root, "phase", election_key(election_id))[0])

    def published_result(self, state_root: bytes, election_id: str) -> tuple[int, ...]:
        """The per-choice counts the authority published (empty before it did)."""
        return tuple(int(c) for c in self._view(state_root, "result", election_key(election_id))[0])

    def is_open(self, state_root: bytes, election_id: str, time_ms: int) -> bool:
        """Whether a ballot for ``election_id`` may enter a block of time ``time_ms``
        following the block whose state root is ``state_root``: phase OPEN and
        ``opens_at_ms <= time_ms < closes_at_ms`` in the registry (the contract's own
        ``is_open`` view)."""
        return bool(self._view(state_root, "is_open", election_key(election_id), time_ms)[0])

    def elections(self, state_root: bytes) -> Elections:
        """Every election the registry holds on ``state_root``, with its definition and
        which are in phase OPEN: what the chain's rules ask once per block.

        One ``elections_summary`` call per state root, carried over a block this executor
        ran without transactions (which cannot change it); each definition is decoded once
        (it never changes) from the bytes its define transaction stored under its hash.
        Same phases as :meth:`is_open` and :meth:`election_phase`.
        """
        known = self._elections.get(state_root)
        if known is not None:
            self._elections.move_to_end(state_root)
            return known
        summary = self._registry.decode_summary(
            self.call(state_root, REGISTRY_ADDRESS, self._registry.fn("elections_summary").encode()))
        known = Elections(
            tuple(self._definition(h).with_joint_key(key) if key else self._definition(h) for _, _, h, key in summary),
            tuple(phase.name.lower() for _, phase, _, _ in summary))
        self._remember(state_root, known)
        return known

    def validator_changes(self, state_root: bytes) -> tuple[ValidatorChange, ...]:
        """Every validator set change the registry recorded on ``state_root``, in chain
        order (ledger.validators builds the set in force at each height from them)."""
        known = self._changes.get(state_root)
        if known is None:
            known = _read_changes(_RootRegistry(self, state_root))
            self._remember_changes(state_root, known)
        else:
            self._changes.move_to_end(state_root)
        return known

    def _remember_changes(self, state_root: bytes, changes: tuple[ValidatorChange, ...]) -> None:
        self._changes[state_root] = changes
        if len(self._changes) > 256:
            self._changes.popitem(last=False)

    def ceremony(self, state_root: bytes, election_id: str) -> Ceremony:
        """An election's ceremony and decryption shares as the registry holds them."""
        return read_ceremony(_RootRegistry(self, state_root), election_key(election_id))

    def _definition(self, definition_hash: bytes) -> ElectionDef:
        election = self._definitions.get(definition_hash)
        if election is None:
            try:
                election = ElectionDef.decode(self.db[definition_hash])
            except KeyError:
                raise EvmError(f"no election definition {definition_hash.hex()} in this database") from None
            self._definitions[definition_hash] = election
        return election

    def _remember(self, state_root: bytes, elections: Elections) -> None:
        self._elections[state_root] = elections
        if len(self._elections) > 256:
            self._elections.popitem(last=False)

    def get_code(self, state_root: bytes, address: bytes) -> bytes:
        return bytes(self._state(state_root, 0, 0).get_code(Address(address)))

    def get_balance(self, state_root: bytes, address: bytes) -> int:
        return int(self._state(state_root, 0, 0).get_balance(Address(address)))

    def get_nonce(self, state_root: bytes, address: bytes) -> int:
        return int(self._state(state_root, 0, 0).get_nonce(Address(address)))

    def get_storage(self, state_root: bytes, address: bytes, slot: int) -> int:
        return int(self._state(state_root, 0, 0).get_storage(Address(address), slot))

    def account_proof(self, state_root: bytes, address: bytes, slots: Sequence[int]) -> AccountProof:
        """EIP-1186's proof of an account and some of its storage slots against
        ``state_root``: the trie nodes from the root to the account's leaf (or to where
        it would be), then, per slot, from the account's storage root to the slot."""
        if state_root != BLANK_ROOT_HASH and state_root not in self.db:
            raise UnknownStateRoot(f"no EVM state with root {state_root.hex()} in this database")
        accounts = HexaryTrie(self.db, state_root)
        key = keccak256(address)
        encoded = accounts.get(key)
        if encoded:
            nonce, balance, storage_root, code_hash = rlp.decode(encoded)
            account = (int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"), bytes(storage_root),
                       bytes(code_hash))
        else:
            account = (0, 0, BLANK_ROOT_HASH, EMPTY_CODE_HASH)
        storage = HexaryTrie(self.db, account[2])
        proofs = []
        for slot in slots:
            raw = storage.get(keccak256(slot.to_bytes(32, "big")))
            value = int.from_bytes(rlp.decode(raw), "big") if raw else 0
            proofs.append(SlotProof(slot, value, _proof_nodes(storage, keccak256(slot.to_bytes(32, "big")))))
        return AccountProof(address, *account, _proof_nodes(accounts, key), tuple(proofs))


@dataclass(frozen=True)
class SlotProof:
    slot: int
    value: int
    proof: tuple[bytes, ...]  # RLP-encoded trie nodes, from the storage root down


@dataclass(frozen=True)
class AccountProof:
    address: bytes
    nonce: int
    balance: int
    storage_root: bytes
    code_hash: bytes
    proof: tuple[bytes, ...]  # RLP-encoded trie nodes, from the state root down
    slots: tuple[SlotProof, ...]


def _proof_nodes(trie: HexaryTrie, key: bytes) -> tuple[bytes, ...]:
    """The nodes on the path to ``key``, each RLP-encoded as stored (nodes shorter than
    32 bytes live inside their parent and are left out, as Ethereum clients do)."""
    nodes = [rlp.encode(node) for node in trie.get_proof(key)]  # type: ignore[no-untyped-call]
    return tuple(n for i, n in enumerate(nodes) if i == 0 or len(n) >= 32)


@dataclass(frozen=True)
class _LiveRegistry:
    """The registry on a state in the middle of a block (ceremony checks)."""

    executor: EvmExecutor
    state: StateAPI

    def call(self, data: bytes) -> bytes:
        return self.executor.call_on(self.state, data)

    def preimage(self, digest: bytes) -> bytes | None:
        return self.executor.preimage(digest)


@dataclass(frozen=True)
class _RootRegistry:
    """The registry on a committed state root."""

    executor: EvmExecutor
    state_root: bytes

    def call(self, data: bytes) -> bytes:
        return self.executor.call(self.state_root, REGISTRY_ADDRESS, data)

    def preimage(self, digest: bytes) -> bytes | None:
        return self.executor.preimage(digest)


def _read_changes(reader: _LiveRegistry | _RootRegistry) -> tuple[ValidatorChange, ...]:
    reg = registry()
    (count,) = reg.fn("validator_change_count").decode(reader.call(reg.fn("validator_change_count").encode()))
    return tuple(
        reg.decode_validator_change(reader.call(reg.fn("validator_change").encode(i))) for i in range(int(count))
    )


def _logs(computation: ComputationAPI) -> tuple[EvmLog, ...]:
    if computation.is_error:
        return ()
    return tuple(
        EvmLog(bytes(address), tuple(t.to_bytes(32, "big") for t in topics), bytes(data))
        for address, topics, data in computation.get_log_entries()
    )


def _revert_code(computation: ComputationAPI) -> str:
    if isinstance(computation.error, Revert):
        return revert_reason(computation.output) or "reverted"
    return "evm_error"


def _raise_if_failed(computation: ComputationAPI, what: str) -> None:
    if not computation.is_error:
        return
    if isinstance(computation.error, Revert):
        raise revert_error(computation.output, what)
    raise EvmError(f"{what}: {type(computation.error).__name__}: {computation.error}")
