"""Generate the Helm chart's ``values.schema.json`` from the services' settings models.

The chart's ``<service>.config`` sections become each service's settings file, so their
schema is derived from the service's own pydantic model (one definition): a misspelt or
out-of-range setting fails at ``helm install``/``helm lint``, not in a crash-looping pod.
Fields the chart sets itself (ports, peer addresses, paths on the data volume, the token
file, TLS files it does not mount) are left out, so setting them in values is an error.

    python -m maestromotif.kit.chartschema            # rewrite helm/maestromotif/values.schema.json
    python -m maestromotif.kit.chartschema --check    # exit 1 if the file is stale
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from maestromotif.kit.config import ConfigError, ServiceConfig
from maestromotif.kit.server import load_spec

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "maestromotif"
SCHEMA_PATH = CHART_DIR / "values.schema.json"
DEPLOYED = ("learner", "actors", "reward", "codegen", "agent")

# Set by the chart for every service (templates/_helpers.tpl: maestromotif.serviceConfig).
COMMON_MANAGED = frozenset({
    "host", "port", "metrics_enabled", "metrics_host", "metrics_port", "auth_token", "auth_token_file",
    "tls_cert_file", "tls_key_file", "tls_client_ca_file", "peer_tls_ca_file",
    "peer_tls_cert_file", "peer_tls_key_file", "peer_tls_server_name",
})
MANAGED = {
    "learner": {"train_dir"},
    # Seed and name come from the pod name, so that replicas differ.
    "actors": {"seed", "actor_name"},
    "reward": {"bundle_dir"},
    # From the chart's one `llm` section (shared with the annotation Job), and the data volume.
    "codegen": {"backend", "llm_url", "model", "model_dir", "tgi_template", "store_dir"},
    # The learner's checkpoints on the data volume.
    "agent": {"checkpoint"},
}
# Keywords of pydantic's JSON schema that are documentation only, or formats ("path",
# "password") that JSON-schema validators do not know.
_DROP = {"title", "format", "writeOnly", "readOnly"}

QUANTITY = {"type": ["string", "number"], "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def managed_fields(service: str, config_cls: type[ServiceConfig]) -> set[str]:
    """Settings the chart owns for ``service``: common ones, peers (``*_address``) and its own."""
    peers = {name for name in config_cls.model_fields if name.endswith("_address")}
    return set(COMMON_MANAGED) | peers | MANAGED.get(service, set())


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if k not in _DROP}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/$defs/"):
            return _inline_refs(copy.deepcopy(defs[node["$ref"].split("/")[-1]]), defs)
        return {k: _inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def config_schema(service: str) -> dict[str, Any]:
    """JSON schema of ``<service>.config``: the service's settings minus the chart's own."""
    try:
        spec = load_spec(service)
    except ConfigError:
        # Not in this build (yet): accept any mapping; the service still validates its file.
        return {"type": "object", "description": f"Settings of the {service} service (not checked: "
                                                 "no such service in this build of the chart)."}
    model = spec.config_cls.model_json_schema()
    defs = model.get("$defs", {})
    skip = managed_fields(service, spec.config_cls)
    props = {name: _clean(_inline_refs(schema, defs)) for name, schema in model["properties"].items()
             if name not in skip}
    return {
        "type": "object",
        "description": f"Settings of the {service} service ({spec.config_cls.__module__}."
                       f"{spec.config_cls.__name__}); the chart sets ports, peer addresses, paths and the token file.",
        "additionalProperties": False,
        "properties": props,
    }


def _obj(props: dict[str, Any], required: list[str] | None = None, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    if description:
        out["description"] = description
    return out


def _defs() -> dict[str, Any]:
    int0 = {"type": "integer", "minimum": 0}
    int1 = {"type": "integer", "minimum": 1}
    return {
        "image": _obj({
            "registry": {"type": "string"},
            "repository": {"type": "string"},
            "tag": {"type": ["string", "number"]},
            "pullPolicy": {"enum": ["", "Always", "IfNotPresent", "Never"]},
        }),
        "resources": _obj({
            "requests": {"type": "object", "additionalProperties": QUANTITY},
            "limits": {"type": "object", "additionalProperties": QUANTITY},
        }),
        "gpu": _obj({
            "enabled": {"type": "boolean"},
            "count": int1,
            "resourceName": {"type": "string", "pattern": r"^[a-z0-9.-]+/[a-z0-9.-]+$"},
        }, ["enabled"]),
        "tolerations": {"type": "array", "items": {"type": "object"}},
        "env": {"type": "array", "items": {"type": "object", "required": ["name"],
                                           "properties": {"name": {"type": "string", "minLength": 1}}}},
        "service": _obj({
            "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            "annotations": STRING_MAP,
        }),
        "pdb": _obj({
            "enabled": {"type": "boolean"},
            "maxUnavailable": {"oneOf": [int0, {"type": "string", "pattern": r"^[0-9]{1,3}%$"}]},
        }),
        "probes": _obj({
            "initialDelaySeconds": int0,
            "periodSeconds": int1,
            "timeoutSeconds": int1,
            "failureThreshold": int1,
            "startupFailureThreshold": int1,
        }),
        "priorityClassName": {"type": "string"},
    }


def _scheduling() -> dict[str, Any]:
    return {
        "nodeSelector": STRING_MAP,
        "tolerations": {"$ref": "#/definitions/tolerations"},
        "affinity": {"type": "object"},
        "priorityClassName": {"$ref": "#/definitions/priorityClassName"},
        "podAnnotations": STRING_MAP,
    }


def _component(service: str, *, replicas: bool, gpu: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "enabled": {"type": "boolean"},
        "image": {"$ref": "#/definitions/image"},
        "resources": {"$ref": "#/definitions/resources"},
        "config": config_schema(service),
        **_scheduling(),
        "podLabels": STRING_MAP,
        "extraEnv": {"$ref": "#/definitions/env"},
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0},
        "service": {"$ref": "#/definitions/service"},
        "podDisruptionBudget": {"$ref": "#/definitions/pdb"},
        "probes": {"$ref": "#/definitions/probes"},
    }
    if replicas:
        props["replicas"] = {"type": "integer", "minimum": 0, "maximum": 10000}
    if gpu:
        props["gpu"] = {"$ref": "#/definitions/gpu"}
    props.update(extra or {})
    return _obj(props)


def build_schema() -> dict[str, Any]:
    """The whole values.schema.json (deterministic, so that --check can compare)."""
    name = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,128}$"}
    job_common = {
        "enabled": {"type": "boolean"},
        "pairs": name,
        "labels": name,
        "skill": {"type": "string", "minLength": 1},
        "extraArgs": {"type": "array", "items": {"type": "string"}},
        "backoffLimit": {"type": "integer", "minimum": 0},
        "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
        "image": {"$ref": "#/definitions/image"},
        "resources": {"$ref": "#/definitions/resources"},
        **_scheduling(),
    }
    peer_list = {"type": "array", "items": {"type": "object"}}
    selector = {"type": "object"}
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "MaestroMotif chart values",
        "description": "Generated by `python -m maestromotif.kit.chartschema` (make chart-schema); do not edit.",
        "type": "object",
        "additionalProperties": False,
        "definitions": _defs(),
        "properties": {
            "global": {"type": "object"},
            "nameOverride": {"type": "string", "maxLength": 40},
            "fullnameOverride": {"type": "string", "maxLength": 40},
            "commonLabels": STRING_MAP,
            "image": _obj({
                "registry": {"type": "string"},
                "repositoryPrefix": {"type": "string", "minLength": 1},
                "tag": {"type": ["string", "number"]},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            }, ["repositoryPrefix", "pullPolicy"]),
            "imagePullSecrets": {"type": "array", "items": _obj({"name": {"type": "string", "minLength": 1}}, ["name"])},
            "serviceAccount": _obj({
                "create": {"type": "boolean"},
                "name": {"type": "string"},
                "annotations": STRING_MAP,
                "automountServiceAccountToken": {"type": "boolean"},
            }),
            "podSecurityContext": {"type": "object", "properties": {
                "runAsNonRoot": {"const": True, "description": "Every pod runs as non-root."},
                "runAsUser": {"type": "integer", "minimum": 1},
            }},
            "securityContext": {"type": "object", "properties": {
                "runAsNonRoot": {"const": True},
                "runAsUser": {"type": "integer", "minimum": 1},
                "allowPrivilegeEscalation": {"const": False},
                "privileged": {"const": False},
            }},
            "persistence": _obj({
                "enabled": {"type": "boolean"},
                "existingClaim": {"type": "string"},
                "storageClass": {"type": "string"},
                "accessModes": {"type": "array", "minItems": 1, "items": {
                    "enum": ["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod", "ReadOnlyMany"]}},
                "size": QUANTITY,
                "annotations": STRING_MAP,
            }),
            "auth": _obj({
                "enabled": {"type": "boolean"},
                "token": {"type": "string"},
                "existingSecret": {"type": "string"},
                "existingSecretKey": {"type": "string", "minLength": 1},
            }),
            "tls": _obj({
                "enabled": {"type": "boolean"},
                "mutual": {"type": "boolean"},
                "secretName": {"type": "string"},
                "serverName": {"type": "string"},
            }),
            "llm": {
                **_obj({
                    "provider": {"enum": ["embedded", "tgi", "external"]},
                    "embedded": _obj({"model": {"enum": ["", "0.5b", "1.5b"]}}),
                    "external": _obj({
                        "url": {"type": "string"},
                        "api": {"enum": ["openai", "tgi"]},
                        "model": {"type": "string"},
                        "apiKey": {"type": "string"},
                        "existingSecret": {"type": "string"},
                        "existingSecretKey": {"type": "string", "minLength": 1},
                        "cidrs": {"type": "array", "items": {"type": "string", "pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"}},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    }),
                    "tgi": _obj({
                        "image": {"$ref": "#/definitions/image"},
                        "model": {"type": "string", "minLength": 1},
                        "template": {"enum": ["llama3", "chatml"]},
                        "extraArgs": {"type": "array", "items": {"type": "string"}},
                        "hfToken": {"type": "string"},
                        "existingSecret": {"type": "string"},
                        "existingSecretKey": {"type": "string", "minLength": 1},
                        "allowModelDownload": {"type": "boolean"},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "gpu": {"$ref": "#/definitions/gpu"},
                        "resources": {"$ref": "#/definitions/resources"},
                        "shmSize": QUANTITY,
                        **_scheduling(),
                    }),
                }, ["provider"]),
                # An external LLM needs its URL.
                "if": {"properties": {"provider": {"const": "external"}}},
                "then": {"properties": {"external": {"properties": {"url": {"type": "string", "pattern": "^https?://"}}}}},
            },
            "learner": _component("learner", replicas=False, gpu=True),
            "actors": _component("actors", replicas=True, gpu=False, extra={
                "autoscaling": _obj({
                    "enabled": {"type": "boolean"},
                    "minReplicas": {"type": "integer", "minimum": 1},
                    "maxReplicas": {"type": "integer", "minimum": 1},
                    "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
                }),
                "topologySpread": _obj({
                    "enabled": {"type": "boolean"},
                    "topologyKey": {"type": "string", "minLength": 1},
                    "maxSkew": {"type": "integer", "minimum": 1},
                    "whenUnsatisfiable": {"enum": ["ScheduleAnyway", "DoNotSchedule"]},
                }),
            }),
            "reward": _component("reward", replicas=True, gpu=True),
            "codegen": _component("codegen", replicas=True, gpu=False),
            "agent": _component("agent", replicas=True, gpu=False),
            "annotation": _obj({
                **job_common,
                "shards": {"type": "integer", "minimum": 1, "maximum": 100000},
                "parallelism": {"type": "integer", "minimum": 1},
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 256},
            }),
            "rewardTraining": _obj({**job_common, "gpu": {"$ref": "#/definitions/gpu"}}),
            "networkPolicy": _obj({
                "enabled": {"type": "boolean"},
                "agentClients": peer_list,
                "prometheus": _obj({"namespaceSelector": selector, "podSelector": selector}),
                "dns": _obj({"namespaceSelector": selector, "podSelector": selector}),
            }),
            "monitoring": _obj({
                "serviceMonitor": _obj({
                    "enabled": {"type": "boolean"},
                    "interval": {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"},
                    "labels": STRING_MAP,
                }),
                "prometheusRule": _obj({"enabled": {"type": "boolean"}, "labels": STRING_MAP}),
                "grafanaDashboard": _obj({
                    "enabled": {"type": "boolean"},
                    "namespace": {"type": "string"},
                    "folder": {"type": "string"},
                    "labels": STRING_MAP,
                }),
                "grafana": _obj({
                    "namespace": {"type": "string"},
                    "service": {"type": "string"},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                }),
            }),
        },
    }
    return schema


def render_schema() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if values.schema.json is not up to date")
    parser.add_argument("--out", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    text = render_schema()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run `make chart-schema`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
