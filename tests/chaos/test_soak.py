"""Soak (issue 15, item 5): training with several actor processes, actors killed and restarted in a loop.

Reward, learner and an actor service with 3 worker processes run as real processes on loopback
for ``MAESTROMOTIF_SOAK_S`` seconds (default 180). Each cycle kills actors with SIGKILL: on even
cycles one worker process (its service restarts it), on odd cycles the whole actor service
(restarted here on the same port). The learner's resident memory, threads and open file
descriptors are sampled every ~2 s, and the training throughput (samples trained per second,
from the learner's own counter) over a window after each reconnection.

Asserted (generous bounds, no timing): memory, threads and descriptors in the last third of the
run stay within a margin of the first third's peak; training rises after every restart; the
accounting invariants hold. The series goes to ``experiments/results/chaos/soak_training.json``
(or ``MAESTROMOTIF_SOAK_OUT``).
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

import pytest
from training_cluster import BATCH, ROLLOUT, Cluster, assert_accounting, wait_for

SOAK_S = float(os.environ.get("MAESTROMOTIF_SOAK_S", "180"))
OUT = Path(os.environ.get("MAESTROMOTIF_SOAK_OUT",
                          Path(__file__).resolve().parents[2] / "experiments" / "results" / "chaos" / "soak_training.json"))
WORKERS = 3
ENVS = 4
WINDOW_S = 12.0  # throughput window after each reconnection

# Bounds (generous: a leak grows without bound, noise does not)
RSS_MARGIN_MIB = 200.0
RSS_FACTOR = 1.5
THREADS_MARGIN = 16
FDS_MARGIN = 32


@pytest.mark.chaos
@pytest.mark.timeout(int(SOAK_S) + 900)
def test_soak_actor_churn_keeps_the_learner_bounded_and_training(tmp_path: Path) -> None:
    import psutil

    with Cluster(tmp_path, actor_processes=WORKERS, envs_per_process=ENVS, checkpoint_every=16 * BATCH) as c:
        for name in ("reward", "learner", "actors"):
            c.start(name)
        wait_for(lambda: c.status().policy_version >= 3 and c.status().connected_actors == WORKERS, 300,
                 "training with every worker connected")
        learner = psutil.Process(c.current["learner"].proc.pid)
        t0 = time.monotonic()
        series: list[dict[str, Any]] = []
        cycles: list[dict[str, Any]] = []

        def sample() -> dict[str, Any]:
            st = c.status()
            row = {
                "t_s": round(time.monotonic() - t0, 2),
                "rss_mib": round(learner.memory_info().rss / 2**20, 1),
                "threads": learner.num_threads(),
                "fds": learner.num_fds(),
                "samples_trained": int(st.samples_trained),
                "env_steps": int(st.env_steps),
                "policy_version": int(st.policy_version),
                "connected_actors": int(st.connected_actors),
            }
            series.append(row)
            return row

        def watch(cond: Any, timeout_s: float, what: str) -> None:
            """wait_for, sampling the learner about every 2 s meanwhile."""
            last = [0.0]

            def step() -> bool:
                if time.monotonic() - last[0] >= 2.0:
                    last[0] = time.monotonic()
                    sample()
                return bool(cond())

            wait_for(step, timeout_s, what)

        sample()
        cycle = 0
        rng = random.Random(11)
        while time.monotonic() - t0 < SOAK_S:
            kind = "worker" if cycle % 2 == 0 else "service"
            before = c.status()
            killed_at = time.monotonic()
            if kind == "worker":
                workers = [p.pid for p in psutil.Process(c.current["actors"].proc.pid).children()
                           if "spawn_main" in " ".join(p.cmdline())]  # not the resource tracker
                os.kill(rng.choice(workers), 9)
                watch(lambda: c.status().connected_actors < WORKERS, 60, "the learner to drop the killed worker")
            else:
                c.kill9("actors")
                watch(lambda: c.status().connected_actors == 0, 60, "the learner to drop every stream")
                c.start("actors")
            watch(lambda: c.status().connected_actors == WORKERS, 180, f"all workers back (cycle {cycle})")
            reconnect_s = time.monotonic() - killed_at
            start = sample()
            window_end = time.monotonic() + WINDOW_S
            watch(lambda: time.monotonic() >= window_end, WINDOW_S + 30, "the throughput window")
            end = sample()
            # training continues after the restart (a counter, polled with a deadline)
            watch(lambda: c.status().samples_trained > before.samples_trained, 180, f"training after cycle {cycle}")
            cycles.append({
                "cycle": cycle,
                "killed": kind,
                "reconnect_s": round(reconnect_s, 2),
                "samples_per_s_after": round((end["samples_trained"] - start["samples_trained"])
                                             / max(end["t_s"] - start["t_s"], 1e-9), 1),
                "env_steps_per_s_after": round((end["env_steps"] - start["env_steps"])
                                               / max(end["t_s"] - start["t_s"], 1e-9), 1),
            })
            cycle += 1
        metrics = c.metrics()
        assert_accounting(metrics)

    third = max(1, len(series) // 3)
    first, last = series[:third], series[-third:]
    peak = {k: max(r[k] for r in first) for k in ("rss_mib", "threads", "fds")}
    late = {k: max(r[k] for r in last) for k in ("rss_mib", "threads", "fds")}
    result = {
        "what": "learner process under actor churn (kill -9 of one worker / the whole actor service, in turn)",
        "settings": {"soak_s": SOAK_S, "workers": WORKERS, "envs_per_worker": ENVS, "batch_size": BATCH,
                     "rollout": ROLLOUT, "throughput_window_s": WINDOW_S},
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": list(os.getloadavg())},
        "bounds": {"rss_mib": f"last third peak <= {RSS_FACTOR} x first third peak + {RSS_MARGIN_MIB}",
                   "threads": f"<= first third peak + {THREADS_MARGIN}", "fds": f"<= first third peak + {FDS_MARGIN}"},
        "first_third_peak": peak,
        "last_third_peak": late,
        "cycles": cycles,
        "series": series,
        "dropped_trajectories": {k.split("reason=")[1].rstrip("}"): v for k, v in metrics.items()
                                 if k.startswith("maestromotif_learner_dropped_trajectories_total{")},
        "trajectories_accepted": metrics["maestromotif_learner_trajectories_accepted_total"],
        "trajectories_trained": metrics["maestromotif_learner_trajectories_trained_total"],
        "command": "make chaos (or: pytest tests/chaos/test_soak.py -m chaos)",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")

    assert len(cycles) >= 2, cycles  # (training rose after every cycle: polled above)
    assert late["rss_mib"] <= RSS_FACTOR * peak["rss_mib"] + RSS_MARGIN_MIB, (peak, late)
    assert late["threads"] <= peak["threads"] + THREADS_MARGIN, (peak, late)
    assert late["fds"] <= peak["fds"] + FDS_MARGIN, (peak, late)
