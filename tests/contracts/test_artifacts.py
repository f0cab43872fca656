"""The checked-in artifacts are exactly what the pinned compiler makes of the sources."""

from __future__ import annotations

import json

import pytest

from contracts import ARTIFACTS, REGISTRY, Registry, load_artifact
from contracts.build import SOURCES, build_artifact


@pytest.mark.parametrize("name", SOURCES)
def test_artifact_matches_source_byte_for_byte(name: str) -> None:
    fresh = build_artifact(name)
    checked_in = (ARTIFACTS / f"{name}.json").read_bytes()
    assert fresh == checked_in, f"contracts/artifacts/{name}.json is stale: run python -m contracts.build"


def test_artifact_records_compiler_and_source_hash() -> None:
    obj = json.loads((ARTIFACTS / f"{REGISTRY}.json").read_text())
    assert obj["compiler"] == "vyper 0.4.3"
    assert obj["format"] == "ballot-ledger/contract-artifact/v1"
    art = load_artifact(REGISTRY)
    assert art.bytecode and art.bytecode_runtime


def test_registry_abi_has_every_lifecycle_call_and_event() -> None:
    reg = Registry()
    for fn in ("define_election", "set_trustees_key", "set_gateway", "open_election", "close_election",
               "publish_result", "checkpoint", "phase", "is_open", "election", "result", "is_gateway"):
        assert fn in reg.functions
    for ev in ("ElectionDefined", "PhaseChanged", "TrusteesKeySet", "GatewaySet", "Checkpoint", "ResultPublished"):
        assert ev in reg.events
    assert reg.fn("checkpoint").signature == "checkpoint(uint64,uint64,bytes32,bytes32[],uint64[])"
