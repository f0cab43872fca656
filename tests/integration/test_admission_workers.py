"""A real validator process with its admission workers on: encrypted ballots submitted
through its RPC are checked in its worker processes and go final."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ballotledger.election_kit import make_election
from ballotledger.localnet import Localnet
from ballotledger.netsetup import init_single_validator
from ledger.ballot import BallotEnvelope
from ledger.genesis import Contest
from ledger.rules import ballot_context
from tests.crypto.helpers import forge_ballot
from tests.helpers import QUICK_TIMEOUTS, ROOT
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration


def _workers(pid: int) -> list[int]:
    """The process's multiprocessing workers (not its resource tracker)."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_encrypted_ballots_through_the_rpc_go_final_with_workers(tmp_path: Path) -> None:
    k = make_election(voters=24, seed="live-admission", revoting="last-counts",
                      contests=(Contest("Pick one", ("a", "b", "c"), 1),))
    config = init_single_validator(tmp_path, k.genesis, k.validator_keys[0], timeouts=QUICK_TIMEOUTS,
                                   admission_workers=2)
    good = [k.encrypted_ballot(v, [[v % 3]])[0].encode() for v in range(20)]
    revote = k.encrypted_ballot(0, [[2]])[0].encode()
    liar = k.voters[21]
    forged = BallotEnvelope.create(
        liar, chain_id=k.genesis.chain_id, election_id=k.election_id, proof=k.credentials.proof(liar.public_key),
        payload=forge_ballot(ballot_context(k.genesis.chain_id, k.election, liar.public_key),
                             [[1, 1, 0]], [[1, 0, 0]], [1]).encode(),
    ).encode()
    log = (tmp_path / "node.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "ballotledger", "node", "run", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        net = Localnet(tmp_path)
        net.procs[0] = proc
        net.wait_ready(timeout=60)
        with RpcClient(net.rpc_urls[0], timeout=30) as client:
            answers = client.call("ballot_submitBatch", [r.hex() for r in [*good, forged, revote, good[3]]])
            assert [a.get("status") for a in answers[:20]] == ["pending"] * 20
            assert answers[20]["error"]["code"] == "bad_ballot_proof"
            assert answers[21]["status"] == "pending" and answers[22]["status"] == "pending"
            assert len(_workers(proc.pid)) == 2  # the checks ran in the validator's two workers
            codes = [a["tracking_code"] for a in answers[:20]] + [answers[21]["tracking_code"]]
            deadline = time.monotonic() + 60
            while not all(client.call("ballot_getReceipt", c)["status"] == "final" for c in codes):
                assert time.monotonic() < deadline, "ballots did not go final"
                time.sleep(0.2)
            assert client.call("ballot_status")["log_size"] == 21
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
