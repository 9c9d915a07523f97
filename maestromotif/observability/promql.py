"""PromQL found in the shipped observability files, in a form a plain Prometheus can run.

Used by tests (and usable by hand) to check the dashboard and the alert rules against a
real Prometheus: every expression must parse, and each must return data when the services
whose metrics it reads are running.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_PATH = ROOT / "helm/maestromotif/files/rules/maestromotif.rules.yaml"
DASHBOARD_PATH = ROOT / "helm/maestromotif/files/dashboards/maestromotif.json"

# Grafana's built-in interval variables, which Prometheus itself does not know.
_GRAFANA_VARS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")
_METRIC = re.compile(r"\b((?:maestromotif|kube)_[a-z0-9_]+|up(?=\s*\{))")
_COMPARISON_TAIL = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?[0-9.]+(e-?[0-9]+)?\s*$")


@dataclass(frozen=True)
class Expression:
    source: str  # "dashboard" or "rules"
    name: str  # panel title or alert name
    expr: str  # as written (Grafana variables included)

    def metrics(self) -> set[str]:
        return metric_names(self.expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (ours, kube-state-metrics' and ``up``)."""
    return {m.group(1) for m in _METRIC.finditer(_strip_strings(expr))}


def _strip_strings(expr: str) -> str:
    # label values such as job=~".*reward.*" are not metric names
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def for_prometheus(expr: str, rate_interval: str = "1m") -> str:
    """Replace Grafana's ``$__rate_interval``/``$__interval``/``$__range`` by a fixed window."""
    return _GRAFANA_VARS.sub(rate_interval, expr)


def dashboard_expressions(path: Path = DASHBOARD_PATH) -> list[Expression]:
    from maestromotif.observability.dashboard import queries

    return [Expression("dashboard", title, expr) for title, expr in queries(json.loads(path.read_text()))]


def rule_expressions(path: Path = RULES_PATH) -> list[Expression]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return [Expression("rules", r.get("alert") or r.get("record", ""), r["expr"].strip())
            for g in doc["groups"] for r in g["rules"]]


def watched_series(expr: str) -> list[str]:
    """The series an alert condition watches: its top-level ``and`` operands with their
    threshold comparison removed (``a > 0.05 and b == 1`` -> ``a``, ``b``). A healthy
    system fires no alert, so the condition itself is empty; these operands must not be."""
    parts = [p.strip() for p in _split_top_level(" ".join(expr.split()), " and ")]
    return [_COMPARISON_TAIL.sub("", p).strip() for p in parts]


def _split_top_level(expr: str, sep: str) -> list[str]:
    out, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == '"':
            i = expr.index('"', i + 1)  # skip a string literal
        elif depth == 0 and expr.startswith(sep, i):
            out.append(expr[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    out.append(expr[start:])
    return out
