"""Render helm/maestromotif with the real Helm engine (helm-python-sdk binds Helm's Go library)."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "maestromotif"
EXAMPLES = CHART.parent / "examples"
RELEASE, NAMESPACE = "mm", "ml"
FULL = f"{RELEASE}-maestromotif"

# The value sets of the issue, plus the jobs, TGI, the HPA and the spot example.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-gpu": {"learner": {"gpu": {"enabled": False}}, "rewardTraining": {"enabled": True, "gpu": {"enabled": False}},
               "llm": {"provider": "external", "external": {"url": "http://llm.example.com:8000/v1"}}},
    "actors-16": {"actors": {"replicas": 16, "config": {"processes": 2, "envs_per_process": 32}}},
    "auth-on": {"auth": {"enabled": True, "token": "s3cr3t-t0ken-for-tests"},
                "agent": {"service": {"type": "LoadBalancer"}}},
    "existing-pvc-and-secrets": {
        "persistence": {"existingClaim": "shared-data"},
        "auth": {"enabled": True, "existingSecret": "mm-token", "existingSecretKey": "tok"},
        "llm": {"provider": "external", "external": {"url": "https://llm.example.com/v1", "existingSecret": "llm-cred",
                                                      "existingSecretKey": "key"}},
        "annotation": {"enabled": True},
    },
    "monitoring-off": {"monitoring": {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False},
                                      "grafanaDashboard": {"enabled": False}}},
    "external-llm": {
        "llm": {"provider": "external", "external": {"url": "https://llm.example.com/v1", "api": "openai",
                                                      "model": "qwen2.5-coder-7b", "apiKey": "sk-test",
                                                      "cidrs": ["10.20.0.0/16"], "port": 443}},
        "annotation": {"enabled": True, "shards": 8, "parallelism": 4},
        "rewardTraining": {"enabled": True},
    },
    "tgi": {"llm": {"provider": "tgi", "tgi": {"hfToken": "hf_test"}}, "annotation": {"enabled": True, "shards": 3}},
    "hpa": {"actors": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}}},
    "no-persistence-no-netpol": {"persistence": {"enabled": False}, "networkPolicy": {"enabled": False}},
    "spot-example": yaml.safe_load((EXAMPLES / "values-spot-actors.yaml").read_text()),
    "tls-mtls": {"tls": {"enabled": True, "mutual": True, "secretName": "mm-tls"}, "auth": {"enabled": True}},
}


@lru_cache(maxsize=1)
def chart() -> Any:
    import helm_python

    return helm_python.Chart.load(str(CHART))


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders for ``values`` (NOTES.txt left out)."""
    manifests = chart().render(copy.deepcopy(values or {}), name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    manifests = chart().render(copy.deepcopy(values or {}), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, got {[o['metadata']['name'] for o in find(objects, kind)]}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
            for o in objects if o["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")]
