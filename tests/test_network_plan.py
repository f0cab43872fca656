"""A network across data centres from the commission's plan: each operator's key made
apart (only public keys in the plan), one genesis, each node's config; the four nodes
started from those files link and finalize blocks. Bad plans are refused in one line."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from ballotledger.netsetup import free_ports
from ballotledger.network_plan import NetworkPlan, genesis_of
from ledger.crypto import SigningKey
from node.config import ConfigError, NodeConfig, write_key
from tests.helpers import run_cli
from verifier.rpc_client import RpcClient, RpcUnavailable


def _plan(directory: Path, keys: list[SigningKey], ports: list[int]) -> Path:
    plan = {
        "chain_id": "plan-test",
        "authority": SigningKey.generate().public_key.hex(),
        "params": {"max_block_ballots": 2000},
        "validators": [
            {"name": f"authority-{i}", "public_key": k.public_key.hex(), "address": f"127.0.0.1:{ports[i]}"}
            for i, k in enumerate(keys)
        ],
    }
    path = directory / "network.toml"
    path.write_text(tomli_w.dumps(plan))
    return path


def test_a_planned_network_links_and_finalizes(tmp_path: Path) -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    ports = free_ports(8)
    plan = _plan(tmp_path, keys, ports)
    made = run_cli("network", "genesis", "--plan", plan, "--out", tmp_path / "genesis.json")
    assert made.returncode == 0, made.stdout
    genesis_hash = made.stdout.split()[1]
    procs = []
    try:
        for i, key in enumerate(keys):
            node_dir = tmp_path / f"site{i}"
            node_dir.mkdir()
            write_key(node_dir / "validator.key", key)  # made at the site; never in the plan
            done = run_cli("network", "node-config", "--plan", plan, "--name", f"authority-{i}",
                           "--genesis", tmp_path / "genesis.json", "--key-file", node_dir / "validator.key",
                           "--rpc-listen", f"127.0.0.1:{ports[4 + i]}", "--listen-host", "127.0.0.1",
                           "--data-dir", tmp_path / f"data{i}", "--out", node_dir)
            assert done.returncode == 0, done.stdout
            config = NodeConfig.load(node_dir / "node.toml")
            # A quiet chain makes a block only with work or at each checkpoint interval:
            # a short one here, so an idle network shows it finalizes.
            raw = tomllib.loads((node_dir / "node.toml").read_text())
            raw["consensus"]["checkpoint_interval_s"] = 1
            (node_dir / "node.toml").write_text(tomli_w.dumps(raw))
            assert config.data_dir.resolve() == tmp_path.resolve() / f"data{i}"
            assert {p.public_key for p in config.peers} == {k.public_key for k in keys} - {key.public_key}
            log = (node_dir / "node.log").open("wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "ballotledger", "node", "run", "--config",
                                           str(node_dir / "node.toml")], stdout=log, stderr=subprocess.STDOUT))
        statuses = _wait_linked_and_final([f"http://127.0.0.1:{ports[4 + i]}" for i in range(4)])
        assert {s["genesis_hash"] for s in statuses} == {genesis_hash}
        assert sorted(s["validator_index"] for s in statuses) == [0, 1, 2, 3]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _wait_linked_and_final(urls: list[str], timeout: float = 90.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    statuses: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            statuses = []
            for url in urls:
                with RpcClient(url, timeout=5) as rpc:
                    statuses.append(rpc.call("ballot_status"))
            if all(len(s["peers"]) == 3 and s["height"] >= 2 for s in statuses):
                return statuses
        except RpcUnavailable:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the planned network did not link and finalize: {statuses}")


def test_a_config_for_a_genesis_of_another_plan_is_refused(tmp_path: Path) -> None:
    keys = [SigningKey.generate() for _ in range(4)]
    plan = _plan(tmp_path, keys, free_ports(4))
    other = genesis_of(NetworkPlan.load(plan), 1_000)
    (tmp_path / "genesis.json").write_text(other.to_json().replace('"plan-test"', '"other-chain"'))
    done = run_cli("network", "node-config", "--plan", plan, "--name", "authority-0", "--genesis",
                   tmp_path / "genesis.json", "--key-file", tmp_path / "k", "--out", tmp_path / "n")
    assert done.returncode == 2
    assert "was not made from" in done.stdout
    assert not (tmp_path / "n" / "node.toml").exists()


def test_genesis_is_never_overwritten(tmp_path: Path) -> None:
    plan = _plan(tmp_path, [SigningKey.generate() for _ in range(4)], free_ports(4))
    (tmp_path / "genesis.json").write_text("pinned\n")
    done = run_cli("network", "genesis", "--plan", plan, "--out", tmp_path / "genesis.json")
    assert done.returncode == 2 and "refusing to overwrite" in done.stdout
    assert (tmp_path / "genesis.json").read_text() == "pinned\n"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: p["validators"].pop(), "4 to 256 validators"),
        (lambda p: p["validators"][1].update(public_key=p["validators"][0]["public_key"]), "the same public key"),
        (lambda p: p["validators"][2].update(address=p["validators"][0]["address"]), "the same address"),
        (lambda p: p["validators"][0].update(public_key="02" + "00" * 32), "#1 public_key"),
        (lambda p: p["validators"][0].update(adress="x:1"), "unknown key 'adress'"),
        (lambda p: p["validators"][3].update(address="nohost"), "must be host:port"),
        (lambda p: p["validators"][3].update(power=0), "power must be a positive integer"),
        (lambda p: p.update(authority="zz"), "authority must be"),
        (lambda p: p["params"].update(max_block_ballot=1), "unknown key 'max_block_ballot'"),
        (lambda p: p.update(chain_id=""), "chain_id"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_key(tmp_path: Path, change: object, says: str) -> None:
    path = _plan(tmp_path, [SigningKey.generate() for _ in range(4)], free_ports(4))
    raw = tomllib.loads(path.read_text())
    change(raw)  # type: ignore[operator]
    path.write_text(tomli_w.dumps(raw))
    with pytest.raises(ConfigError) as refused:
        NetworkPlan.load(path)
    assert says in refused.value.message and str(path) in refused.value.message
