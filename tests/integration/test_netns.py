"""Four validators on four hosts (network namespaces on a bridge), and a cut link.

Needs root and iproute2; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from ballotledger.loadgen import make_ballots
from ballotledger.netsetup import init_network
from node.config import ConsensusTimeouts
from verifier.rpc_client import RpcClient, RpcUnavailable

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SUBNET = "10.231.0"
BRIDGE = "blbr0"
# Blocks without work (checkpoint_interval_s=0): a healed host's catch-up is seen by heights alone.
FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=100,
                         checkpoint_interval_s=0)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (the ip command)"
    probe = subprocess.run(["ip", "netns", "add", "blprobe"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create network namespaces here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", "blprobe"], capture_output=True)
    return None


def _teardown(n: int) -> None:
    for i in range(n):
        subprocess.run(["ip", "netns", "del", f"blns{i}"], capture_output=True)
        subprocess.run(["ip", "link", "del", f"blv{i}"], capture_output=True)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


@pytest.fixture()
def hosts() -> Iterator[int]:
    reason = _can_make_namespaces()
    if reason is not None:
        print(f"skipping the multi-host test: {reason}")
        pytest.skip(reason)
    n = 4
    _teardown(n)
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{SUBNET}.254/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    for i in range(n):
        ns, host_side = f"blns{i}", f"blv{i}"
        _ip("netns", "add", ns)
        _ip("link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", host_side, "master", BRIDGE)
        _ip("link", "set", host_side, "up")
        _ip("-n", ns, "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
    try:
        yield n
    finally:
        _teardown(n)


def _status(url: str) -> dict:  # type: ignore[type-arg]
    with RpcClient(url, timeout=3) as c:
        return c.call("ballot_status")  # type: ignore[no-any-return]


def _status_from_inside(ns: str, url: str) -> dict:  # type: ignore[type-arg]
    """Ask a host's RPC from within its own namespace (its link to us may be cut)."""
    code = ("import httpx, json, sys; r = httpx.post(sys.argv[1], json={'jsonrpc': '2.0', 'id': 1, "
            "'method': 'ballot_status', 'params': []}, timeout=3); print(json.dumps(r.json()['result']))")
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, url],
                         capture_output=True, text=True, check=True, timeout=20)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except RpcUnavailable:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_four_hosts_and_a_cut_link(hosts: int, tmp_path: Path) -> None:
    layout = init_network(tmp_path, validators=hosts, voters=100, timeouts=FAST)
    urls = []
    for i, path in enumerate(layout.configs):
        cfg = tomllib.loads(path.read_text())
        cfg["p2p"]["listen"] = f"{SUBNET}.{i + 1}:26656"
        cfg["rpc"]["listen"] = f"{SUBNET}.{i + 1}:8545"
        others = [j for j in range(hosts) if j != i]
        for peer, j in zip(cfg["p2p"]["peers"], others, strict=True):
            peer["address"] = f"{SUBNET}.{j + 1}:26656"
        path.write_text(tomli_w.dumps(cfg))
        urls.append(f"http://{SUBNET}.{i + 1}:8545")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            ["ip", "netns", "exec", f"blns{i}", sys.executable, "-m", "ballotledger", "node", "run",
             "--config", str(path)],
            stdout=(path.parent / "node.log").open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        for i, path in enumerate(layout.configs)
    ]
    try:
        _wait(lambda: all(_status(u)["height"] >= 2 for u in urls), 60, "all hosts committing blocks")
        ballots = make_ballots(tmp_path, 100)
        _ip("link", "set", "blv3", "down")  # cut host 3 off
        cut_at = _status_from_inside("blns3", urls[3])["height"]
        with RpcClient(urls[0]) as c:
            codes = [a["tracking_code"] for a in c.call("ballot_submitBatch", [b.hex() for b in ballots[:50]])]
        _wait(lambda: RpcClient(urls[1]).call("ballot_getReceipt", codes[-1])["status"] == "final", 30,
              "finality with one host cut off")
        time.sleep(1.0)
        assert _status_from_inside("blns3", urls[3])["height"] <= cut_at + 1  # alone, it cannot decide
        _ip("link", "set", "blv3", "up")  # heal
        target = _status(urls[0])["height"]
        _wait(lambda: _status(urls[3])["height"] >= target, 60, "the healed host catching up")
        with RpcClient(urls[3]) as c3, RpcClient(urls[0]) as c0:
            mine = c3.call("ballot_getBlocks", 1, target)["blocks"][:target]
            theirs = c0.call("ballot_getBlocks", 1, target)["blocks"][:target]
        assert mine == theirs
        assert RpcClient(urls[3]).call("ballot_getReceipt", codes[0])["status"] == "final"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
