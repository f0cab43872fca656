// ethers.js v6, unmodified, against the node's Ethereum JSON-RPC: reads blocks,
// transactions, receipts and logs, calls the registry's views, sends a signed
// transaction, and waits for it and its event through ethers' filter subscriptions.
// Usage: node conformance.mjs URL AUTHORITY_KEY_HEX REGISTRY ABI_JSON ELECTION_KEY WS_URL
// Prints one JSON object of what it saw.
import { readFileSync } from "node:fs";
import {
  Contract, JsonRpcProvider, Wallet, WebSocketProvider, concat, decodeRlp, keccak256, toBeHex, zeroPadValue,
} from "ethers";

const [url, key, registry, abiPath, electionKey, wsUrl] = process.argv.slice(2);
const abi = JSON.parse(readFileSync(abiPath, "utf8"));
const provider = new JsonRpcProvider(url, undefined, { pollingInterval: 200 });
const withTimeout = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: timed out`)), ms))]);

const out = {};
const network = await provider.getNetwork();
out.chainId = network.chainId.toString();
out.blockNumber = await provider.getBlockNumber();
const genesis = await provider.getBlock(0);
out.genesisHash = genesis.hash;
const latest = await provider.getBlock("latest", true);
out.latestTransactions = latest.prefetchedTransactions.map((tx) => tx.hash);
const fee = await provider.getFeeData();
out.fees = [fee.gasPrice, fee.maxFeePerGas, fee.maxPriorityFeePerGas].map(String);
const first = await provider.getBlock(1);
const tx = await provider.getTransaction(first.transactions[0]);
const receipt = await provider.getTransactionReceipt(first.transactions[0]);
out.firstTx = { from: tx.from, to: tx.to, nonce: tx.nonce, status: receipt.status, logs: receipt.logs.length };
out.registryLogs = (await provider.getLogs({ fromBlock: 0, toBlock: "latest", address: registry })).length;
out.code = (await provider.getCode(registry)).length;
out.balance = String(await provider.getBalance(registry));
out.storage0 = await provider.getStorage(registry, 0);

const registryContract = new Contract(registry, abi, provider);
out.phaseBefore = Number(await registryContract.phase(electionKey));
out.phaseChanges = (await registryContract.queryFilter(registryContract.filters.PhaseChanged(), 0, "latest")).length;

const wallet = new Wallet(key, provider);
out.nonce = await provider.getTransactionCount(wallet.address, "pending");
// over WebSocket: eth_subscribe newHeads and logs, as ethers' WebSocketProvider does it
const socket = new WebSocketProvider(wsUrl);
const socketRegistry = new Contract(registry, abi, socket);
const socketHead = new Promise((resolve) => socket.once("block", (n) => resolve(n)));
const socketEvent = new Promise((resolve) =>
  socketRegistry.on("PhaseChanged", (id, oldPhase, newPhase) => {
    if (id === electionKey) resolve([Number(oldPhase), Number(newPhase)]);
  }));
out.socketChainId = (await socket.getNetwork()).chainId.toString();
const seenEvent = new Promise((resolve) =>
  registryContract.on("PhaseChanged", (id, oldPhase, newPhase) => {
    if (id === electionKey) resolve([Number(oldPhase), Number(newPhase)]);
  }));
const pending = await provider.send("eth_newPendingTransactionFilter", []);
await new Promise((resolve) => setTimeout(resolve, 500)); // let the event filter install
const sent = await registryContract.connect(wallet).close_election(electionKey);
const mined = await withTimeout(sent.wait(), 20000, "wait");
out.sentStatus = mined.status;
out.sentBlock = mined.blockNumber;
out.event = await withTimeout(seenEvent, 20000, "event");
out.socketHead = await withTimeout(socketHead, 20000, "socket head");
out.socketEvent = await withTimeout(socketEvent, 20000, "socket event");
await socket.destroy();
out.pendingChanges = await provider.send("eth_getFilterChanges", [pending]);
out.phaseAfter = Number(await registryContract.phase(electionKey));
out.proof = await provider.send("eth_getProof", [registry, ["0x0"], "latest"]);

// A Merkle-Patricia proof checked here, independently of the node's Python: the value
// under keccak256(key) in the trie of `root`, or null where the proof shows none.
function proven(root, key, proof) {
  const nodes = new Map(proof.map((encoded) => [keccak256(encoded), decodeRlp(encoded)]));
  const path = [...keccak256(key).slice(2)].map((c) => parseInt(c, 16));
  let node = nodes.get(root);
  for (;;) {
    if (node === undefined) throw new Error("proof misses a node");
    let next;
    if (node.length === 17) {
      if (path.length === 0) return node[16];
      next = node[path.shift()];
    } else {
      const compact = [...node[0].slice(2)].map((c) => parseInt(c, 16));
      const leaf = compact[0] >= 2;
      const part = compact.slice(compact[0] % 2 === 1 ? 1 : 2);
      if (part.some((n, i) => n !== path[i])) return null;
      path.splice(0, part.length);
      if (leaf) return path.length === 0 ? node[1] : null;
      next = node[1];
    }
    if (next === "0x") return null;
    node = Array.isArray(next) ? next : nodes.get(next);
  }
}
const at = await provider.getBlock(mined.blockNumber);
const phaseSlot = BigInt(keccak256(concat([zeroPadValue("0x00", 32), electionKey]))) + 8n;
const answer = await provider.send("eth_getProof", [registry, [toBeHex(phaseSlot)], toBeHex(at.number)]);
const account = decodeRlp(proven(at.stateRoot, registry, answer.accountProof));
const stored = proven(account[2], zeroPadValue(toBeHex(phaseSlot), 32), answer.storageProof[0].proof);
out.provenPhase = stored === null ? 0 : Number(BigInt(decodeRlp(stored)));
out.provenStorageHash = account[2] === answer.storageHash;
registryContract.removeAllListeners();
provider.destroy();
console.log(JSON.stringify(out));
process.exit(0); // the time-out timers of withTimeout would hold the process for their full length
