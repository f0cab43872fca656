"""The keyless readers' limiter: one bucket per address, a bounded table."""

from __future__ import annotations

from node.gateway.public_limits import PublicLimiter


def test_each_address_has_its_own_bucket_and_the_table_stays_bounded() -> None:
    limiter = PublicLimiter(1.0, 2, max_addresses=3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.take("b", 0.0) == 0.0
    assert limiter.take("a", 1.0) == 0.0  # refilled after a second
    for address in ("c", "d", "e"):
        limiter.take(address, 1.0)
    assert len(limiter) == 3  # "a" and "b", the least recently seen, were forgotten
    assert limiter.take("a", 1.0) == 0.0
