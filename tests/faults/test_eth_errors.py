"""The Ethereum methods of a real validator under absurd params: clean JSON-RPC errors,
no traceback in the node's log, and the chain goes on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from node.jsonrpc import INVALID_PARAMS, LEDGER_REFUSAL
from tests.contracts.test_eth_rpc_errors import PROBES
from tests.faults.conftest import Served

pytestmark = pytest.mark.integration

RAW_TX_PROBES: list[tuple[str, list[Any]]] = [
    ("eth_sendRawTransaction", ["0x"]),
    ("eth_sendRawTransaction", ["0xzz"]),
    ("eth_sendRawTransaction", ["0x" + "ff" * 70_000]),
    ("eth_sendRawTransaction", ["0x02" + "c0"]),
    ("eth_sendRawTransaction", ["0xf8" + "ff" * 300]),
    ("eth_sendRawTransaction", [5]),
]


def test_eth_methods_answer_absurd_params_cleanly(served: Served) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(PROBES + RAW_TX_PROBES)]
    answers = []
    for start in range(0, len(batch), 5):  # small batches: a request's cost budget holds a few eth_calls
        answers += httpx.post(served.rpc_url, json=batch[start : start + 5], timeout=60).json()
    assert len(answers) == len(batch)
    for answer in answers:
        probe = batch[answer["id"]]
        assert "error" in answer, (probe, answer)
        assert answer["error"]["code"] in (INVALID_PARAMS, LEDGER_REFUSAL), (probe, answer)
    served.assert_finalizing()
    served.assert_clean_logs()
