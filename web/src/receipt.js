// The receipt page: fetch the receipt and the genesis, check everything here.
import { getJson, ApiError } from './api.js';
import { t, safeStorage } from './i18n.js';
import {
  readGenesis, verifyReceipt, decodeCheckpoint, checkCheckpoint, toHex, CheckFailed, fromHex, keccak256, equalBytes,
} from './ledger.js';
import { SCHEME, ballotContext, contestShapes, decodeEnvelope, verifyPayload } from './ballot.js';
import { codeFromText, qrSvg, scan } from './scan.js';

const CODE = /^[0-9a-f]{64}$/;
const PUBLISHED_KEY = 'ballot-ledger.published-genesis';
let genesisPromise = null;

function loadGenesis() {
  genesisPromise ??= getJson('v1/chain').then((chain) => {
    const genesis = readGenesis(chain.genesis);
    // the server's own claim is only compared, never used
    genesis.claimOk = chain.genesis_hash === toHex(genesis.hash);
    return genesis;
  });
  genesisPromise.catch(() => { genesisPromise = null; });
  return genesisPromise;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function i18n(tag, key, attrs = {}, vars) {
  const node = el(tag, { ...attrs, 'data-i18n': key }, t(key, vars));
  if (vars) node.dataset.i18nVars = JSON.stringify(vars);
  return node;
}

function showGenesis(genesis) {
  document.getElementById('chain-id').textContent = genesis.chainId;
  document.getElementById('genesis-hash').textContent = toHex(genesis.hash);
  document.getElementById('validator-count').textContent = String(genesis.validators.length);
  comparePublished(genesis);
}

function comparePublished(genesis) {
  const input = document.getElementById('published');
  const verdict = document.getElementById('published-verdict');
  const wanted = input.value.trim().toLowerCase().replace(/^0x/, '');
  safeStorage(() => localStorage.setItem(PUBLISHED_KEY, wanted));
  verdict.replaceChildren();
  verdict.className = '';
  if (!wanted || !genesis) return true;
  const same = wanted === toHex(genesis.hash);
  verdict.className = same ? 'banner ok' : 'banner bad';
  verdict.append(i18n('span', same ? 'genesis.match' : 'genesis.mismatch'));
  return same;
}

function stepItem(step) {
  const item = el('li', { class: step.ok ? 'ok' : 'bad', 'data-check': step.failedCheck || step.check });
  item.append(i18n('span', `check.${step.ok ? step.check : step.failedCheck || step.check}`));
  item.append(' — ', i18n('span', step.ok ? 'check.ok' : 'check.failed'));
  if (step.detail) item.append(el('span', { class: 'detail' }, String(step.detail)));
  return item;
}

function render({ verdict, failed, steps, facts, elapsed, helpKey, code }) {
  const result = document.getElementById('result');
  result.hidden = false;
  result.dataset.verdict = verdict; // final | pending | failed | notfound | rejected | error
  if (failed) result.dataset.failedCheck = failed;
  else delete result.dataset.failedCheck;
  if (elapsed !== undefined) result.dataset.elapsedMs = elapsed.toFixed(1);
  const good = verdict === 'final';
  const banner = el('p', { class: `banner ${good ? 'ok' : verdict === 'pending' ? 'warn' : 'bad'}`, id: 'verdict' });
  banner.append(i18n('span', `status.${verdict}`));
  if (failed) banner.append('. ', i18n('span', 'failed.check'), ': ', i18n('strong', `check.${failed}`, { 'data-failed': failed }));
  const children = [banner];
  if (helpKey) children.push(i18n('p', helpKey));
  if (facts && facts.length) {
    const dl = el('dl');
    for (const [key, value] of facts) dl.append(i18n('dt', key), el('dd', {}, value));
    children.push(dl);
  }
  if (steps && steps.length) {
    children.push(i18n('h2', 'checks.heading'), el('ol', { class: 'checks', id: 'checks' }, ...steps.map(stepItem)));
  }
  if (code) children.push(codeFigure(code));
  result.replaceChildren(...children);
}

/** The checked code as a QR code of this page's address for it, to check it elsewhere. */
function codeFigure(code) {
  const address = new URL(`?code=${code}`, location.href).href;
  const figure = el('figure', { class: 'qr', id: 'code-qr' });
  const label = { 'aria-label': t('qr.label', { code }), 'data-i18n-label': 'qr.label', 'data-i18n-vars': JSON.stringify({ code }) };
  figure.append(qrSvg(address, label), el('figcaption', {},
    i18n('strong', 'qr.heading'), ' ', i18n('span', 'qr.help')));
  return figure;
}

/** An encrypted ballot: the server's bytes are the tracked ballot (their hash is the
 * code), then every proof in them verifies under the election's key and shape. No
 * steps for a plaintext election. */
async function checkBallot(code, receipt, genesis) {
  let election;
  try {
    election = await encryptedElection(genesis, receipt.election_id);
  } catch (err) {
    return [failedStep({ check: 'proofs', ok: true }, 'proofs', err)];
  }
  if (election === null) return [];
  const ballotStep = { check: 'ballot', ok: true };
  let envelope;
  try {
    const answer = await getJson(`v1/ballots/${code}`);
    const raw = fromHex(answer.ballot, 'ballot');
    if (raw.length > genesis.maxBallotBytes) throw new CheckFailed('ballot', `${raw.length} bytes, over the chain's limit`);
    if (!equalBytes(keccak256(raw), fromHex(code, 'tracking code', 32))) {
      throw new CheckFailed('ballot', 'the ballot sent hashes to another tracking code');
    }
    envelope = decodeEnvelope(raw, genesis.maxBallotBytes);
    if (envelope.chainId !== genesis.chainId || envelope.electionId !== receipt.election_id) {
      throw new CheckFailed('ballot', `the ballot is for ${envelope.chainId} / ${envelope.electionId}`);
    }
    ballotStep.detail = `${raw.length} bytes`;
  } catch (err) {
    return [failedStep(ballotStep, 'ballot', err)];
  }
  const proofStep = { check: 'proofs', ok: true };
  try {
    const { jointKey, contests, source } = election;
    const context = ballotContext(genesis.chainId, receipt.election_id, jointKey, envelope.credential, contests);
    const r = verifyPayload(context, envelope.payload);
    proofStep.detail = `${r.selections} selection proofs, ${r.contests} contest proofs; key ${toHex(jointKey)} (${source})`;
  } catch (err) {
    return [ballotStep, failedStep(proofStep, 'proofs', err)];
  }
  return [ballotStep, proofStep];
}

function failedStep(step, check, err) {
  if (!(err instanceof CheckFailed || err instanceof ApiError)) throw err;
  return { ...step, ok: false, failedCheck: check, detail: err instanceof CheckFailed ? err.detail : `${err.code}: ${err.detail}` };
}

/** The key and contests an encrypted election's proofs are checked under, or null for
 * another kind of election: the genesis's own (its hash is checked), or where the key
 * comes from a trustees' ceremony or the election was defined on chain later, the
 * election as the server reports it. */
async function encryptedElection(genesis, id) {
  const pinned = genesis.elections.find((e) => e.id === id);
  if (pinned && pinned.payload_scheme !== SCHEME) return null;
  if (pinned && pinned.joint_key) {
    return { jointKey: fromHex(pinned.joint_key, 'joint key', 33), contests: contestShapes(pinned.contests), source: 'genesis' };
  }
  const view = await getJson(`v1/elections/${encodeURIComponent(id)}`);
  if (view.payload_scheme !== SCHEME) {
    if (pinned) throw new CheckFailed('proofs', `election ${id} is encrypted, the server says it is not`);
    return null;
  }
  if (!view.joint_key) throw new CheckFailed('proofs', `election ${id} has no key yet`);
  const contests = contestShapes(pinned ? pinned.contests : view.contests);
  return { jointKey: fromHex(view.joint_key, 'joint key', 33), contests, source: pinned ? 'ceremony' : 'defined on chain' };
}

async function check(raw) {
  const started = performance.now();
  const code = raw.trim().toLowerCase().replace(/^0x/, '');
  const result = document.getElementById('result');
  result.hidden = false;
  result.dataset.verdict = 'working';
  result.replaceChildren(i18n('p', 'status.working', { class: 'banner warn' }));
  if (!CODE.test(code)) {
    render({ verdict: 'failed', failed: 'format', steps: [{ check: 'format', ok: false, detail: raw.slice(0, 80) }] });
    return;
  }
  history.replaceState(null, '', `?code=${code}`);
  try {
    const [genesis, answer] = await Promise.all([loadGenesis(), getJson(`v1/receipts/${code}`).catch((err) => {
      if (err instanceof ApiError && err.status === 404) return { status: 'unknown' };
      throw err;
    })]);
    showGenesis(genesis);
    const pre = [{ check: 'format', ok: true, detail: code }];
    if (!genesis.claimOk) {
      render({ verdict: 'failed', failed: 'genesis', steps: [...pre, { check: 'genesis', ok: false }] });
      return;
    }
    const published = document.getElementById('published').value.trim().toLowerCase().replace(/^0x/, '');
    if (published) {
      const same = published === toHex(genesis.hash);
      pre.push({ check: 'published', ok: same, failedCheck: same ? undefined : 'published', detail: toHex(genesis.hash) });
      if (!same) {
        render({ verdict: 'failed', failed: 'published', steps: pre });
        return;
      }
    }
    if (answer.status === 'unknown') {
      render({ verdict: 'notfound', failed: 'found', steps: [...pre, { check: 'found', ok: false, detail: code }] });
      return;
    }
    if (answer.status === 'pending') {
      render({ verdict: 'pending', helpKey: 'status.pending.help', steps: pre });
      return;
    }
    if (answer.status === 'rejected') {
      const detail = answer.error ? `${answer.error.code}: ${answer.error.detail}` : '';
      render({ verdict: 'rejected', steps: [...pre, { check: 'found', ok: false, detail }] });
      return;
    }
    const receipt = answer.receipt;
    const verdict = verifyReceipt(receipt, genesis, code);
    const steps = [...pre, ...verdict.steps];
    const facts = [];
    if (verdict.ok) {
      facts.push(['result.election', receipt.election_id], ['result.height', String(receipt.height)],
        ['result.index', String(receipt.log_index)]);
      // the ballot's own block, for its time: signed by a quorum too
      const block = await getJson(`v1/checkpoint?height=${receipt.height}`);
      const blockStep = { check: 'block', ok: true };
      try {
        const cp = decodeCheckpoint(fromHex(block.checkpoint, 'checkpoint'));
        if (cp.header.height !== receipt.height || cp.header.chainId !== genesis.chainId) {
          throw new CheckFailed('block', `checkpoint for height ${cp.header.height}, not ${receipt.height}`);
        }
        const r = checkCheckpoint(cp, genesis.validators);
        blockStep.detail = `${r.signers} signatures`;
        facts.push(['result.time', new Date(cp.header.timeMs).toLocaleString(document.documentElement.lang)]);
      } catch (err) {
        blockStep.ok = false;
        blockStep.failedCheck = 'block';
        blockStep.detail = err instanceof CheckFailed ? err.detail : String(err);
      }
      steps.push(blockStep);
      if (!blockStep.ok) {
        render({ verdict: 'failed', failed: 'block', steps, facts, elapsed: performance.now() - started });
        return;
      }
      const ballotChecks = await checkBallot(code, receipt, genesis);
      if (ballotChecks.length) {
        steps.push(...ballotChecks);
        const bad = ballotChecks.find((s) => !s.ok);
        if (bad) {
          render({ verdict: 'failed', failed: bad.failedCheck, steps, facts, elapsed: performance.now() - started });
          return;
        }
      }
    }
    const failed = steps.find((s) => !s.ok);
    facts.push(['result.elapsed', `${(performance.now() - started).toFixed(0)} ms`]);
    render({ verdict: verdict.ok ? 'final' : 'failed', failed: failed && failed.failedCheck, steps, facts,
      elapsed: performance.now() - started, code: verdict.ok ? code : undefined });
  } catch (err) {
    const detail = err instanceof ApiError ? `${err.code}: ${err.detail}` : String(err && err.message);
    render({ verdict: 'error', steps: [{ check: 'found', ok: false, detail }] });
  }
}

function setScanStatus(key) {
  const status = document.getElementById('scan-status');
  status.replaceChildren(key ? i18n('span', key) : '');
  status.dataset.state = key ? key.slice('scan.'.length) : '';
}

function startScanner(input) {
  const button = document.getElementById('scan');
  const panel = document.getElementById('scanner');
  const video = document.getElementById('camera');
  let stop = null;
  const close = () => {
    if (stop) stop();
    stop = null;
    panel.hidden = true;
    button.setAttribute('aria-expanded', 'false');
  };
  button.addEventListener('click', async () => {
    if (stop) {
      close();
      return;
    }
    panel.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    setScanStatus('scan.looking');
    try {
      stop = await scan(video, (text) => {
        const code = codeFromText(text);
        if (code === null) {
          setScanStatus('scan.notcode');
          return false;
        }
        stop = null;
        panel.hidden = true;
        button.setAttribute('aria-expanded', 'false');
        setScanStatus('scan.found');
        input.value = code;
        check(code);
        return true;
      });
    } catch {
      close();
      setScanStatus('scan.nocamera');
    }
  });
  document.getElementById('scan-stop').addEventListener('click', () => {
    close();
    setScanStatus(null);
    button.focus();
  });
}

export function startReceiptPage() {
  const form = document.getElementById('receipt-form');
  const input = document.getElementById('code');
  startScanner(input);
  const published = document.getElementById('published');
  published.value = safeStorage(() => localStorage.getItem(PUBLISHED_KEY)) || '';
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    check(input.value);
  });
  published.addEventListener('input', () => {
    loadGenesis().then(comparePublished, () => {});
  });
  loadGenesis().then(showGenesis, () => {});
  const fromUrl = new URLSearchParams(location.search).get('code');
  if (fromUrl) {
    input.value = fromUrl;
    check(fromUrl);
  }
}
