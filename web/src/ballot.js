// An encrypted ballot's proofs, checked in the browser: the same rules as
// ledger/encrypted_ballot.py and ledger/sigma.py (the `elgamal-secp256k1/v1` payload),
// so that a voter need not trust the validators to have checked their ballot.
// Pure: bytes and an election's shape in, BallotRefused (with the ledger's code and
// place) thrown at the first fault, in the order the Python checks run.
import { keccak_256 } from '@noble/hashes/sha3.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import {
  CheckFailed, asBytes, asList, asText, concat, intBytes, rlpDecode, rlpEncode, tag,
} from './ledger.js';

export const SCHEME = 'elgamal-secp256k1/v1';
const MAX_CONTESTS = 64;
const MAX_CHOICES = 64; // per contest
const POINT_SIZE = 33;
const SCALAR_SIZE = 32;
const BALLOT_DOMAIN = tag(`${SCHEME}/ballot`);
const SELECTION_DOMAIN = tag(`${SCHEME}/selection-proof`);
const CONTEST_DOMAIN = tag(`${SCHEME}/contest-proof`);

const Point = secp256k1.Point;
const G = Point.BASE;
const ORDER = Point.Fn.ORDER;
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** A refused ballot: `code` is the ledger's (bad_point, bad_scalar, bad_encoding,
 * oversized, bad_ballot_shape, bad_ballot_proof), `where` the contest and selection
 * when the ledger names them. The page shows it as the failed check `proofs`. */
export class BallotRefused extends CheckFailed {
  constructor(code, where, message) {
    super('proofs', `${code}${where ? ` at ${where}` : ''}: ${message}`);
    this.code = code;
    this.where = where;
  }
}

// --- canonical scalars and points (ledger/group.py) -----------------------------------
function decodeScalar(raw, what) {
  if (raw.length !== SCALAR_SIZE) throw new BallotRefused('bad_scalar', null, `${what}: expected ${SCALAR_SIZE} bytes, got ${raw.length}`);
  let k = 0n;
  for (const b of raw) k = (k << 8n) | BigInt(b);
  if (k >= ORDER) throw new BallotRefused('bad_scalar', null, `${what}: not reduced modulo the group order`);
  return k;
}

/** A 33-byte compressed point on the curve; infinity has no such form, so it is refused. */
function decodePoint(raw, what) {
  if (raw.length !== POINT_SIZE || (raw[0] !== 2 && raw[0] !== 3)) {
    throw new BallotRefused('bad_point', null, `${what}: expected a 33-byte compressed point`);
  }
  try {
    return Point.fromBytes(raw); // refuses x >= p and x with no y on the curve
  } catch {
    throw new BallotRefused('bad_point', null, `${what}: not on the secp256k1 curve`);
  }
}

/** The identity is the empty string (a computed sum may be it; a ballot's points never). */
function encodeOptional(p) {
  return p.is0() ? EMPTY : p.toBytes(true);
}

function hashToScalar(domain, ...parts) {
  let k = 0n;
  for (const b of keccak_256(concat(domain, ...parts))) k = (k << 8n) | BigInt(b);
  return k % ORDER;
}

function u16(n) {
  return Uint8Array.of(n >> 8, n & 0xff);
}

// --- the election's shape (BallotContext) --------------------------------------------
/** What every proof of one ballot is bound to. `contests`: [{choices, limit}]. */
export function ballotContext(chainId, electionId, jointKey, credential, contests) {
  if (!(contests.length >= 1 && contests.length <= MAX_CONTESTS)) {
    throw new BallotRefused('bad_ballot_shape', null, `${contests.length} contests (1 to ${MAX_CONTESTS} allowed)`);
  }
  for (const c of contests) {
    if (!(c.choices >= 1 && c.choices <= MAX_CHOICES && c.limit >= 1 && c.limit <= c.choices)) {
      throw new BallotRefused('bad_ballot_shape', null, `contest with ${c.choices} choices and limit ${c.limit}`);
    }
  }
  if (credential.length !== POINT_SIZE) throw new BallotRefused('bad_encoding', null, 'credential: expected a 33-byte compressed public key');
  return { chainId, electionId, jointKey, credential, contests };
}

function maxPayloadSize(contests) {
  // the ledger's generous per-item bounds (each header at most 3 bytes), refused before parsing
  const selection = 3 + 2 * 34 + 4 * 33;
  return 3 + contests.reduce((n, c) => n + 3 + 3 + c.choices * selection + 3 + 2 * (c.limit + 1) * 33, 0);
}

// --- the payload (EncryptedBallot.decode) ----------------------------------------------
function readProof(items, what) {
  if (!items.length || items.length % 2) throw new BallotRefused('bad_encoding', null, `${what}: expected challenges and responses in equal numbers`);
  const values = items.map((x) => decodeScalar(asBytes(x, what), what));
  const half = values.length / 2;
  return { challenges: values.slice(0, half), responses: values.slice(half) };
}

function decodePayload(raw, maxSize) {
  if (raw.length > maxSize) throw new BallotRefused('oversized', null, `${raw.length} bytes exceeds the limit of ${maxSize}`);
  try {
    const items = asList(rlpDecode(raw), null, 'payload');
    if (!(items.length >= 1 && items.length <= MAX_CONTESTS)) throw new BallotRefused('bad_ballot_shape', null, `payload with ${items.length} contests`);
    return items.map((contestItem, ci) => {
      const where = `contest ${ci}`;
      const [selItems, proofItems] = asList(contestItem, 2, where);
      const selections = asList(selItems, null, where).map((selItem, si) => {
        const swhere = `${where} selection ${si}`;
        const fields = asList(selItem, 6, swhere);
        const alphaRaw = asBytes(fields[0], swhere);
        const alpha = decodePoint(alphaRaw, `${swhere} alpha`);
        const betaRaw = asBytes(fields[1], swhere);
        const beta = decodePoint(betaRaw, `${swhere} beta`);
        return { alpha, beta, encoded: concat(alphaRaw, betaRaw), proof: readProof(fields.slice(2), swhere) };
      });
      return { selections, proof: readProof(asList(proofItems, null, where), `${where} proof`) };
    });
  } catch (err) {
    if (err instanceof BallotRefused || !(err instanceof CheckFailed)) throw err;
    throw new BallotRefused('bad_encoding', null, err.detail);
  }
}

