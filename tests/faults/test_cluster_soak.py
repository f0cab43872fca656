"""The long run of the fault suite (BALLOT_LEDGER_SOAK=1; BALLOT_LEDGER_SOAK_MINUTES, 10 by
default): one scenario of seeded random faults that each leave 2f+1 validators up (a
validator or the gateway SIGKILLed and restarted, a clock beyond the drift, a slow peer,
a partition and its healing), with quiet stretches between them, under load throughout.
The invariants are checked after every fault and the verifier run at the end; the chain
must finalize during at least 99.9% of the time 2f+1 validators are up and connected.
"""

from __future__ import annotations

import random
import time

import pytest

from node.app import MAX_CLOCK_DRIFT_MS
from tests.faults.cluster import PROXIED, SOAK, SOAK_MIN_SHARE, SOAK_MINUTES, Cluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not SOAK, reason="soak run: BALLOT_LEDGER_SOAK=1"),
]


def _one_fault(cluster: Cluster, rng: random.Random) -> str:
    kind = rng.choice(["kill", "kill", "gateway", "clock", "slow", "partition"])
    hold = rng.uniform(2.0, 20.0)
    if kind == "kill":
        victim = rng.randrange(4)
        cluster.kill(victim)
        time.sleep(rng.uniform(0.1, 3.0))
        cluster.restart(victim)
        return f"kill -9 validator {victim}"
    if kind == "gateway":
        cluster.kill_gateway()
        time.sleep(rng.uniform(0.1, 3.0))
        cluster.restart_gateway()
        return "kill -9 gateway"
    if kind == "clock":
        offset = rng.choice([-1, 1]) * MAX_CLOCK_DRIFT_MS * rng.randint(2, 10)
        cluster.restart_with_clock(PROXIED, offset, faulty=True)
        time.sleep(hold)
        cluster.restart_with_clock(PROXIED, 0, faulty=False)
        return f"clock {offset:+d} ms for {hold:.0f} s"
    if kind == "slow":
        delay = rng.uniform(0.05, 0.5)
        cluster.set_link_delay(delay)
        time.sleep(hold)
        cluster.set_link_delay(0.0)
        return f"slow peer {delay * 1000:.0f} ms for {hold:.0f} s"
    cluster.set_partitioned(True)
    time.sleep(hold)
    cluster.set_partitioned(False)
    return f"partition for {hold:.0f} s"


def test_random_faults_for_minutes(cluster: Cluster, fault_seed: int) -> None:
    rng = random.Random(fault_seed + 99)
    done: list[str] = []
    began = time.monotonic()
    ends = began + 60 * SOAK_MINUTES
    with cluster.scenario(f"soak: {SOAK_MINUTES:g} min of random faults", min_share=SOAK_MIN_SHARE):
        while time.monotonic() < ends:
            time.sleep(rng.uniform(2.0, 10.0))
            at = time.monotonic() - began
            done.append(f"at {at:.1f} s: {_one_fault(cluster, rng)}")
            print(f"{len(done)}: {done[-1]}", flush=True)
            cluster.check_invariants(verify=False, drained=False)
    print(f"{len(done)} faults: {done}")
