"""``GET /v1/elections`` and ``GET /v1/elections/{election_id}``: definition, phase,
counts so far and result. Public: anyone may read them without a key."""

# No "from __future__ import annotations": FastAPI inspects the route's signature.
import time

from fastapi.responses import Response

from ledger.genesis import ElectionDef
from node.gateway import admission
from node.gateway.caching import json_answer, tip
from node.gateway.deps import ElectionId, Reader, State, new_router
from node.gateway.http_problems import responses
from node.gateway.models import ContestView, Counts, ElectionList, ElectionView
from node.gateway.problems import Problem
from node.gateway.state import GatewayState
from node.gateway.upstream import UpstreamUnavailable
from verifier.rpc_client import RpcError

ELECTION_CODES = ["unauthorized", "unknown_election", "validation_error", "rate_limited"]
LIST_CODES = ["unauthorized", "rate_limited"]
RESULTS_TTL_S = 1.0  # one ballot_getResults per second, whatever the number of readers

router = new_router()


@router.get(
    "/v1/elections",
    response_model=ElectionList,
    responses=responses(LIST_CODES),
    summary="Every election on the chain: definition, phase, counts so far and result",
)
async def list_elections(reader: Reader, state: State) -> Response:
    views = [await _view(state, e) for e in state.directory.elections()]
    return json_answer(ElectionList(chain_id=state.genesis.chain_id, elections=views).model_dump(mode="json"), tip(2))


@router.get(
    "/v1/elections/{election_id}",
    response_model=ElectionView,
    responses=responses(ELECTION_CODES),
    summary="An election's public definition, phase, counts so far and result",
)
async def get_election(election_id: ElectionId, reader: Reader, state: State) -> Response:
    election = await state.directory.lookup(election_id, state.upstream)
    if election is None:
        raise Problem("unknown_election", f"no election {election_id!r} on chain {state.genesis.chain_id!r}")
    return json_answer((await _view(state, election)).model_dump(mode="json"), tip(2))


async def _view(state: GatewayState, election: ElectionDef) -> ElectionView:
    election_id = election.election_id
    # The registry's phase; while it is open there, the window says whether ballots count.
    registry_phase = state.directory.phase(election_id)
    phase = registry_phase if registry_phase not in (None, "open") else admission.phase_of(election, state.clock_ms())
    counts = await _counts(state, election_id)
    return ElectionView(
        election_id=election.election_id, chain_id=state.genesis.chain_id, question=election.question,
        choices=list(election.choices), credential_root=election.credential_root.hex(),
        credential_count=election.credential_count, opens_at_ms=election.opens_at_ms,
        closes_at_ms=election.closes_at_ms, revoting=election.revoting, payload_scheme=election.payload_scheme,
        contests=[ContestView(question=c.question, choices=list(c.choices), limit=c.limit) for c in election.contests],
        joint_key=election.joint_key.hex() if election.encrypted else None,
        trustees=[k.hex() for k in election.trustees], threshold=election.threshold,
        phase=phase,  # type: ignore[arg-type]
        counts=counts, result=counts if phase in ("closed", "tallied") else None,
    )


async def _counts(state: GatewayState, election_id: str) -> Counts | None:
    now = time.monotonic()
    if state.results is None or now - state.results[0] > RESULTS_TTL_S:
        try:
            state.results = (now, await state.rpc().call("ballot_getResults"))
        except (UpstreamUnavailable, RpcError, Problem):
            return None
    results = state.results[1]
    entry = results.get("elections", {}).get(election_id)
    if entry is None:
        return None
    return Counts(height=int(results.get("height", 0)), ballots_recorded=entry["ballots_recorded"],
                  ballots_counted=entry["ballots_counted"], tally=entry.get("tally"))
