"""Agent API under concurrent clients (issue 15.6): throughput, p50/p99 latency, and where it
starts refusing with RESOURCE_EXHAUSTED instead of slowing everyone.

The agent runs as a separate process (``python -m maestromotif.kit agent`` = ``maestromotif serve
agent``) on loopback, playing with an untrained learner checkpoint of the small preset (made here,
in a temporary folder: the same network cost as a trained one; episodes are short because the
untrained policy dies soon). Bounds: ``max_episodes_per_caller`` (BENCH_LOAD_AGENT_PER_CALLER, 2)
and ``max_active_episodes`` (BENCH_LOAD_AGENT_MAX_EPISODES, 4, sized for a 2-core machine).

Three workloads, each for N in BENCH_LOAD_CLIENTS (1,2,4,8,16) client threads (one channel each)
for BENCH_LOAD_SECONDS (5) per level, calls back to back:

- ``info``: GetServerInfo (no episode bound applies);
- ``play``: PlayTask episodes of at most BENCH_LOAD_AGENT_STEPS (50) steps, events only at skill
  switches and the end; every client is its own caller (a bearer token of its own: auth is off,
  and the agent keys its per-caller bound on the token when one is sent, else on the peer host,
  which all loopback clients share), so the global bound is the one reached;
- ``play_one_caller``: the same, all clients one caller (no token): the per-caller bound.

A refused call (RESOURCE_EXHAUSTED) is counted and retried after 10 ms, as in ``bench_load``.
During the play workloads a probe thread calls GetServerInfo every 50 ms: its p50/p99 say
whether cheap calls wait behind the episodes. Latency of a play call is the whole episode (call
to end event). The baseline is N=1 of the same workload in the same run. Result:
``benchmarks/results/load_agent.json`` (the shared format of ``benchmarks/report.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from benchmarks.bench_load import _free_port, _pct
from benchmarks.report import Run
from maestromotif.kit.client import wait_for_serving
from maestromotif.v1 import agent_pb2, agent_pb2_grpc, common_pb2

RETRY_S = 0.01
PROBE_EVERY_S = 0.05
TASKS = ("gnomish", "delphi", "minetown", "transactions")


def _checkpoint(root: Path) -> Path:
    """An untrained learner checkpoint of the small preset (the format the agent loads)."""
    import torch

    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import LearnerDriver

    torch.set_num_threads(1)
    LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=8 * 32), root, "exp").save({"env_steps": 0})
    return root / "exp"


class _Probe:
    """GetServerInfo every PROBE_EVERY_S on its own channel, while a level runs."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        channel = grpc.insecure_channel(self.address)
        stub = agent_pb2_grpc.AgentStub(channel)
        while not self._stop.wait(PROBE_EVERY_S):
            t0 = time.perf_counter()
            try:
                stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=30)
                self.latencies.append(time.perf_counter() - t0)
            except grpc.RpcError as exc:
                self.failures.append(f"{exc.code().name}: {exc.details()}")
        channel.close()

    def __enter__(self) -> _Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def _run_level(address: str, workload: str, clients: int, seconds: float, max_steps: int) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    steps = [0] * clients
    refused = [0] * clients
    reasons: dict[str, int] = {}
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    stop_at = [time.perf_counter() + 3600]
    lock = threading.Lock()

    def once(stub: agent_pb2_grpc.AgentStub, i: int, n: int, metadata: Any) -> int:
        """One call; the steps it played (0 for GetServerInfo)."""
        if workload == "info":
            stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=60)
            return 0
        request = agent_pb2.PlayTaskRequest(task=agent_pb2.TaskSelector(task_name=TASKS[(i + n) % len(TASKS)]),
                                            seed=1000 * i + n, max_steps=max_steps, step_event_every=0)
        end = None
        for event in stub.PlayTask(request, timeout=120, metadata=metadata):
            if event.HasField("end"):
                end = event.end
        if end is None:
            raise RuntimeError("stream ended without an end event")
        return int(end.steps)

    def client(i: int) -> None:
        channel = grpc.insecure_channel(address)
        stub = agent_pb2_grpc.AgentStub(channel)
        metadata = (("authorization", f"Bearer bench-client-{i}"),) if workload == "play" else None
        n = 0
        for _ in range(600):  # connect and warm before the clock starts (refusals: try again)
            try:
                once(stub, i, n, metadata)
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    errors.append(f"warm-up {exc.code().name}: {exc.details()}")
                    break
                time.sleep(0.1)
        start.wait(600)
        while time.perf_counter() < stop_at[0]:
            n += 1
            t0 = time.perf_counter()
            try:
                steps[i] += once(stub, i, n, metadata)
                latencies[i].append(time.perf_counter() - t0)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused[i] += 1
                    reason = "caller" if "this caller" in (exc.details() or "") else "server"
                    with lock:
                        reasons[reason] = reasons.get(reason, 0) + 1
                    time.sleep(RETRY_S)
                else:
                    errors.append(f"{exc.code().name}: {exc.details()}")
                    break
        channel.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    with _Probe(address) as probe:
        start.wait(600)
        probe.latencies.clear()  # only while the level's clock runs
        t0 = time.perf_counter()
        stop_at[0] = t0 + seconds
        for t in threads:
            t.join(seconds + 180)
        elapsed = time.perf_counter() - t0
    lat = [x for per in latencies for x in per]
    answered, total_refused = len(lat), sum(refused)
    return {
        "workload": workload,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "answered_calls": answered,
        "refused_calls": total_refused,
        "refused_by_bound": dict(sorted(reasons.items())),
        "refused_fraction": round(total_refused / max(1, answered + total_refused), 4),
        "calls_per_s": round(answered / elapsed, 2),
        "agent_steps_per_s": round(sum(steps) / elapsed, 1),
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "probe_info_p50_ms": _pct(probe.latencies, 50),
        "probe_info_p99_ms": _pct(probe.latencies, 99),
        "probe_calls": len(probe.latencies),
        "probe_failures": probe.failures[:3],
        "errors": errors[:5],
    }


