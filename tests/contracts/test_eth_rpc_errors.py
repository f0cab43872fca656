"""Absurd params to every Ethereum method: a clean JSON-RPC error (-32602 invalid params,
-32000 with a message), never -32603 "internal error" and never a logged traceback.

Fails when ``node.eth_rpc`` lets py-evm's refusals through (``_executed`` removed:
InsufficientFunds for value 2^256-1) or accepts quantities over 256 bits (checked by hand
once: both answered -32603 and logged a traceback)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from contracts import REGISTRY_ADDRESS
from node.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, LEDGER_REFUSAL, handle_body

from .test_eth_rpc import Served

REG = "0x" + REGISTRY_ADDRESS.hex()
ZERO = "0x" + "00" * 20
MAX = hex(2**256 - 1)
OVER = 2**300

PROBES: list[tuple[str, list[Any]]] = [
    ("eth_call", [{"to": REG, "value": MAX}]),
    ("eth_call", [{"to": ZERO, "value": MAX}]),
    ("eth_call", [{"to": REG, "from": REG, "value": MAX}]),
    ("eth_call", [{"to": REG, "value": OVER}]),
    ("eth_call", [{"to": REG, "value": hex(2**256)}]),
    ("eth_call", [{"to": REG, "value": -1}]),
    ("eth_call", [{"to": REG, "gas": MAX}]),
    ("eth_call", [{"to": REG, "gas": OVER}]),
    ("eth_call", [{"to": REG, "gas": "0x0"}]),
    ("eth_call", [{"to": REG, "from": "0x1234"}]),
    ("eth_call", [{"to": "0x" + "zz" * 20}]),
    ("eth_call", [{"to": REG, "data": "0x123"}]),
    ("eth_call", [{"to": REG, "data": 5}]),
    ("eth_call", [{"to": REG, "data": "0x" + "ff" * 100_000}]),
    ("eth_call", [{"to": REG}, MAX]),
    ("eth_call", [{"to": REG}, {"blockHash": 5}]),
    ("eth_call", [{"to": REG}, [1]]),
    ("eth_call", ["x"]),
    ("eth_call", [{"to": REG}, "latest", {"x": 1}]),
    ("eth_estimateGas", [{"to": REG, "value": MAX}]),
    ("eth_estimateGas", [{"to": REG, "from": "0x" + "00" * 19}]),
    ("eth_getBalance", [REG, MAX]),
    ("eth_getBalance", [5]),
    ("eth_getStorageAt", [REG, OVER]),
    ("eth_getStorageAt", [REG, "0x" + "f" * 65]),
    ("eth_getTransactionCount", [REG, -5]),
    ("eth_getBlockByNumber", [{"blockHash": "0x12"}]),
    ("eth_getBlockByHash", ["0x12"]),
    ("eth_getTransactionByBlockNumberAndIndex", ["0x1", OVER]),
    ("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x0"}]),
    ("eth_getLogs", [{"toBlock": hex(2**257)}]),
    ("eth_getLogs", [{"fromBlock": "0x0", "blockHash": "0x" + "00" * 32}]),
    ("eth_getLogs", [{"topics": [5]}]),
    ("eth_getLogs", [{"address": 5}]),
    ("eth_getLogs", [[1, 2]]),
    ("eth_newFilter", [{"topics": [["0x12"]]}]),
    ("eth_getFilterChanges", [[1]]),
    ("eth_getTransactionReceipt", [5]),
    ("eth_getBlockTransactionCountByNumber", [[]]),
]


@pytest.fixture(scope="module")
def methods() -> dict[str, Any]:
    s = Served()
    s.chain.add()
    return dict(s.methods.table())


@pytest.mark.parametrize(("method", "params"), PROBES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(PROBES)])
def test_absurd_params_get_clean_errors(
    methods: dict[str, Any], method: str, params: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    with caplog.at_level(logging.WARNING):
        answer = asyncio.run(handle_body(methods, body))
    error = answer.get("error")
    assert error is not None, answer
    assert error["code"] in (INVALID_PARAMS, LEDGER_REFUSAL) and error["code"] != INTERNAL_ERROR, error
    assert error["message"] and "internal" not in error["message"]
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_execution_error_names_the_reason(methods: dict[str, Any]) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{"to": REG, "value": MAX}]})
    error = asyncio.run(handle_body(methods, body.encode()))["error"]
    assert error["code"] == LEDGER_REFUSAL and error["data"]["code"] == "execution_error"
    assert "Insufficient funds" in error["message"]
