"""Crashes under load: ``kill -9`` of validators and of the gateway at random points, and
a quorum lost and regained (``tests.faults.cluster`` defines the load, the invariants and
the availability share)."""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.cluster import PROXIED, SHARES, Cluster

pytestmark = pytest.mark.integration

KILLS = 2
# Quorum back to every late ballot final: measured 4.7 s here (catching up, rounds, the
# backlog); bounded loosely for a loaded machine.
RECOVERY_MAX_S = 15.0


def kill_at_random_points(cluster: Cluster, rng: random.Random, kills: int) -> list[str]:
    done = []
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 2.0))
        victim = rng.choice(["gateway", 0, 1, 2, 3])
        if victim == "gateway":
            cluster.kill_gateway()
            time.sleep(rng.uniform(0.1, 1.5))
            cluster.restart_gateway()
        else:
            assert isinstance(victim, int)
            cluster.kill(victim)
            time.sleep(rng.uniform(0.1, 1.5))
            cluster.restart(victim)
        done.append(str(victim))
    return done


def test_kill_9_at_random_points_under_load(cluster: Cluster, fault_seed: int) -> None:
    """Validators and the gateway SIGKILLed one at a time at seeded random moments while
    ballots flow: no fork, nothing final lost, every ballot the gateway took final."""
    rng = random.Random(fault_seed)
    with cluster.scenario("kill -9 under load"):
        victims = kill_at_random_points(cluster, rng, KILLS)
    print("killed, in order:", victims)


def test_quorum_lost_then_back(cluster: Cluster, fault_seed: int) -> None:
    """Two of four validators SIGKILLed at once: nothing is final while they are down, the
    gateway still takes ballots (its outbox is durable), and once they are back every one
    of them goes final."""
    rng = random.Random(fault_seed + 1)
    victims = rng.sample([i for i in range(4) if i != PROXIED], 2)
    with cluster.scenario("quorum lost and back", min_share=None):
        time.sleep(1.0)
        for v in victims:
            cluster.kill(v)
        time.sleep(3.0)
        for v in victims:
            cluster.net.start(v)
        for v in victims:
            cluster.net.wait_ready(indexes=[v])
        for v in victims:
            cluster.bring_back(v)
        time.sleep(2.0)
    late = SHARES[-1].quorum_s - SHARES[-1].finalizing_s
    print(f"quorum back to every late ballot final: {late:.2f} s")
    assert late <= RECOVERY_MAX_S, SHARES[-1]
