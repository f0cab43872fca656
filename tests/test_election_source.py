"""Where the voter's client reads an election: the gateway's view, parsed bounded and back
into the very ``ElectionDef``; a hostile answer is refused by its size or depth."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.responses import JSONResponse

from ballotledger.election_source import VIEW_JSON_DEPTH, fetch_election, max_view_bytes, parse_view
from ledger import jsonbound
from ledger.errors import BadEncoding, Oversized, TooDeep, UnknownElection
from ledger.genesis import MAX_CHOICES, ElectionDef, widest_genesis
from node.gateway.models import ContestView, Counts, ElectionView


def view_of(election: ElectionDef, *, tally_names: list[str] | None = None) -> bytes:
    """The bytes the gateway's route sends for ``election`` (same model, same response class)."""
    counts = Counts(height=2**64 - 1, ballots_recorded=2**64 - 1, ballots_counted=2**64 - 1,
                    tally=None if tally_names is None else dict.fromkeys(tally_names, 2**64 - 1))
    view = ElectionView(
        election_id=election.election_id, chain_id="c" * 64, question=election.question,
        choices=list(election.choices), credential_root=election.credential_root.hex(),
        credential_count=election.credential_count, opens_at_ms=election.opens_at_ms,
        closes_at_ms=election.closes_at_ms, revoting=election.revoting, payload_scheme=election.payload_scheme,
        contests=[ContestView(question=c.question, choices=list(c.choices), limit=c.limit) for c in election.contests],
        joint_key=election.joint_key.hex() if election.encrypted else None, phase="closed", counts=counts,
        trustees=[k.hex() for k in election.trustees], threshold=election.threshold,
        result=counts,
    )
    return bytes(JSONResponse(view.model_dump(mode="json")).body)


def test_the_widest_view_fits_the_bound_and_reads_back_exactly() -> None:
    widest = widest_genesis(1, 1).elections[0]
    widest = widest.with_joint_key(widest.trustees[0])  # as served once its ceremony made a key
    names = [f"{i:03d}" + "\x01" * 125 for i in range(MAX_CHOICES)]  # every choice named, escaped at length
    raw = view_of(widest, tally_names=names)
    assert len(raw) <= max_view_bytes()
    published = parse_view(jsonbound.loads(raw, max_bytes=max_view_bytes(), max_depth=VIEW_JSON_DEPTH))
    assert published.election == widest and published.chain_id == "c" * 64 and published.phase == "closed"


def test_a_plaintext_election_reads_back_exactly() -> None:
    plain = widest_genesis(1, 1).elections[0]
    plain = ElectionDef(plain.election_id, "q", ("yes", "no"), plain.credential_root, 3, 1, 2)
    assert parse_view(json.loads(view_of(plain))).election == plain


@pytest.mark.parametrize("edit", [
    lambda o: o.pop("joint_key"),
    lambda o: o.update(credential_count=-1),
    lambda o: o.update(credential_count=True),
    lambda o: o.update(joint_key="02" + "ff" * 32),  # off the curve
    lambda o: o.update(credential_root="AB" * 32),
    lambda o: o["contests"].append("a contest"),
    lambda o: o.update(chain_id="Not An Id"),
])
def test_a_malformed_view_is_refused(edit: object) -> None:
    obj = json.loads(view_of(widest_genesis(1, 1).elections[0]))
    edit(obj)  # type: ignore[operator]
    with pytest.raises(BadEncoding):
        parse_view(obj)


class _Hostile(BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[tuple[str, type[_Hostile]]]:
    handler = type("Handler", (_Hostile,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_a_hostile_gateway_is_refused_by_size_and_depth(hostile: tuple[str, type[_Hostile]]) -> None:
    """An answer larger than any election's is cut off at the bound (no Content-Length
    is trusted), one nested deeper than a view is refused before it is parsed."""
    url, handler = hostile
    handler.body = b'{"x": "' + b"a" * max_view_bytes() + b'"}'
    with pytest.raises(Oversized):
        fetch_election(url, "key", "secret-2026")
    handler.body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(TooDeep):
        fetch_election(url, "key", "secret-2026")
    handler.status, handler.body = 404, b'{"code": "unknown_election", "detail": "no election"}'
    with pytest.raises(UnknownElection):
        fetch_election(url, "key", "secret-2026")
    with pytest.raises(UnknownElection):
        fetch_election(url, "key", "../../receipts/x")  # never put in a URL

