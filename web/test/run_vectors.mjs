// Runs the page's checks (src/ledger.js) over vectors the Python ledger made; prints what
// the page concludes for each, as JSON, for the Python test to compare.
import { readFileSync } from 'node:fs';
import {
  fromHex, toHex, verifyInclusion, verifyConsistency, readGenesis, verifyReceipt, CheckFailed,
} from '../src/ledger.js';

const vectors = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const hashes = (list) => list.map((h) => fromHex(h, 'hash'));
const outcome = (fn) => {
  try {
    fn();
    return true;
  } catch (err) {
    if (!(err instanceof CheckFailed)) throw err;
    return false;
  }
};
const out = {
  inclusion: vectors.merkle.inclusion.map((v) => outcome(() => verifyInclusion(
    fromHex(v.leaf, 'leaf'), v.index, v.size, hashes(v.proof), fromHex(v.root, 'root')))),
  consistency: vectors.merkle.consistency.map((v) => outcome(() => verifyConsistency(
    v.old_size, v.new_size, fromHex(v.old_root, 'root'), fromHex(v.new_root, 'root'), hashes(v.proof)))),
  genesis: vectors.genesis.map((v) => {
    const g = readGenesis(v.genesis);
    return { hash: toHex(g.hash), validator_set_hash: toHex(g.validatorSetHash) };
  }),
  receipts: vectors.receipts.map((v) => {
    const result = verifyReceipt(v.receipt, readGenesis(v.genesis), v.typed_code);
    const failed = result.steps.find((s) => !s.ok);
    return { name: v.name, ok: result.ok, failed_check: failed ? failed.failedCheck : null };
  }),
};
process.stdout.write(JSON.stringify(out));
