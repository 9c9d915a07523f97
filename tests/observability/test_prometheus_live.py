"""Metrics for real: the reward, learner and actors services run as local processes and
train for a short while; a real Prometheus (Debian's 2.42) scrapes them every second and
evaluates the shipped alert rules. Then every PromQL expression of the dashboard and of the
rules is sent to its HTTP API: each must parse, and each that reads metrics of the running
services must return data (alert conditions: the series they watch, since a healthy run
fires nothing). Expressions for services not started here (codegen, agent, annotator,
kube-state-metrics) are only parsed, and listed in the output.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestromotif.cluster import parse_learner_metrics
from maestromotif.kit.local import LocalProcesses
from maestromotif.observability.promql import (
    RULES_PATH,
    Expression,
    dashboard_expressions,
    for_prometheus,
    rule_expressions,
    watched_series,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

# Metric families of the services started here; an expression reading only these (and `up`)
# must return data.
RUNNING_PREFIXES = ("maestromotif_learner_", "maestromotif_actor_", "maestromotif_reward_", "maestromotif_grpc_server_")
# Defined in other branches (competence); must return data once the learner exports them.
PENDING_HERE = {"maestromotif_learner_skill_competence", "maestromotif_learner_skill_competent_runs_total"}
RATE_WINDOW = "15s"  # stands for Grafana's $__rate_interval with a 1 s scrape interval


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _get(url: str, timeout: float = 10) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 400: bad query, with a JSON body naming the error
        return json.loads(exc.read())


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def instant(self, expr: str) -> dict[str, Any]:
        return _get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))

    def range(self, expr: str, start: float, end: float) -> dict[str, Any]:
        q = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"})
        return _get(f"{self.base}/api/v1/query_range?{q}")

    def value(self, expr: str) -> float:
        r = self.instant(expr)
        res = r.get("data", {}).get("result", [])
        return float(res[0]["value"][1]) if res else math.nan


def _has_data(resp: dict[str, Any]) -> bool:
    """Some series with a finite value (0/0 ratios give NaN, which is not data)."""
    for series in resp["data"]["result"]:
        if any(math.isfinite(float(v)) for _, v in series.get("values", [series.get("value", [0, "NaN"])])):
            return True
    return False


def _needs_data(e: Expression, exported: set[str]) -> bool:
    names = e.metrics()
    if not names:
        return False
    return all(n == "up" or (n.startswith(RUNNING_PREFIXES) and (n not in PENDING_HERE or n in exported))
               for n in names)


def _wait(cond: Any, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_dashboard_and_rule_query_against_real_prometheus(tmp_path: Path, prometheus: str) -> None:
    ports = _free_ports(7)
    reward_p, learner_p, actors_p, reward_m, learner_m, actors_m, prom_p = ports
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with LocalProcesses(grace_s=10, env=env) as procs:
        procs.start("reward", reward_p, reward_m, ["init_random=true", "threads=1"])
        procs.start("learner", learner_p, learner_m, [
            f"reward_address=127.0.0.1:{reward_p}", f"train_dir={tmp_path / 'runs'}", "preset=small",
            "batch_size=512", "torch_threads=1", "checkpoint_every_samples=0", "checkpoint_on_exit=false"])
        procs.start("actors", actors_p, actors_m, [
            f"learner_address=127.0.0.1:{learner_p}", "processes=1", "envs_per_process=8", "seed=1"])

        # Job names as a ServiceMonitor gives them (the Service's name): the rules match on them.
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(RULES_PATH)],
            "scrape_configs": [
                {"job_name": f"maestromotif-{name}", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for name, port in (("reward", reward_m), ("learner", learner_m), ("actors", actors_m))
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (tmp_path / "prometheus.log").open("wb")
        server = subprocess.Popen([
            prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_p}", "--log.level=warn",
        ], stdout=log, stderr=subprocess.STDOUT)
        try:
            prom = Prom(prom_p)
            start = time.time()

            def ready() -> bool:
                try:
                    return prom.value('count(up{job=~"maestromotif-.*"} == 1)') == 3
                except (urllib.error.URLError, ConnectionError, OSError):
                    return False

            _wait(ready, 60, "Prometheus up and scraping all three services")
            # a little training: trained batches, finished skill runs and episodes
            _wait(lambda: prom.value("max(maestromotif_learner_policy_version)") >= 3, 240, "3 training steps")
            _wait(lambda: prom.value("sum(maestromotif_learner_skill_run_steps_count)") > 0, 120, "a finished skill run")
            _wait(lambda: prom.value("sum(maestromotif_actor_episodes_total)") > 0, 120, "a finished episode")
            time.sleep(3)  # a few more scrapes after the last event, for the rates
            end = time.time()
            # what `maestromotif cluster status` reads from the learner: a real learner's text
            with urllib.request.urlopen(f"http://127.0.0.1:{learner_m}/metrics", timeout=10) as r:
                info = parse_learner_metrics(r.read().decode())
            assert info.training is True and info.policy_version is not None and info.policy_version >= 3
            assert (info.connected_actors, info.connected_envs) == (1, 8)
            assert info.samples_trained and info.samples_trained >= 3 * 512 and info.policy_lag is not None
            exported = {m["metric"]["__name__"] for m in prom.instant('{__name__=~"maestromotif_.+"}')["data"]["result"]}

            checked, parse_only, failures = [], [], []
            for e in dashboard_expressions() + rule_expressions():
                expr = for_prometheus(e.expr, RATE_WINDOW)
                resp = prom.range(expr, start, end)
                if resp.get("status") != "success":
                    failures.append(f"{e.source} {e.name!r}: does not run: {resp.get('error')} -- {expr}")
                    continue
                if not _needs_data(e, exported):
                    parse_only.append(f"{e.source} {e.name!r}: {expr}")
                    continue
                parts = watched_series(expr) if e.source == "rules" else [expr]
                for part in parts:
                    if not _has_data(prom.range(part, start, end)):
                        failures.append(f"{e.source} {e.name!r}: no data for {part}")
                checked.append(f"{e.source} {e.name!r}")

            # controls: the checks above can fail (a misspelt metric has no data, bad PromQL does not run)
            assert not _has_data(prom.range(for_prometheus(
                "sum(rate(maestromotif_learner_samples_trainedd_total[$__rate_interval]))", RATE_WINDOW), start, end))
            assert not _has_data(prom.range("sum(rate(maestromotif_learner_samples_trained_total[15s])) / 0 * 0", start, end))
            assert prom.range("sum(rate(maestromotif_learner_samples_trained_total[15s])", start, end)["status"] == "error"
            # the real server loaded and evaluates every alert rule without error
            rules = _get(f"http://127.0.0.1:{prom_p}/api/v1/rules")["data"]["groups"]
            unhealthy = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"]
            n_rules = sum(len(g["rules"]) for g in rules)
            firing = [a["labels"]["alertname"] for a in _get(f"http://127.0.0.1:{prom_p}/api/v1/alerts")["data"]["alerts"]
                      if a["state"] == "firing"]
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()

    print(f"\nreturned data ({len(checked)}): " + "; ".join(checked))
    print(f"parsed only, their services are not started here ({len(parse_only)}):\n  " + "\n  ".join(parse_only))
    assert not failures, "\n".join(failures)
    assert n_rules == len(rule_expressions()) and not unhealthy, unhealthy
    assert not firing, f"alerts firing during a healthy run: {firing}"
    assert len(checked) >= 40  # the dashboard's training, skills, reward and service panels, the alerts' series
