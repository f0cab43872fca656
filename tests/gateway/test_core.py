"""The gateway's pure core and its outbox, in process (no servers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from ledger.elections import Elections
from ledger.errors import BadSignature, DuplicateCredential
from ledger.rules import ProofCache, check_ballot
from node.gateway import admission
from node.gateway.app import create_app
from node.gateway.config import GatewayConfig, add_key, hash_key, load_keys
from node.gateway.forwarder import classify
from node.gateway.outbox import Outbox, Record, decide
from node.gateway.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TABLE, Problem, from_ledger_error
from node.gateway.ratelimit import TokenBucket, retry_after_header
from tests.gateway.harness import CLOSED, FUTURE, MAIN, REVOTE, Voters, make_network


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Voters:
    directory = tmp_path_factory.mktemp("small")
    make_network(directory, voters=16)
    return Voters(directory)


def test_problem_codes_keep_ledger_codes() -> None:
    for status, title in PROBLEM_TABLE.values():
        assert 400 <= status < 600 and title
    p = from_ledger_error(DuplicateCredential("again"))
    assert (p.code, p.status) == ("duplicate_credential", 409)
    body = Problem("bad_signature", "no").body("/x")
    assert body == {"type": body["type"], "title": body["title"], "status": 422, "detail": "no",
                    "code": "bad_signature", "instance": "/x"}
    assert from_ledger_error(BadSignature("x").at("ballot 3")).detail == "ballot 3: x"


def test_token_bucket() -> None:
    b = TokenBucket.full(rate=2.0, capacity=2.0, now=0.0)
    assert b.take(0.0) == 0 and b.take(0.0) == 0
    assert b.take(0.0) == pytest.approx(0.5)
    assert b.take(0.5) == 0  # refilled one token in half a second
    assert retry_after_header(0.01) == "1" and retry_after_header(2.2) == "3"


@given(st.lists(st.floats(min_value=0, max_value=0.5), max_size=50))
def test_token_bucket_never_exceeds_rate(gaps: list[float]) -> None:
    b = TokenBucket.full(rate=10.0, capacity=5.0, now=0.0)
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        taken += b.take(now) == 0
    assert taken <= 5 + 10 * now + 1e-9


def test_decide() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert decide(a, None, None, "first-counts") is True
    assert decide(a, Record("queued", MAIN), a, "first-counts") is False  # a repeat
    assert decide(a, None, a, "first-counts") is True
    with pytest.raises(Problem) as info:
        decide(b, None, a, "first-counts")
    assert info.value.code == "duplicate_credential"
    assert decide(b, None, a, "last-counts") is True
    with pytest.raises(Problem) as info:
        decide(a, Record("rejected", MAIN, "election_not_open", "closed"), None, "first-counts")
    assert info.value.code == "election_not_open"


def test_classify() -> None:
    codes = [bytes([i]) * 32 for i in range(4)]
    answers = [{"status": "pending"}, {"status": "final"}, {"error": {"code": "duplicate_credential", "message": "m"}},
               {"error": {"code": "mempool_full", "message": "later"}}]
    pending, final, rejected = classify(answers, codes)
    assert pending == [codes[0]] and final == [codes[1]]
    assert rejected == {codes[2]: ("duplicate_credential", "m")}  # mempool_full is retried, not rejected


def test_check_submission_codes(small: Voters) -> None:
    g, now = small.genesis, small.genesis.election(MAIN).opens_at_ms + 1  # type: ignore[union-attr]

    def code_of(path: str, raw: bytes, at: int = now) -> str:
        with pytest.raises(Problem) as info:
            admission.check_submission(g, Elections.of_genesis(g), path, raw, at, ProofCache())
        return info.value.code

    good = small.ballot(1)
    known = Elections.of_genesis(g)
    assert (admission.check_submission(g, known, MAIN, good, now).tracking_code
            == check_ballot(g, good, elections=known).tracking_code)
    assert code_of("nope", good) == "unknown_election"
    assert code_of(REVOTE, good) == "election_mismatch"
    assert code_of(MAIN, good[:-1]) == "bad_encoding"
    assert code_of(MAIN, good + b"\x00") == "bad_encoding"
    assert code_of(MAIN, b"\x00" * 5000) == "oversized"
    assert code_of(MAIN, small.ballot(1, chain_id="elsewhere")) == "wrong_chain"
    assert code_of(CLOSED, small.ballot(1, election=CLOSED)) == "election_not_open"
    assert code_of(FUTURE, small.ballot(1, election=FUTURE)) == "election_not_open"
    assert admission.phase_of(g.election(CLOSED), now) == "closed"  # type: ignore[arg-type]
    assert admission.phase_of(g.election(FUTURE), now) == "setup"  # type: ignore[arg-type]


@given(data=st.binary(max_size=600))
def test_check_submission_never_crashes(small: Voters, data: bytes) -> None:
    try:
        admission.check_submission(small.genesis, Elections.of_genesis(small.genesis), MAIN, data, 10**13)
    except Problem as p:
        assert p.code in PROBLEM_TABLE


def test_outbox_group_commit_idempotency_and_restart(small: Voters, tmp_path: Path) -> None:
    g = small.genesis
    checked = [check_ballot(g, small.ballot(i, election=REVOTE), elections=Elections.of_genesis(g)) for i in range(12)]
    dup_a, dup_b = check_ballot(g, small.ballot(14, 0),
        elections=Elections.of_genesis(g)), check_ballot(g, small.ballot(14, 1), elections=Elections.of_genesis(g))

    async def run() -> tuple[list[bool], int, list[bool | str]]:
        outbox = Outbox(tmp_path / "ob")
        outbox.start()
        fresh = await asyncio.gather(*(outbox.admit(c) for c in checked + checked[:3]))

        async def try_admit(c: object) -> bool | str:
            try:
                return await outbox.admit(c)  # type: ignore[arg-type]
            except Problem as p:
                return p.code

        races = await asyncio.gather(try_admit(dup_a), try_admit(dup_b))
        commits = outbox.commits
        await outbox.close()
        return list(fresh), commits, list(races)

    fresh, commits, races = asyncio.run(run())
    assert fresh.count(True) == 12 and fresh.count(False) == 3  # repeats never become a second ballot
    assert commits < 12  # grouped into few synced batches
    assert sorted(map(str, races)) == ["True", "duplicate_credential"]  # same credential, raced

    async def reopen() -> None:
        outbox = Outbox(tmp_path / "ob")
        assert len(outbox.queue) == 13  # everything acknowledged is still there
        items = outbox.unsent(100, resend_before=0.0)
        assert [code for code, _ in items] == [c.tracking_code for c in checked] + [dup_a.tracking_code]
        outbox.mark_sent([items[0][0]])
        outbox.retry_later([code for code, _ in items[1:]])
        outbox.settle({items[1][0]: 7}, {items[2][0]: ("duplicate_credential", "chain said so")})
        assert outbox.record(items[1][0]) == Record("final", REVOTE, height=7)
        assert outbox.record(items[2][0]).status == "rejected"  # type: ignore[union-attr]
        assert len(outbox.queue) == 11
        assert [code for code, _ in outbox.unsent(100, 0.0)] == [code for code, _ in items[3:]]
        assert [code for code, _ in outbox.unsent(100, float("inf"))] == [items[0][0]]  # re-sent once due
        outbox.start()
        await outbox.close()

    asyncio.run(reopen())


def test_config_keys_and_openapi(small: Voters, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    key = add_key(keys, "fe", rate_per_s=5, burst=10)
    loaded = load_keys(keys)
    assert list(loaded) == [hash_key(key)] and key not in keys.read_text()  # only the hash is stored
    config = GatewayConfig(listen="127.0.0.1:1", genesis_file=Path(small.genesis_path), validators=("http://x",),
                           outbox_dir=tmp_path / "ob", api_keys_file=keys)
    (tmp_path / "gateway.toml").write_text(tomli_w.dumps(config.to_obj()))
    assert GatewayConfig.load(tmp_path / "gateway.toml") == config
    schema = create_app(config).openapi()
    for path in schema["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], (status, response)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
