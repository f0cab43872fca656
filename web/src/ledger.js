// The ledger's checks, in the browser: the same rules as ledger/ (codec, hashing, merkle,
// block, genesis, receipt), so that a voter trusts their own browser rather than the server.
// Pure: bytes and objects in, values out, CheckFailed thrown with the name of the check.
import { keccak_256 } from '@noble/hashes/sha3.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** A failed check: `check` names which (stable, used for the page's messages). */
export class CheckFailed extends Error {
  constructor(check, detail) {
    super(`${check}: ${detail}`);
    this.check = check;
    this.detail = detail;
  }
}

// --- bytes ----------------------------------------------------------------------------
export function fromHex(text, what, size) {
  if (typeof text !== 'string' || text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) {
    throw new CheckFailed('encoding', `${what} is not lower-case hex`);
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  if (size !== undefined && out.length !== size) {
    throw new CheckFailed('encoding', `${what} is ${out.length} bytes, not ${size}`);
  }
  return out;
}

export function toHex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function keccak256(bytes) {
  return keccak_256(bytes);
}

/** ledger.hashing.tag: one length byte, then "ballot-ledger/NAME". */
export function tag(name) {
  const raw = utf8.encode(`ballot-ledger/${name}`);
  return concat(Uint8Array.of(raw.length), raw);
}

export const HEADER_TAG = tag('header/v1');
export const VOTE_TAG = tag('vote/v1');
export const GENESIS_TAG = tag('genesis/v1');
export const VALIDATOR_SET_TAG = tag('validator-set/v1');

export function taggedHash(domain, data) {
  return keccak_256(concat(domain, data));
}

// --- canonical RLP (ledger/codec.py) ----------------------------------------------------
export function intBytes(value) {
  let v = BigInt(value);
  if (v < 0n) throw new CheckFailed('encoding', 'RLP integers are non-negative');
  const out = [];
  while (v > 0n) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return Uint8Array.from(out);
}

function lengthPrefix(length, shortBase) {
  if (length < 56) return Uint8Array.of(shortBase + length);
  const raw = intBytes(length);
  return concat(Uint8Array.of(shortBase + 55 + raw.length), raw);
}

/** Encode a Uint8Array or a (nested) array of them. */
export function rlpEncode(item) {
  if (item instanceof Uint8Array) {
    if (item.length === 1 && item[0] < 0x80) return item;
    return concat(lengthPrefix(item.length, 0x80), item);
  }
  const body = concat(...item.map(rlpEncode));
  return concat(lengthPrefix(body.length, 0xc0), body);
}

function readHeader(data, pos, end) {
  if (pos >= end) throw new CheckFailed('encoding', 'unexpected end of data');
  const b0 = data[pos];
  if (b0 < 0x80) return [false, pos, pos + 1];
  let n;
  let start;
  let isList;
  if (b0 < 0xb8) {
    n = b0 - 0x80;
    if (n === 1 && pos + 1 < end && data[pos + 1] < 0x80) {
      throw new CheckFailed('encoding', 'single byte below 0x80 must encode as itself');
    }
    start = pos + 1;
    isList = false;
  } else if (b0 < 0xc0) {
    [n, start] = longLength(data, pos, end, b0 - 0xb7);
    isList = false;
  } else if (b0 < 0xf8) {
    n = b0 - 0xc0;
    start = pos + 1;
    isList = true;
  } else {
    [n, start] = longLength(data, pos, end, b0 - 0xf7);
    isList = true;
  }
  if (start + n > end) throw new CheckFailed('encoding', 'item runs past the end of its container');
  return [isList, start, start + n];
}

function longLength(data, pos, end, sizeLen) {
  const start = pos + 1 + sizeLen;
  if (start > end) throw new CheckFailed('encoding', 'truncated length');
  if (data[pos + 1] === 0) throw new CheckFailed('encoding', 'length with leading zero');
  let n = 0;
  for (let i = pos + 1; i < start; i++) n = n * 256 + data[i];
  if (n < 56) throw new CheckFailed('encoding', 'long length form used for a short item');
  return [n, start];
}

function decodeAt(data, pos, end, depth) {
  if (depth > 32) throw new CheckFailed('encoding', 'nested too deep');
  const [isList, start, stop] = readHeader(data, pos, end);
  if (!isList) return [data.subarray(start, stop), stop];
  const items = [];
  let p = start;
  while (p < stop) {
    const [item, next] = decodeAt(data, p, stop, depth + 1);
    items.push(item);
    p = next;
  }
  return [items, stop];
}

/** Exactly one item; trailing bytes refused. */
export function rlpDecode(data, maxSize) {
  if (maxSize !== undefined && data.length > maxSize) {
    throw new CheckFailed('encoding', `${data.length} bytes exceeds the limit of ${maxSize}`);
  }
  const [item, end] = decodeAt(data, 0, data.length, 0);
  if (end !== data.length) throw new CheckFailed('encoding', `${data.length - end} trailing bytes`);
  return item;
}

export function asList(item, n, what) {
  if (!Array.isArray(item)) throw new CheckFailed('encoding', `${what}: expected a list`);
  if (n !== null && item.length !== n) throw new CheckFailed('encoding', `${what}: expected ${n} fields, got ${item.length}`);
  return item;
}

export function asBytes(item, what, size) {
  if (!(item instanceof Uint8Array)) throw new CheckFailed('encoding', `${what}: expected bytes, got a list`);
  if (size !== undefined && item.length !== size) throw new CheckFailed('encoding', `${what}: expected ${size} bytes, got ${item.length}`);
  return item;
}

function asInt(item, what) {
  const raw = asBytes(item, what);
  if (raw.length > 32) throw new CheckFailed('encoding', `${what}: integer too long`);
  if (raw.length && raw[0] === 0) throw new CheckFailed('encoding', `${what}: integer with leading zero`);
  let v = 0n;
  for (const b of raw) v = (v << 8n) | BigInt(b);
  return v;
}

export function asSafeInt(item, what) {
  const v = asInt(item, what);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckFailed('encoding', `${what}: too large`);
  return Number(v);
}

export function asText(item, what, maxSize) {
  const raw = asBytes(item, what);
  if (raw.length > maxSize) throw new CheckFailed('encoding', `${what}: too long`);
  try {
    return utf8Strict.decode(raw);
  } catch {
    throw new CheckFailed('encoding', `${what}: not UTF-8`);
  }
}

// --- the ballot log: RFC 9162 2.1 with keccak256 (ledger/merkle.py) ------------------------
export const EMPTY_ROOT = keccak_256(new Uint8Array(0));

/** MTH({d}) = HASH(0x00 || d) */
export function leafHash(leaf) {
  return keccak_256(concat(Uint8Array.of(0), leaf));
}

/** HASH(0x01 || left || right) */
export function nodeHash(left, right) {
  return keccak_256(concat(Uint8Array.of(1), left, right));
}

function bitLength(x) {
  return x === 0n ? 0 : x.toString(2).length;
}

function lowBitShift(x) {
  // the index of x's lowest 1 bit (x > 0)
  return bitLength(x & -x) - 1;
}

function popcount(x) {
  let n = 0;
  for (const c of x.toString(2)) if (c === '1') n++;
  return n;
}

function inclusionProofLen(index, size) {
  const inner = bitLength(index ^ (size - 1n));
  return inner + popcount(index >> BigInt(inner));
}

function consistencyProofLen(oldSize, newSize) {
  const shift = lowBitShift(oldSize);
  const seed = oldSize === 1n << BigInt(shift) ? 0 : 1;
  return seed + inclusionProofLen(oldSize - 1n, newSize) - shift;
}

/** RFC 9162 2.1.3.2: raw `leaf` is leaf `index` of the tree of `size` leaves with `root`. */
export function verifyInclusion(leaf, index, size, proof, root) {
  index = BigInt(index);
  size = BigInt(size);
  if (index < 0n || index >= size) throw new CheckFailed('inclusion', `leaf index ${index} is outside a tree of size ${size}`);
  const want = inclusionProofLen(index, size);
  if (proof.length !== want) {
    throw new CheckFailed('inclusion', `proof has ${proof.length} hashes; leaf ${index} of a ${size}-leaf tree needs ${want}`);
  }
  proof.forEach((p, i) => {
    if (p.length !== 32) throw new CheckFailed('inclusion', `proof hash ${i} is ${p.length} bytes, not 32`);
  });
  let fn = index;
  let sn = size - 1n;
  let r = leafHash(leaf);
  for (const p of proof) {
    if (fn & 1n || fn === sn) {
      r = nodeHash(p, r);
      if (!(fn & 1n)) {
        const shift = BigInt(lowBitShift(fn));
        fn >>= shift;
        sn >>= shift;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (!equalBytes(r, root)) {
    throw new CheckFailed('inclusion', `proof for leaf ${index} of a ${size}-leaf tree yields root ${toHex(r)}, not ${toHex(root)}`);
  }
}

/** RFC 9162 2.1.4.2: the tree of `newSize` leaves extends the one of `oldSize`. */
export function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
  oldSize = BigInt(oldSize);
  newSize = BigInt(newSize);
  if (oldSize < 0n || oldSize > newSize) throw new CheckFailed('consistency', `old size ${oldSize} is not within 0..${newSize}`);
  if (oldSize === newSize || oldSize === 0n) {
    if (proof.length) throw new CheckFailed('consistency', `proof from size ${oldSize} to ${newSize} must be empty`);
    if (oldSize === 0n && !equalBytes(oldRoot, EMPTY_ROOT)) throw new CheckFailed('consistency', 'the root of an empty tree is not keccak256("")');
    if (oldSize === newSize && !equalBytes(oldRoot, newRoot)) {
      throw new CheckFailed('consistency', `trees of equal size ${oldSize} have different roots`);
    }
    return;
  }
  const want = consistencyProofLen(oldSize, newSize);
  if (proof.length !== want) throw new CheckFailed('consistency', `proof has ${proof.length} hashes; sizes ${oldSize} to ${newSize} need ${want}`);
  proof.forEach((p, i) => {
    if (p.length !== 32) throw new CheckFailed('consistency', `proof hash ${i} is ${p.length} bytes, not 32`);
  });
  const path = (oldSize & (oldSize - 1n)) === 0n ? [oldRoot, ...proof] : proof;
  let fn = oldSize - 1n;
  let sn = newSize - 1n;
  if (fn & 1n) {
    const shift = BigInt(lowBitShift(~fn & (fn + 1n)));
    fn >>= shift;
    sn >>= shift;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (fn & 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!(fn & 1n)) {
        const shift = BigInt(lowBitShift(fn));
        fn >>= shift;
        sn >>= shift;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (!equalBytes(fr, oldRoot)) throw new CheckFailed('consistency', `proof yields old root ${toHex(fr)} for size ${oldSize}`);
  if (!equalBytes(sr, newRoot)) throw new CheckFailed('consistency', `proof yields new root ${toHex(sr)} for size ${newSize}`);
}

// --- headers, certificates, checkpoints (ledger/block.py) ------------------------------
export function decodeHeader(bytes) {
  const f = asList(rlpDecode(bytes, 4096), 11, 'header');
  return {
    chainId: asText(f[0], 'header chain id', 64),
    height: asSafeInt(f[1], 'header height'),
    timeMs: asSafeInt(f[2], 'header time'),
    parentHash: asBytes(f[3], 'header parent hash', 32),
    proposer: asBytes(f[4], 'header proposer', 33),
    validatorSetHash: asBytes(f[5], 'header validator set hash', 32),
    logSize: asInt(f[6], 'header log size'),
    logRoot: asBytes(f[7], 'header log root', 32),
    stateRoot: asBytes(f[8], 'header state root', 32),
    txsHash: asBytes(f[9], 'header transactions hash', 32),
    lastCommitHash: asBytes(f[10], 'header last commit hash', 32),
    hash: taggedHash(HEADER_TAG, bytes),
  };
}

export function decodeCertificate(bytes) {
  return certificateFromItem(rlpDecode(bytes, 65536));
}

/** A block's header and how many ballots and transactions it carries. */
export function decodeBlockSummary(bytes) {
  const f = asList(rlpDecode(bytes), 4, 'block');
  return {
    header: decodeHeader(asBytes(f[0], 'block header')),
    ballots: asList(f[1], null, 'block ballots').length,
    transactions: asList(f[2], null, 'block transactions').length,
  };
}

/** An election definition's id, question, window, scheme, contests and key
 * (ledger.genesis.ElectionDef.encode). */
export function decodeElectionHead(bytes) {
  const f = asList(rlpDecode(bytes, 1 << 20), null, 'election');
  if (f.length < 9) throw new CheckFailed('encoding', 'election: too few fields');
  return {
    id: asText(f[0], 'election id', 64), question: asText(f[1], 'election question', 1024),
    opensAtMs: asSafeInt(f[5], 'election opens_at_ms'), closesAtMs: asSafeInt(f[6], 'election closes_at_ms'),
    payloadScheme: asText(f[8], 'election payload scheme', 64),
    // an encrypted election's contests and joint key (empty until its trustees' ceremony made it)
    contests: f.length > 9 ? asList(f[9], null, 'election contests').map((c, i) => {
      const [question, choices, limit] = asList(c, 3, `election contest ${i}`);
      return {
        question: asText(question, 'contest question', 1024),
        choices: asList(choices, null, 'contest choices').map((x) => asText(x, 'contest choice', 128)),
        limit: asSafeInt(limit, 'contest limit'),
      };
    }) : [],
    jointKey: f.length > 10 ? asBytes(f[10], 'election joint key') : new Uint8Array(0),
  };
}

function certificateFromItem(item) {
  const f = asList(item, 5, 'certificate');
  const signatures = asList(f[4], null, 'certificate signatures').map((s, i) => {
    const pair = asList(s, 2, `certificate signature ${i}`);
    return {
      validatorIndex: asSafeInt(pair[0], 'certificate validator index'),
      signature: asBytes(pair[1], 'certificate signature', 64),
    };
  });
  return {
    chainId: asText(f[0], 'certificate chain id', 64),
    height: asSafeInt(f[1], 'certificate height'),
    round: asSafeInt(f[2], 'certificate round'),
    blockHash: asBytes(f[3], 'certificate block hash', 32),
    signatures,
  };
}

export function decodeCheckpoint(bytes) {
  const f = asList(rlpDecode(bytes, 1 << 20), 2, 'checkpoint');
  return { header: decodeHeader(asBytes(f[0], 'checkpoint header')), certificate: certificateFromItem(f[1]) };
}

const PRECOMMIT = 2;

/** What a validator signs for a vote (ledger.block.vote_digest). */
export function voteDigest(chainId, kind, height, round, blockHash) {
  return taggedHash(VOTE_TAG, rlpEncode([utf8.encode(chainId), intBytes(kind), intBytes(height), intBytes(round), blockHash]));
}

/** CommitCertificate.check: distinct signers in increasing order, each signature valid,
 * more than 2/3 of the voting power. Returns the power that signed. */
export function checkCertificate(cert, validators, chainId, height, blockHash) {
  if (cert.chainId !== chainId) throw new CheckFailed('certificate', `certificate is for chain ${cert.chainId}, not ${chainId}`);
  if (cert.height !== height) throw new CheckFailed('certificate', `certificate is for height ${cert.height}, not ${height}`);
  if (!equalBytes(cert.blockHash, blockHash)) throw new CheckFailed('certificate', 'certificate is for another block');
  const digest = voteDigest(cert.chainId, PRECOMMIT, cert.height, cert.round, cert.blockHash);
  let power = 0n;
  let previous = -1;
  for (const s of cert.signatures) {
    if (s.validatorIndex <= previous) throw new CheckFailed('certificate', 'certificate signers must be unique and in increasing order');
    previous = s.validatorIndex;
    if (s.validatorIndex >= validators.length) throw new CheckFailed('certificate', `certificate names unknown validator ${s.validatorIndex}`);
    const v = validators[s.validatorIndex];
    let ok = false;
    try {
      ok = secp256k1.verify(s.signature, digest, v.publicKey, { prehash: false, lowS: true, format: 'compact' });
    } catch {
      ok = false;
    }
    if (!ok) throw new CheckFailed('signature', `the signature of validator ${v.name} does not verify`);
    power += v.power;
  }
  const total = validators.reduce((n, v) => n + v.power, 0n);
  if (!(3n * power > 2n * total)) {
    throw new CheckFailed('quorum', `certificate carries ${power} of ${total} voting power; more than 2/3 needed`);
  }
  return { power, total, signers: cert.signatures.length };
}

export function validatorSetHash(validators) {
  return taggedHash(VALIDATOR_SET_TAG, rlpEncode(validators.map((v) => [utf8.encode(v.name), v.publicKey, intBytes(v.power)])));
}

// As ledger/block.py Checkpoint.check: the header must name the set it is checked against.
// The page knows genesis's set only; a checkpoint made after a validator set change says so.
export function checkCheckpoint(checkpoint, validators) {
  const h = checkpoint.header;
  if (!equalBytes(h.validatorSetHash, validatorSetHash(validators))) {
    throw new CheckFailed('validator_set', `the checkpoint at height ${h.height} was signed under a validator set changed since genesis; this page checks genesis's set only (check it with ballotledger verify)`);
  }
  return checkCertificate(checkpoint.certificate, validators, h.chainId, h.height, h.hash);
}

// --- genesis (ledger/genesis.py): its hash is computed here, from the file itself ------------
const ENCRYPTED_SCHEME = 'elgamal-secp256k1/v1';

function jsonInt(value, what) {
  if (typeof value === 'boolean') return intBytes(value ? 1 : 0);
  if (!Number.isSafeInteger(value) || value < 0) throw new CheckFailed('genesis', `${what} is not an integer this page can read exactly`);
  return intBytes(value);
}

function text(value, what) {
  if (typeof value !== 'string') throw new CheckFailed('genesis', `${what} is not text`);
  return utf8.encode(value);
}

function electionItem(e, what) {
  const item = [
    text(e.id, `${what}.id`), text(e.question, `${what}.question`),
    (e.choices || []).map((c, i) => text(c, `${what}.choices[${i}]`)),
    fromHex(e.credential_root, `${what}.credential_root`, 32),
    jsonInt(e.credential_count, `${what}.credential_count`), jsonInt(e.opens_at_ms, `${what}.opens_at_ms`),
    jsonInt(e.closes_at_ms, `${what}.closes_at_ms`), text(e.revoting, `${what}.revoting`),
    text(e.payload_scheme, `${what}.payload_scheme`),
  ];
  if (e.payload_scheme === ENCRYPTED_SCHEME) {
    const contests = (e.contests || []).map((c, i) => [
      text(c.question, `${what}.contests[${i}].question`), c.choices.map((x) => text(x, `${what}.contests[${i}].choice`)),
      jsonInt(c.limit, `${what}.contests[${i}].limit`),
    ]);
    item.push(contests, fromHex(e.joint_key || '', `${what}.joint_key`));
    if (e.trustees && e.trustees.length) {
      item.push(e.trustees.map((k) => fromHex(k, `${what}.trustees`, 33)), jsonInt(e.threshold, `${what}.threshold`));
    }
  }
  return item;
}

/** The genesis file's canonical encoding and hash, and its validator set. */
export function readGenesis(obj) {
  if (!obj || obj.format !== 'ballot-ledger/genesis/v1') throw new CheckFailed('genesis', 'not a ballot-ledger/genesis/v1 file');
  const validators = obj.validators.map((v, i) => ({
    index: i, name: v.name, publicKey: fromHex(v.public_key, `validators[${i}].public_key`, 33), power: BigInt(v.power),
  }));
  const p = obj.params;
  const encoded = rlpEncode([
    text(obj.chain_id, 'chain_id'), jsonInt(obj.genesis_time_ms, 'genesis_time_ms'), fromHex(obj.authority, 'authority', 33),
    obj.validators.map((v, i) => [text(v.name, `validators[${i}].name`), validators[i].publicKey, jsonInt(v.power, `validators[${i}].power`)]),
    [jsonInt(p.max_block_ballots, 'params'), jsonInt(p.max_ballot_bytes, 'params'), jsonInt(p.max_payload_bytes, 'params'),
      jsonInt(p.max_proof_depth, 'params'), jsonInt(Boolean(p.contracts), 'params.contracts')],
    obj.elections.map((e, i) => electionItem(e, `elections[${i}]`)),
  ]);
  const setHash = validatorSetHash(validators);
  return {
    chainId: obj.chain_id, hash: taggedHash(GENESIS_TAG, encoded), validators, validatorSetHash: setHash,
    elections: obj.elections, maxBallotBytes: Number(p.max_ballot_bytes),
  };
}

// --- receipts (ledger/receipt.py) ------------------------------------------------------
export const RECEIPT_FORMAT = 'ballot-ledger/receipt/v1';

/** Every check of a receipt, in order; each step is {check, ok, detail}. Stops at the
 * first failure (later checks would mean nothing). `expectedCode`: the code the voter typed. */
export function verifyReceipt(receipt, genesis, expectedCode) {
  const steps = [];
  const run = (check, fn) => {
    try {
      const detail = fn();
      steps.push({ check, ok: true, detail });
      return true;
    } catch (err) {
      const failed = err instanceof CheckFailed ? err : new CheckFailed(check, String(err && err.message));
      steps.push({ check, ok: false, detail: failed.detail, failedCheck: failed.check });
      return false;
    }
  };
  let checkpoint;
  let code;
  let proof;
  const ok = run('code', () => {
    if (!receipt || receipt.format !== RECEIPT_FORMAT) throw new CheckFailed('code', `not a ${RECEIPT_FORMAT} receipt`);
    code = fromHex(receipt.tracking_code, 'tracking code', 32);
    if (expectedCode !== undefined && toHex(code) !== expectedCode) {
      throw new CheckFailed('code', 'the receipt is for another tracking code than the one entered');
    }
    if (!Array.isArray(receipt.inclusion_proof) || receipt.inclusion_proof.length > 64) throw new CheckFailed('encoding', 'inclusion proof is not a list of at most 64 hashes');
    proof = receipt.inclusion_proof.map((h, i) => fromHex(h, `inclusion_proof[${i}]`, 32));
    checkpoint = decodeCheckpoint(fromHex(receipt.checkpoint, 'checkpoint'));
    return toHex(code);
  })
    && run('chain', () => {
      if (receipt.chain_id !== genesis.chainId || checkpoint.header.chainId !== genesis.chainId) {
        throw new CheckFailed('chain', `receipt is for chain ${receipt.chain_id}, not ${genesis.chainId}`);
      }
      return genesis.chainId;
    })
    && run('quorum', () => {
      const r = checkCheckpoint(checkpoint, genesis.validators);
      return `${r.signers} signatures, ${r.power} of ${r.total} voting power`;
    })
    && run('inclusion', () => {
      const h = checkpoint.header;
      if (!Number.isSafeInteger(receipt.height) || receipt.height > h.height) {
        throw new CheckFailed('inclusion', `receipt claims height ${receipt.height}, after its checkpoint at ${h.height}`);
      }
      verifyInclusion(code, receipt.log_index, h.logSize, proof, h.logRoot);
      return `leaf ${receipt.log_index} of ${h.logSize}`;
    });
  return { ok, steps, checkpoint };
}
