"""Link faults of validator 3, whose every link goes through a ``LinkProxy``: a slow peer
(its frames delivered late both ways) and a partition (its links cut, then restored)."""

from __future__ import annotations

import time

import pytest

from tests.faults.cluster import PROXIED, Cluster

pytestmark = pytest.mark.integration

SECONDS = 5.0
DELAY_S = 0.3  # each way: well past loopback's, under the 0.8 s propose timeout


def test_slow_peer(cluster: Cluster) -> None:
    """Validator 3 sees and is seen 0.3 s late: the chain finalizes on, and it follows."""
    with cluster.scenario(f"slow peer ({DELAY_S * 1000:.0f} ms each way)"):
        cluster.set_link_delay(DELAY_S)
        try:
            time.sleep(SECONDS)
            heights = [cluster.status(i)["height"] for i in range(4)]
        finally:
            cluster.set_link_delay(0.0)
    assert heights[PROXIED] >= min(heights) - 20, heights


def test_partitioned_validator_rejoins(cluster: Cluster) -> None:
    """Validator 3 cut off from the others (its RPC still serving): it stays behind while
    the others finalize; once its links are back it catches up by block sync, with no
    fork and nothing lost; then the verifier passes on the chain every scenario so far
    built (exported from validator 0)."""
    with cluster.scenario("partition and rejoin"):
        time.sleep(0.5)
        cluster.set_partitioned(True)
        try:
            behind = cluster.status(PROXIED)["height"]
            time.sleep(SECONDS)
            ahead = cluster.status(0)["height"]
            assert cluster.status(PROXIED)["height"] <= behind + 1, "the partitioned validator kept committing"
            assert ahead > behind + 3, (behind, ahead)
        finally:
            cluster.set_partitioned(False)
        time.sleep(0.5)
    started = time.monotonic()
    cluster.verify()
    print(f"export and verify of {len(cluster.hashes)} blocks: {time.monotonic() - started:.1f} s")
