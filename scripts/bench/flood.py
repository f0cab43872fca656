"""Consensus core under a Byzantine flood: retained memory and per-message cost.

    python scripts/bench/flood.py [--quick] [--seconds 60] [--rate 1000]

One validator's :class:`ConsensusCore` (4 validators of equal power) is driven on a
simulated clock: two honest peers vote nil in every round it enters, so it moves through
rounds by its timeouts as a stalled network would, while the fourth validator (Byzantine)
sends ``rate`` properly signed messages per simulated second for ``seconds``. Patterns:

* ``rising``: prevotes for rounds 1, 2, 3, ... of the current height (each a new round);
* ``equivocating``: climbing rounds, both kinds, a fresh block hash in every message;
* ``past``: random rounds at or below the core's current round, random kinds and values;
* ``next_height``: messages for height + 1, random rounds and values.

Memory is measured with tracemalloc (traced memory after the flood minus before it, after
a garbage collection); per-message cost is the mean wall time of ``on_message`` over the
first and the last 1,000 messages, signing excluded. ``--quick`` runs ``rising`` only, in
one pass with tracemalloc on (its timings include tracemalloc's overhead); the full run
times every pattern again in a second pass without tracemalloc.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, peak_rss_mib

from ledger.block import VoteKind
from ledger.crypto import SigningKey
from ledger.genesis import ValidatorInfo, ValidatorSet
from ledger.hashing import keccak256
from node.consensus.core import ConsensusCore, Output, ScheduleTimeout, Timeout
from node.consensus.messages import Message, Vote

CHAIN = "flood-chain"
N = 4
BYZANTINE = 3
HONEST_PEERS = (1, 2)
WINDOW = 1000  # messages timed at the start and at the end
PATTERNS = ("rising", "equivocating", "past", "next_height")
KEYS = [SigningKey.from_seed(f"flood-validator-{i}".encode()) for i in range(N)]
VALIDATORS = ValidatorSet(tuple(ValidatorInfo(f"v{i}", k.public_key, 1) for i, k in enumerate(KEYS)))


class OpaqueApp:
    """Blocks are opaque bytes; every block is valid (the flood sends no proposals)."""

    def build_block(self, height: int, round: int) -> bytes:
        return f"block h{height} r{round}".encode()

    def validate_block(self, height: int, block: bytes) -> bool:
        return True

    def block_hash(self, block: bytes) -> bytes:
        return keccak256(block)

    def has_work(self, height: int) -> bool:
        return False


def vote(i: int, kind: VoteKind, height: int, round_: int, block_hash: bytes) -> Vote:
    return Vote.sign(
        KEYS[i], chain_id=CHAIN, kind=kind, height=height, round_=round_,
        block_hash=block_hash, validator_index=i,
    )


class Driver:
    """The core on a simulated clock: timers fire in order, honest peers vote nil."""

    def __init__(self) -> None:
        self.core = ConsensusCore(
            chain_id=CHAIN, validators=VALIDATORS, index=0, key=KEYS[0], height=1, app=OpaqueApp()
        )
        self.now = 0.0
        self._timers: list[tuple[float, int, Timeout]] = []
        self._seq = 0
        self._fed_round = -1
        self._perform(self.core.start())

    def _perform(self, outs: list[Output]) -> None:
        for o in outs:
            if isinstance(o, ScheduleTimeout):
                self._seq += 1
                heapq.heappush(self._timers, (self.now + o.delay_s, self._seq, o.timeout))
        if self.core.round > self._fed_round:  # honest peers join each new round, voting nil
            self._fed_round = r = self.core.round
            h = self.core.height
            for kind in (VoteKind.PREVOTE, VoteKind.PRECOMMIT):
                for i in HONEST_PEERS:
                    self._perform(self.core.on_message(vote(i, kind, h, r, b"")))

    def advance_to(self, t: float) -> None:
        while self._timers and self._timers[0][0] <= t:
            at, _, timeout = heapq.heappop(self._timers)
            self.now = at
            self._perform(self.core.on_timeout(timeout))
        self.now = t

    def deliver(self, m: Message) -> float:
        """Feed one message; the seconds ``on_message`` took."""
        started = time.perf_counter()
        outs = self.core.on_message(m)
        took = time.perf_counter() - started
        self._perform(outs)
        return took


def byzantine_message(pattern: str, n: int, core: ConsensusCore, rng: random.Random) -> Message:
    h = core.height
    if pattern == "rising":
        return vote(BYZANTINE, VoteKind.PREVOTE, h, n + 1, b"")
    kind = VoteKind.PREVOTE if n % 2 == 0 else VoteKind.PRECOMMIT
    value = keccak256(n.to_bytes(8, "big"))
    if pattern == "equivocating":
        return vote(BYZANTINE, kind, h, n // 8 + 1, value)
    if pattern == "past":
        return vote(BYZANTINE, kind, h, rng.randint(0, core.round), value)
    if pattern == "next_height":
        return vote(BYZANTINE, kind, h + 1, rng.randint(0, 6), value)
    raise ValueError(pattern)


def flood(pattern: str, seconds: float, rate: int, *, trace: bool) -> dict[str, Any]:
    rng = random.Random(7)
    if trace:
        tracemalloc.start()
    driver = Driver()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0] if trace else 0
    total = int(seconds * rate)
    times: list[float] = []
    for n in range(total):
        driver.advance_to(n / rate)
        m = byzantine_message(pattern, n, driver.core, rng)
        took = driver.deliver(m)
        if n < WINDOW or n >= total - WINDOW:
            times.append(took)
    del m
    gc.collect()
    figures: dict[str, Any] = {
        "messages": total,
        "rounds_reached": driver.core.round,
        "votes_held": driver.core.votes.size(),
        "start_us": round(sum(times[:WINDOW]) / WINDOW * 1e6, 1),
        "end_us": round(sum(times[-WINDOW:]) / WINDOW * 1e6, 1),
    }
    if trace:
        figures["retained_mb"] = round((tracemalloc.get_traced_memory()[0] - before) / 2**20, 3)
        tracemalloc.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="rising rounds only, one pass")
    parser.add_argument("--seconds", type=float, default=60.0, help="simulated flood length")
    parser.add_argument("--rate", type=int, default=1000, help="Byzantine messages per second")
    args = parser.parse_args()
    patterns = PATTERNS[:1] if args.quick else PATTERNS
    result: dict[str, Any] = {"machine": machine(), "seconds": args.seconds, "rate": args.rate}
    for pattern in patterns:
        traced = flood(pattern, args.seconds, args.rate, trace=True)
        print(pattern, "traced", traced, flush=True)
        if not args.quick:
            timed = flood(pattern, args.seconds, args.rate, trace=False)
            print(pattern, "timed", timed, flush=True)
            traced["start_us"], traced["end_us"] = timed["start_us"], timed["end_us"]
        result[pattern] = traced
    result["retained_mb_max"] = max(result[p]["retained_mb"] for p in patterns)
    result["timed_under_tracemalloc"] = args.quick
    result["peak_rss_mib"] = peak_rss_mib()
    emit(result)


if __name__ == "__main__":
    main()