function checkShape(context, contests) {
  if (contests.length !== context.contests.length) {
    throw new BallotRefused('bad_ballot_shape', null, `${contests.length} contests, the election has ${context.contests.length}`);
  }
  contests.forEach((contest, ci) => {
    const shape = context.contests[ci];
    if (contest.selections.length !== shape.choices) {
      throw new BallotRefused('bad_ballot_shape', `contest ${ci}`, `${contest.selections.length} selections, the contest has ${shape.choices}`);
    }
    if (contest.proof.challenges.length !== shape.limit + 1) {
      throw new BallotRefused('bad_ballot_shape', `contest ${ci}`, `the contest proof needs ${shape.limit + 1} branches`);
    }
  });
}

// --- Fiat-Shamir statements -------------------------------------------------------------
function ballotStatement(context, contests) {
  const body = rlpEncode([
    utf8.encode(context.chainId), utf8.encode(context.electionId), context.jointKey, context.credential,
    context.contests.map((c) => [intBytes(c.choices), intBytes(c.limit)]),
    concat(...contests.flatMap((c) => c.selections.map((s) => s.encoded))),
  ]);
  return keccak_256(concat(BALLOT_DOMAIN, body));
}

// --- the disjunctive Chaum-Pedersen range proof (sigma.verify_range) --------------------
const negBaseMultiples = [];
function negBaseMultiple(j) {
  while (negBaseMultiples.length < j) negBaseMultiples.push(G.multiply(ORDER - BigInt(negBaseMultiples.length + 1)));
  return negBaseMultiples[j - 1];
}

/** Branch j's commitments are a_j = g^v_j alpha^-c_j and b_j = K^v_j (beta g^-j)^-c_j;
 * the challenges must sum to the hash of the statement and every commitment. */
function verifyRange(key, alpha, beta, proof, limit, domain, statement) {
  const { challenges, responses } = proof;
  if (challenges.length !== limit + 1 || responses.length !== limit + 1) return false;
  const parts = [statement];
  let sum = 0n;
  for (let j = 0; j <= limit; j++) {
    const c = challenges[j];
    const v = responses[j];
    const negC = c ? ORDER - c : 0n;
    const shifted = j === 0 ? beta : beta.add(negBaseMultiple(j));
    parts.push(encodeOptional(G.mulAddUnsafe(v, alpha, negC)), encodeOptional(key.mulAddUnsafe(v, shifted, negC)));
    sum += c;
  }
  return sum % ORDER === hashToScalar(domain, ...parts);
}

/** EncryptedBallot.decode, check_shape and verify_ballot over a payload's bytes. Returns
 * how many selection and contest proofs verified. */
export function verifyPayload(context, payload) {
  const contests = decodePayload(payload, maxPayloadSize(context.contests));
  checkShape(context, contests);
  const key = decodePoint(context.jointKey, 'election key');
  const statement = ballotStatement(context, contests);
  let selections = 0;
  contests.forEach((contest, ci) => {
    contest.selections.forEach((s, si) => {
      const st = concat(statement, u16(ci), u16(si), s.encoded);
      if (!verifyRange(key, s.alpha, s.beta, s.proof, 1, SELECTION_DOMAIN, st)) {
        throw new BallotRefused('bad_ballot_proof', `contest ${ci} selection ${si}`, 'the proof that the selection encrypts 0 or 1 does not verify');
      }
      selections += 1;
    });
    // the product of the contest's ciphertexts: an encryption of how many were selected
    const alpha = contest.selections.reduce((p, s) => p.add(s.alpha), Point.ZERO);
    const beta = contest.selections.reduce((p, s) => p.add(s.beta), Point.ZERO);
    const a = encodeOptional(alpha);
    const b = encodeOptional(beta);
    const st = concat(statement, u16(ci), Uint8Array.of(a.length), a, Uint8Array.of(b.length), b);
    const limit = context.contests[ci].limit;
    if (!verifyRange(key, alpha, beta, contest.proof, limit, CONTEST_DOMAIN, st)) {
      throw new BallotRefused('bad_ballot_proof', `contest ${ci}`, `the proof that at most ${limit} choices are selected does not verify`);
    }
  });
  return { selections, contests: contests.length };
}

// --- the envelope (ledger/ballot.py) ------------------------------------------------------
/** The fields of a ballot envelope the proofs need: [chain id, election id, credential,
 * credential proof, payload, signature]. */
export function decodeEnvelope(raw, maxSize) {
  const f = asList(rlpDecode(raw, maxSize), 6, 'ballot');
  return {
    chainId: asText(f[0], 'ballot chain id', 64),
    electionId: asText(f[1], 'ballot election id', 64),
    credential: asBytes(f[2], 'ballot credential', POINT_SIZE),
    payload: asBytes(f[4], 'ballot payload'),
  };
}

/** The shape of an encrypted election as the genesis file or the gateway shows it. */
export function contestShapes(contests) {
  return (contests || []).map((c) => ({ choices: c.choices.length, limit: c.limit }));
}
