"""Fixtures: one localnet (4 validators) and one gateway for the whole gateway suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ballotledger.localnet import Localnet
from tests.gateway.harness import GatewayProc, make_network


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("gwnet")
    with make_network(directory) as localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


@pytest.fixture(scope="session")
def gateway(net: Localnet) -> Iterator[GatewayProc]:
    gw = GatewayProc(net.directory / "gateway", list(net.rpc_urls), options={"resubmit_after_s": 3.0})
    gw.start()
    yield gw
    gw.stop()
