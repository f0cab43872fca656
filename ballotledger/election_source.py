"""Where the voter's client finds an election's definition: the one place that looks it up.

Today that is the gateway's ``GET /v1/elections/{id}``, checked against the genesis the
voter pinned where that genesis defines the election. Elections are moving into the
chain's registry; when they do, only this module changes.

A lying gateway could hand out a joint key of its own and read every ballot encrypted
to it, so the definition is compared with the pinned genesis whenever the genesis holds
it; the chain's rules refuse a ballot encrypted to any other key in any case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx

from ledger import jsonbound
from ledger.errors import BadEncoding, BadGenesis, LedgerError, Oversized, UnknownElection
from ledger.genesis import (
    MAX_CHOICE_BYTES,
    MAX_CHOICES,
    Contest,
    ElectionDef,
    Genesis,
    check_identifier,
    decode_hex_field,
    widest_genesis,
)
from node.gateway.client import GatewayProblem

VIEW_JSON_DEPTH = 4  # view > contests > a contest > its choices (counts > tally is 3)


class ElectionMismatch(LedgerError):
    """The gateway's election is not the one the voter's pinned genesis defines."""

    code = "election_mismatch"


class GatewayUnavailable(LedgerError):
    code = "gateway_unavailable"


@dataclass(frozen=True)
class PublishedElection:
    chain_id: str
    election: ElectionDef
    phase: str


@cache
def max_view_bytes() -> int:
    """The largest answer any election can have: the widest definition, and its counts
    and result each naming every choice in the longest escapes JSON has."""
    widest = len(json.dumps(widest_genesis(1, 1).elections[0].to_json_obj()))
    tally = MAX_CHOICES * (6 * MAX_CHOICE_BYTES + 32)
    return widest + 2 * tally + 4096


def fetch_election(
    gateway_url: str, api_key: str, election_id: str, *, genesis: Genesis | None = None, timeout: float = 10.0
) -> PublishedElection:
    """Election ``election_id`` as the gateway publishes it, read up to
    :func:`max_view_bytes` and parsed bounded. With ``genesis``, the gateway must serve
    that genesis's chain and, where the genesis defines the election, that very definition.

    Raises ``UnknownElection``, ``GatewayProblem`` (another refusal), ``GatewayUnavailable``,
    ``ElectionMismatch`` and ``BadEncoding`` (an answer no gateway of ours gives).
    """
    try:
        check_identifier(election_id, "election id")
    except BadGenesis as exc:
        raise UnknownElection(exc.message) from None
    limit = max_view_bytes()
    try:
        with httpx.Client(base_url=gateway_url.rstrip("/"), timeout=timeout,
                          headers={"Authorization": f"Bearer {api_key}"}) as http, \
                http.stream("GET", f"/v1/elections/{election_id}") as response:
            body = _read_capped(response, limit)
            status = response.status_code
    except httpx.HTTPError as exc:
        raise GatewayUnavailable(f"gateway {gateway_url} did not answer: {exc}") from None
    if status >= 400:
        problem = _problem(status, body, limit)
        if problem.code == "unknown_election":
            raise UnknownElection(problem.detail)
        raise problem
    published = parse_view(jsonbound.loads(body, max_bytes=limit, max_depth=VIEW_JSON_DEPTH, what="election"))
    if published.election.election_id != election_id:
        raise ElectionMismatch(f"asked for election {election_id}, the gateway answered with "
                               f"{published.election.election_id}")
    if genesis is not None:
        _check_against(published, genesis)
    return published


def _check_against(published: PublishedElection, genesis: Genesis) -> None:
    if published.chain_id != genesis.chain_id:
        raise ElectionMismatch(f"the gateway serves chain {published.chain_id!r}, the genesis is of chain "
                               f"{genesis.chain_id!r}")
    pinned = genesis.election(published.election.election_id)
    if pinned is not None and pinned.as_defined() != published.election.as_defined():
        raise ElectionMismatch(f"the gateway's definition of election {pinned.election_id} is not the one in "
                               "the genesis (another joint key, credential root, contests or window)")


def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise Oversized(f"the gateway's answer is over {limit} bytes, more than any election's")
        chunks.append(chunk)
    return b"".join(chunks)


def _problem(status: int, body: bytes, limit: int) -> GatewayProblem:
    try:
        obj = jsonbound.loads(body, max_bytes=limit, max_depth=2, what="problem")
    except BadEncoding:
        obj = None
    if not isinstance(obj, dict):
        return GatewayProblem(status, "unknown", body[:200].decode(errors="replace"))
    return GatewayProblem(status, str(obj.get("code")), str(obj.get("detail"))[:1000])


def parse_view(obj: Any) -> PublishedElection:
    """The gateway's election view as an ``ElectionDef`` (fields the client does not use,
    such as counts, are ignored); ``BadEncoding`` for anything malformed."""
    try:
        return _parse_view(obj)
    except BadGenesis as exc:
        raise BadEncoding(f"the gateway's election definition: {exc.message}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadEncoding(f"the gateway's election definition is malformed: {exc!r}") from None


def _parse_view(obj: Any) -> PublishedElection:
    view = _field({"view": obj}, "view", dict)
    encrypted = view["joint_key"] is not None
    trustees = tuple(decode_hex_field(_item(k, str, "trustee"), "trustee") for k in view.get("trustees") or [])
    contests = tuple(
        Contest(_field(c, "question", str), tuple(_item(x, str, "choice") for x in _field(c, "choices", list)),
                _field(c, "limit", int))
        for c in (_item(c, dict, "contest") for c in _field(view, "contests", list))
    )
    election = ElectionDef(
        election_id=_field(view, "election_id", str),
        question=_field(view, "question", str),
        choices=tuple(_item(x, str, "choice") for x in _field(view, "choices", list)),
        credential_root=decode_hex_field(_field(view, "credential_root", str), "credential_root"),
        credential_count=_field(view, "credential_count", int),
        opens_at_ms=_field(view, "opens_at_ms", int),
        closes_at_ms=_field(view, "closes_at_ms", int),
        revoting=_field(view, "revoting", str),
        payload_scheme=_field(view, "payload_scheme", str),
        contests=contests,
        joint_key=decode_hex_field(_field(view, "joint_key", str), "joint_key") if encrypted else b"",
        trustees=trustees,
        threshold=_field(view, "threshold", int) if trustees else 0,
    )
    chain_id = _field(view, "chain_id", str)
    check_identifier(chain_id, "chain id")
    return PublishedElection(chain_id, election, _field(view, "phase", str))


def _field(obj: dict[str, Any], name: str, kind: type[Any]) -> Any:
    if name not in obj:
        raise BadEncoding(f"the gateway's election definition has no {name}")
    return _item(obj[name], kind, name)


def _item(value: Any, kind: type[Any], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadEncoding(f"the gateway's election definition: {what} is not a JSON {kind.__name__}")
    if kind is int and value < 0:
        raise BadEncoding(f"the gateway's election definition: {what} is negative")
    return value
