"""One real validator and one real gateway on loopback, with short HTTP limits so the
slow-client probes finish quickly; every test reads their logs for tracebacks."""

from __future__ import annotations

import os
import random
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from ballotledger.localnet import Localnet
from ballotledger.netsetup import init_network
from tests.faults.cluster import SHARES, Cluster, describe
from tests.gateway.harness import FAST, GatewayProc
from verifier.rpc_client import RpcClient

# Short on purpose: the probes wait these out.
HEADER_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 1.5
LIMITS = {
    "max_header_bytes": 16384, "max_headers": 64, "header_timeout_s": HEADER_TIMEOUT_S,
    "body_timeout_s": BODY_TIMEOUT_S, "max_connections": 800,
}


class Served:
    """The validator's and the gateway's addresses and logs."""

    def __init__(self, net: Localnet, gateway: GatewayProc) -> None:
        self.net = net
        self.gateway = gateway
        self.rpc_url = net.rpc_urls[0]
        self.gateway_url = gateway.url

    @property
    def node_log(self) -> Path:
        return self.net.log_path(0)

    @property
    def gateway_log(self) -> Path:
        return self.gateway.directory / "gateway.log"

    def height(self) -> int:
        with RpcClient(self.rpc_url, timeout=5) as client:
            return int(client.call("ballot_status")["height"])

    def assert_finalizing(self, timeout: float = 20.0) -> None:
        """The validator is alive and commits new blocks."""
        proc = self.net.procs[0]
        assert proc.poll() is None, f"validator exited with {proc.returncode}"
        start = self.height()
        deadline = time.monotonic() + timeout
        while self.height() <= start:
            assert time.monotonic() < deadline, "the validator stopped finalizing"
            time.sleep(0.1)

    def assert_clean_logs(self) -> None:
        for log in (self.node_log, self.gateway_log):
            text = log.read_text(errors="replace")
            assert "Traceback" not in text, f"{log}:\n{text[-4000:]}"


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("faults")
    init_network(directory, validators=1, voters=40, timeouts=FAST)
    config = directory / "node0" / "node.toml"
    obj = tomllib.loads(config.read_text())
    obj["rpc"].update(LIMITS)
    config.write_text(tomli_w.dumps(obj))
    with Localnet(directory) as net:
        net.start()
        net.wait_ready()
        gateway = GatewayProc(directory / "gateway", list(net.rpc_urls), options=dict(LIMITS))
        gateway.start()
        try:
            yield Served(net, gateway)
        finally:
            gateway.stop()


FAULT_SEED_LINE: list[str] = []


LIVE: list[Cluster] = []  # the running cluster, if any


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """Four validators and a gateway under load, shared by the fault scenarios that run one
    after another (each leaves it whole: every validator up, clocks true, links direct),
    and stopped as soon as the next test does not need it, so its empty blocks do not
    slow the rest of the suite. One a failed scenario left with a validator down is
    replaced."""
    if LIVE and LIVE[0].down:
        LIVE.pop().close()
    if not LIVE:
        made = Cluster(tmp_path_factory.mktemp("cluster"))
        LIVE.append(made)
        made.start()
    return LIVE[0]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if LIVE and (nextitem is None or "cluster" not in getattr(nextitem, "fixturenames", ())):
        LIVE.pop().close()


def pytest_sessionfinish() -> None:
    while LIVE:
        LIVE.pop().close()


@pytest.fixture(scope="session")
def fault_seed() -> int:
    """The seed of the scenarios' random choices: BALLOT_LEDGER_FAULT_SEED, else drawn and
    printed, so a failing run can be repeated."""
    seed = int(os.environ.get("BALLOT_LEDGER_FAULT_SEED") or random.randrange(1 << 32))
    FAULT_SEED_LINE.append(f"fault suite seed: BALLOT_LEDGER_FAULT_SEED={seed}")
    print(FAULT_SEED_LINE[-1])
    return seed


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault suite's availability share (tests.faults.cluster), when scenarios ran."""
    for line in describe(SHARES):
        terminalreporter.write_line(line)
    if SHARES and FAULT_SEED_LINE:
        terminalreporter.write_line(FAULT_SEED_LINE[0])
