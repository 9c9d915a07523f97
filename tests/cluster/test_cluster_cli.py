"""``maestromotif cluster`` against a loopback server that answers like the Kubernetes API:
the requests it makes (paths, bodies, auth) and what it prints, success and failure."""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import fake_kube as fk
import grpc
import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from typer.testing import CliRunner

from maestromotif.cli import app
from maestromotif.cluster import (
    AnnotationJobSpec,
    ClusterError,
    Release,
    annotator_image,
    fullname,
    parse_learner_metrics,
)
from maestromotif.v1 import learner_pb2, learner_pb2_grpc

BASE = ["--namespace", "ml", "--release", "prod"]
APPS = "/apis/apps/v1/namespaces/ml/deployments"
JOBS = "/apis/batch/v1/namespaces/ml/jobs"
METRICS = "/api/v1/namespaces/ml/services/prod-maestromotif-learner:9091/proxy/metrics"


@pytest.fixture()
def kube():
    with fk.FakeKube() as k:
        yield k


def _cli(kube: fk.FakeKube, tmp_path: Path, *args: str):
    cfg = kube.kubeconfig(tmp_path / "kubeconfig")
    return CliRunner().invoke(app, ["cluster", *args, "--kubeconfig", str(cfg), *BASE])


def _learner_metrics_text() -> str:
    # the learner's names (tests/observability/test_prometheus_live.py parses a real learner's text)
    reg = CollectorRegistry()
    p = "maestromotif_learner_"
    for name, value in (("training", 1), ("policy_version", 1234), ("samples_per_second", 5321.5),
                        ("connected_actors", 16), ("connected_envs", 512), ("policy_lag", 1.75)):
        Gauge(p + name, name, registry=reg).set(value)
    Counter(p + "samples_trained", "trained", registry=reg).inc(1234 * 4096)
    Gauge(p + "loss", "losses", ["kind"], registry=reg).labels("policy_loss").set(0.5)  # labelled: ignored
    return generate_latest(reg).decode()


def test_names_follow_the_chart() -> None:
    assert fullname("prod") == "prod-maestromotif"
    assert fullname("maestromotif") == "maestromotif"
    assert fullname("maestromotif-staging") == "maestromotif-staging"
    assert len(fullname("a" * 60)) == 40
    assert annotator_image("docker.io/maestromotif/actors:0.1.0") == "docker.io/maestromotif/annotator:0.1.0"
    assert annotator_image("maestromotif/actors") == "maestromotif/annotator"
    assert annotator_image("my.reg/custom-image:2") == "my.reg/custom-image:2"


def test_status_prints_pods_deployments_and_training(kube: fk.FakeKube, tmp_path: Path) -> None:
    kube.routes[("GET", "/api/v1/namespaces/ml/pods")] = (200, {"items": [
        fk.pod("prod-maestromotif-learner-0", "learner", node="gpu-1"),
        fk.pod("prod-maestromotif-actors-a", "actors", restarts=2),
        fk.pod("prod-maestromotif-actors-b", "actors", phase="Pending", ready=False),
    ]})
    kube.routes[("GET", APPS)] = (200, {"items": [
        fk.deployment("prod-maestromotif-learner", "learner", 1, 1),
        fk.deployment("prod-maestromotif-actors", "actors", 2, 1),
    ]})
    kube.routes[("GET", METRICS)] = (200, _learner_metrics_text())
    res = _cli(kube, tmp_path, "status")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "release prod in namespace ml" in out
    assert "prod-maestromotif-actors" in out and "1/2" in out
    assert "prod-maestromotif-actors-b" in out and "Pending" in out and "0/1" in out
    assert "gpu-1" in out
    assert ("learner (training): step (policy version) 1,234, samples trained 5,054,464, samples/s 5,321.5, "
            "connected actors 16 (512 games), policy lag 1.75") in out
    # the pods and Deployments were selected by the release's instance label, with the token
    for r in kube.requests:
        assert r.headers["authorization"] == f"Bearer {fk.TOKEN}"
    listed = [r for r in kube.requests if r.path in ("/api/v1/namespaces/ml/pods", APPS)]
    assert len(listed) == 2 and all(r.query["labelSelector"] == ["app.kubernetes.io/instance=prod"] for r in listed)
    assert ("GET", METRICS) in kube.calls()


