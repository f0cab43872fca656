"""A validator whose clock is off, within and beyond the drift a proposal may have
(``node.app.MAX_CLOCK_DRIFT_MS``), set through ``BALLOT_LEDGER_CLOCK_OFFSET_MS``.

Within the drift its proposals are taken like any other. Beyond it (ahead) every block it
proposes carries a time the others refuse as too far in the future: it counts as faulty,
and the chain finalizes on without it (its rounds go to the next proposer).
"""

from __future__ import annotations

import time

import pytest

from ledger.block import Block
from node.app import MAX_CLOCK_DRIFT_MS
from node.validator import CLOCK_OFFSET_ENV
from tests.faults.cluster import PROXIED, SOAK, VALIDATORS, Cluster

pytestmark = pytest.mark.integration

SKEWED = PROXIED
SECONDS = 60.0 if SOAK else 5.0


def _restart_skewed(cluster: Cluster, offset_ms: int, *, faulty: bool) -> None:
    cluster.take_down(SKEWED, "clock restart")
    cluster.net.stop(SKEWED)
    cluster.net.start(SKEWED, env={CLOCK_OFFSET_ENV: str(offset_ms)})
    cluster.net.wait_ready(indexes=[SKEWED])
    if faulty:  # up and voting, but not one of the 2f+1 the share counts
        cluster.wait_connected(range(VALIDATORS))
        cluster.take_down(SKEWED, "clock beyond the drift", resubmit=False)
    else:
        cluster.bring_back(SKEWED)


def _proposers_and_refusals(cluster: Cluster, since_height: int, logs_from: list[int]) -> tuple[list[int], int]:
    """(proposer index of each block after ``since_height``, refusals of a proposal for a
    time too far ahead logged by the other validators since the byte offsets given)."""
    keys = cluster.keys
    proposers = []
    height = since_height + 1
    while True:
        page = cluster.call(0, "ballot_getBlocks", height, 200)["blocks"]
        if not page:
            break
        for entry in page:
            proposers.append(keys.index(Block.decode(bytes.fromhex(entry["block"])).header.proposer))
        height += len(page)
    refusals = 0
    for i in range(VALIDATORS):
        if i != SKEWED:
            with cluster.net.log_path(i).open("rb") as log:
                log.seek(logs_from[i])
                refusals += log.read().decode(errors="replace").count("too far in the future")
    return proposers, refusals


def _log_offsets(cluster: Cluster) -> list[int]:
    return [cluster.net.log_path(i).stat().st_size for i in range(VALIDATORS)]


@pytest.mark.parametrize(
    ("offset_ms", "beyond"),
    [(MAX_CLOCK_DRIFT_MS * 2 // 5, False), (-MAX_CLOCK_DRIFT_MS * 2 // 5, False), (MAX_CLOCK_DRIFT_MS * 6, True)],
    ids=["ahead-within", "behind-within", "ahead-beyond"],
)
def test_clock_skew(cluster: Cluster, offset_ms: int, beyond: bool) -> None:
    """Within the drift the skewed validator's blocks are committed and nobody refuses one;
    beyond it none of its blocks is committed, the others refuse its proposals, and the
    chain finalizes on. Fails when the proposal time rule is taken out of
    ``LedgerApplication.validate_block`` (tried: the skewed validator's blocks, dated
    30 s ahead, then enter the chain)."""
    name = f"clock {offset_ms:+d} ms ({'beyond' if beyond else 'within'} the drift)"
    with cluster.scenario(name):
        _restart_skewed(cluster, offset_ms, faulty=beyond)
        height = cluster.status(0)["height"]
        logs = _log_offsets(cluster)
        time.sleep(SECONDS)
        proposers, refusals = _proposers_and_refusals(cluster, height, logs)
        _restart_skewed(cluster, 0, faulty=False)
    print(f"{name}: {len(proposers)} blocks, {proposers.count(SKEWED)} proposed by the skewed validator, "
          f"{refusals} refusals")
    assert len(proposers) >= 5, proposers
    if beyond:
        assert SKEWED not in proposers and refusals > 0, (proposers, refusals)
    else:
        assert SKEWED in proposers and refusals == 0, (proposers, refusals)
