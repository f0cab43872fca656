"""A validator's admission with the costly checks in worker processes (node.admission,
node.precheck, ledger.workers): the same answers, the same mempool, in the same order as
with every check on the loop; a worker killed mid-batch loses nothing.

Real worker processes (spawn) and a real LevelDB store throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballotledger.election_kit import ElectionKit, make_election
from ledger.ballot import BallotEnvelope
from ledger.chain import Chain
from ledger.elections import Elections
from ledger.errors import LedgerError
from ledger.genesis import Contest
from ledger.rules import CheckedBallot, ProofCache, ballot_context
from node import precheck
from node.admission import BallotAdmission, worth_a_worker
from node.gateway.admission import SubmissionChecker, check_submission
from node.gateway.problems import Problem
from node.mempool import Admission, Mempool
from node.precheck import ArrivalOrder, BallotPrechecker, Place, WorkersUnavailable
from tests.crypto.helpers import forge_ballot
from tests.helpers import ROOT, certify, next_block

POLICIES = ("first-counts", "last-counts")
FINAL_VOTER = 7  # its ballot is committed before admission starts
MANY_FROM, MANY_TO = 10, 138  # voters of a large batch (see many_ballots)


@lru_cache(maxsize=2)
def ekit(revoting: str) -> ElectionKit:
    # The same chain id for both: one pool checks both elections (the second one's
    # definition reaches the workers with its batches, as an election defined later would).
    return make_election(voters=MANY_TO + 2, seed=f"adm-{revoting}", election_id=f"adm-{revoting}", revoting=revoting,
                         contests=(Contest("Pick one", ("a", "b", "c"), 1),))


@lru_cache(maxsize=2)
def ballots(revoting: str) -> dict[str, bytes]:
    """Named ballots of every kind admission must tell apart."""
    k = ekit(revoting)
    good = {f"good{v}": k.encrypted_ballot(v, [[v % 3]])[0] for v in range(8)}
    revote = k.encrypted_ballot(0, [[2]])[0]  # voter 0 again, a different ballot
    other = good["good2"]
    bad_sig = good["good1"]
    forged_key = k.voters[3]
    context = ballot_context(k.genesis.chain_id, k.election, forged_key.public_key)
    forged = BallotEnvelope.create(
        forged_key, chain_id=k.genesis.chain_id, election_id=k.election_id,
        proof=k.credentials.proof(forged_key.public_key),
        payload=forge_ballot(context, [[1, 1, 0]], [[1, 0, 0]], [1]).encode(),
    )
    return {
        **{name: e.encode() for name, e in good.items()},
        "revote0": revote.encode(),
        "bad_signature": BallotEnvelope(bad_sig.chain_id, bad_sig.election_id, bad_sig.credential, bad_sig.proof,
                                        bad_sig.payload, other.signature).encode(),
        "bad_proof": forged.encode(),
        "garbage": b"\xc3\x01\x02\x03",
    }


@lru_cache(maxsize=1)
def many_ballots() -> list[bytes]:
    """128 ballots of 128 voters: four chunks per worker's share with two workers."""
    k = ekit("first-counts")
    return [k.encrypted_ballot(v, [[v % 3]])[0].encode() for v in range(MANY_FROM, MANY_TO)]


@pytest.fixture(scope="module")
def prechecker() -> Iterator[BallotPrechecker]:
    pool = BallotPrechecker(ekit("first-counts").genesis, 2)
    pool.start()
    yield pool
    pool.close()


def _now(k: ElectionKit) -> int:
    return k.genesis.genesis_time_ms + 10_000


def _shown(answer: Admission | LedgerError) -> tuple[object, ...]:
    if isinstance(answer, LedgerError):
        return ("refused", answer.code, answer.message, answer.where)
    return ("admitted", answer.tracking_code.hex(), answer.status)


def by_credential(raws: Sequence[bytes]) -> dict[str, list[str]]:
    """Ballots grouped by credential, in their order: what admission keeps in order."""
    out: dict[str, list[str]] = {}
    for raw in raws:
        out.setdefault(BallotEnvelope.decode(raw).credential.hex(), []).append(raw.hex())
    return out


