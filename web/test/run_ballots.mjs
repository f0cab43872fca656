// Runs the page's proof checks (src/ballot.js) over encrypted ballots the Python ledger
// made; prints, as JSON, what the page concludes of each for the Python test to compare.
import { readFileSync } from 'node:fs';
import { BallotRefused, ballotContext, decodeEnvelope, verifyPayload } from '../src/ballot.js';
import { fromHex } from '../src/ledger.js';

const vectors = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = vectors.map((v) => {
  const envelope = decodeEnvelope(fromHex(v.ballot, 'ballot'), 16384);
  const context = ballotContext(v.chain_id, v.election_id, fromHex(v.joint_key, 'joint key'), envelope.credential,
    v.contests);
  try {
    verifyPayload(context, envelope.payload);
    return { name: v.name, refused: null };
  } catch (err) {
    if (!(err instanceof BallotRefused)) throw err;
    return { name: v.name, refused: { code: err.code, where: err.where } };
  }
});
process.stdout.write(JSON.stringify(out));
