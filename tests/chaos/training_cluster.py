"""Helpers of the training fault tests and the soak: reward, learner, actors as real processes.

Not a conftest (tests/chaos is shared with the service fault tests); imported by
``test_training_faults.py`` and ``test_soak.py`` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import torch

from maestromotif.kit.local import LocalProcesses, ServiceProcess
from maestromotif.training.sf2 import checkpoint_files
from maestromotif.v1 import learner_pb2, learner_pb2_grpc

BATCH = 256  # 8 envs x rollout 32
ROLLOUT = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``cond`` until true; AssertionError naming ``what`` after ``timeout_s`` (a deadline, not a timing)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            if cond():
                return
        except (grpc.RpcError, OSError):
            pass  # a service that is restarting answers nothing yet
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def scrape(metrics_port: int) -> dict[str, float]:
    """One /metrics scrape: ``name`` or ``name{k=v,...}`` -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return out


def status(address: str) -> learner_pb2.LearnerStatus:
    with grpc.insecure_channel(address) as channel:
        return learner_pb2_grpc.LearnerStub(channel).GetStatus(learner_pb2.GetStatusRequest(), timeout=10)


class Cluster:
    """reward + learner + actors as real processes; kill -9 and restart any of them on its port."""

    def __init__(self, tmp: Path, *, checkpoint_every: int = 4 * BATCH, actor_processes: int = 1,
                 envs_per_process: int = 8) -> None:
        self.tmp = tmp
        self.train_dir = tmp / "runs"
        self.procs = LocalProcesses(grace_s=10.0, log_dir=tmp / "logs",
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.ports = {name: (free_port(), free_port()) for name in ("reward", "learner", "actors")}
        self.sets = {
            "reward": ["init_random=true", "threads=1"],
            "learner": [
                f"reward_address={self.address('reward')}", f"train_dir={self.train_dir}", "preset=small",
                f"batch_size={BATCH}", f"rollout={ROLLOUT}", f"checkpoint_every_samples={checkpoint_every}",
                "checkpoint_on_exit=false", "torch_threads=1", "reward_deadline_s=10",
            ],
            "actors": [
                f"learner_address={self.address('learner')}", f"processes={actor_processes}",
                f"envs_per_process={envs_per_process}", "seed=7", "backoff_max_s=1.0",
            ],
        }
        self.current: dict[str, ServiceProcess] = {}

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name][0]}"

    def start(self, name: str) -> ServiceProcess:
        port, mport = self.ports[name]
        sp = self.procs.start(name, port, mport, self.sets[name], timeout_s=240)
        self.current[name] = sp
        return sp

    def kill9(self, name: str) -> int:
        """SIGKILL the service process only (not its group): what the OOM killer or a crash does."""
        sp = self.current[name]
        os.kill(sp.proc.pid, signal.SIGKILL)
        sp.proc.wait(timeout=30)
        return sp.proc.pid

    def status(self) -> learner_pb2.LearnerStatus:
        return status(self.address("learner"))

    def metrics(self, name: str = "learner") -> dict[str, float]:
        return scrape(self.ports[name][1])

    def log(self, name: str) -> str:
        return (self.tmp / "logs" / f"{name}.log").read_text(errors="replace")

    def checkpoints(self) -> list[str]:
        return checkpoint_files(self.train_dir / "policy" / "checkpoint_p0")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.procs.stop()  # SIGTERM then SIGKILL to every process group, orphans included


def assert_accounting(m: dict[str, float]) -> None:
    """No rollout trained twice or half-filled, from the learner's own counters (this process)."""
    trained = m["maestromotif_learner_trajectories_trained_total"]
    accepted = m["maestromotif_learner_trajectories_accepted_total"]
    samples = m["maestromotif_learner_samples_trained_total"]
    assert samples == trained * ROLLOUT, (samples, trained)
    assert trained <= accepted, (trained, accepted)
    assert trained % (BATCH // ROLLOUT) == 0  # whole batches only


def loads(path: str) -> bool:
    data = torch.load(path, map_location="cpu", weights_only=True)
    return isinstance(data, dict) and {"train_step", "env_steps", "model", "optimizer"} <= set(data)




RESULTS = Path(os.environ.get(
    "MAESTROMOTIF_CHAOS_OUT",
    Path(__file__).resolve().parents[2] / "experiments" / "results" / "chaos" / "training_faults.json",
))


def record(test: str, data: dict[str, Any]) -> None:
    """Merge one chaos test's measured outcome into the results file (what the README table cites)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    found[test] = {**data, "load_average_at_end": list(os.getloadavg()), "cores": os.cpu_count()}
    RESULTS.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")


def outcome(m: dict[str, float]) -> dict[str, float]:
    """The learner's accounting counters from one scrape (this process's lifetime)."""
    keep = ("maestromotif_learner_trajectories_accepted_total", "maestromotif_learner_trajectories_trained_total",
            "maestromotif_learner_samples_trained_total", "maestromotif_learner_reward_outages_total",
            "maestromotif_learner_reward_outage_seconds_total", "maestromotif_learner_checkpoints_total")
    out = {k.removeprefix("maestromotif_learner_"): m[k] for k in keep if k in m}
    for k, v in m.items():
        if k.startswith("maestromotif_learner_dropped_trajectories_total{"):
            out["dropped_" + k.split("reason=")[1].rstrip("}")] = v
    return out
