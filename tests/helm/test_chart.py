"""The Helm chart, rendered by the real Helm engine, linted, and validated strictly against
the Kubernetes 1.37 schemas; security, probes, seeds, jobs and NetworkPolicies checked on
the rendered objects. Nothing here needs a cluster (none is available in CI)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from helmchart import CHART, FULL, NAMESPACE, VALUE_SETS, chart, find, notes, one, pod_specs, render

from maestromotif.annotation.job import parse_shard
from maestromotif.kit.config import ConfigError, load_config
from maestromotif.kit.server import available_services, load_spec

K8S_VERSION = "1.37.0"
DEPLOYED = ("learner", "actors", "reward", "codegen", "agent")
GRPC = {"learner": 50051, "actors": 50052, "reward": 50053, "annotator": 50054, "codegen": 50055, "agent": 50056}
METRICS = {"learner": 9091, "actors": 9092, "reward": 9093, "annotator": 9094, "codegen": 9095, "agent": 9096}
# Custom resources of the Prometheus Operator: no schema ships with kubernetes-validate.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(VALUE_SETS[request.param])


# --- engine, lint, Kubernetes schemas -------------------------------------------------

def test_helm_engine_is_real() -> None:
    assert helm_python.helm_sdk_version().startswith("v"), helm_python.helm_sdk_version()
    assert chart().name == "maestromotif"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_is_clean(name: str) -> None:
    report = helm_python.lint(str(CHART), copy.deepcopy(VALUE_SETS[name]), strict=True, namespace=NAMESPACE,
                              kube_version="v1.37.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    assert not problems, problems


_VALIDATED: set[str] = set()  # objects identical across value sets are validated once


def test_every_object_is_valid_kubernetes(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, objects = rendered
    assert len(objects) > 15
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        key = json.dumps(obj, sort_keys=True)
        if key not in _VALIDATED:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            _VALIDATED.add(key)


def test_strict_validation_catches_a_misspelt_field() -> None:
    # The check above must be able to fail: a field Kubernetes does not know is rejected.
    deployment = copy.deepcopy(one(render(), "Deployment", f"{FULL}-learner"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_custom_resources_are_well_formed() -> None:
    """ServiceMonitor and PrometheusRule have no schema in kubernetes-validate: check what the
    Prometheus Operator needs, and the rules with promtool when it is installed."""
    objects = render()
    monitor = one(objects, "ServiceMonitor", FULL)
    services = find(objects, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in scraped} == {f"{FULL}-{svc}" for svc in DEPLOYED}
    port = monitor["spec"]["endpoints"][0]["port"]
    for s in scraped:
        assert port in {p["name"] for p in s["spec"]["ports"]}

    rule = one(objects, "PrometheusRule", FULL)
    shipped = yaml.safe_load((CHART / "files" / "rules" / "maestromotif.rules.yaml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r) and r["expr"]
    promtool = shutil.which("promtool")
    if promtool:
        path = Path(pytest.importorskip("tempfile").mkdtemp()) / "rules.yaml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr

    dashboard = one(objects, "ConfigMap", f"{FULL}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["maestromotif.json"]) == json.loads(
        (CHART / "files" / "dashboards" / "maestromotif.json").read_text())


# --- security, probes, resources ------------------------------------------------------

def test_every_container_runs_as_non_root(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    specs = pod_specs(objects)
    assert specs
    for where, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, (where, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (where, c["name"])
            assert not sc.get("privileged"), (where, c["name"])
            # A read-only root needs a writable /tmp.
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, (where, c["name"])


def test_every_deployment_has_probes_and_resources(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for d in find(objects, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            where = (d["metadata"]["name"], c["name"])
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe in c, where
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"], where
            if c["name"] in GRPC and "exec" in c["livenessProbe"]:  # tls.enabled: the kit's TLS health probe
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    assert c[probe]["exec"]["command"][:3] == ["python", "-m", "maestromotif.kit.probe"], where
            elif c["name"] in GRPC:  # our services: native gRPC probes on the health service
                assert c["livenessProbe"]["grpc"]["port"] == GRPC[c["name"]], where
                assert c["readinessProbe"]["grpc"]["port"] == GRPC[c["name"]], where


# --- components -----------------------------------------------------------------------

def test_default_components() -> None:
    objects = render()
    learner = one(objects, "Deployment", f"{FULL}-learner")
    assert learner["spec"]["replicas"] == 1 and learner["spec"]["strategy"] == {"type": "Recreate"}
    container = learner["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == "docker.io/maestromotif/learner:0.1.0-cuda"
    assert container["args"] == ["serve", "learner", "--config", "/etc/maestromotif/config.yaml"]
    assert {"name": "data", "mountPath": "/data", "readOnly": False} in container["volumeMounts"]
    agent = one(objects, "Deployment", f"{FULL}-agent")["spec"]["template"]["spec"]["containers"][0]
    assert agent["image"] == "docker.io/maestromotif/actors:0.1.0" and agent["args"][:2] == ["serve", "agent"]
    reward = one(objects, "Deployment", f"{FULL}-reward")["spec"]["template"]["spec"]["containers"][0]
    assert reward["image"] == "docker.io/maestromotif/reward:0.1.0"
    for svc in DEPLOYED:
        service = one(objects, "Service", f"{FULL}-{svc}")
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"grpc": GRPC[svc], "metrics": METRICS[svc]}
    pvc = one(objects, "PersistentVolumeClaim", f"{FULL}-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert not find(objects, "Job") and not find(objects, "HorizontalPodAutoscaler")
    assert {p["metadata"]["name"] for p in find(objects, "PodDisruptionBudget")} == {
        f"{FULL}-{s}" for s in ("actors", "reward", "codegen", "agent")}
    assert not find(objects, "Secret")  # auth off, embedded LLM: nothing secret


def test_no_gpu_requests_nothing_from_the_gpu_plugin() -> None:
    objects = render(VALUE_SETS["no-gpu"])
    text = yaml.safe_dump_all(objects)
    assert "nvidia.com/gpu:" not in text.replace("key: nvidia.com/gpu", "")
    learner = one(objects, "Deployment", f"{FULL}-learner")["spec"]["template"]["spec"]["containers"][0]
    assert learner["image"].endswith(":0.1.0")  # CPU image
    job = find(objects, "Job")[0]["spec"]["template"]["spec"]["containers"][0]
    assert job["args"][job["args"].index("--device") + 1] == "cpu"


def test_sixteen_actors_spread_across_nodes() -> None:
    objects = render(VALUE_SETS["actors-16"])
    actors = one(objects, "Deployment", f"{FULL}-actors")
    assert actors["spec"]["replicas"] == 16
    (constraint,) = actors["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname" and constraint["maxSkew"] == 1
    assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "actors"


def test_too_many_actor_streams_fail_at_render() -> None:
    values = {"actors": {"replicas": 40, "config": {"processes": 2}}}
    with pytest.raises(helm_python.HelmError, match="max_actors"):
        render(values)
    render({"actors": {"replicas": 40, "config": {"processes": 2}}, "learner": {"config": {"max_actors": 80,
                                                                                             "max_workers": 96}}})


def test_render_check_uses_the_models_defaults() -> None:
    # templates/deployments.yaml repeats two defaults for its check; they must match the models.
    text = (CHART / "templates" / "deployments.yaml").read_text()
    assert f"max_actors | default {load_spec('learner').config_cls.model_fields['max_actors'].default}" in text
    assert f"processes | default {load_spec('actors').config_cls.model_fields['processes'].default}" in text


def test_hpa_owns_the_actor_replicas() -> None:
    objects = render(VALUE_SETS["hpa"])
    assert "replicas" not in one(objects, "Deployment", f"{FULL}-actors")["spec"]
    hpa = one(objects, "HorizontalPodAutoscaler", f"{FULL}-actors")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{FULL}-actors"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)


def test_spot_example_places_actors_on_spot_and_learner_on_gpu() -> None:
    objects = render(VALUE_SETS["spot-example"])
    actors = one(objects, "Deployment", f"{FULL}-actors")["spec"]["template"]["spec"]
    learner = one(objects, "Deployment", f"{FULL}-learner")["spec"]["template"]["spec"]
    assert actors["nodeSelector"] == {"cloud.google.com/gke-spot": "true"}
    assert any(t["key"] == "cloud.google.com/gke-spot" for t in actors["tolerations"])
    assert learner["nodeSelector"]["cloud.google.com/gke-spot"] == "false"
    assert learner["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in learner["tolerations"])


def test_auth_token_is_mounted_into_every_service() -> None:
    objects = render(VALUE_SETS["auth-on"])
    secret = one(objects, "Secret", f"{FULL}-auth")
    assert secret["data"]["token"] == "czNjcjN0LXQwa2VuLWZvci10ZXN0cw=="  # base64 of the test token
    for svc in DEPLOYED:
        config = json.loads(one(objects, "ConfigMap", f"{FULL}-{svc}")["data"]["config.yaml"])
        assert config["auth_token_file"] == "/etc/maestromotif/auth/token"
        pod = one(objects, "Deployment", f"{FULL}-{svc}")["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "auth"]
        assert volume["secret"]["secretName"] == f"{FULL}-auth"
    assert "Bearer $TOKEN" in notes(VALUE_SETS["auth-on"])
    # A generated token (none given) is 48 characters.
    generated = one(render({"auth": {"enabled": True}}), "Secret", f"{FULL}-auth")
    assert len(generated["data"]["token"]) == 64  # base64 of 48 bytes


def test_existing_claim_and_secrets_are_used_not_created() -> None:
    objects = render(VALUE_SETS["existing-pvc-and-secrets"])
    assert not find(objects, "PersistentVolumeClaim") and not find(objects, "Secret")
    for where, spec in pod_specs(objects):
        (data,) = [v for v in spec["volumes"] if v["name"] == "data"]
        assert data["persistentVolumeClaim"]["claimName"] == "shared-data", where
    pod = one(objects, "Deployment", f"{FULL}-reward")["spec"]["template"]["spec"]
    (auth,) = [v for v in pod["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["secretName"] == "mm-token" and auth["secret"]["items"] == [{"key": "tok", "path": "token"}]
    codegen = one(objects, "Deployment", f"{FULL}-codegen")["spec"]["template"]["spec"]["containers"][0]
    (key,) = [e for e in codegen["env"] if e["name"] == "MAESTROMOTIF_LLM_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "llm-cred", "key": "key"}


def test_monitoring_off_renders_no_monitoring_objects() -> None:
    objects = render(VALUE_SETS["monitoring-off"])
    assert not find(objects, "ServiceMonitor") and not find(objects, "PrometheusRule")
    assert not find(objects, "ConfigMap", f"{FULL}-dashboard")


def test_external_llm_reaches_annotation_and_codegen() -> None:
    objects = render(VALUE_SETS["external-llm"])
    codegen = json.loads(one(objects, "ConfigMap", f"{FULL}-codegen")["data"]["config.yaml"])
    assert (codegen["backend"], codegen["llm_url"], codegen["model"]) == (
        "openai", "https://llm.example.com/v1", "qwen2.5-coder-7b")
    assert one(objects, "Secret", f"{FULL}-llm")["data"]["api-key"] == "c2stdGVzdA=="
    assert not find(objects, "Deployment", f"{FULL}-tgi")
    (job,) = [j for j in find(objects, "Job") if "annotate" in j["metadata"]["name"]]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--backend") + 1] == "openai" and args[args.index("--url") + 1] == "https://llm.example.com/v1"


def test_tgi_serves_the_llm_in_cluster() -> None:
    objects = render(VALUE_SETS["tgi"])
    tgi = one(objects, "Deployment", f"{FULL}-tgi")["spec"]["template"]["spec"]["containers"][0]
    assert tgi["args"][:2] == ["--model-id", "Qwen/Qwen2.5-Coder-7B-Instruct"]
    assert tgi["resources"]["limits"]["nvidia.com/gpu"] == 1
    codegen = json.loads(one(objects, "ConfigMap", f"{FULL}-codegen")["data"]["config.yaml"])
    assert (codegen["backend"], codegen["llm_url"]) == ("tgi", f"http://{FULL}-tgi:8080")


# --- jobs -----------------------------------------------------------------------------

def _cli_parses(args: list[str]) -> None:
    """The real `maestromotif` command line accepts these arguments (parsed, not run)."""
    import typer.main

    from maestromotif.cli import app

    command = typer.main.get_command(app)
    sub = command.commands[args[0]]  # type: ignore[attr-defined]
    sub.make_context(args[0], list(args[1:]))


def test_annotation_is_an_indexed_job_one_index_per_shard() -> None:
    objects = render(VALUE_SETS["external-llm"])
    (job,) = [j for j in find(objects, "Job") if "annotate" in j["metadata"]["name"]]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 8 and spec["parallelism"] == 4
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MAESTROMOTIF_NUM_SHARDS"] == "8"
    # Kubernetes sets JOB_COMPLETION_INDEX per pod; the job code turns it into its shard.
    shards = {parse_shard(None, {"JOB_COMPLETION_INDEX": str(i), "MAESTROMOTIF_NUM_SHARDS": env["MAESTROMOTIF_NUM_SHARDS"]})
              for i in range(spec["completions"])}
    assert shards == {(i, 8) for i in range(8)}
    assert container["command"] == ["maestromotif"]
    _cli_parses(container["args"])
    # A changed spec is a new Job (Jobs are immutable); the same spec keeps its name.
    again = [j for j in find(render(VALUE_SETS["external-llm"]), "Job") if "annotate" in j["metadata"]["name"]]
    assert again[0]["metadata"]["name"] == job["metadata"]["name"]
    values = copy.deepcopy(VALUE_SETS["external-llm"])
    values["annotation"]["shards"] = 16
    changed = [j for j in find(render(values), "Job") if "annotate" in j["metadata"]["name"]]
    assert changed[0]["metadata"]["name"] != job["metadata"]["name"]


def test_reward_training_job_and_embedded_annotation_parse() -> None:
    objects = render(VALUE_SETS["external-llm"])
    (job,) = [j for j in find(objects, "Job") if "train-reward" in j["metadata"]["name"]]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/maestromotif/reward:0.1.0-cuda"
    _cli_parses(container["args"])
    embedded = render({"annotation": {"enabled": True}})
    (ann,) = find(embedded, "Job")
    args = ann["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--backend") + 1] == "embedded" and "--model-dir" in args
    _cli_parses(args)


def test_services_accept_the_command_line_the_chart_gives() -> None:
    from maestromotif.cli import services as services_cli  # noqa: F401  (serve lives there)

    for svc in DEPLOYED:
        if svc in available_services():
            _cli_parses(["serve", svc, "--config", "/etc/maestromotif/config.yaml"])


# --- ConfigMaps against the services' own settings models ------------------------------

@pytest.mark.parametrize("name", ["default", "auth-on", "external-llm", "tgi", "actors-16", "no-gpu"])
def test_configmaps_load_with_the_services_settings(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    for var in list(__import__("os").environ):
        if var.startswith("MAESTROMOTIF_"):
            monkeypatch.delenv(var)
    objects = render(VALUE_SETS[name])
    checked = 0
    for svc in DEPLOYED:
        if svc not in available_services():
            continue  # not in this build: its settings cannot be checked here
        text = one(objects, "ConfigMap", f"{FULL}-{svc}")["data"]["config.yaml"]
        text = text.replace("/etc/maestromotif/auth/token", str(token))
        path = tmp_path / f"{svc}.yaml"
        path.write_text(text)
        spec = load_spec(svc)
        config = load_config(spec.config_cls, svc, config_file=path)
        assert config.host == "0.0.0.0" and config.port == GRPC[svc] and config.metrics_port == METRICS[svc]
        checked += 1
    assert checked >= 3


def test_a_wrong_setting_in_values_is_caught_by_the_settings_model(tmp_path: Path) -> None:
    # values.schema.json is generated from the same models; here the model itself refuses.
    text = one(render({"learner": {"config": {"max_actors": 200, "max_workers": 100}}}), "ConfigMap",
               f"{FULL}-learner")["data"]["config.yaml"]
    path = tmp_path / "learner.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="max_workers"):
        load_config(load_spec("learner").config_cls, "learner", config_file=path)


# --- seeds ----------------------------------------------------------------------------

def test_two_actor_replicas_get_different_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What two pods of the rendered actors Deployment compute as their base seed."""
    from services.actors.server import base_seed

    objects = render(VALUE_SETS["actors-16"])
    container = one(objects, "Deployment", f"{FULL}-actors")["spec"]["template"]["spec"]["containers"][0]
    env_spec = {e["name"]: e for e in container["env"]}
    assert env_spec["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "MAESTROMOTIF_ACTORS_SEED" not in env_spec  # else every replica would share it
    config_file = tmp_path / "actors.yaml"
    config_file.write_text(one(objects, "ConfigMap", f"{FULL}-actors")["data"]["config.yaml"])

    def pod_seed(pod_name: str) -> int:
        env = {}
        for name, e in env_spec.items():
            if "value" in e:
                env[name] = e["value"]
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[name] = pod_name
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            config = load_config(load_spec("actors").config_cls, "actors", config_file=config_file)
            assert config.actor_name == pod_name
            return base_seed(config, env)

    a, b = f"{FULL}-actors-6d5f7c9b8-x2k4q", f"{FULL}-actors-6d5f7c9b8-p9z7m"
    assert pod_seed(a) != pod_seed(b)
    assert pod_seed(a) == pod_seed(a)
    assert 0 <= pod_seed(a) < 2**31 - 1
    # MAESTROMOTIF_ACTORS_SEED, when set, wins.
    monkeypatch.setenv("MAESTROMOTIF_ACTORS_SEED", "1234")
    assert pod_seed(a) == pod_seed(b) == 1234


# --- values.schema.json ---------------------------------------------------------------

def test_schema_is_generated_from_the_services_models() -> None:
    from maestromotif.kit.chartschema import SCHEMA_PATH, render_schema

    assert SCHEMA_PATH.read_text() == render_schema(), "values.schema.json is stale: run `make chart-schema`"
    schema = json.loads(SCHEMA_PATH.read_text())
    learner = schema["properties"]["learner"]["properties"]["config"]
    fields = load_spec("learner").config_cls.model_fields
    assert "batch_size" in learner["properties"] and "batch_size" in fields
    assert "port" not in learner["properties"] and "reward_address" not in learner["properties"]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_schema_accepts_the_value_sets(name: str) -> None:
    chart().validate_schema(copy.deepcopy(VALUE_SETS[name]))


BAD_VALUES = {
    "negative replicas": {"actors": {"replicas": -1}},
    "tls as text": {"tls": {"enabled": "yes"}},
    "unknown tls key": {"tls": {"mtls": True}},
    "replicas as text": {"actors": {"replicas": "two"}},
    "unknown top-level key": {"learnr": {"enabled": True}},
    "unknown component key": {"actors": {"replica": 3}},
    "bad LLM provider": {"llm": {"provider": "gpt"}},
    "external LLM without URL": {"llm": {"provider": "external"}},
    "bad pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "root pods": {"podSecurityContext": {"runAsNonRoot": False}},
    "privilege escalation": {"securityContext": {"allowPrivilegeEscalation": True}},
    "misspelt service setting": {"learner": {"config": {"batch_sizee": 1024}}},
    "service setting of the wrong type": {"reward": {"config": {"cache_size": "big"}}},
    "service setting out of range": {"actors": {"config": {"processes": 0}}},
    "setting the chart owns": {"reward": {"config": {"port": 6000}}},
    "actor seed shared by all replicas": {"actors": {"config": {"seed": 7}}},
    "zero shards": {"annotation": {"shards": 0}},
    "bad access mode": {"persistence": {"accessModes": ["RWX"]}},
    "bad service type": {"agent": {"service": {"type": "Ingress"}}},
    "gpu count zero": {"learner": {"gpu": {"enabled": True, "count": 0}}},
    "bad quantity": {"learner": {"resources": {"limits": {"memory": "lots"}}}},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case: str) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        chart().validate_schema(copy.deepcopy(BAD_VALUES[case]))


def test_lint_reports_schema_errors() -> None:
    report = helm_python.lint(str(CHART), {"actors": {"replicas": -3}}, namespace=NAMESPACE)
    text = json.dumps(report)
    assert "replicas" in text and any(m["severity"] == 3 for m in report["messages"])


# --- NetworkPolicies ------------------------------------------------------------------

def _component(selector: dict[str, Any]) -> str:
    return selector.get("matchLabels", {}).get("app.kubernetes.io/component", "?")


def _peer(peer: dict[str, Any] | None) -> str:
    if peer is None:
        return "any"
    if "ipBlock" in peer:
        return "cidr:" + peer["ipBlock"]["cidr"]
    labels = peer.get("podSelector", {}).get("matchLabels", {})
    if "namespaceSelector" in peer:
        if labels.get("k8s-app") == "kube-dns":
            return "dns"
        if labels.get("app.kubernetes.io/name") == "prometheus":
            return "prometheus"
        return "other-namespace"
    return labels.get("app.kubernetes.io/component", "?")


def allowed_calls(objects: list[dict[str, Any]]) -> tuple[set[tuple[str, str, int]], set[tuple[str, str, int]]]:
    """(ingress, egress) edges (source, destination, port) the rendered NetworkPolicies allow."""
    ingress: set[tuple[str, str, int]] = set()
    egress: set[tuple[str, str, int]] = set()
    for policy in find(objects, "NetworkPolicy"):
        spec = policy["spec"]
        if policy["metadata"]["name"].endswith("-default-deny"):
            assert spec.get("ingress") is None and spec.get("egress") is None
            assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
            continue
        me = _component(spec["podSelector"])
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}, me
        for rule in spec.get("ingress") or []:
            for peer in rule.get("from") or [None]:
                for port in rule["ports"]:
                    ingress.add((_peer(peer), me, port["port"]))
        for rule in spec.get("egress") or []:
            for peer in rule.get("to") or [None]:
                for port in rule["ports"]:
                    egress.add((me, _peer(peer), port["port"]))
    return ingress, egress