def admit_all(
    revoting: str, batches: Sequence[Sequence[bytes]], prechecker: BallotPrechecker | None, *, max_size: int = 1000
) -> tuple[list[list[tuple[object, ...]]], dict[str, list[str]]]:
    """Every batch submitted at once, in order, to a fresh mempool over a chain whose
    first block holds FINAL_VOTER's ballot: the answers, and each credential's pending
    ballots in order."""
    k = ekit(revoting)
    with tempfile.TemporaryDirectory() as tmp, Chain(Path(tmp) / "db", k.genesis) as chain:
        block = next_block(k, chain.store.tip, [ballots(revoting)[f"good{FINAL_VOTER}"]], None)
        chain.commit(block, certify(k, block))
        mempool = Mempool(k.genesis, chain.store, max_size=max_size)
        admission = BallotAdmission(mempool, lambda: _now(k), prechecker)

        async def submit() -> list[list[Admission | LedgerError]]:
            return await asyncio.gather(*(admission.admit(batch) for batch in batches))

        answers = asyncio.run(submit())
        pending = by_credential(mempool.take(10_000, _now(k)))
    return [[_shown(a) for a in batch] for batch in answers], pending


@pytest.mark.parametrize("revoting", POLICIES)
def test_workers_answer_as_the_loop_does_for_a_mixed_batch(revoting: str, prechecker: BallotPrechecker) -> None:
    b = ballots(revoting)
    batch = [b["good0"], b["bad_signature"], b["good1"], b["bad_proof"], b["good0"], b["garbage"],
             b["revote0"], b[f"good{FINAL_VOTER}"], b["good2"]]
    inline = admit_all(revoting, [batch], None)
    assert admit_all(revoting, [batch], prechecker) == inline
    answers, pending = inline
    codes = [a[1] if a[0] == "refused" else a[2] for a in answers[0]]
    revote = "pending" if revoting == "last-counts" else "duplicate_credential"
    assert codes == ["pending", "bad_signature", "pending", "bad_ballot_proof", "pending", "bad_encoding",
                     revote, "final", "pending"]
    admitted = [b["good0"], b["good1"]] + ([b["revote0"]] if revoting == "last-counts" else []) + [b["good2"]]
    assert pending == by_credential(admitted)


@pytest.mark.parametrize("revoting", POLICIES)
def test_a_later_batch_waits_for_an_earlier_slower_one_of_the_same_credential(
    revoting: str, prechecker: BallotPrechecker
) -> None:
    """A large batch ending in voter 0's ballot, then a one-ballot batch with voter 0's
    revote: the small batch's check finishes first, yet the revote is admitted second.
    Fails when the in-order step does not wait for its place (node.precheck.ArrivalOrder)."""
    b = ballots(revoting)
    first = [b[f"good{v}"] for v in range(1, 7)] * 3 + [b["good0"]]
    inline = admit_all(revoting, [first, [b["revote0"]]], None)
    assert admit_all(revoting, [first, [b["revote0"]]], prechecker) == inline
    answers, pending = inline
    voter0 = BallotEnvelope.decode(b["good0"]).credential.hex()
    if revoting == "last-counts":
        assert answers[1][0][2] == "pending"
        assert pending[voter0] == [b["good0"].hex(), b["revote0"].hex()]
    else:
        assert answers[1][0][1] == "duplicate_credential"
        assert pending[voter0] == [b["good0"].hex()]


