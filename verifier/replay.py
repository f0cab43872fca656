"""Replay: every block from genesis through the ledger rules, the tally, and the sums.

The same ``ledger.rules.apply_block`` the validators run; only the chain-so-far lives
elsewhere (an on-disk index, so memory stays flat). With ``jobs > 1`` worker processes
run the full ``check_ballot`` (credential proof and signature, the costly part) a few
blocks ahead; the main process then applies each block in order with those results, and
any ballot a worker refused is checked again in order, so the first failure reported is
the same as with one process. At the end, every encrypted election's ciphertexts are
summed over exactly the ballots that count (``verifier.sums``), in the same processes.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from contracts import REGISTRY_ADDRESS
from contracts.ceremony import Ceremony
from contracts.engine import EvmExecutor, LevelStateDB
from ledger import jsonbound, workers
from ledger.block import Block, CommitCertificate
from ledger.elections import ElectionLookup
from ledger.encrypted_tally import EncryptedTally
from ledger.errors import LedgerError
from ledger.genesis import MAX_ELECTIONS, ElectionDef, Genesis
from ledger.result_check import ResultCheck
from ledger.rules import CheckedBallot, ProofCache, admitted_from_flags, apply_block, elections_at, validators_at
from ledger.state import ChainTip
from ledger.tally import Tally
from verifier.bundle import BundleLine, ResumePoint, StateMismatch
from verifier.index import DiskIndex
from verifier.sums import encrypted_sums


@dataclass
class ReplayResult:
    genesis_hash: bytes
    tip: ChainTip
    tally: Tally
    blocks: int = 0
    ballots: int = 0
    # election id -> (phase name, counts the authority published on chain)
    registry: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    registry_code: bytes | None = None  # the code at the registry's address, at the tip
    # election id -> the homomorphic sums of its counted ballots (encrypted elections)
    encrypted_sums: dict[str, EncryptedTally] = field(default_factory=dict)
    sums_seconds: float = 0.0
    # election id -> a published encrypted result that checked out (check_encrypted_result)
    result_checks: dict[str, ResultCheck] = field(default_factory=dict)
    # election id -> (its definition with its key, its ceremony and decryption shares at
    # the tip), for every encrypted election whose trustees' ceremony makes its key
    ceremonies: dict[str, tuple[ElectionDef, Ceremony]] = field(default_factory=dict)


PROGRESS_FORMAT = "ballot-ledger/verify-progress/v1"
# progress > "tally" > "elections" > [recorded, counted, counts] > counts
_PROGRESS_DEPTH = 5


def _max_progress_bytes(genesis: Genesis) -> int:
    """Room for the saved progress: the tip (a log frontier of at most 64 hashes, in hex)
    and, per election (as many as a chain may define), its two counts and up to 256
    payload counts of 20 digits each."""
    return 64 * 1024 + MAX_ELECTIONS * 256 * 32
# The replay makes millions of short-lived objects and few reference cycles, so Python's
# collector, run by allocation counts, mostly rescans live objects (~7% of a replay's
# time); during a replay it runs instead once every this many blocks.
_COLLECT_EVERY_BLOCKS = 256


@contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def resume_point(saved: dict[str, Any]) -> ResumePoint:
    """Where the run that saved ``saved`` stopped in the bundle."""
    return ResumePoint(int(saved["lines"]), int(saved["offset"]), bytes.fromhex(saved["prefix_sha256"]))


def saved_progress(index: DiskIndex, genesis: Genesis) -> dict[str, Any] | None:
    """What a lasting index's earlier run saved, or None for a fresh one."""
    raw = index.progress()
    if raw is None:
        return None
    try:
        obj = jsonbound.loads(raw, max_bytes=_max_progress_bytes(genesis), max_depth=_PROGRESS_DEPTH,
                              what="saved progress")
        if obj.get("format") != PROGRESS_FORMAT:
            raise ValueError(f"format {obj.get('format')!r}")
    except (ValueError, AttributeError) as exc:
        raise StateMismatch(f"unreadable verification state in {index.path}: {exc}") from exc
    except LedgerError as exc:
        raise StateMismatch(f"unreadable verification state in {index.path}: {exc.message}") from None
    if obj["genesis_hash"] != genesis.hash().hex():
        raise StateMismatch(f"the verification state in {index.path} is for another chain (genesis "
                            f"{obj['genesis_hash'][:16]}...)")
    return cast(dict[str, Any], obj)


def replay(
    genesis: Genesis,
    lines: Iterable[BundleLine],
    *,
    jobs: int = 1,
    on_block: Callable[[int, int], None] | None = None,
    workdir: Path | None = None,
    index: DiskIndex | None = None,
    saved: dict[str, Any] | None = None,
) -> ReplayResult:
    """Replay every line; raise the first refusal (a LedgerError with its location).

    ``index``: a lasting one (``DiskIndex(keep_at=...)``) to save progress to after every
    block; ``saved``: its :func:`saved_progress`, to resume from (``lines`` must then start
    at its :func:`resume_point`)."""
    with index if index is not None else DiskIndex(genesis, workdir) as index:
        state_db = LevelStateDB.open(str(index.path / "evm")) if genesis.params.contracts else None
        engine = EvmExecutor(genesis, state_db) if state_db is not None else None
        try:
            tally = Tally(genesis, index.payloads)
            result = ReplayResult(genesis.hash(), ChainTip.at_genesis(genesis, engine), tally)
            if saved is not None:
                _resume(result, saved, index, state_db, engine)
            proofs = ProofCache()
            # Every election defined so far (workers check ballots against these).
            known = {e.election_id: e for e in elections_at(genesis, result.tip.state_root, engine)}
            with _collector_paused(), _worker_pool(genesis, jobs) as pool:
                stream: Iterator[tuple[BundleLine, dict[bytes, CheckedBallot] | None]] = (
                    ((line, None) for line in lines) if pool is None
                    else _prechecked(genesis, lines, pool, 4 * jobs, known)
                )
                _apply_all(genesis, stream, index, proofs, engine, result, on_block, known)
                started = time.perf_counter()
                result.encrypted_sums = encrypted_sums(genesis.chain_id, tally, index, pool, jobs)
                result.sums_seconds = time.perf_counter() - started
            if engine is not None:
                result.registry_code = engine.get_code(result.tip.state_root, REGISTRY_ADDRESS)
                for e in engine.elections(result.tip.state_root):
                    phase = engine.election_phase(result.tip.state_root, e.election_id)
                    result.registry[e.election_id] = (
                        phase.name.lower(), engine.published_result(result.tip.state_root, e.election_id)
                    )
                    if e.has_ceremony:
                        result.ceremonies[e.election_id] = (e, engine.ceremony(result.tip.state_root, e.election_id))
        finally:
            if state_db is not None:
                state_db.close()  # before the index's directory goes
    return result