DNS = {53}
BASE_INGRESS = {
    ("actors", "learner", 50051), ("agent", "learner", 50051), ("learner", "reward", 50053),
    ("agent", "codegen", 50055), ("any", "agent", 50056),
    ("prometheus", "learner", 9091), ("prometheus", "actors", 9092), ("prometheus", "reward", 9093),
    ("prometheus", "codegen", 9095), ("prometheus", "agent", 9096),
}
BASE_EGRESS = {
    ("actors", "learner", 50051), ("learner", "reward", 50053), ("agent", "learner", 50051),
    ("agent", "codegen", 50055),
    ("actors", "dns", 53), ("learner", "dns", 53), ("agent", "dns", 53),
}
EXPECTED_CALLS = {
    "default": (BASE_INGRESS, BASE_EGRESS),
    "tls-mtls": (BASE_INGRESS, BASE_EGRESS),  # TLS changes no edge (its exec probes stay on the pod's loopback)
    "tgi": (BASE_INGRESS | {("codegen", "tgi", 8080), ("annotation", "tgi", 8080)},
            BASE_EGRESS | {("codegen", "tgi", 8080), ("annotation", "tgi", 8080), ("tgi", "any", 443),
                           ("codegen", "dns", 53), ("annotation", "dns", 53), ("tgi", "dns", 53)}),
    "external-llm": (BASE_INGRESS,
                     BASE_EGRESS | {("codegen", "cidr:10.20.0.0/16", 443), ("annotation", "cidr:10.20.0.0/16", 443),
                                    ("codegen", "dns", 53), ("annotation", "dns", 53)}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_CALLS))