def test_a_small_batch_is_not_held_behind_another_clients_large_one(
    prechecker: BallotPrechecker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """128 ballots in 16 chunks, then (20 ms later) one ballot of another credential: the
    one is answered in less than half the large batch's time (its chunk takes its turn among the
    large batch's, and its in-order step waits for no batch it shares no credential
    with). Fails with one queue for every chunk, or with one order for every batch."""
    monkeypatch.setattr(precheck, "MAX_CHUNK", 8)
    k = ekit("first-counts")
    asyncio.run(prechecker.check_ballots(many_ballots()[:4], [k.election]))  # both workers up
    with Chain(tmp_path / "db", k.genesis) as chain:
        admission = BallotAdmission(Mempool(k.genesis, chain.store), lambda: _now(k), prechecker)
        took: dict[str, float] = {}

        async def submit(name: str, batch: list[bytes]) -> None:
            started = time.perf_counter()
            answers = await admission.admit(batch)
            took[name] = time.perf_counter() - started
            assert all(isinstance(a, Admission) and a.status == "pending" for a in answers)

        async def small_later() -> None:
            await asyncio.sleep(0.02)  # the large batch's chunks are queued by now
            await submit("small", [ballots("first-counts")["good1"]])

        async def both() -> None:
            await asyncio.gather(submit("large", many_ballots()), small_later())

        asyncio.run(both())
    assert took["small"] < took["large"] / 2, took


def test_arrival_order_holds_only_batches_that_share_a_credential() -> None:
    async def scenario() -> list[str]:
        order = ArrivalOrder()
        first, second, third = order.arrive(), order.arrive(), order.arrive()
        second.know(frozenset({"bob"}))
        third.know(frozenset({"alice"}))
        log: list[str] = []

        async def step(name: str, place: Place) -> None:
            await place.wait()
            log.append(name)
            place.finish()

        waiting = [asyncio.create_task(step("second", second)), asyncio.create_task(step("third", third))]
        await asyncio.sleep(0.01)
        log.append("first knows")
        first.know(frozenset({"alice", "carol"}))  # the second shares nothing with it: goes on
        await asyncio.sleep(0.01)
        log.append("first done")
        first.finish()
        await asyncio.gather(*waiting)
        return log

    assert asyncio.run(scenario()) == ["first knows", "second", "first done", "third"]


def test_mempool_bound_refuses_alike(prechecker: BallotPrechecker) -> None:
    b = ballots("first-counts")
    batch = [b[f"good{v}"] for v in range(6)]
    inline = admit_all("first-counts", [batch], None, max_size=3)
    assert admit_all("first-counts", [batch], prechecker, max_size=3) == inline
    assert [a[1] for a in inline[0][0][3:]] == ["mempool_full"] * 3


NAMES = sorted(ballots("first-counts"))


@settings(max_examples=12, deadline=None)
@given(
    revoting=st.sampled_from(POLICIES),
    batches=st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=8), min_size=1, max_size=4),
)
def test_any_batches_get_the_loops_answers_in_arrival_order(
    revoting: str, batches: list[list[str]], prechecker: BallotPrechecker
) -> None:
    """Invariant: whatever the batches (repeats, revotes, bad ballots, the final one),
    submitted concurrently, workers give the same answers, and each credential's ballots
    are pending in the same order."""
    raws = [[ballots(revoting)[name] for name in batch] for batch in batches]
    assert admit_all(revoting, raws, prechecker) == admit_all(revoting, raws, None)


def test_an_election_unknown_to_the_worker_arrives_with_the_batch() -> None:
    """A worker started with the first election's genesis refuses the second election's
    ballots until a batch brings its definition, and keeps the definition afterwards."""
    later = ekit("last-counts")
    b = ballots("last-counts")
    pool = BallotPrechecker(ekit("first-counts").genesis, 1)
    try:
        (refusal,) = asyncio.run(pool.check_ballots([b["good4"]], []))
        assert isinstance(refusal, LedgerError) and refusal.code == "unknown_election"
        assert asyncio.run(pool.check_ballots([b["good4"]], [later.election])) == [None]
        assert asyncio.run(pool.check_ballots([b["good5"]], [])) == [None]
    finally:
        pool.close()


def test_plaintext_stays_on_the_loop_and_encrypted_goes_to_workers() -> None:
    plain = make_election(voters=2, seed="adm-plain")
    assert not worth_a_worker(plain.election)
    assert worth_a_worker(ekit("first-counts").election)


def test_a_worker_killed_mid_batch_loses_nothing() -> None:
    """SIGKILL one worker while a batch is being checked: the pool is replaced, the lost
    chunks are checked again, every answer is the loop's. Fails when a broken pool is not
    replaced (every answer is then workers_unavailable)."""
    k = ekit("last-counts")
    b = ballots("last-counts")
    batch = [b[f"good{v}"] for v in range(7)] * 6 + [b["bad_proof"], b["revote0"]]  # 44 ballots, ~30 ms a chunk
    inline = admit_all("last-counts", [batch], None)
    pool = BallotPrechecker(k.genesis, 2)
    pool.start()
    try:
        asyncio.run(pool.check_ballots(batch[:4], [k.election]))  # both workers up and warm
        victims = pool.worker_pids()
        assert len(victims) == 2

        # Both workers are stopped before the batch, so no chunk can finish before the kill
        # however fast the machine: the pool is broken with chunks still pending.
        for pid in victims:
            os.kill(pid, signal.SIGSTOP)

        async def kill_soon() -> None:
            try:
                while not pool._in_flight:  # until the batch's chunks are sent
                    await asyncio.sleep(0.001)
                os.kill(victims[0], signal.SIGKILL)
            finally:
                os.kill(victims[1], signal.SIGCONT)

        killed = asyncio.new_event_loop()
        try:
            killer = killed.create_task(kill_soon())
            result = killed.run_until_complete(_admit_in(k, batch, pool, killer))
        finally:
            killed.close()
        assert result == inline
        assert pool.restarts == 1
        assert victims[0] not in pool.worker_pids()
    finally:
        pool.close()


