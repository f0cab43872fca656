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
from tests.faults.cluster import PROXIED, VALIDATORS, Cluster

pytestmark = pytest.mark.integration

SKEWED = PROXIED
SECONDS = 5.0


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


def _window(cluster: Cluster, offset_ms: int, *, beyond: bool) -> tuple[list[int], int]:
    """Validator 3 restarted with its clock ``offset_ms`` off, then ``SECONDS`` of load:
    the proposers of the blocks committed meanwhile, and the refusals logged."""
    cluster.restart_with_clock(SKEWED, offset_ms, faulty=beyond)
    height = cluster.status(0)["height"]
    logs = _log_offsets(cluster)
    time.sleep(SECONDS)
    proposers, refusals = _proposers_and_refusals(cluster, height, logs)
    print(f"clock {offset_ms:+d} ms: {len(proposers)} blocks, {proposers.count(SKEWED)} proposed by the skewed "
          f"validator, {refusals} refusals")
    return proposers, refusals


def test_clock_skew_within_then_beyond_the_drift(cluster: Cluster) -> None:
    """Within the drift (2 s ahead) the skewed validator's blocks are committed and nobody
    refuses one; beyond it (30 s ahead) none of its blocks is committed, the others refuse
    its proposals, and the chain finalizes on (the share). Fails when the proposal time
    rule is taken out of ``LedgerApplication.validate_block`` (tried: the validator's
    blocks, dated 30 s ahead, then enter the chain)."""
    within_ms, beyond_ms = MAX_CLOCK_DRIFT_MS * 2 // 5, MAX_CLOCK_DRIFT_MS * 6
    with cluster.scenario(f"clock {within_ms:+d} ms, then {beyond_ms:+d} ms"):
        within = _window(cluster, within_ms, beyond=False)
        beyond = _window(cluster, beyond_ms, beyond=True)
        cluster.restart_with_clock(SKEWED, 0, faulty=False)
    assert len(within[0]) >= 5 and SKEWED in within[0] and within[1] == 0, within
    assert len(beyond[0]) >= 5 and SKEWED not in beyond[0] and beyond[1] > 0, beyond
