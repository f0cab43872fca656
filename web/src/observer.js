// The observer view: chain, checkpoint (checked here), consistency with the checkpoint this
// browser saved last time (checked here), validators, elections and recent blocks.
import { getJson } from './api.js';
import { t, safeStorage } from './i18n.js';
import {
  readGenesis, decodeCheckpoint, checkCheckpoint, verifyConsistency, fromHex, toHex, CheckFailed,
} from './ledger.js';

const SAVED_KEY = 'ballot-ledger.checkpoint';
const REFRESH_MS = 5000;
let latest = null;

function text(id, value) {
  document.getElementById(id).textContent = value;
}

function i18nNode(tag, key, vars, cls) {
  const node = document.createElement(tag);
  node.dataset.i18n = key;
  if (vars) node.dataset.i18nVars = JSON.stringify(vars);
  if (cls) node.className = cls;
  node.textContent = t(key, vars);
  return node;
}

function cell(value, cls) {
  const td = document.createElement('td');
  if (value instanceof Node) td.append(value);
  else td.textContent = value;
  if (cls) td.className = cls;
  return td;
}

function fill(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr');
    tr.append(...cells);
    return tr;
  }));
}

function savedFile(genesis, cp, hex) {
  return {
    format: 'ballot-ledger/checkpoint/v1', chain_id: genesis.chainId, genesis_hash: toHex(genesis.hash),
    height: cp.header.height, log_size: Number(cp.header.logSize), log_root: toHex(cp.header.logRoot), checkpoint: hex,
  };
}

async function consistency(genesis, cp, hex) {
  const target = document.getElementById('obs-consistency');
  const saved = safeStorage(() => JSON.parse(localStorage.getItem(SAVED_KEY) || 'null'));
  const show = (key, vars, cls, state) => {
    target.replaceChildren(i18nNode('span', key, vars, cls));
    target.dataset.state = state;
  };
  const keep = () => safeStorage(() => localStorage.setItem(SAVED_KEY, JSON.stringify(savedFile(genesis, cp, hex))));
  if (!saved) {
    show('observer.consistency.first', undefined, '', 'first');
    keep();
    return;
  }
  if (saved.genesis_hash !== toHex(genesis.hash)) {
    show('observer.consistency.other', undefined, '', 'other');
    keep();
    return;
  }
  try {
    const old = decodeCheckpoint(fromHex(saved.checkpoint, 'saved checkpoint'));
    checkCheckpoint(old, genesis.validators);
    const oldSize = old.header.logSize;
    const newSize = cp.header.logSize;
    if (newSize < oldSize) throw new CheckFailed('consistency', `the log shrank from ${oldSize} to ${newSize}`);
    const answer = await getJson(`v1/consistency?old_size=${oldSize}&new_size=${newSize}`);
    verifyConsistency(oldSize, newSize, old.header.logRoot, cp.header.logRoot,
      answer.proof.map((h) => fromHex(h, 'consistency proof')));
    show('observer.consistency.ok', { old: old.header.height, new: cp.header.height }, 'ok-text', 'consistent');
    if (cp.header.height >= old.header.height) keep();
  } catch (err) {
    // never overwrite the evidence: the saved checkpoint stays for the observer to report
    show('observer.consistency.bad', { old: saved.height }, 'bad-text', 'inconsistent');
    target.append(' ', Object.assign(document.createElement('span'), { className: 'mono', textContent: err.detail || String(err) }));
  }
}

async function refresh() {
  const error = document.getElementById('observer-error');
  try {
    const [chain, cpAnswer, recent, elections] = await Promise.all([
      getJson('v1/chain'), getJson('v1/checkpoint'), getJson('v1/blocks/recent?limit=10'), getJson('v1/elections'),
    ]);
    const genesis = readGenesis(chain.genesis);
    const cp = decodeCheckpoint(fromHex(cpAnswer.checkpoint, 'checkpoint'));
    text('obs-chain', genesis.chainId);
    text('obs-genesis', toHex(genesis.hash));
    text('obs-height', String(cp.header.height));
    text('obs-logsize', String(cp.header.logSize));
    text('obs-logroot', toHex(cp.header.logRoot));
    const signed = document.getElementById('obs-signed');
    try {
      if (cp.header.chainId !== genesis.chainId) throw new CheckFailed('chain', 'checkpoint of another chain');
      const r = checkCheckpoint(cp, genesis.validators);
      signed.replaceChildren(i18nNode('span', 'check.quorum', undefined, 'ok-text'), ` (${r.signers}, ${r.power}/${r.total})`);
      signed.dataset.state = 'ok';
      latest = savedFile(genesis, cp, cpAnswer.checkpoint);
      document.getElementById('download').disabled = false;
      await consistency(genesis, cp, cpAnswer.checkpoint);
    } catch (err) {
      signed.replaceChildren(i18nNode('span', `check.${err.check || 'quorum'}`, undefined, 'bad-text'), ` — ${err.detail || err}`);
      signed.dataset.state = 'failed';
    }
    const lastSigned = new Map(recent.validators.map((v) => [v.index, v.last_signed_height]));
    fill('validators', genesis.validators.map((v) => [
      cell(v.name), cell(toHex(v.publicKey), 'mono'), cell(String(v.power)),
      cell(lastSigned.get(v.index) == null ? i18nNode('span', 'observer.validator.none') : String(lastSigned.get(v.index))),
    ]));
    fill('blocks', recent.blocks.map((b) => [
      cell(String(b.height)), cell(new Date(b.time_ms).toLocaleString(document.documentElement.lang)), cell(b.proposer),
      cell(String(b.ballots)), cell(`${b.signers.length}/${genesis.validators.length}`), cell(b.block_hash.slice(0, 16), 'mono'),
    ]));
    fill('elections', elections.elections.map((e) => {
      const counts = e.counts ? String(e.counts.ballots_recorded) : '—';
      const result = e.result && e.result.tally
        ? Object.entries(e.result.tally).map(([k, v]) => `${k}: ${v}`).join(', ')
        : i18nNode('span', 'observer.election.noresult');
      return [cell(e.election_id, 'mono'), cell(e.question), cell(i18nNode('span', `phase.${e.phase}`)), cell(counts), cell(result)];
    }));
    error.hidden = true;
    document.body.dataset.loaded = 'true';
  } catch (err) {
    error.hidden = false;
    error.replaceChildren(i18nNode('span', 'status.error'), ` — ${err.detail || err.message || err}`);
  }
}

function download() {
  if (!latest) return;
  const blob = new Blob([`${JSON.stringify(latest, null, 2)}\n`], { type: 'application/json' });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = `checkpoint-${latest.chain_id}-${latest.height}.json`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

export function startObserverPage() {
  document.getElementById('refresh').addEventListener('click', refresh);
  document.getElementById('download').addEventListener('click', download);
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}
