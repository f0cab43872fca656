"""Real validator processes with JSON logs: their /metrics move with the chain, their logs
are JSON lines that say what happened and hold nothing secret, and the Grafana dashboard
reads only metrics they expose."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet
from ballotledger.netsetup import read_voters, voter_key
from ledger.ballot import BallotEnvelope
from node.config import ConsensusTimeouts
from tests.helpers import wait_until
from verifier.rpc_client import RpcClient

pytestmark = pytest.mark.integration

# A checkpoint block every second: these tests follow heights on an otherwise idle chain.
FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=400, precommit_ms=400, delta_ms=300, block_interval_ms=100,
                        checkpoint_interval_s=1)
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "ballot-ledger.json"
GOOD = 30
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    directory = tmp_path_factory.mktemp("observed")
    localnet = Localnet.create(directory, validators=4, voters=100, timeouts=FAST)
    for path in localnet.configs:
        config = tomllib.loads(path.read_text())
        config.update(log_format="json", log_refusals_every_s=1)
        path.write_text(tomli_w.dumps(config))
    with localnet:
        localnet.start()
        localnet.wait_ready()
        yield localnet


@pytest.fixture(scope="module")
def ballots(net: Localnet) -> list[bytes]:
    return make_ballots(net.directory, 60)


def scrape(net: Localnet, i: int) -> Samples:
    answer = httpx.get(net.rpc_urls[i] + "/metrics", timeout=5)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: Samples, name: str, /, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    wait_until(check, timeout, what, interval=0.2)

def test_metrics_move_with_the_chain(net: Localnet, ballots: list[bytes]) -> None:
    wait_for("three peers", lambda: value(scrape(net, 0), "ballotledger_peers_connected") == 3)
    before = scrape(net, 0)
    assert value(before, "ballotledger_node_info", name="validator-0", chain_id=net.genesis.chain_id,
                 validator_index="0") == 1
    forged = bytearray(ballots[GOOD])
    forged[-5] ^= 1  # inside the signature
    with RpcClient(net.rpc_urls[0]) as client:
        answers = client.call("ballot_submitBatch", [b.hex() for b in ballots[:GOOD]] + [bytes(forged).hex(), "zz"])
        assert [a.get("error", {}).get("code") for a in answers[GOOD:]] == ["bad_signature", "invalid_params"]
        codes = [a["tracking_code"] for a in answers[:GOOD]]
        wait_for("the ballots final", lambda: all(
            client.call("ballot_getReceipt", c)["status"] == "final" for c in codes))
    finalized = "ballotledger_ballots_finalized_total"
    wait_for("validator 0 to count them", lambda: value(scrape(net, 0), finalized) - value(before, finalized) >= GOOD)
    wait_for("validator 2 to count them", lambda: value(scrape(net, 2), finalized) >= GOOD)  # every validator does
    after = scrape(net, 0)

    def grew(name: str, /, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "ballotledger_height") > value(before, "ballotledger_height")
    assert grew("ballotledger_ballots_finalized_total") == GOOD
    assert grew("ballotledger_finality_latency_seconds_count") == GOOD  # each was first seen here
    assert grew("ballotledger_ballots_refused_total", code="bad_signature") == 1
    assert grew("ballotledger_ballots_refused_total", code="invalid_params") == 1
    assert grew("ballotledger_blocks_committed_total") >= 1 and grew("ballotledger_commit_latency_seconds_count") >= 1
    assert grew("ballotledger_wal_fsync_seconds_count") >= 2  # a prevote and a precommit a height at least
    assert grew("ballotledger_rpc_requests_total", method="ballot_submitBatch") == 1
    assert grew("ballotledger_rpc_requests_total", method="ballot_getReceipt") >= GOOD
    wait_for("validator 0 at its peers' height", lambda: (lambda s: value(s, "ballotledger_synced") == 1 and value(
        s, "ballotledger_sync_behind_heights") <= 1)(scrape(net, 0)))  # a peer may be a height ahead a moment
    assert value(after, "ballotledger_mempool_ballots") == 0
    # Proposals travel compact (node.compact): the three validators that did not propose the
    # ballots' block rebuilt it from the ballots they held.
    rebuilt = [value(scrape(net, i), "ballotledger_proposals_total", how="rebuilt") for i in range(4)]
    assert sum(n > 0 for n in rebuilt) >= 3, rebuilt
    assert value(after, "ballotledger_consensus_step") in (0, 1, 2, 3)
    assert value(after, "process_resident_memory_bytes") > 0


def test_dashboard_reads_only_metrics_a_node_exposes(net: Localnet) -> None:
    """Every metric name in the dashboard's expressions and variables is one a running
    validator serves, and every family a validator serves under the ballotledger_ prefix
    is on the dashboard. Fails when a metric is renamed on one side only."""
    text = httpx.get(net.rpc_urls[1] + "/metrics", timeout=5).text
    served: set[str] = set()
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        names = {"counter": [family.name + "_total"], "histogram": [
            family.name + s for s in ("_bucket", "_sum", "_count")]}.get(family.type, [family.name])
        served.update(names)
        if family.name.startswith("ballotledger_") and not family.name.endswith("_created"):
            families.add(family.name)  # (_created: a counter's start time, which the parser splits off)
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    expressions += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    used = set().union(*(metric_names(e) for e in expressions))
    assert used and used <= served, sorted(used - served)
    shown = {n for n in used if n.startswith("ballotledger_")}
    missing = {f for f in families if not any(n == f or n.startswith(f + "_") for n in shown)}
    assert not missing, sorted(missing)


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "le", "instance"}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions
    (followed by a parenthesis), keywords or label names."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(), text[match.end():].lstrip()
        if rest.startswith("(") or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def test_round_changes_and_catch_up_are_reported(net: Localnet) -> None:
    net.kill(3)
    killed_at = value(scrape(net, 0), "ballotledger_height")
    # a height whose proposer is down fails its round 0 (no proposal, polka nil) and goes on,
    # each validator by its precommit timeout or, if the others were quicker, by a skip
    wait_for("a round change on validator 0", lambda: (lambda s: value(
        s, "ballotledger_round_changes_total", reason="timeout_precommit") + value(
        s, "ballotledger_round_changes_total", reason="round_skip"))(scrape(net, 0)) >= 1, timeout=60)
    wait_for("a few more heights", lambda: value(scrape(net, 0), "ballotledger_height") >= killed_at + 6, timeout=60)
    net.start(3)
    net.wait_ready(indexes=[3])
    wait_for("validator 3 to catch up", lambda: (lambda s: value(s, "ballotledger_sync_blocks_total") >= 2 and value(
        s, "ballotledger_synced") == 1)(scrape(net, 3)), timeout=60)


def test_logs_are_json_lines_that_say_what_happened_and_nothing_secret(net: Localnet, ballots: list[bytes]) -> None:
    """Fails when a line is not JSON, an expected event is missing, or a key, a ballot or
    a signature appears (as would a log of a refused ballot's bytes)."""
    net.stop()  # the last refusal counts and the stop lines are written on the way out
    logs = [net.log_path(i).read_text() for i in range(len(net))]
    events: list[list[dict[str, Any]]] = []
    for i, text in enumerate(logs):
        lines = text.splitlines()
        assert lines, f"node {i} wrote no log"
        parsed = [json.loads(line) for line in lines]
        for obj in parsed:
            assert {"ts", "level", "event", "fields", "message"} <= obj.keys(), obj
        events.append(parsed)

    def named(i: int, what: str) -> list[dict[str, Any]]:
        return [e["fields"] for e in events[i] if e["event"] == what]

    for i in range(len(net)):
        for what in ("node_started", "peer_connected", "block_committed", "node_stopped"):
            assert named(i, what), f"node {i} logged no {what}"
    assert sum(c["ballots"] for c in named(0, "block_committed")) == GOOD
    refused: dict[str, int] = {}
    for line in named(0, "ballots_refused"):
        for code, n in line["by_code"].items():
            refused[code] = refused.get(code, 0) + n
    assert refused == {"bad_signature": 1, "invalid_params": 1}
    changes = [change for i in range(3) for change in named(i, "round_change")]
    assert named(0, "round_change") and {c["reason"] for c in changes} <= {"timeout_precommit", "round_skip"}
    assert any(c["reason"] == "timeout_precommit" and "timeout_propose" in c["events"] for c in changes)
    assert any(d["peer"] == "validator-3" for d in named(0, "peer_disconnected"))
    assert named(3, "sync_started") and named(3, "sync_finished")
    assert max(f["blocks"] for f in named(3, "sync_finished")) >= 2

    secrets = [(net.directory / "authority.key").read_text().strip()]
    secrets += [(path.parent / "validator.key").read_text().strip() for path in net.configs]
    voters = read_voters(net.directory)
    secrets += [voter_key(voters["seed"], i).secret.hex() for i in range(len(ballots))]
    for raw in ballots:
        envelope = BallotEnvelope.decode(raw)
        secrets += [raw.hex(), envelope.signature.hex()]
    everything = "\n".join(logs)
    for secret in secrets:
        assert secret not in everything
    # nothing in the logs is longer hex than a block hash's prefix
    assert not re.search(r"[0-9a-fA-F]{40,}", everything)
