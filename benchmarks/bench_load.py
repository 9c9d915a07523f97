"""Reward service under concurrent clients (issue 15.6): throughput, p50/p99 latency, and where
it starts refusing with RESOURCE_EXHAUSTED instead of slowing everyone.

The service runs as a separate process (``python -m maestromotif.kit reward``, = ``maestromotif serve reward``) on loopback with
untrained models (``init_random``: same cost as trained ones), the cache off (every call does
a forward pass) and ``max_concurrent_rpcs`` set. For each N in BENCH_LOAD_CLIENTS, N client
threads (one channel each) send Score batches of BENCH_LOAD_BATCH transitions back to back for
BENCH_LOAD_SECONDS; refused calls are counted and retried after 10 ms (so the refused fraction
counts retries: it says how often a caller is turned away, not how many callers are).
Printed and written to ``benchmarks/results/load.json`` (the shared result format of ``benchmarks/report.py``): per N, answered transitions/s, p50/p99
latency of answered calls, and the refused fraction; plus the first N with refusals.
The baseline is N=1 in the same run (throughput ratios are against it).
Environment: BENCH_LOAD_CLIENTS (default 1,2,4,8,16), BENCH_LOAD_SECONDS (5), BENCH_LOAD_BATCH
(32), BENCH_LOAD_MAX_RPCS (4), BENCH_LOAD_THREADS (server torch threads, 1).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import grpc
import numpy as np

from benchmarks.report import Run
from maestromotif.kit.client import wait_for_serving
from maestromotif.v1 import reward_pb2, reward_pb2_grpc

RETRY_S = 0.01


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float | None:
    """The q-th percentile of latencies in seconds, in ms (None when there are none)."""
    return round(float(np.percentile(np.array(values), q)) * 1000, 2) if values else None


def _request(n: int, seed: int) -> reward_pb2.ScoreRequest:
    rng = np.random.default_rng(seed)
    messages = np.zeros((n, 256), np.uint8)
    messages[:, :24] = rng.integers(32, 127, size=(n, 24), dtype=np.uint8)
    stat_changes = np.zeros((n, 5), "<f4")
    stat_changes[:, 0] = rng.choice([-1.0, 0.0, 1.0], size=n)
    return reward_pb2.ScoreRequest(
        count=n, skills=rng.integers(0, 5, size=n, dtype=np.uint8).tobytes(), messages=messages.tobytes(),
        stat_changes=stat_changes.tobytes(), message_counts=np.ones(n, "<f4").tobytes(),
    )


def _run_level(address: str, clients: int, seconds: float, batch: int) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    refused = [0] * clients
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(i: int) -> None:
        channel = grpc.insecure_channel(address)
        stub = reward_pb2_grpc.RewardStub(channel)
        request = _request(batch, i)
        for _ in range(600):  # connect and warm before the clock starts (refusals: try again)
            try:
                stub.Score(request, timeout=60)
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    errors.append(f"warm-up {exc.code().name}: {exc.details()}")
                    break
                time.sleep(0.1)
        start.wait(300)
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                stub.Score(request, timeout=60)
                latencies[i].append(time.perf_counter() - t0)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused[i] += 1
                    time.sleep(RETRY_S)
                else:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                    break
        channel.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 3600  # set properly once everyone is connected
    start.wait(300)
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.perf_counter() - t0
    lat = np.array([x for per in latencies for x in per])
    answered, total_refused = len(lat), sum(refused)
    return {
        "clients": clients,
        "answered_calls": answered,
        "refused_calls": total_refused,
        "refused_fraction": round(total_refused / max(1, answered + total_refused), 4),
        "refused_per_s": round(total_refused / elapsed, 1),
        "transitions_per_s": round(answered * batch / elapsed, 1),
        "p50_ms": _pct(list(lat), 50),
        "latency_samples": answered,
        "p99_ms": _pct(list(lat), 99),
        "errors": errors[:5],
    }


def main() -> None:
    levels = [int(x) for x in os.environ.get("BENCH_LOAD_CLIENTS", "1,2,4,8,16").split(",")]
    seconds = float(os.environ.get("BENCH_LOAD_SECONDS", "5"))
    batch = int(os.environ.get("BENCH_LOAD_BATCH", "32"))
    max_rpcs = int(os.environ.get("BENCH_LOAD_MAX_RPCS", "4"))
    threads = int(os.environ.get("BENCH_LOAD_THREADS", "1"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTROMOTIF_")}
    env.update({
        "MAESTROMOTIF_REWARD_HOST": "127.0.0.1", "MAESTROMOTIF_REWARD_PORT": str(port),
        "MAESTROMOTIF_REWARD_METRICS_ENABLED": "false", "MAESTROMOTIF_REWARD_INIT_RANDOM": "true",
        "MAESTROMOTIF_REWARD_CACHE_ENABLED": "false", "MAESTROMOTIF_REWARD_THREADS": str(threads),
        "MAESTROMOTIF_REWARD_MAX_CONCURRENT_RPCS": str(max_rpcs), "MAESTROMOTIF_REWARD_RELOAD_INTERVAL_S": "0",
        "MAESTROMOTIF_REWARD_LOG_LEVEL": "WARNING",
    })
    address = f"127.0.0.1:{port}"
    run = Run("load")
    server = subprocess.Popen([sys.executable, "-m", "maestromotif.kit", "reward"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_serving(address, timeout_s=120, alive=lambda: server.poll() is None)
        rows = []
        for n in levels:
            row = _run_level(address, n, seconds, batch)
            rows.append(row)
            print(f"N={n:3d}  {row['transitions_per_s']:9.1f} transitions/s  p50 {row['p50_ms']} ms  "
                  f"p99 {row['p99_ms']} ms  refused {row['refused_fraction']:.1%}"
                  + (f"  errors {row['errors']}" if row["errors"] else ""), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    base = rows[0]["transitions_per_s"] or 1.0
    for row in rows:
        row["throughput_vs_n1"] = round(row["transitions_per_s"] / base, 3)
    first_refusing = next((r["clients"] for r in rows if r["refused_calls"]), None)
    print(f"first N answered with RESOURCE_EXHAUSTED: {first_refusing} (max_concurrent_rpcs={max_rpcs})")
    run.write(
        # throughput at N clients relative to one client: flat or rising means no one is slowed down
        ratios={f"throughput_N{r['clients']}_vs_N1": r["throughput_vs_n1"] for r in rows[1:]},
        sides={"levels": rows, "first_n_refusing": first_refusing},
        settings={"clients": levels, "seconds_per_level": seconds, "batch": batch, "max_concurrent_rpcs": max_rpcs,
                  "server_torch_threads": threads, "models": "init_random"},
        workload="reward Score under N concurrent loopback clients; server a separate process, cache off",
    )


if __name__ == "__main__":
    main()