async def _admit_in(
    k: ElectionKit, batch: list[bytes], pool: BallotPrechecker, killer: asyncio.Task[None]
) -> tuple[list[list[tuple[object, ...]]], dict[str, list[str]]]:
    with tempfile.TemporaryDirectory() as tmp, Chain(Path(tmp) / "db", k.genesis) as chain:
        block = next_block(k, chain.store.tip, [ballots(k.election.revoting)[f"good{FINAL_VOTER}"]], None)
        chain.commit(block, certify(k, block))
        mempool = Mempool(k.genesis, chain.store)
        answers = await BallotAdmission(mempool, lambda: _now(k), pool).admit(batch)
        await killer
        return [[_shown(a) for a in answers]], by_credential(mempool.take(10_000, _now(k)))


def test_workers_dying_twice_refuse_the_batch_as_retryable_then_recover() -> None:
    """A call whose worker dies on both attempts raises WorkersUnavailable (its ballots
    are refused with that code, which says to send them again); the next call works."""
    k = ekit("first-counts")
    pool = BallotPrechecker(k.genesis, 1)
    try:
        with pytest.raises(WorkersUnavailable):
            asyncio.run(pool._run(os._exit, 3))
        assert pool.restarts == 2
        raw = ballots("first-counts")["good3"]
        started = time.monotonic()
        assert asyncio.run(pool.check_ballots([raw], [k.election])) == [None]
        assert time.monotonic() - started < 30
    finally:
        pool.close()


# --- the gateway's submissions (node.gateway.admission.SubmissionChecker) ------------------
def _outcome(check: Callable[[], CheckedBallot]) -> tuple[object, ...]:
    try:
        return ("accepted", check().tracking_code.hex())
    except Problem as problem:
        return ("refused", problem.code, problem.detail, problem.status)


async def _outcome_of(checking: Awaitable[CheckedBallot]) -> tuple[object, ...]:
    try:
        return ("accepted", (await checking).tracking_code.hex())
    except Problem as problem:
        return ("refused", problem.code, problem.detail, problem.status)


def test_the_gateways_workers_answer_as_its_loop_does() -> None:
    k = ekit("first-counts")
    b = ballots("first-counts")
    now = _now(k)
    checker = SubmissionChecker(k.genesis, lambda: now, ProofCache(), 2)
    checker.start()
    try:
        cases = [(k.election_id, b[name]) for name in ("good0", "bad_signature", "bad_proof", "garbage")]
        cases.append(("adm-last-counts", b["good1"]))  # the URL names another election
        cases.append((k.election_id, ballots("last-counts")["good2"]))  # the ballot does

        async def through_workers() -> list[tuple[object, ...]]:
            known = Elections.of_genesis(k.genesis)
            return [await _outcome_of(checker.check(election, raw, known)) for election, raw in cases]

        def inline_check(election: str, raw: bytes) -> Callable[[], CheckedBallot]:
            return lambda: check_submission(k.genesis, Elections.of_genesis(k.genesis), election, raw, now)

        inline = [_outcome(inline_check(e, r)) for e, r in cases]
        assert asyncio.run(through_workers()) == inline
        assert [c[1] for c in inline[1:]] == ["bad_signature", "bad_ballot_proof", "bad_encoding",
                                              "unknown_election", "election_mismatch"]
        assert checker.prechecker is not None and len(checker.prechecker.worker_pids()) == 2
    finally:
        checker.close()


