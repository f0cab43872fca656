"""RPC limits: token buckets per client, batch budgets and the value count before parsing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.jsonrpc import LIMIT_EXCEEDED, MethodTable, handle_body
from node.rpc_limits import METHOD_COSTS, ClientBuckets, RateLimited, TokenBucket, batch_cost, json_values


def test_bucket_refills_at_its_rate_and_never_beyond_its_burst() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert bucket.take(20, 0.0) == 0
    assert bucket.take(1, 0.0) == pytest.approx(0.1)
    assert bucket.take(5, 0.5) == 0  # 5 tokens came back in half a second
    assert bucket.take(1, 0.5) == pytest.approx(0.1)
    assert bucket.take(21, 100.0) == float("inf")  # more than it ever holds
    assert bucket.take(20, 100.0) == 0  # refilled to the burst, not to 1000


@given(st.lists(st.tuples(st.floats(0, 5), st.integers(1, 30)), max_size=40))
def test_bucket_never_grants_more_than_burst_plus_rate_times_time(steps: list[tuple[float, int]]) -> None:
    bucket = TokenBucket(rate=7, burst=25, now=0.0)
    now = granted = 0.0
    for dt, n in steps:
        now += dt
        if bucket.take(n, now) == 0:
            granted += n
    assert granted <= 25 + 7 * now + 1e-6


def test_clients_are_limited_apart_and_exempt_ones_not_at_all() -> None:
    buckets = ClientBuckets(rate=1, burst=3, exempt=["10.0.0.9"])
    buckets.take("10.0.0.1", 3, 0.0, "ballots")
    with pytest.raises(RateLimited) as refused:
        buckets.take("10.0.0.1", 1, 0.0, "ballots")
    assert refused.value.retry_after_ms is not None and 900 <= refused.value.retry_after_ms <= 1001
    buckets.take("10.0.0.2", 3, 0.0, "ballots")  # another address has its own bucket
    for _ in range(100):
        buckets.take("10.0.0.9", 1000, 0.0, "ballots")


def test_a_forgotten_client_is_never_one_mid_refill() -> None:
    """Fails when eviction drops buckets that are still refilling: a client could then
    reset its own limit by making room with new addresses."""
    buckets = ClientBuckets(rate=1, burst=2, max_clients=2)
    buckets.take("a", 2, 0.0, "ballots")
    buckets.take("b", 2, 0.0, "ballots")
    with pytest.raises(RateLimited):
        buckets.take("c", 1, 0.5, "ballots")  # a and b are mid-refill: c shares a's bucket
    with pytest.raises(RateLimited):
        buckets.take("a", 1, 0.5, "ballots")
    buckets.take("d", 2, 10.0, "ballots")  # a has refilled by now: its place is free
    assert len(buckets) == 2


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=40,
)


@given(_JSON)
def test_value_count_bounds_the_scalars_the_parser_would_build(doc: Any) -> None:
    assert json_values(json.dumps(doc).encode()) >= _scalars(doc)


def _scalars(doc: Any) -> int:
    if isinstance(doc, list):
        return sum(_scalars(d) for d in doc)
    if isinstance(doc, dict):
        return len(doc) + sum(_scalars(v) for v in doc.values())  # keys are strings too
    return 1


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def results(self, height: int = 0) -> int:
        self.calls += 1
        return height

    async def limited(self) -> None:
        raise RateLimited("too many", retry_after_ms=250)


def _table(counting: _Counting, budget: int = 100, values: int = 1000) -> MethodTable:
    return MethodTable({"ballot_getResults": counting.results, "ballot_submit": counting.limited},
                       batch_budget=budget, max_json_values=values)


def _call(method: str, *params: Any, id_: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}


def test_a_batch_over_its_budget_is_refused_before_any_call_runs() -> None:
    """The original attack: a batch of getResults calls at alternating heights. Fails
    when handle_body runs a batch without weighing it first."""
    counting = _Counting()
    weight = METHOD_COSTS["ballot_getResults"]
    batch = [_call("ballot_getResults", i % 2, id_=i) for i in range(100 // weight + 1)]
    assert batch_cost(batch) > 100
    answer = asyncio.run(handle_body(_table(counting), json.dumps(batch).encode()))
    assert answer["error"]["code"] == LIMIT_EXCEEDED and answer["error"]["data"]["code"] == "over_budget"
    assert counting.calls == 0
    fits = batch[: 100 // weight]
    answers = asyncio.run(handle_body(_table(counting), json.dumps(fits).encode()))
    assert [a["result"] for a in answers] == [i % 2 for i in range(len(fits))]
    assert counting.calls == len(fits)


def test_a_body_with_too_many_values_is_refused_unparsed() -> None:
    counting = _Counting()
    body = json.dumps(_call("ballot_getResults", [0.5] * 2000)).encode()
    answer = asyncio.run(handle_body(_table(counting, values=1000), body))
    assert answer["error"]["code"] == LIMIT_EXCEEDED and counting.calls == 0


def test_a_limit_inside_a_call_is_a_clean_error_with_when_to_retry() -> None:
    answer = asyncio.run(handle_body(_table(_Counting()), json.dumps(_call("ballot_submit")).encode()))
    assert answer["error"] == {"code": LIMIT_EXCEEDED, "message": "too many",
                               "data": {"code": "rate_limited", "retry_after_ms": 250}}
