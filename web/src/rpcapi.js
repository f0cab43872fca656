// The same reads as the gateway's public API, from a node's JSON-RPC: the page served by a
// node (or an observer's own follower) reads that node. Answers take the gateway's shapes.
import {
  decodeBlockSummary, decodeCertificate, decodeElectionHead, fromHex, toHex,
} from './ledger.js';
import { ApiError, readJson } from './errors.js';

let ids = 0;

export async function rpc(method, params = []) {
  let response;
  try {
    response = await fetch('./', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++ids, method, params }),
    });
  } catch (err) {
    throw new ApiError(0, 'unreachable', String(err && err.message));
  }
  const body = await readJson(response);
  if (body.error) {
    const code = (body.error.data && body.error.data.code) || 'rpc_error';
    throw new ApiError(code === 'bad_tree_range' ? 404 : response.status, code, body.error.message);
  }
  return body.result;
}

let genesisAnswer = null;

async function genesis() {
  genesisAnswer ??= rpc('ballot_getGenesis');
  return genesisAnswer;
}

async function recentBlocks(limit) {
  const [status, g] = await Promise.all([rpc('ballot_status'), genesis()]);
  const height = status.height;
  const names = new Map(g.validators.map((v) => [v.public_key, v.name]));
  const blocks = [];
  if (height >= 1) {
    const start = Math.max(1, height - limit + 1);
    const page = await rpc('ballot_getBlocks', [start, height - start + 1]);
    for (const row of page.blocks) {
      const block = decodeBlockSummary(fromHex(row.block, 'block'));
      const cert = decodeCertificate(fromHex(row.certificate, 'certificate'));
      const proposer = toHex(block.header.proposer);
      blocks.push({
        height: block.header.height, time_ms: block.header.timeMs, block_hash: toHex(block.header.hash),
        proposer: names.get(proposer) || proposer, ballots: block.ballots, transactions: block.transactions,
        log_size: Number(block.header.logSize), signers: cert.signatures.map((s) => s.validatorIndex), round: cert.round,
      });
    }
  }
  blocks.reverse();
  const last = new Map();
  for (const b of blocks) for (const i of b.signers) if (!last.has(i)) last.set(i, b.height);
  const validators = g.validators.map((v, i) => ({ index: i, name: v.name, last_signed_height: last.get(i) ?? null }));
  return { height, blocks, validators };
}

async function elections() {
  const [defined, results] = await Promise.all([rpc('ballot_getElections'), rpc('ballot_getResults').catch(() => null)]);
  const counted = (results && results.elections) || {};
  return {
    elections: defined.elections.map((row) => {
      const head = decodeElectionHead(fromHex(row.definition, 'election definition'));
      const entry = counted[head.id];
      // as the gateway shows it: while the registry has it open, its window says whether ballots count
      let phase = row.phase;
      if (phase === 'open') {
        const now = Date.now();
        phase = now < head.opensAtMs ? 'setup' : now < head.closesAtMs ? 'open' : 'closed';
      }
      const counts = entry ? { ballots_recorded: entry.ballots_recorded, tally: entry.tally } : null;
      return {
        election_id: head.id, question: head.question, phase, counts,
        result: counts && (phase === 'closed' || phase === 'tallied') ? counts : null,
      };
    }),
  };
}

/** GET `path` of the gateway's API, answered from JSON-RPC. */
export async function getFromRpc(path) {
  const url = new URL(path, 'http://page.invalid/');
  const q = url.searchParams;
  const parts = url.pathname.split('/').filter(Boolean);
  if (url.pathname === '/v1/chain') {
    const [g, status] = await Promise.all([genesis(), rpc('ballot_status')]);
    return { chain_id: g.chain_id, genesis_hash: status.genesis_hash, genesis: g };
  }
  if (parts[0] === 'v1' && parts[1] === 'receipts' && parts.length === 3) {
    const answer = await rpc('ballot_getReceipt', [parts[2]]);
    if (answer.status === 'unknown') throw new ApiError(404, 'not_found', 'no ballot with this tracking code is known');
    return answer;
  }
  if (parts[0] === 'v1' && parts[1] === 'ballots' && parts.length === 3) {
    const answer = await rpc('ballot_getBallot', [parts[2]]);
    if (answer.status !== 'final') throw new ApiError(404, 'not_found', 'no recorded ballot with this tracking code');
    return answer;
  }
  if (parts[0] === 'v1' && parts[1] === 'elections' && parts.length === 3) {
    const id = decodeURIComponent(parts[2]);
    const defined = await rpc('ballot_getElections');
    for (const row of defined.elections) {
      const head = decodeElectionHead(fromHex(row.definition, 'election definition'));
      if (head.id === id) {
        return {
          election_id: id, payload_scheme: head.payloadScheme, contests: head.contests,
          joint_key: head.jointKey.length ? toHex(head.jointKey) : null,
        };
      }
    }
    throw new ApiError(404, 'unknown_election', id);
  }
  if (url.pathname === '/v1/checkpoint') {
    return rpc('ballot_getCheckpoint', q.has('height') ? [Number(q.get('height'))] : []);
  }
  if (url.pathname === '/v1/consistency') {
    const proof = await rpc('ballot_getConsistencyProof', [Number(q.get('old_size')), Number(q.get('new_size'))]);
    return { proof };
  }
  if (url.pathname === '/v1/blocks/recent') return recentBlocks(Number(q.get('limit') || 10));
  if (url.pathname === '/v1/elections') return elections();
  throw new ApiError(404, 'not_found', path);
}
