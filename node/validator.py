"""The validator process: the consensus core, the ledger and the network, wired.

A thin asyncio driver. The consensus core decides, the ledger rules judge, the store
keeps; this module only moves bytes between them in the order the core requires: a
message is in the signing log before it is sent, a decided block is on disk before the
next input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from contracts import ContractError
from ledger import codec
from ledger.block import CommitCertificate
from ledger.chain import Chain
from ledger.errors import BadTransaction, LedgerError
from ledger.genesis import Genesis
from ledger.rules import admitted_from_flags
from node.app import LedgerApplication
from node.config import NodeConfig, read_key, split_address
from node.consensus.core import (
    Broadcast,
    ConsensusCore,
    Decide,
    Output,
    Persist,
    ScheduleTimeout,
    Timeout,
    TimeoutParams,
)
from node.consensus.messages import decode_message, encode_message
from node.eth_rpc import EthMethods
from node.evm import open_executor
from node.frames import FrameType, decode_batch, encode_batch
from node.jsonrpc import hex_param
from node.mempool import Mempool
from node.precheck import BallotPrechecker
from node.rpc_methods import BallotMethods
from node.rpc_server import RpcServer
from node.transport import PeerTransport
from node.txpool import TxPool
from node.wal import SigningLog

log = logging.getLogger("node.validator")

SYNC_BATCH_BLOCKS = 200
SYNC_RESPONSE_BYTES = 6 * 1024 * 1024
SYNC_RETRY_S = 0.5
GOSSIP_FLUSH_S = 0.01
MAX_GOSSIP_BATCH = 2000
BAD_MESSAGE_PENALTY = 20.0


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class ValidatorNode:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis = Genesis.from_json(config.genesis_file.read_bytes())
        key = read_key(config.key_file)
        self.public_key = key.public_key
        self.index = self.genesis.validators.index_of(key.public_key)
        # The contract state has its own LevelDB (synced writes) beside the chain's.
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = (
            open_executor(self.genesis, path=config.data_dir / "evm") if self.genesis.params.contracts else None
        )
        self.chain = Chain(config.data_dir / "db", self.genesis, self.engine)
        self.wal = SigningLog(config.data_dir / "wal")
        self.mempool = Mempool(
            self.genesis, self.chain.store, max_size=config.mempool_max,
            open_elections=self._open_elections if self.engine else None,
        )
        self.chain.proofs = self.mempool.proofs  # one cache of proven credential paths
        self.txpool = TxPool(self.engine, self._tip_state) if self.engine is not None else None
        self.app = LedgerApplication(self.chain, self.mempool, key.public_key, wall_clock_ms, txpool=self.txpool)
        t = config.timeouts
        self.timeouts = TimeoutParams(
            propose=t.propose_ms / 1000,
            propose_delta=t.delta_ms / 1000,
            prevote=t.prevote_ms / 1000,
            prevote_delta=t.delta_ms / 1000,
            precommit=t.precommit_ms / 1000,
            precommit_delta=t.delta_ms / 1000,
            commit=t.block_interval_ms / 1000,
        )
        height = self.chain.store.height + 1
        signed = [decode_message(r) for r in self.wal.records(height)]
        self.core = ConsensusCore(
            chain_id=self.genesis.chain_id,
            validators=self.genesis.validators,
            index=self.index,
            key=key if self.index is not None else None,
            height=height,
            app=self.app,
            timeouts=self.timeouts,
            signed_log=signed,
        )
        host, port = split_address(config.p2p_listen)
        self.transport = PeerTransport(
            key,
            chain_id=self.genesis.chain_id,
            genesis_hash=self.genesis.hash(),
            validators={v.public_key: v.name for v in self.genesis.validators.validators},
            host=host,
            port=port,
            on_frame=self._on_frame,
        )
        rpc_host, rpc_port = split_address(config.rpc_listen)
        methods = BallotMethods(self).table()
        if self.engine is not None:
            methods.update(EthMethods(self.chain.store, self.engine).table())
            methods["eth_sendRawTransaction"] = self._send_raw_transaction
        self.rpc = RpcServer(methods, rpc_host, rpc_port, config.rpc_limits)
        self.prechecker = BallotPrechecker(self.genesis)
        self._gossip: list[bytes] = []
        self._gossip_scheduled = False
        self._last_sync_request = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters: dict[str, int] = {}
        self.started_at = time.time()

    def _tip_state(self) -> tuple[bytes, int]:
        tip = self.chain.store.tip
        return tip.state_root, tip.height

    async def _send_raw_transaction(self, data: str) -> str:
        """eth_sendRawTransaction: an authority transaction into the pool, then to peers."""
        assert self.txpool is not None
        raw = hex_param(data, "transaction", max_size=64 * 1024)
        tx_hash = self.txpool.admit(raw, wall_clock_ms())
        self.transport.broadcast(FrameType.EVM_TX, raw)
        return "0x" + tx_hash.hex()

    def _open_elections(self, now_ms: int) -> frozenset[str]:
        assert self.engine is not None
        return self.engine.open_elections(self.chain.store.tip.state_root, now_ms)

    # --- lifecycle ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        await self.transport.start()
        self.transport.connect_to(split_address(p.address) for p in self.config.peers)
        await self.rpc.start()
        log.info("%s serving: p2p %s, rpc %s, height %d", self.config.name, self.config.p2p_listen,
                 self.config.rpc_listen, self.chain.store.height)
        self._perform(self.core.start())
        try:
            await stop.wait()
        finally:
            await self.rpc.stop()
            await self.transport.stop()
            self.prechecker.close()
            self.wal.close()
            self.chain.close()
            log.info("%s stopped at height %d", self.config.name, self.chain.store.height)

    # --- performing the core's outputs ----------------------------------------------------
    def _perform(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Persist):
                self.wal.append(out.message.height, encode_message(out.message))
            elif isinstance(out, Broadcast):
                self.transport.broadcast(FrameType.CONSENSUS, encode_message(out.message))
            elif isinstance(out, ScheduleTimeout):
                assert self._loop is not None
                self._loop.call_later(out.delay_s, self._on_timer, out.timeout)
            elif isinstance(out, Decide):
                self._commit(out.block, out.certificate)

    def _on_timer(self, timeout: Timeout) -> None:
        self._perform(self.core.on_timeout(timeout))

    def _commit(self, block: bytes, certificate: CommitCertificate) -> None:
        try:
            effects = self.app.commit(block, certificate)
        except LedgerError:
            # The core only decides blocks the rules accepted and a quorum certified;
            # failing here means the disk or the code is broken: stop rather than fork.
            log.critical("could not commit decided block %d", certificate.height, exc_info=True)
            raise
        self.wal.prune_below(certificate.height + 1)
        self._bump("blocks_committed")
        log.debug("committed height %d with %d ballots", certificate.height, len(effects.ballots))

    # --- network --------------------------------------------------------------------------
    async def _on_frame(self, peer: bytes, frame_type: FrameType, payload: bytes) -> None:
        try:
            if frame_type == FrameType.CONSENSUS:
                self._on_consensus(peer, payload)
            elif frame_type == FrameType.TXS:
                raws = decode_batch(payload, max_items=MAX_GOSSIP_BATCH)
                self.mempool.admit_many(raws, wall_clock_ms())
            elif frame_type == FrameType.EVM_TX and self.txpool is not None:
                with contextlib.suppress(ContractError, BadTransaction):  # stale by now: no fault of the peer
                    self.txpool.admit(payload, wall_clock_ms())
            elif frame_type == FrameType.SYNC_REQUEST:
                self._on_sync_request(peer, payload)
            elif frame_type == FrameType.SYNC_RESPONSE:
                await self._on_sync_response(peer, payload)
        except LedgerError as exc:
            self._bump(f"bad_{frame_type.name.lower()}")
            self.transport.report_misbehaviour(peer, BAD_MESSAGE_PENALTY, f"{frame_type.name}: {exc}")

    def _on_consensus(self, peer: bytes, payload: bytes) -> None:
        message = decode_message(payload)
        if message.height > self.core.height:
            self._request_sync(peer)
        self._perform(self.core.on_message(message))

    def gossip_ballots(self, raws: list[bytes]) -> None:
        """Send newly admitted ballots to every peer, batched over a few milliseconds."""
        self._gossip.extend(raws)
        if not self._gossip_scheduled and self._loop is not None:
            self._gossip_scheduled = True
            self._loop.call_later(GOSSIP_FLUSH_S, self._flush_gossip)

    def _flush_gossip(self) -> None:
        self._gossip_scheduled = False
        pending, self._gossip = self._gossip, []
        for i in range(0, len(pending), MAX_GOSSIP_BATCH):
            self.transport.broadcast(FrameType.TXS, encode_batch(pending[i : i + MAX_GOSSIP_BATCH]))

    # --- block sync -----------------------------------------------------------------------
    def _request_sync(self, peer: bytes, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sync_request < SYNC_RETRY_S:
            return
        self._last_sync_request = now
        start = self.chain.store.height + 1
        payload = codec.encode([codec.int_bytes(start), codec.int_bytes(SYNC_BATCH_BLOCKS)])
        self.transport.send(peer, FrameType.SYNC_REQUEST, payload)
        self._bump("sync_requests")

    def _on_sync_request(self, peer: bytes, payload: bytes) -> None:
        fields = codec.as_list(codec.decode(payload, max_size=64), 2, "sync request")
        start = max(1, codec.as_int(fields[0], "sync start"))
        count = min(codec.as_int(fields[1], "sync count"), SYNC_BATCH_BLOCKS)
        store = self.chain.store
        items: list[codec.Item] = []
        size = 0
        for height in range(start, min(store.height, start + count - 1) + 1):
            block, cert = store.raw_block(height), store.raw_certificate(height)
            size += len(block) + len(cert)
            if items and size > SYNC_RESPONSE_BYTES:
                break
            items.append([block, cert])
        self.transport.send(peer, FrameType.SYNC_RESPONSE, codec.encode(items))

    async def _on_sync_response(self, peer: bytes, payload: bytes) -> None:
        items = codec.as_list(codec.decode(payload), None, "sync response")
        entries: list[tuple[bytes, CommitCertificate]] = []
        for item in items:
            pair = codec.as_list(item, 2, "sync entry")
            block = codec.as_bytes(pair[0], "sync block")
            entries.append((block, CommitCertificate.decode(codec.as_bytes(pair[1], "sync certificate"))))
        entries = [e for e in entries if e[1].height > self.chain.store.height]
        if not entries:
            return
        # Signatures and proofs in worker processes first; the in-order apply skips them.
        flags = await self.prechecker.check([block for block, _ in entries])
        applied = 0
        for (block, certificate), ok in zip(entries, flags, strict=True):
            if certificate.height != self.chain.store.height + 1:
                continue  # decided meanwhile by consensus, or out of order
            self.app.extra_admitted = admitted_from_flags(self.genesis, block, ok)
            try:
                # The core checks the block with the ledger rules and the certificate's
                # quorum before deciding it; a bad entry is dropped and counted there.
                before = self.chain.store.height
                self._perform(self.core.on_commit(block, certificate))
            finally:
                self.app.extra_admitted = {}
            if self.chain.store.height == before:
                raise LedgerError(f"synced block {certificate.height} was refused")
            applied += 1
        if applied:
            self._bump("blocks_synced", applied)
            if applied == len(entries):
                self._request_sync(peer, force=True)  # there may be more

    # --- status ---------------------------------------------------------------------------
    def _bump(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    def status(self) -> dict[str, Any]:
        store = self.chain.store
        return {
            "name": self.config.name,
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.hash().hex(),
            "validator_index": self.index,
            "height": store.height,
            "tip_hash": store.tip.block_hash.hex(),
            "log_size": store.log_size,
            "round": self.core.round,
            "step": self.core.step.name.lower(),
            "peers": sorted(self.transport.peer_name(p) for p in self.transport.peers()),
            "mempool": len(self.mempool),
            "consensus": dict(self.core.stats),
            "counters": dict(self.counters),
            "uptime_s": round(time.time() - self.started_at, 1),
        }


async def run_node(config: NodeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node = ValidatorNode(config)
    await node.run(stop)
