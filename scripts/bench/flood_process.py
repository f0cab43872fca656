"""A real validator under a Byzantine validator's flood: its memory, and finality meanwhile.

    python scripts/bench/flood_process.py [--quick] [--seconds 60] [--rate 1000]

Four validators on loopback; three run as processes, the fourth is Byzantine: this script
holds its key, connects to validator 0 over the authenticated peer link as that
validator, and sends ``rate`` properly signed prevotes per second, for rounds 1, 2, 3, ...
of the height validator 0 is deciding (each one a new round, the attack that once made the
core's tables grow without bound), for ``seconds``. Reported: validator 0's resident
memory before and after the flood and its peak, the frames sent, and the heights the
three honest validators finalized meanwhile (they hold more than 2/3 of the power).
``--quick``: 20 s. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psutil
from _common import emit, machine

from ballotledger.localnet import Localnet
from ledger.block import VoteKind
from node.config import NodeConfig, read_key
from node.consensus.messages import Vote, encode_message
from node.frames import FrameType
from node.transport import PeerTransport
from verifier.rpc_client import RpcClient

BYZANTINE = 3


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def flood(net: Localnet, seconds: float, rate: int) -> dict[str, object]:
    """Connect as the Byzantine validator and send ``rate`` new-round prevotes a second."""
    config = NodeConfig.load(net.configs[BYZANTINE])
    key = read_key(config.key_file)
    genesis = net.genesis
    transport = PeerTransport(
        key, chain_id=genesis.chain_id, genesis_hash=genesis.hash(),
        validators={v.public_key: v.name for v in genesis.validators.validators}, port=0,
    )
    await transport.start()
    target = NodeConfig.load(net.configs[0])
    target_key = read_key(target.key_file).public_key
    transport.connect_to([_address(target.p2p_listen)])
    deadline = time.monotonic() + 30
    while target_key not in transport.peers():
        if time.monotonic() > deadline:
            raise SystemExit("the Byzantine validator could not connect to validator 0")
        await asyncio.sleep(0.05)
    index = genesis.validators.index_of(key.public_key)
    assert index is not None
    sent = refused = 0
    round_ = 1
    height = 1
    started = time.monotonic()
    next_status = 0.0
    with RpcClient(net.rpc_urls[0], timeout=2.0) as rpc:
        while (now := time.monotonic()) - started < seconds:
            if now >= next_status:  # follow the height validator 0 is deciding
                height = int(rpc.call("ballot_status")["height"]) + 1
                next_status = now + 1.0
            due = int((now - started) * rate)
            while sent + refused < due:
                vote = Vote.sign(key, chain_id=genesis.chain_id, kind=VoteKind.PREVOTE, height=height,
                                 round_=round_, block_hash=b"", validator_index=index)
                round_ += 1
                if transport.send(target_key, FrameType.CONSENSUS, encode_message(vote)):
                    sent += 1
                else:
                    refused += 1
            await asyncio.sleep(0.002)
    link_up = target_key in transport.peers()  # not dropped or banned for the flood's rate
    await transport.stop()
    return {"frames_sent": sent, "frames_not_queued": refused, "rounds": round_ - 1, "link_up_at_end": link_up}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        net = Localnet.create(Path(tmp) / "net", validators=4, voters=16)
        try:
            net.start(0)
            net.start(1)
            net.start(2)
            net.wait_ready(indexes=[0, 1, 2])
            time.sleep(5)  # past start-up allocations
            node0 = psutil.Process(net.procs[0].pid)
            with RpcClient(net.rpc_urls[0]) as rpc:
                height_before = int(rpc.call("ballot_status")["height"])
            rss_before = node0.memory_info().rss
            peak = rss_before

            async def run() -> dict[str, object]:
                nonlocal peak
                task = asyncio.create_task(flood(net, seconds, args.rate))
                while not task.done():
                    peak = max(peak, node0.memory_info().rss)
                    await asyncio.sleep(0.5)
                return await task

            figures = asyncio.run(run())
            rss_after = node0.memory_info().rss
            with RpcClient(net.rpc_urls[0]) as rpc:
                height_after = int(rpc.call("ballot_status")["height"])
            alive = net.procs[0].poll() is None
        finally:
            net.stop()
    mib = 1 << 20
    emit({
        "benchmark": "flood_process",
        "quick": args.quick,
        "machine": machine(),
        "seconds": seconds,
        "rate_per_s": args.rate,
        **figures,
        "validator_rss_before_mib": round(rss_before / mib, 1),
        "validator_rss_after_mib": round(rss_after / mib, 1),
        "validator_rss_peak_mib": round(peak / mib, 1),
        "validator_rss_growth_mib": round((peak - rss_before) / mib, 1),
        "heights_finalized_during_flood": height_after - height_before,
        "validator_alive": alive,
    })


if __name__ == "__main__":
    main()