def test_the_gateway_answers_a_credentials_submissions_in_arrival_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Voter 0's first ballot arrives among 40 others (its check in the last of 11
    chunks), its revote 5 ms later alone (its chunk takes a turn among those, so it is
    checked first): the revote is still answered second, and so reaches the outbox second. Fails when
    SubmissionChecker.check does not wait for its place."""
    monkeypatch.setattr(precheck, "MAX_CHUNK", 4)
    k = ekit("last-counts")
    b = ballots("last-counts")
    others = [k.encrypted_ballot(v, [[v % 3]])[0].encode() for v in range(MANY_FROM, MANY_FROM + 40)]
    checker = SubmissionChecker(k.genesis, lambda: _now(k), ProofCache(), 2)
    checker.start()
    try:
        async def submit_all() -> list[bytes]:
            await checker.check(k.election_id, b["good1"], Elections.of_genesis(k.genesis))  # both workers up
            answered: list[bytes] = []

            async def one(raw: bytes, delay: float = 0.0) -> None:
                await asyncio.sleep(delay)
                with contextlib.suppress(Problem):
                    await checker.check(k.election_id, raw, Elections.of_genesis(k.genesis))
                answered.append(raw)

            await asyncio.gather(*(one(raw) for raw in [*others, b["good0"]]), one(b["revote0"], 0.005))
            return answered

        answered = asyncio.run(submit_all())
        assert answered.index(b["good0"]) < answered.index(b["revote0"])
    finally:
        checker.close()


def test_block_sync_falls_back_to_no_flags_when_workers_keep_dying(tmp_path: Path) -> None:
    """Sync's check gives no flags (apply_block then checks everything) rather than an
    error that would be blamed on the peer. Fails when WorkersUnavailable escapes."""
    k = ekit("first-counts")
    with Chain(tmp_path / "db", k.genesis) as chain:
        block = next_block(k, chain.store.tip, [ballots("first-counts")["good1"]], None).encode()
    pool = BallotPrechecker(k.genesis, 1)
    try:
        assert asyncio.run(pool.check([block], Elections.of_genesis(k.genesis))) == [b"\x01"]
        real_run = pool._run

        async def always_dies(fn: Callable[..., object], *args: object) -> object:
            return await real_run(os._exit, 3)  # the worker dies on every attempt

        pool._run = always_dies  # type: ignore[method-assign, assignment]
        assert asyncio.run(pool.check([block], Elections.of_genesis(k.genesis))) == [b""]
        assert pool.restarts == 2
    finally:
        pool.close()


def test_one_ballot_requests_of_one_turn_share_round_trips(
    prechecker: BallotPrechecker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten concurrent one-ballot requests (the gateway's, ballot_submit's) make one round
    trip per worker, and each gets its own ballot's verdict."""
    k = ekit("first-counts")
    b = ballots("first-counts")
    names = ["good0", "bad_signature", "good1", "bad_proof", "good2", "good3", "good4", "good5", "good6", "good0"]
    sent: list[int] = []
    real_run = prechecker._run

    async def counted(fn: Callable[..., object], *args: object) -> object:
        sent.append(len(args[0]))  # type: ignore[arg-type]
        return await real_run(fn, *args)

    monkeypatch.setattr(prechecker, "_run", counted)

    async def one_by_one() -> list[list[object]]:
        verdicts = await asyncio.gather(*(prechecker.check_ballots([b[n]], [k.election]) for n in names))
        return [[None if v is None else v.code for v in answer] for answer in verdicts]

    expected: list[list[object]] = [[None]] * 10
    expected[1], expected[3] = ["bad_signature"], ["bad_ballot_proof"]
    assert asyncio.run(one_by_one()) == expected
    assert sent == [5, 5]


_POOL_OWNER = """
import sys, time
from ballotledger.election_kit import make_election
from node.precheck import BallotPrechecker
pool = BallotPrechecker(make_election(voters=2, seed="owner").genesis, 2)
pool.start()
while len(pool.worker_pids()) < 2:
    time.sleep(0.05)
print(*pool.worker_pids(), flush=True)
time.sleep(600)
"""


def test_workers_exit_when_their_node_is_killed() -> None:
    """SIGKILL the process that owns a pool: its workers exit within a second or two.
    Fails without ledger.workers' parent watch (they block on a queue they hold the
    writing end of, and live on)."""
    owner = subprocess.Popen([sys.executable, "-c", _POOL_OWNER], stdout=subprocess.PIPE, cwd=str(ROOT),
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert owner.stdout is not None
        workers = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(workers) == 2 and all(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their killed parent"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_every_ballot_a_block_could_take_was_handed_on_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``on_pending`` (the RPC's gossip) gets each pending ballot before admission yields,
    so a proposal built between two slices names only ballots already on their way to the
    peers. Fails when the ballots are handed on once, after the whole batch."""
    from node import admission as admission_module

    monkeypatch.setattr(admission_module, "SLICE_S", 0.0)  # yield after every ballot
    k = ekit("first-counts")
    with Chain(tmp_path / "db", k.genesis) as chain:
        mempool = Mempool(k.genesis, chain.store)
        admission = BallotAdmission(mempool, lambda: _now(k))
        handed: list[bytes] = []
        unhanded_in_a_block: list[bytes] = []
        done = False

        async def proposer() -> None:  # whenever the loop is free: what would a block take?
            while not done:
                unhanded_in_a_block.extend(r for r in mempool.take(1000, _now(k)) if r not in handed)
                await asyncio.sleep(0)

        async def scenario() -> list[Admission | LedgerError]:
            nonlocal done
            watcher = asyncio.create_task(proposer())
            answers = await admission.admit(many_ballots()[:20], on_pending=handed.extend)
            done = True
            await watcher
            return answers

        answers = asyncio.run(scenario())
    assert all(isinstance(a, Admission) for a in answers)
    assert sorted(handed) == sorted(many_ballots()[:20]) and unhanded_in_a_block == []