def test_status_without_learner_metrics_still_shows_pods(kube: fk.FakeKube, tmp_path: Path) -> None:
    kube.routes[("GET", "/api/v1/namespaces/ml/pods")] = (200, {"items": [fk.pod("p-actors-a", "actors")]})
    kube.routes[("GET", APPS)] = (200, {"items": []})
    kube.routes[("GET", METRICS)] = fk.status(503, "no endpoints available for service")
    res = _cli(kube, tmp_path, "status", "--json")
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.output)
    assert doc["pods"][0]["name"] == "p-actors-a" and doc["training"] is None
    assert "HTTP 503" in doc["training_error"] and "no endpoints available" in doc["training_error"]
    res = _cli(kube, tmp_path, "status")
    assert res.exit_code == 0 and "training: unavailable (reading the learner's metrics" in res.output
    assert "kubectl -n ml port-forward svc/prod-maestromotif-learner 50051" in res.output


def test_status_forbidden_is_a_clear_error(kube: fk.FakeKube, tmp_path: Path) -> None:
    kube.routes[("GET", "/api/v1/namespaces/ml/pods")] = fk.status(403, 'pods is forbidden: User "me" cannot list')
    res = _cli(kube, tmp_path, "status")
    assert res.exit_code == 1
    assert "HTTP 403" in res.output and "cannot list" in res.output and "RBAC" in res.output


def test_scale_actors_patches_the_scale_subresource(kube: fk.FakeKube, tmp_path: Path) -> None:
    path = f"{APPS}/prod-maestromotif-actors/scale"
    kube.routes[("GET", path)] = (200, fk.scale("prod-maestromotif-actors", 2))
    kube.routes[("PATCH", path)] = lambda r: (200, fk.scale("prod-maestromotif-actors", r.body["spec"]["replicas"]))
    res = _cli(kube, tmp_path, "scale-actors", "16")
    assert res.exit_code == 0, res.output
    assert "deployment prod-maestromotif-actors: replicas 2 -> 16" in res.output
    (patch,) = [r for r in kube.requests if r.method == "PATCH"]
    assert patch.path == path and patch.body == {"spec": {"replicas": 16}}
    assert "merge-patch" in patch.headers["content-type"]


def test_scale_actors_missing_deployment(kube: fk.FakeKube, tmp_path: Path) -> None:
    res = _cli(kube, tmp_path, "scale-actors", "3")
    assert res.exit_code == 1
    assert ("Deployment prod-maestromotif-actors in namespace ml not found: is release 'prod' installed there?"
            in res.output)
    assert not kube.calls("PATCH")


def test_scale_actors_rejects_negative(kube: fk.FakeKube, tmp_path: Path) -> None:
    res = _cli(kube, tmp_path, "scale-actors", "-1")
    assert res.exit_code == 2 and not kube.requests


def test_bad_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["cluster", "status", "--kubeconfig", str(tmp_path / "nope"), *BASE])
    assert res.exit_code == 2 and "--kubeconfig: no such file" in res.output
    (tmp_path / "bad").write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    res = CliRunner().invoke(app, ["cluster", "status", "--kubeconfig", str(tmp_path / "bad"), "--context", "x", *BASE])
    assert res.exit_code == 2 and "cannot load" in res.output and "'x'" in res.output


def _job_sequence(name: str, shards: int, states: list[dict]) -> fk.Handler:
    seen = {"n": 0}

    def handler(req: fk.Request):
        i = min(seen["n"], len(states) - 1)
        seen["n"] += 1
        return 200, fk.job(name, shards, **states[i])

    return handler


