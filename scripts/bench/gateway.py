"""Gateway benchmark: one gateway process in front of 4 validator processes, all checks on.

    python scripts/bench/gateway.py [--quick] [--rate R] [--seconds S] [--max-ballots N]

Phase 1 offers ballots at a fixed rate (open loop: latency counts from the moment a
request was due, so a slow server cannot hide its queue); phase 2 offers them as fast as
the gateway answers (closed loop, many connections). Measured: accepted ballots/s (a 202
means checked by the chain rules and durable in the outbox), p50/p99 latency, 5xx count,
group-commit batch sizes and CPU seconds per process (where the time goes). The load
generator is a minimal HTTP/1.1 client on the same two cores. The four validators share
those cores too; by default they run at niceness 10 (--validators-nice), standing in for
validators on their own machines: they get all the CPU the gateway leaves, and the
figures include whether they kept up (the outbox drains). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine

from ballotledger.loadgen import make_ballots
from ballotledger.localnet import Localnet, spawn_gateway, wait_serving
from ballotledger.netsetup import free_ports
from node.config import ConsensusTimeouts
from node.gateway.config import GatewayConfig, add_key

with contextlib.suppress(ImportError):
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@dataclass
class PhaseResult:
    offered: int = 0
    accepted: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 2) if lat else None

        return {
            "offered": self.offered,
            "accepted": self.accepted,
            "seconds": round(self.seconds, 2),
            "accepted_ballots_per_s": round(self.accepted / self.seconds, 1) if self.seconds else 0.0,
            "p50_latency_ms": pct(0.50),
            "p99_latency_ms": pct(0.99),
            "max_latency_ms": pct(1.0),
            "errors_5xx": sum(n for s, n in self.statuses.items() if s >= 500),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough protocol for this benchmark."""

    def __init__(self, host: str, port: int, path_prefix: str, key: str) -> None:
        self.host, self.port = host, port
        self.head = (f"POST {path_prefix} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()


async def offer(url: str, key: str, election: str, bodies: list[bytes], *, rate: float,
                connections: int) -> PhaseResult:
    """Open loop at ``rate``: a request's clock starts when it was due, not when sent."""
    result = PhaseResult(offered=len(bodies))
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conns = [Connection(host, int(port), f"/v1/elections/{election}/ballots", key) for _ in range(connections)]
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    started = time.perf_counter()

    async def worker(conn: Connection) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            due, body = item
            try:
                status = await conn.post(body)
            except (ConnectionError, ValueError, IndexError, asyncio.IncompleteReadError):
                status = 599  # the connection broke: counted as a server error
                await conn.close()
                conn.writer = None
            result.latencies.append(time.perf_counter() - due)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 202:
                result.accepted += 1

    workers = [asyncio.create_task(worker(c)) for c in conns]
    for i, body in enumerate(bodies):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        queue.put_nowait((due, body))
    for _ in conns:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    result.seconds = time.perf_counter() - started
    for c in conns:
        await c.close()
    return result


async def offer_max(url: str, key: str, election: str, bodies: list[bytes], connections: int) -> PhaseResult:
    """Closed loop: each connection sends its next ballot as soon as the last is answered."""
    result = PhaseResult(offered=len(bodies))
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conns = [Connection(host, int(port), f"/v1/elections/{election}/ballots", key) for _ in range(connections)]
    it = iter(bodies)
    started = time.perf_counter()

    async def worker(conn: Connection) -> None:
        for body in it:
            t0 = time.perf_counter()
            try:
                status = await conn.post(body)
            except (ConnectionError, ValueError, IndexError, asyncio.IncompleteReadError):
                status = 599
                await conn.close()
                conn.writer = None
            result.latencies.append(time.perf_counter() - t0)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 202:
                result.accepted += 1

    await asyncio.gather(*(worker(c) for c in conns))
    result.seconds = time.perf_counter() - started
    for c in conns:
        await c.close()
    return result


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_seconds(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return round(t.user + t.system, 2)
    return 0.0


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=2000.0, help="phase 1 offered ballots/s")
    parser.add_argument("--seconds", type=float, default=None, help="phase 1 duration")
    parser.add_argument("--max-ballots", type=int, default=None, help="phase 2 ballots")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--validators-nice", type=int, default=10,
                        help="CPU niceness of the validator processes (0: same priority as the gateway)")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    fixed_n = int(args.rate * seconds)
    max_n = args.max_ballots or (16_000 if args.quick else 60_000)
    figures: dict[str, Any] = {"benchmark": "gateway", "quick": args.quick, "machine": machine(),
                               "validators": 4, "offered_rate": args.rate, "fixed_phase_s": seconds,
                               "connections": args.connections, "validators_nice": args.validators_nice}
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        directory = Path(tmp)
        print(f"init: 4 validators, {fixed_n + max_n} voters ...", file=sys.stderr)
        timeouts = ConsensusTimeouts(propose_ms=2000, prevote_ms=1000, precommit_ms=1000, delta_ms=500,
                                     block_interval_ms=200)
        net = Localnet.create(directory, validators=4, voters=fixed_n + max_n, timeouts=timeouts)
        election = net.genesis.elections[0].election_id
        with net:
            net.start()
            print("signing ballots ...", file=sys.stderr)
            ballots = make_ballots(directory, fixed_n + max_n)
            bodies = [json.dumps({"ballot": raw.hex()}).encode() for raw in ballots]
            net.wait_ready(timeout=120)
            gw_dir = directory / "gateway"
            gw_dir.mkdir()
            key = add_key(gw_dir / "api_keys.json", "bench", rate_per_s=1e9, burst=1e9)
            port = free_ports(1)[0]
            config = GatewayConfig(listen=f"127.0.0.1:{port}", genesis_file=directory / "genesis.json",
                                   validators=tuple(net.rpc_urls), outbox_dir=gw_dir / "outbox",
                                   api_keys_file=gw_dir / "api_keys.json")
            (gw_dir / "gateway.toml").write_text(tomli_w.dumps(config.to_obj()))
            gw = spawn_gateway(gw_dir / "gateway.toml", gw_dir / "gateway.log", log_level="WARNING")
            url = f"http://127.0.0.1:{port}"
            try:
                wait_serving(url + "/readyz", gw, timeout=30, log=gw_dir / "gateway.log")
                gw_proc = psutil.Process(gw.pid)
                nodes = [psutil.Process(p.pid) for p in net.procs.values()]
                # In deployment the validators run at other data centres; here they share
                # this machine's cores with the gateway. Niced, they take the CPU the
                # gateway leaves (they must still keep up: the outbox has to drain).
                for node in nodes:
                    node.nice(args.validators_nice)
                if os.environ.get("GATEWAY_BENCH_PYSPY"):  # where the time goes: py-spy raw stacks
                    subprocess.Popen(["py-spy", "record", "-p", str(gw.pid), "-f", "raw", "-o",
                                            os.environ["GATEWAY_BENCH_PYSPY"], "-d", "15", "-r", "200"])
                cpu0 = cpu_seconds(gw_proc)
                nodes0 = sum(cpu_seconds(p) for p in nodes)
                print(f"phase 1: {fixed_n} ballots at {args.rate}/s ...", file=sys.stderr)
                load0 = self_cpu_s()
                fixed = asyncio.run(offer(url, key, election, bodies[:fixed_n], rate=args.rate,
                                          connections=args.connections))
                load1 = self_cpu_s()
                cpu1 = cpu_seconds(gw_proc)
                nodes1 = sum(cpu_seconds(p) for p in nodes)
                f1 = fixed.figures()
                f1["gateway_cpu_s"] = round(cpu1 - cpu0, 2)
                f1["validators_cpu_s"] = round(nodes1 - nodes0, 2)
                f1["loadgen_cpu_s"] = round(load1 - load0, 2)
                print(f"  {f1}", file=sys.stderr)
                print(f"phase 2: {max_n} ballots as fast as accepted ...", file=sys.stderr)
                fastest = asyncio.run(offer_max(url, key, election, bodies[fixed_n:], args.connections))
                load2 = self_cpu_s()
                f2 = fastest.figures()
                f2["gateway_cpu_s"] = round(cpu_seconds(gw_proc) - cpu1, 2)
                f2["validators_cpu_s"] = round(sum(cpu_seconds(p) for p in nodes) - nodes1, 2)
                f2["loadgen_cpu_s"] = round(load2 - load1, 2)
                print(f"  {f2}", file=sys.stderr)
                metrics = httpx.get(url + "/metrics", timeout=10).text
                commits = metric(metrics, "gateway_outbox_commit_ballots_count")
                committed = metric(metrics, "gateway_outbox_commit_ballots_sum")
                # drain: how long until the chain has what the gateway accepted
                total = fixed.accepted + fastest.accepted
                drain_started = time.perf_counter()
                drained = False
                while time.perf_counter() - drain_started < (30 if args.quick else 120):
                    depth = metric(httpx.get(url + "/metrics", timeout=10).text, "gateway_outbox_depth")
                    if depth == 0:
                        drained = True
                        break
                    time.sleep(0.5)
                figures["fixed_rate"] = f1
                figures["max_rate"] = f2
                figures["accepted_ballots_per_s"] = f1["accepted_ballots_per_s"]
                figures["p50_latency_ms"] = f1["p50_latency_ms"]
                figures["p99_latency_ms"] = f1["p99_latency_ms"]
                figures["max_accepted_ballots_per_s"] = f2["accepted_ballots_per_s"]
                figures["max_rate_p99_latency_ms"] = f2["p99_latency_ms"]
                figures["errors_5xx"] = f1["errors_5xx"] + f2["errors_5xx"]
                figures["outbox_commits"] = int(commits)
                figures["ballots_per_commit_mean"] = round(committed / commits, 1) if commits else None
                figures["accepted_total"] = total
                figures["outbox_drained"] = drained
                figures["outbox_drain_s"] = round(time.perf_counter() - drain_started, 1)
            finally:
                gw.terminate()
                try:
                    gw.wait(15)
                except subprocess.TimeoutExpired:
                    gw.kill()
    emit(figures)


if __name__ == "__main__":
    main()
