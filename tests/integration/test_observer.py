"""Observer tools against real nodes: verify --rpc, receipts, and checkpoints that catch a
rewritten history even when every node tells the same story."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from tests.helpers import QUICK_TIMEOUTS, run_cli
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration


def _vote_and_wait(net: Localnet, ballots: list[bytes]) -> None:
    with net.client(0) as c:
        codes = [a["tracking_code"] for a in c.call("ballot_submitBatch", [b.hex() for b in ballots])]
        deadline = time.monotonic() + 30
        while any(c.call("ballot_getReceipt", code)["status"] != "final" for code in codes):
            assert time.monotonic() < deadline, "ballots not final"
            time.sleep(0.1)


def test_verify_rpc_receipts_and_checkpoints(tmp_path: Path) -> None:
    a_dir = tmp_path / "a"
    Localnet.create(a_dir, validators=1, voters=60, timeouts=QUICK_TIMEOUTS)
    b_dir = tmp_path / "b"
    shutil.copytree(a_dir, b_dir)  # same genesis, same validator key: a colluding rewrite
    ballots = make_ballots(a_dir, 60)
    with Localnet(a_dir) as net:
        net.start()
        net.wait_ready()
        url = net.rpc_urls[0]
        _vote_and_wait(net, ballots[:10])
        assert run_cli("checkpoint", "save", "--rpc", url, "--out", tmp_path / "old.json").returncode == 0
        _vote_and_wait(net, ballots[10:20])
        assert run_cli("checkpoint", "save", "--rpc", url, "--out", tmp_path / "new.json").returncode == 0
        proc = run_cli("checkpoint", "compare", tmp_path / "old.json", tmp_path / "new.json",
                    "--genesis", a_dir / "genesis.json", "--rpc", url)
        assert proc.returncode == 0 and "CONSISTENT" in proc.stdout, proc.stdout + proc.stderr

        proc = run_cli("verify", "--rpc", url, "--json")
        report = json.loads(proc.stdout)
        assert proc.returncode == 0 and report["valid"] and report["ballots"] == 20

        with RpcClient(url) as c:
            code = c.call("ballot_submit", ballots[0].hex())["tracking_code"]
            (tmp_path / "receipt.json").write_text(json.dumps(c.call("ballot_getReceipt", code)["receipt"]))
        proc = run_cli("receipt", "verify", tmp_path / "receipt.json", "--genesis", a_dir / "genesis.json")
        assert proc.returncode == 0, proc.stdout

    # The same validator key signs a different history from the same genesis.
    with Localnet(b_dir) as net:
        net.start()
        net.wait_ready()
        url = net.rpc_urls[0]
        _vote_and_wait(net, ballots[30:50])
        assert run_cli("checkpoint", "save", "--rpc", url, "--out", tmp_path / "forged.json").returncode == 0
        proc = run_cli("checkpoint", "compare", tmp_path / "old.json", tmp_path / "forged.json",
                    "--genesis", a_dir / "genesis.json", "--rpc", url)
        assert proc.returncode == 1 and "INCONSISTENT" in proc.stdout, proc.stdout + proc.stderr
        # the receipt from the first history fails against this chain's checkpoint
        with RpcClient(url) as c:
            cp = c.call("ballot_getCheckpoint")
        receipt = json.loads((tmp_path / "receipt.json").read_text())
        receipt["checkpoint"] = cp["checkpoint"]
        (tmp_path / "moved.json").write_text(json.dumps(receipt))
        proc = run_cli("receipt", "verify", tmp_path / "moved.json", "--genesis", a_dir / "genesis.json")
        assert proc.returncode == 1, proc.stdout