def test_network_policies_allow_exactly_the_architectures_calls(name: str) -> None:
    objects = render(VALUE_SETS[name])
    ingress, egress = allowed_calls(objects)
    want_in, want_out = EXPECTED_CALLS[name]
    assert ingress == want_in, (sorted(ingress - want_in), sorted(want_in - ingress))
    assert egress == want_out, (sorted(egress - want_out), sorted(want_out - egress))
    # Both ends agree on every pod-to-pod call.
    pods = {"learner", "actors", "reward", "codegen", "agent", "annotation", "tgi", "reward-training"}
    assert {e for e in ingress if e[0] in pods} == {e for e in egress if e[1] in pods}
    # Every pod of the release is covered by a policy (default deny).
    deny = one(objects, "NetworkPolicy", f"{FULL}-default-deny")["spec"]["podSelector"]["matchLabels"]
    for where, spec in pod_specs(objects):
        template = next(o for o in objects if f"{o['kind']}/{o['metadata']['name']}" == where)
        labels = template["spec"]["template"]["metadata"]["labels"]
        assert deny.items() <= labels.items(), where


def test_agent_clients_can_be_restricted() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"team": "play"}}}]
    ingress, _ = allowed_calls(render({"networkPolicy": {"agentClients": peers}}))
    assert ("other-namespace", "agent", 50056) in ingress and ("any", "agent", 50056) not in ingress


def test_notes_tell_how_to_reach_the_agent_and_grafana() -> None:
    text = notes()
    assert f"svc/{FULL}-agent 50056:50056" in text and "grpcurl -plaintext $AGENT list" in text
    assert "svc/kube-prometheus-stack-grafana 3000:80" in text
    assert f"deploy/{FULL}-actors --replicas=N" in text