def test_annotate_creates_indexed_job_and_follows_it(kube: fk.FakeKube, tmp_path: Path) -> None:
    name = "prod-annotate-1"
    kube.routes[("GET", f"{APPS}/prod-maestromotif-actors")] = (200, fk.deployment(
        "prod-maestromotif-actors", "actors", 2, 2, image="reg.io/maestromotif/actors:1.2", pull_secrets=["regcred"],
        service_account="prod-maestromotif"))
    kube.routes[("POST", JOBS)] = lambda r: (201, r.body)
    kube.routes[("GET", f"{JOBS}/{name}/status")] = _job_sequence(name, 3, [
        {"active": 3}, {"succeeded": 1, "active": 2}, {"succeeded": 2, "active": 1, "failed": 1},
        {"succeeded": 3, "failed": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    ])
    res = _cli(kube, tmp_path, "annotate", "--shards", "3", "--url", "http://tgi:8080", "--backend", "tgi",
               "--name", name, "--poll", "0.05", "--llm-secret", "llm-creds", "--arg=--concurrency", "--arg=16")
    assert res.exit_code == 0, res.output
    assert f"created Job {name} in namespace ml: 3 shards, image reg.io/maestromotif/annotator:1.2" in res.output
    assert f"Job {name} complete: 3/3 shards, 1 pod failures" in res.output
    (post,) = [r for r in kube.requests if r.method == "POST"]
    body = post.body
    assert post.path == JOBS and body["kind"] == "Job" and body["metadata"]["name"] == name
    spec = body["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3 and spec["parallelism"] == 3
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "reg.io/maestromotif/annotator:1.2"
    assert c["command"] == ["maestromotif"]
    assert c["args"] == ["annotate", "--pairs", "/data/pairs", "--out", "/data/labels", "--skill", "all",
                         "--backend", "tgi", "--url", "http://tgi:8080", "--concurrency", "16"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["serviceAccountName"] == "prod-maestromotif"
    assert body["metadata"]["labels"]["app.kubernetes.io/component"] == "annotation"
    assert {"name": "MAESTROMOTIF_NUM_SHARDS", "value": "3"} in c["env"]
    assert c["envFrom"] == [{"secretRef": {"name": "llm-creds"}}]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["restartPolicy"] == "Never"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "prod-maestromotif-data"}} in pod["volumes"]
    assert len([r for r in kube.requests if r.path.endswith("/status")]) == 4


def test_annotate_job_failure_names_the_reason(kube: fk.FakeKube, tmp_path: Path) -> None:
    name = "prod-annotate-2"
    kube.routes[("POST", JOBS)] = lambda r: (201, r.body)
    kube.routes[("GET", f"{JOBS}/{name}/status")] = _job_sequence(name, 2, [
        {"active": 2}, {"succeeded": 1, "failed": 7, "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]},
    ])
    res = _cli(kube, tmp_path, "annotate", "--shards", "2", "--url", "http://llm:8000/v1", "--image", "img:1",
               "--name", name, "--poll", "0.05")
    assert res.exit_code == 1
    assert (f"Job {name} failed (1/2 shards done, 7 pod failures): BackoffLimitExceeded: "
            "Job has reached the specified backoff limit") in res.output
    assert "kubectl -n ml logs job/prod-annotate-2" in res.output
    # --image given: the actors Deployment was still asked for pull secrets; its absence is fine
    assert kube.calls("GET")[0] == ("GET", f"{APPS}/prod-maestromotif-actors")


def test_annotate_existing_job_and_bad_options(kube: fk.FakeKube, tmp_path: Path) -> None:
    kube.routes[("POST", JOBS)] = fk.status(409, 'jobs.batch "x" already exists')
    res = _cli(kube, tmp_path, "annotate", "--shards", "2", "--url", "http://l", "--image", "i", "--name", "x")
    assert res.exit_code == 1 and "Job x already exists in namespace ml" in res.output
    n = len(kube.requests)
    res = _cli(kube, tmp_path, "annotate", "--shards", "2", "--backend", "openai", "--name", "y")
    assert res.exit_code == 1 and "--url: backend openai needs the LLM server's URL" in res.output
    res = _cli(kube, tmp_path, "annotate", "--shards", "2", "--url", "http://l", "--image", "i", "--name", "Bad_Name")
    assert res.exit_code == 1 and "not a valid Job name" in res.output
    res = _cli(kube, tmp_path, "annotate", "--shards", "0", "--url", "http://l")
    assert res.exit_code == 2
    assert len(kube.requests) == n  # bad options fail before any API call


def test_annotate_no_actors_deployment_for_image(kube: fk.FakeKube, tmp_path: Path) -> None:
    res = _cli(kube, tmp_path, "annotate", "--shards", "2", "--url", "http://l", "--name", "z")
    assert res.exit_code == 1 and "Deployment prod-maestromotif-actors not found in namespace ml" in res.output
    assert "--image" in res.output and not kube.calls("POST")


def test_unreachable_api_server(tmp_path: Path) -> None:
    with fk.FakeKube() as k:
        cfg = k.kubeconfig(tmp_path / "kubeconfig")
    # the server is gone now: connection refused
    from maestromotif.cluster import connect

    rel = Release(connect(cfg), "ml", "prod")
    rel.api.configuration.retries = 0
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API"):
        rel.scale_actors(2)


def test_parse_learner_metrics_reads_the_learners_names() -> None:
    t = parse_learner_metrics(_learner_metrics_text())
    assert (t.training, t.policy_version, t.connected_actors, t.connected_envs, t.policy_lag) == (True, 1234, 16, 512, 1.75)
    assert t.samples_trained == 1234 * 4096 and t.samples_per_second == 5321.5


def test_job_spec_validation() -> None:
    with pytest.raises(ClusterError, match="--parallelism: 5 is not in 1..2"):
        AnnotationJobSpec(shards=2, image="i", name="n", url="http://x", parallelism=5).validate()
    with pytest.raises(ClusterError, match="--backend: 'vllm' is not one of"):
        AnnotationJobSpec(shards=2, image="i", name="n", url="http://x", backend="vllm").validate()
    with pytest.raises(ClusterError, match="--skill: "):
        AnnotationJobSpec(shards=2, image="i", name="n", url="http://x", skill="juggler").validate()
    spec = AnnotationJobSpec(shards=2, image="i", name="n", backend="embedded", skill="descender")
    spec.validate()
    args = spec.manifest(Release(client.ApiClient(), "ml", "prod"))["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-6:] == ["--skill", "descender", "--backend", "embedded", "--model-dir", "/data/models"]


class _StatusOnlyLearner(learner_pb2_grpc.LearnerServicer):
    """Answers GetStatus like the learner (a double for the CLI's gRPC read); checks the token."""

    def GetStatus(self, request, context):  # type: ignore[no-untyped-def]
        if ("authorization", "Bearer s3cret") not in context.invocation_metadata():
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        return learner_pb2.LearnerStatus(
            mode="training", policy_version=77, samples_trained=77 * 4096, samples_per_second=1234.5,
            connected_actors=3, connected_envs=96, mean_policy_lag=0.5, losses={"policy_loss": 0.25},
            skill_returns={"discoverer": 0.125})


def test_status_with_learner_grpc(kube: fk.FakeKube, tmp_path: Path) -> None:
    kube.routes[("GET", "/api/v1/namespaces/ml/pods")] = (200, {"items": []})
    kube.routes[("GET", APPS)] = (200, {"items": []})
    server = grpc.server(futures.ThreadPoolExecutor(2))
    learner_pb2_grpc.add_LearnerServicer_to_server(_StatusOnlyLearner(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        token = tmp_path / "token"
        token.write_text("s3cret\n")
        res = _cli(kube, tmp_path, "status", "--learner", f"127.0.0.1:{port}", "--token-file", str(token))
        assert res.exit_code == 0, res.output
        assert ("learner (training): step (policy version) 77, samples trained 315,392, samples/s 1,234.5, "
                "connected actors 3 (96 games), policy lag 0.50") in res.output
        assert "losses: policy_loss 0.25" in res.output and "discoverer 0.125" in res.output
        assert f"from GetStatus at 127.0.0.1:{port}" in res.output
        assert ("GET", METRICS) not in kube.calls()  # no proxy read with --learner
        res = _cli(kube, tmp_path, "status", "--learner", f"127.0.0.1:{port}")
        assert res.exit_code == 0
        assert "training: unavailable (learner GetStatus at" in res.output and "UNAUTHENTICATED" in res.output
    finally:
        server.stop(0)
