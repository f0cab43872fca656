// The public reads the page makes, relative to the page (so it works under any prefix):
// the gateway's REST API, or, where the page is served by a node, its JSON-RPC.
import { ApiError, readJson } from './errors.js';
import { getFromRpc } from './rpcapi.js';

export { ApiError };

let mode = null; // 'rest' | 'rpc', learnt from the first answer

async function getRest(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-cache' });
  } catch (err) {
    throw new ApiError(0, 'unreachable', String(err && err.message));
  }
  const body = await readJson(response);
  if (!response.ok) throw new ApiError(response.status, body.code || 'error', body.detail || response.statusText);
  return body;
}

let firstChain = null; // the answer that told the mode, kept for the page's first read of it

async function learnMode() {
  // A gateway answers v1/chain; a node has no such path (404 without a JSON problem body).
  try {
    firstChain = await getRest('v1/chain');
    return 'rest';
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && err.code === 'bad_answer') return 'rpc';
    throw err;
  }
}

export async function getJson(path) {
  mode ??= learnMode().catch((err) => {
    mode = null;
    throw err;
  });
  if ((await mode) === 'rpc') return getFromRpc(path);
  if (path === 'v1/chain' && firstChain !== null) {
    const answer = firstChain;
    firstChain = null;
    return answer;
  }
  return getRest(path);
}
