"""A validator's metrics and event logs, module by module: the JSON log lines, the
reporter's aggregation, the batch histogram and the RPC's call counts. The running
node's are in tests/integration/test_node_observability.py."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ledger.errors import BadSignature, DuplicateBallot, LedgerError
from node.consensus.core import RoundChange
from node.jsonrpc import MethodTable, handle_body
from node.logs import JsonLines, close, configure, event
from node.mempool import Admission
from node.metrics import LATENCY_BUCKETS, BatchHistogram, NodeMetrics
from node.reporter import NodeReporter


def samples(metrics: NodeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    caught: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("node.events")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield caught
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_json_lines_are_one_object_each_with_the_event_and_its_fields() -> None:
    formatter = JsonLines()
    record = logging.LogRecord("node.events", logging.INFO, __file__, 1, "committed height %d\nnext", (7,), None)
    for key, value in event("block_committed", height=7, hash="ab" * 4).items():
        setattr(record, key, value)
    line = formatter.format(record)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["event"] == "block_committed" and obj["fields"] == {"height": 7, "hash": "abababab"}
    assert obj["level"] == "info" and obj["message"] == "committed height 7\nnext" and obj["ts"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        plain = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    obj = json.loads(formatter.format(plain))
    assert obj["event"] == "log" and obj["fields"] == {} and "ValueError: boom" in obj["exception"]


def test_configure_switches_every_logger_and_refuses_an_unknown_format() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        stream = io.StringIO()
        configure("json", "info").setStream(stream)
        logging.getLogger("tests.a_library").warning("a library's line")
        logging.getLogger("node.events").debug("below the level")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("node.validator").exception("failed %s", "here", extra=event("node_halted", what="x"))
        close()  # what was queued is written
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["message"] for line in lines] == ["a library's line", "failed here"]
        assert lines[1]["event"] == "node_halted" and "ValueError: boom" in lines[1]["exception"]
        with pytest.raises(ValueError, match="log format"):
            configure("xml", "info")
        with pytest.raises(ValueError, match="log level"):
            configure("plain", "loud")
    finally:
        close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_refusals_are_one_line_of_counts_per_interval(records: list[logging.LogRecord]) -> None:
    """Fails when a refusal is logged on its own: a flood would fill the disk."""
    metrics = NodeMetrics()
    reporter = NodeReporter(metrics, refusal_interval_s=5)
    bad = BadSignature("ballot signature does not verify")
    for _ in range(1000):
        reporter.admitted([bad, DuplicateBallot("seen"), bad])
    assert records == []
    reporter.log_refusals()
    reporter.log_refusals()  # nothing new: no line
    (line,) = records
    assert line.fields == {"total": 3000, "by_code": {"bad_signature": 2000, "duplicate_ballot": 1000},  # type: ignore[attr-defined]
                           "interval_s": 5}
    got = samples(metrics)
    assert got[("ballotledger_ballots_refused_total", (("code", "bad_signature"),))] == 2000
    assert got[("ballotledger_ballots_refused_total", (("code", "duplicate_ballot"),))] == 1000


def test_refusals_are_logged_on_a_timer_and_at_close(records: list[logging.LogRecord]) -> None:
    async def run() -> None:
        reporter = NodeReporter(NodeMetrics(), refusal_interval_s=0.05)
        reporter.start(asyncio.get_running_loop())
        reporter.admitted([BadSignature("x")])
        await asyncio.sleep(0.2)
        reporter.admitted([LedgerError("y")])
        reporter.close()

    asyncio.run(run())
    assert [r.fields["by_code"] for r in records] == [{"bad_signature": 1}, {"ledger_error": 1}]  # type: ignore[attr-defined]


def test_finality_counts_ballots_from_their_first_admission_here() -> None:
    clock = Clock()
    metrics = NodeMetrics()
    reporter = NodeReporter(metrics, clock=clock, max_tracked_ballots=3)
    codes = [bytes([i]) * 32 for i in range(5)]
    reporter.admitted([Admission(codes[0], "pending"), Admission(codes[1], "pending")])
    clock.now += 0.4
    reporter.admitted([Admission(codes[0], "pending"), Admission(codes[2], "final"), Admission(codes[3], "pending")])
    clock.now += 0.2
    reporter.proposal_seen(1, 0)
    clock.now += 0.1
    reporter.committed(1, 0, b"\xab" * 32, [_ballot(codes[0]), _ballot(codes[3]), _ballot(codes[4])], synced=False)
    got = samples(metrics)
    assert got[("ballotledger_finality_latency_seconds_count", ())] == 2  # code 4 was never admitted here
    assert got[("ballotledger_finality_latency_seconds_sum", ())] == pytest.approx(0.7 + 0.3)
    assert got[("ballotledger_commit_latency_seconds_sum", ())] == pytest.approx(0.1)
    assert got[("ballotledger_ballots_finalized_total", ())] == 3
    for i in range(5, 10):  # past the bound the oldest first sightings go
        reporter.admitted([Admission(bytes([i]) * 32, "pending")])
    assert len(reporter._first_seen) == 3


def test_far_proposals_cannot_stop_the_commit_latency() -> None:
    """Fails when sightings of heights far ahead (a faulty peer's) are kept: they would
    fill the bounded table and no commit would be timed again."""
    clock = Clock()
    metrics = NodeMetrics()
    reporter = NodeReporter(metrics, clock=clock)
    for r in range(100):
        reporter.proposal_seen(10**9, r)
    reporter.proposal_seen(1, 0)  # the table is full: not timed
    reporter.committed(1, 0, b"\x01" * 32, [], synced=False)
    reporter.proposal_seen(2, 0)
    clock.now += 0.25
    reporter.committed(2, 0, b"\x02" * 32, [], synced=False)
    got = samples(metrics)
    assert got[("ballotledger_commit_latency_seconds_count", ())] == 1
    assert got[("ballotledger_commit_latency_seconds_sum", ())] == pytest.approx(0.25)


def _ballot(code: bytes) -> Any:
    class Ballot:
        tracking_code = code

    return Ballot()


def test_round_changes_are_counted_by_reason_and_logged(records: list[logging.LogRecord]) -> None:
    metrics = NodeMetrics()
    reporter = NodeReporter(metrics)
    reporter.round_changed(RoundChange(5, 1, "timeout_precommit", ("timeout_propose", "polka_nil")))
    reporter.round_changed(RoundChange(5, 4, "round_skip", ()))
    assert [r.event for r in records] == ["round_change", "round_change"]  # type: ignore[attr-defined]
    assert records[0].fields["events"] == ["timeout_propose", "polka_nil"]  # type: ignore[attr-defined]
    assert samples(metrics)[("ballotledger_round_changes_total", (("reason", "round_skip"),))] == 1


def test_a_catch_up_is_a_start_and_an_end_line(records: list[logging.LogRecord]) -> None:
    reporter = NodeReporter(NodeMetrics())
    reporter.peer_ahead(251)
    assert reporter.behind(10) == 240
    reporter.sync_received(200, True, 210)
    reporter.sync_received(40, False, 250)
    assert not reporter.syncing and reporter.behind(250) == 0
    assert [(r.levelno, r.event) for r in records] == [  # type: ignore[attr-defined]
        (logging.INFO, "sync_started"), (logging.INFO, "sync_finished")]
    assert records[1].fields["blocks"] == 240  # type: ignore[attr-defined]
    records.clear()
    reporter.peer_ahead(252)  # a block behind, in the ordinary course: not worth an INFO line
    reporter.sync_received(1, False, 251)
    assert [(r.levelno, r.event) for r in records] == [  # type: ignore[attr-defined]
        (logging.DEBUG, "sync_started"), (logging.DEBUG, "sync_finished")]


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=60))
def test_batch_histogram_counts_as_prometheus_histogram_does(values: list[float]) -> None:
    """The same exposition as prometheus_client's Histogram for the same observations,
    bucket bounds included (a value equal to a bound is counted in it)."""
    values += list(LATENCY_BUCKETS[:3])
    registry = CollectorRegistry()
    reference = Histogram("h_seconds", "h", buckets=LATENCY_BUCKETS, registry=registry)
    for v in values:
        reference.observe(v)
    ours = BatchHistogram("h_seconds", "h", LATENCY_BUCKETS)
    ours.observe_many(values[: len(values) // 2])
    ours.observe_many(values[len(values) // 2:])
    mine = CollectorRegistry()
    mine.register(ours)

    def parsed(r: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {(s.name, s.labels.get("le", "")): s.value
                for f in text_string_to_metric_families(generate_latest(r).decode()) for s in f.samples
                if not s.name.endswith("_created")}

    want, got = parsed(registry), parsed(mine)
    assert want.keys() == got.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def test_rpc_calls_are_counted_by_method_never_by_a_name_a_client_chose() -> None:
    """Fails when an unknown method's name becomes a label: a client could then grow the
    registry without bound."""
    metrics = NodeMetrics()

    async def ok(x: int) -> int:
        return x

    async def refuses() -> None:
        raise BadSignature("no")

    table = MethodTable({"ok": ok, "refuses": refuses})
    table.observe = metrics.observe_rpc

    def call(body: object) -> Any:
        return asyncio.run(handle_body(table, json.dumps(body).encode()))

    call({"jsonrpc": "2.0", "id": 1, "method": "ok", "params": [1]})
    call([{"jsonrpc": "2.0", "id": 1, "method": "ok", "params": [1]},
          {"jsonrpc": "2.0", "id": 2, "method": "refuses"},
          {"jsonrpc": "2.0", "id": 3, "method": "ok", "params": []}])
    for i in range(20):
        call({"jsonrpc": "2.0", "id": i, "method": f"made_up_{i}"})
    asyncio.run(handle_body(table, b"{not json"))
    got = samples(metrics)
    assert got[("ballotledger_rpc_requests_total", (("method", "ok"),))] == 3
    assert got[("ballotledger_rpc_errors_total", (("error", "invalid_params"), ("method", "ok")))] == 1
    assert got[("ballotledger_rpc_errors_total", (("error", "ledger_refusal"), ("method", "refuses")))] == 1
    assert got[("ballotledger_rpc_errors_total", (("error", "method_not_found"), ("method", "(none)")))] == 20
    assert got[("ballotledger_rpc_errors_total", (("error", "parse_error"), ("method", "(none)")))] == 1
    methods = {dict(labels).get("method") for (name, labels) in got if name == "ballotledger_rpc_requests_total"}
    assert methods == {"ok", "refuses", "(none)"}
