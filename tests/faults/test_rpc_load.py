"""Finality under the worst RPC load one client can make, with real validator processes.

Four validators on loopback. One client (its own process at nice 10, from 127.0.0.2: on
loopback its cycles are the validators') hammers two of
them with ``ballotledger.rpc_attack``'s requests, each as costly as the node takes it,
while ballots are submitted at a steady rate from 127.0.0.1 and followed to finality on
an attacked validator. Two attacked validators is the case that once stopped the chain:
each blocked on a batch of ballot_getResults and the other two were not a quorum.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ballotledger.loadgen import make_ballots, run_load
from ballotledger.localnet import Localnet
from ballotledger.rpc_attack import attack_bodies, attack_result, start_attack
from tests.helpers import QUICK_TIMEOUTS
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration

RATE = 100.0  # ballots/s offered by the honest client
LONGEST_WAIT_S = 8.0  # submit-to-final on a shared 2-core machine (the bench's target is p99 <= 3 s)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("rpcload")
    with Localnet.create(directory, validators=4, voters=int(RATE * 145) + 100, timeouts=QUICK_TIMEOUTS) as localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


def _under_attack(net: Localnet, targets: list[int], seconds: float, offset: int) -> tuple[dict[str, Any], Any]:
    """(attack figures, honest load result) for ``seconds`` of both at once."""
    seed = make_ballots(net.directory, 20, offset=offset)
    with RpcClient(net.rpc_urls[0]) as c:
        codes = [a["tracking_code"] for a in c.call("ballot_submitBatch", [b.hex() for b in seed])]
        status = c.call("ballot_status")
    honest = make_ballots(net.directory, int(RATE * seconds), offset=offset + len(seed))
    bodies = attack_bodies(status["height"], status["log_size"], seed, codes)
    attacker = start_attack([net.rpc_urls[i] for i in targets], bodies, seconds, workdir=net.directory)
    try:
        load = asyncio.run(run_load(net.rpc_urls, honest, rate=RATE, batch=10, drain_timeout=30))
    finally:
        figures = attack_result(attacker, timeout=seconds + 60)
    return figures, load


def _check(net: Localnet, figures: dict[str, Any], load: Any) -> None:
    result = load.figures()
    waits = sorted(load.latencies)
    print("attack:", figures, "honest:", result, "longest wait:", waits[-1] if waits else None)
    answers = figures["answers"]
    # the attack ran and met each limit: work done, work refused, ballots refused
    assert answers.get("ok", 0) > 100 and answers.get("over_budget", 0) > 0, answers
    assert answers.get("rate_limited", 0) + answers.get("bad_signature", 0) > 0, answers
    assert load.refused == 0 and load.finalized == load.offered == load.accepted, result
    assert waits[-1] <= LONGEST_WAIT_S, f"longest submit-to-final {waits[-1]:.2f} s: {result}"
    for i in range(len(net)):
        log = net.log_path(i).read_text()
        assert "Traceback" not in log, f"validator {i} logged a traceback:\n{log[-3000:]}"
        with RpcClient(net.rpc_urls[i], timeout=10) as c:
            assert c.call("ballot_status")["height"] >= 1


def test_finality_holds_while_one_client_hammers_two_validators(net: Localnet) -> None:
    """Fails when the reads are not bounded and queued (tried: ReadPool.run calling its job
    inline and calls into precompiles let through): the pairing eth_call alone then holds
    an attacked validator's RPC for minutes and the honest submissions time out."""
    figures, load = _under_attack(net, [0, 1], seconds=20.0, offset=0)
    _check(net, figures, load)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("BALLOT_LEDGER_SOAK"), reason="soak run: BALLOT_LEDGER_SOAK=1")
def test_finality_holds_while_one_client_hammers_every_validator_for_two_minutes(net: Localnet) -> None:
    figures, load = _under_attack(net, [0, 1, 2, 3], seconds=120.0, offset=int(RATE * 20) + 20)
    _check(net, figures, load)


def test_results_answer_at_any_height_after_the_attack(net: Localnet, tmp_path: Path) -> None:
    """The tally the attack drove forward answers as a replay would at every height."""
    with RpcClient(net.rpc_urls[0], timeout=30) as c:
        tip = c.call("ballot_status")["height"]
        results = [c.call("ballot_getResults", h) for h in (1, tip // 2, tip)]
    assert [r["height"] for r in results] == [1, tip // 2, tip]
    counts = [sum(e["ballots_recorded"] for e in r["elections"].values()) for r in results]
    assert counts == sorted(counts) and counts[-1] > 0