@contextmanager
def _worker_pool(genesis: Genesis, jobs: int) -> Iterator[ProcessPoolExecutor | None]:
    """The processes that pre-check ballots and then sum the encrypted ballots (none for one job)."""
    if jobs <= 1:
        yield None
        return
    with ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"),  # not fork: LevelDB threads
        initializer=workers.init_worker, initargs=(genesis.to_json(),),
    ) as pool:
        yield pool


def _resume(result: ReplayResult, obj: dict[str, Any], index: DiskIndex, state_db: LevelStateDB | None,
            engine: EvmExecutor | None) -> None:
    result.tip = ChainTip.decode(bytes.fromhex(obj["tip"]))
    result.blocks, result.ballots = int(obj["blocks"]), int(obj["ballots"])
    # The EVM state is a database of its own, written before each block's progress; a
    # machine that lost power may have kept the progress but not the state.
    if state_db is not None and result.tip.state_root not in state_db:
        raise StateMismatch(f"the verification state in {index.path} is incomplete; verify again from the start")
    definitions: ElectionLookup = engine.elections(result.tip.state_root) if engine is not None else {}
    result.tally.restore(obj["tally"], definitions)


def _progress(line: BundleLine, result: ReplayResult, tip: ChainTip) -> bytes:
    return json.dumps({
        "format": PROGRESS_FORMAT,
        "genesis_hash": result.genesis_hash.hex(),
        "lines": line.line_number,
        "offset": line.end_offset,
        "prefix_sha256": line.prefix_sha256.hex(),
        "tip": tip.encode().hex(),
        "blocks": result.blocks,
        "ballots": result.ballots,
        "tally": result.tally.snapshot(),
    }, sort_keys=True).encode()


def _apply_all(
    genesis: Genesis,
    stream: Iterator[tuple[BundleLine, dict[bytes, CheckedBallot] | None]],
    index: DiskIndex,
    proofs: ProofCache,
    engine: EvmExecutor | None,
    result: ReplayResult,
    on_block: Callable[[int, int], None] | None,
    known: dict[str, ElectionDef],
) -> None:
    tip = result.tip
    for line, admitted in stream:
        where = f"block line {line.line_number}"
        try:
            block = Block.decode(line.block)
            certificate = CommitCertificate.decode(line.certificate)
        except LedgerError as exc:
            raise exc.at(where) from None
        effects = apply_block(genesis, tip, index, block, admitted=admitted, proofs=proofs, engine=engine)
        try:
            # By the set in force at the block's height, as its parent's state holds it.
            certificate.check(
                validators_at(genesis, tip.state_root, engine, block.height),
                chain_id=genesis.chain_id, height=block.height, block_hash=block.hash(),
            )
        except LedgerError as exc:
            raise exc.at(f"block {block.height} certificate") from None
        known.update((e.election_id, e) for e in effects.defined)
        result.tally.record_block(effects)  # reads the counted payloads before index.apply
        tip = effects.tip
        result.blocks += 1
        result.ballots += len(effects.ballots)
        index.apply(effects, _progress(line, result, tip) if index.kept else None)
        if on_block is not None:
            on_block(block.height, len(effects.ballots))
        if result.blocks % _COLLECT_EVERY_BLOCKS == 0:
            gc.collect()
    result.tip = tip


# --- parallel pre-checking ----------------------------------------------------------------
def _prechecked(
    genesis: Genesis, lines: Iterable[BundleLine], pool: ProcessPoolExecutor, window: int,
    known: dict[str, ElectionDef],
) -> Iterator[tuple[BundleLine, dict[bytes, CheckedBallot] | None]]:
    """Blocks with their ballots pre-checked ``window`` blocks ahead; ``known``: the
    elections defined so far, which the in-order replay extends (a ballot of an election
    defined within the window is not flagged, and the replay checks it itself)."""
    pending: deque[tuple[BundleLine, Future[bytes]]] = deque()

    def take() -> tuple[BundleLine, dict[bytes, CheckedBallot] | None]:
        line, future = pending.popleft()
        return line, admitted_from_flags(genesis, line.block, future.result(), elections=known)

    seen: tuple[ElectionDef, ...] = ()
    later: tuple[bytes, ...] = ()
    for line in lines:
        if tuple(known.values()) != seen:  # a definition made, or a ceremony's key set
            seen = tuple(known.values())
            later = workers.definitions_of(seen, genesis)
        pending.append((line, pool.submit(workers.check_in_worker, line.block, later)))
        if len(pending) >= window:
            yield take()
    while pending:
        yield take()