def main() -> None:
    levels = [int(x) for x in os.environ.get("BENCH_LOAD_CLIENTS", "1,2,4,8,16").split(",")]
    seconds = float(os.environ.get("BENCH_LOAD_SECONDS", "5"))
    max_steps = int(os.environ.get("BENCH_LOAD_AGENT_STEPS", "50"))
    per_caller = int(os.environ.get("BENCH_LOAD_AGENT_PER_CALLER", "2"))
    max_episodes = int(os.environ.get("BENCH_LOAD_AGENT_MAX_EPISODES", "4"))
    workloads = os.environ.get("BENCH_LOAD_AGENT_WORKLOADS", "info,play,play_one_caller").split(",")
    unknown = set(workloads) - {"info", "play", "play_one_caller"}
    if unknown:
        raise SystemExit(f"BENCH_LOAD_AGENT_WORKLOADS: unknown {sorted(unknown)}; use info, play, play_one_caller")
    run = Run("load_agent")
    port = _free_port()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        checkpoint = _checkpoint(Path(tmp))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTROMOTIF_")}
        env.update({
            "OMP_NUM_THREADS": "1",
            "MAESTROMOTIF_AGENT_HOST": "127.0.0.1", "MAESTROMOTIF_AGENT_PORT": str(port),
            "MAESTROMOTIF_AGENT_METRICS_ENABLED": "false", "MAESTROMOTIF_AGENT_CHECKPOINT": str(checkpoint),
            "MAESTROMOTIF_AGENT_MAX_EPISODES_PER_CALLER": str(per_caller),
            "MAESTROMOTIF_AGENT_MAX_ACTIVE_EPISODES": str(max_episodes),
            "MAESTROMOTIF_AGENT_LOG_LEVEL": "WARNING",
        })
        address = f"127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "maestromotif.kit", "agent"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_serving(address, timeout_s=180, alive=lambda: server.poll() is None)
            for workload in workloads:
                for n in levels:
                    row = _run_level(address, workload, n, seconds, max_steps)
                    rows.append(row)
                    print(f"{workload:16s} N={n:3d}  {row['calls_per_s']:8.2f} calls/s  {row['agent_steps_per_s']:7.1f} "
                          f"steps/s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  refused "
                          f"{row['refused_fraction']:.1%} {row['refused_by_bound']}  probe p99 {row['probe_info_p99_ms']} ms"
                          + (f"  errors {row['errors']}" if row["errors"] else ""), flush=True)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            if server.returncode not in (0, -15) and server.stderr is not None:
                print(server.stderr.read().decode(errors="replace")[-3000:], file=sys.stderr)
    ratios: dict[str, float] = {}
    first_refusing: dict[str, int | None] = {}
    for workload in workloads:
        mine = [r for r in rows if r["workload"] == workload]
        base = mine[0]["calls_per_s"] or 1.0
        for r in mine:
            r["throughput_vs_n1"] = round(r["calls_per_s"] / base, 3)
            if r is not mine[0] and r["clients"] in (4, levels[-1]):
                # calls/s at N clients relative to one: flat or rising means nobody is slowed down
                # (README table: N=4, the global bound, and the largest N; every level is in sides)
                ratios[f"{workload}: calls/s N{r['clients']} / N1"] = r["throughput_vs_n1"]
        first_refusing[workload] = next((r["clients"] for r in mine if r["refused_calls"]), None)
    print(f"first N answered with RESOURCE_EXHAUSTED: {first_refusing} "
          f"(max_episodes_per_caller={per_caller}, max_active_episodes={max_episodes})")
    run.write(
        ratios=ratios,
        sides={"levels": rows, "first_n_refusing": first_refusing},
        settings={"clients": levels, "seconds_per_level": seconds, "max_steps": max_steps,
                  "max_episodes_per_caller": per_caller, "max_active_episodes": max_episodes,
                  "workloads": workloads, "policy": "untrained small-preset checkpoint, local inference, cpu",
                  "probe_every_s": PROBE_EVERY_S, "retry_after_refusal_s": RETRY_S},
        workload="Agent API GetServerInfo and PlayTask under N concurrent loopback clients; agent a separate process",
    )


if __name__ == "__main__":
    main()
