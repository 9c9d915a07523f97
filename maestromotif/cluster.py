"""Act on a MaestroMotif Helm release through the Kubernetes API (the pinned ``kubernetes`` client).

Used by ``maestromotif cluster``: read the release's pods and the learner's training
numbers, scale the actors Deployment, and run annotation as an Indexed Job (one completion
index per shard) while following its progress.

Names follow the chart's standard helpers: the release's objects carry the label
``app.kubernetes.io/instance=<release>`` and are named ``<fullname>-<component>``, where
``fullname`` is the release name when it contains ``maestromotif`` and
``<release>-maestromotif`` otherwise (Helm's usual ``fullname`` rule).

The training numbers come from the learner's own Prometheus text (``/metrics``), read
through the API server's service proxy (``services/proxy``), so no port-forward is needed.
This has been tested against a loopback server that answers like the Kubernetes API, not
against a live cluster.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from prometheus_client.parser import text_string_to_metric_families
from urllib3.exceptions import HTTPError as Urllib3Error

CHART = "maestromotif"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
LEARNER_METRICS_PORT = 9091


class ClusterError(RuntimeError):
    """A cluster operation failed; the message says what and where."""


def fullname(release: str, chart: str = CHART) -> str:
    """The chart's ``maestromotif.fullname``: the release name if it contains the chart name,
    else ``<release>-<chart>``; at most 40 characters (the chart's limit)."""
    name = release if chart in release else f"{release}-{chart}"
    return name[:40].rstrip("-")


def annotator_image(actors_image: str) -> str:
    """The chart's per-service images are ``<registry>/<prefix>/<service>:<tag>``: the annotator's
    is the actors' with the last path part swapped. A custom repository is used as it is."""
    m = re.fullmatch(r"(.*/)actors((?::[^/]+)?(?:@sha256:[0-9a-f]+)?)", actors_image)
    return f"{m.group(1)}annotator{m.group(2)}" if m else actors_image


def connect(kubeconfig: Path | None = None, context: str | None = None) -> client.ApiClient:
    """An API client from a kubeconfig (``--kubeconfig``/``KUBECONFIG``/``~/.kube/config``), or the
    pod's service account when none is found and no file was named."""
    try:
        return config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)
    except (ConfigException, FileNotFoundError, OSError) as exc:
        if kubeconfig is None and context is None:
            try:
                config.load_incluster_config()
                return client.ApiClient()
            except ConfigException:
                pass
        where = str(kubeconfig) if kubeconfig else "the default kubeconfig"
        raise ClusterError(f"cannot load {where}" + (f" (context {context!r})" if context else "") + f": {exc}") from None


@dataclass
class PodInfo:
    name: str
    component: str
    phase: str
    ready: str  # "1/1"
    restarts: int
    node: str
    age_s: float | None


@dataclass
class DeploymentInfo:
    name: str
    component: str
    desired: int
    ready: int


@dataclass
class TrainingInfo:
    """The learner's numbers from its /metrics (None where the learner does not export one)."""

    training: bool | None = None
    policy_version: float | None = None
    samples_trained: float | None = None
    samples_per_second: float | None = None
    connected_actors: float | None = None
    connected_envs: float | None = None
    policy_lag: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    skill_returns: dict[str, float] = field(default_factory=dict)
    source: str = ""


@dataclass
class ReleaseStatus:
    namespace: str
    release: str
    pods: list[PodInfo] = field(default_factory=list)
    deployments: list[DeploymentInfo] = field(default_factory=list)
    training: TrainingInfo | None = None
    training_error: str = ""


@dataclass
class JobProgress:
    name: str
    completions: int
    succeeded: int
    failed: int
    active: int
    done: bool
    failed_reason: str = ""


def _explain(exc: Exception, what: str) -> ClusterError:
    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        try:
            import json

            reason = json.loads(exc.body or "{}").get("message") or reason
        except ValueError:
            pass
        hint = {401: " (unauthorized: check the kubeconfig's credentials)",
                403: " (forbidden: the account lacks RBAC permission for this)"}.get(exc.status or 0, "")
        return ClusterError(f"{what}: HTTP {exc.status}: {reason}{hint}")
    return ClusterError(f"{what}: cannot reach the Kubernetes API: {exc}")


def parse_learner_metrics(text: str) -> TrainingInfo:
    """The training numbers from the learner's Prometheus text."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                values[sample.name] = sample.value
    p = "maestromotif_learner_"
    training = values.get(p + "training")
    return TrainingInfo(
        training=None if training is None else training >= 1,
        policy_version=values.get(p + "policy_version"),
        samples_trained=values.get(p + "samples_trained_total"),
        samples_per_second=values.get(p + "samples_per_second"),
        connected_actors=values.get(p + "connected_actors"),
        connected_envs=values.get(p + "connected_envs"),
        policy_lag=values.get(p + "policy_lag"),
    )


class Release:
    """One installed release of the chart in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str, release: str, name: str | None = None) -> None:
        self.api = api
        self.namespace = namespace
        self.release = release
        self.fullname = name or fullname(release)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)

    @property
    def selector(self) -> str:
        return f"{INSTANCE_LABEL}={self.release}"

    def component_name(self, component: str) -> str:
        return f"{self.fullname}-{component}"

    # --- status ---------------------------------------------------------------------------
    def status(self, learner_metrics_port: int = LEARNER_METRICS_PORT, read_learner: bool = True) -> ReleaseStatus:
        out = ReleaseStatus(self.namespace, self.release)
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
            deps = self.apps.list_namespaced_deployment(self.namespace, label_selector=self.selector)
        except (ApiException, Urllib3Error) as exc:
            raise _explain(exc, f"listing release {self.release!r} in namespace {self.namespace!r}") from None
        now = _dt.datetime.now(_dt.UTC)
        for pod in pods.items:
            statuses = pod.status.container_statuses or []
            start = pod.status.start_time
            out.pods.append(PodInfo(
                name=pod.metadata.name,
                component=(pod.metadata.labels or {}).get(COMPONENT_LABEL, ""),
                phase=pod.status.phase or "Unknown",
                ready=f"{sum(1 for c in statuses if c.ready)}/{len(pod.spec.containers)}",
                restarts=sum(c.restart_count or 0 for c in statuses),
                node=pod.spec.node_name or "",
                age_s=(now - start).total_seconds() if start else None,
            ))
        for dep in deps.items:
            out.deployments.append(DeploymentInfo(
                name=dep.metadata.name,
                component=(dep.metadata.labels or {}).get(COMPONENT_LABEL, ""),
                desired=dep.spec.replicas if dep.spec.replicas is not None else 1,
                ready=dep.status.ready_replicas or 0,
            ))
        if read_learner:
            try:
                out.training = self.learner_metrics(learner_metrics_port)
            except ClusterError as exc:
                out.training_error = str(exc)
        return out

    def learner_metrics(self, port: int = LEARNER_METRICS_PORT) -> TrainingInfo:
        """The learner's /metrics through the API server's service proxy."""
        service = f"{self.component_name('learner')}:{port}"
        try:
            text = self.core.connect_get_namespaced_service_proxy_with_path(
                service, self.namespace, "metrics", _preload_content=False, _request_timeout=15,
            ).data.decode("utf-8", "replace")
        except (ApiException, Urllib3Error) as exc:
            raise _explain(exc, f"reading the learner's metrics through services/{service}/proxy") from None
        try:
            info = parse_learner_metrics(text)
        except ValueError as exc:
            raise ClusterError(f"services/{service}/proxy/metrics is not Prometheus text: {exc}") from None
        info.source = f"/api/v1/namespaces/{self.namespace}/services/{service}/proxy/metrics"
        return info

    # --- scale ----------------------------------------------------------------------------
    def scale_actors(self, replicas: int) -> tuple[int, int]:
        """Set the actors Deployment's replicas; returns (before, after)."""
        if not 0 <= replicas <= 10_000:
            raise ClusterError(f"replicas: {replicas} is not in 0..10000")
        name = self.component_name("actors")
        what = f"Deployment {name} in namespace {self.namespace}"
        try:
            before = self.apps.read_namespaced_deployment_scale(name, self.namespace).spec.replicas or 0
            after = self.apps.patch_namespaced_deployment_scale(name, self.namespace, {"spec": {"replicas": replicas}})
        except ApiException as exc:
            if exc.status == 404:
                raise ClusterError(f"{what} not found: is release {self.release!r} installed there? "
                                   "(--release, --namespace)") from None
            raise _explain(exc, f"scaling {what}") from None
        except Urllib3Error as exc:
            raise _explain(exc, f"scaling {what}") from None
        return before, after.spec.replicas

    # --- annotation -----------------------------------------------------------------------
    def pod_defaults(self, need_image: bool) -> dict[str, Any]:
        """What an annotation pod takes from the release's actors Deployment: the annotator
        image (same registry, prefix and tag), imagePullSecrets and service account. Without
        that Deployment, only an explicit image will do (``need_image``)."""
        name = self.component_name("actors")
        try:
            dep = self.apps.read_namespaced_deployment(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                if need_image:
                    raise ClusterError(f"Deployment {name} not found in namespace {self.namespace} to take the image "
                                       "from: is the release installed? Or pass --image") from None
                return {}
            raise _explain(exc, f"reading Deployment {name}") from None
        except Urllib3Error as exc:
            raise _explain(exc, f"reading Deployment {name}") from None
        pod = dep.spec.template.spec
        out: dict[str, Any] = {"image": annotator_image(pod.containers[0].image)}
        if pod.image_pull_secrets:
            out["image_pull_secrets"] = [s.name for s in pod.image_pull_secrets]
        if pod.service_account_name:
            out["service_account"] = pod.service_account_name
        return out

    def annotation_job(self, spec: AnnotationJobSpec) -> dict[str, Any]:
        return spec.manifest(self)

    def create_job(self, body: dict[str, Any]) -> str:
        name = body["metadata"]["name"]
        try:
            self.batch.create_namespaced_job(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise ClusterError(f"Job {name} already exists in namespace {self.namespace}: pick another --name "
                                   "or delete it") from None
            raise _explain(exc, f"creating Job {name}") from None
        except Urllib3Error as exc:
            raise _explain(exc, f"creating Job {name}") from None
        return name

    def job_progress(self, name: str) -> JobProgress:
        try:
            job = self.batch.read_namespaced_job_status(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise ClusterError(f"Job {name} not found in namespace {self.namespace} (deleted?)") from None
            raise _explain(exc, f"reading Job {name}") from None
        except Urllib3Error as exc:
            raise _explain(exc, f"reading Job {name}") from None
        st = job.status
        done, reason = False, ""
        for cond in st.conditions or []:
            if cond.status == "True" and cond.type == "Complete":
                done = True
            if cond.status == "True" and cond.type == "Failed":
                done, reason = True, f"{cond.reason or 'Failed'}: {cond.message or ''}".rstrip(": ")
        return JobProgress(name, job.spec.completions or 1, st.succeeded or 0, st.failed or 0, st.active or 0,
                           done, reason)

    def follow_job(self, name: str, on_progress: Callable[[JobProgress], None], poll_s: float = 5.0,
                   timeout_s: float | None = None, sleep: Callable[[float], None] = time.sleep) -> JobProgress:
        """Poll the Job until it completes (returned) or fails (ClusterError with the reason)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            progress = self.job_progress(name)
            on_progress(progress)
            if progress.failed_reason:
                raise ClusterError(f"Job {name} failed ({progress.succeeded}/{progress.completions} shards done, "
                                   f"{progress.failed} pod failures): {progress.failed_reason}. "
                                   f"`kubectl -n {self.namespace} logs job/{name}` shows why; a new run resumes "
                                   "each shard from its ledger")
            if progress.done:
                return progress
            if deadline is not None and time.monotonic() >= deadline:
                raise ClusterError(f"Job {name}: not finished after {timeout_s:.0f} s "
                                   f"({progress.succeeded}/{progress.completions} shards); it keeps running")
            sleep(poll_s)


@dataclass
class AnnotationJobSpec:
    """What the Indexed annotation Job runs: ``maestromotif annotate`` on shard
    ``JOB_COMPLETION_INDEX`` of ``shards`` (the CLI reads both from the environment)."""

    shards: int
    image: str
    name: str
    pairs: str = "/data/pairs"
    out: str = "/data/labels"
    backend: str = "openai"
    url: str | None = None
    model: str | None = None
    skill: str = "all"
    claim: str | None = None  # PVC mounted at /data (default: <fullname>-data)
    llm_secret: str | None = None  # Secret whose keys become environment variables (LLM credentials)
    parallelism: int | None = None
    backoff_limit: int = 6
    service_account: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)  # passed on to `maestromotif annotate`
    cpu: str = "1"
    memory: str = "2Gi"
    ttl_s: int | None = 86_400

    def validate(self) -> None:
        if not 1 <= self.shards <= 10_000:
            raise ClusterError(f"--shards: {self.shards} is not in 1..10000")
        if self.parallelism is not None and not 1 <= self.parallelism <= self.shards:
            raise ClusterError(f"--parallelism: {self.parallelism} is not in 1..{self.shards}")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", self.name):
            raise ClusterError(f"--name: {self.name!r} is not a valid Job name (lowercase letters, digits, '-', "
                               "at most 63 characters)")
        if self.backend not in ("embedded", "openai", "tgi"):
            raise ClusterError(f"--backend: {self.backend!r} is not one of embedded, openai, tgi")
        if self.skill != "all":
            from maestromotif.skills.ids import SkillIdError, parse_skill

            try:
                parse_skill(self.skill)
            except SkillIdError as exc:
                raise ClusterError(f"--skill: {exc}") from None
        if self.backend in ("openai", "tgi") and not self.url:
            raise ClusterError(f"--url: backend {self.backend} needs the LLM server's URL")
        if not self.image:
            raise ClusterError("--image: empty")

    def manifest(self, release: Release) -> dict[str, Any]:
        self.validate()
        labels = {INSTANCE_LABEL: release.release, COMPONENT_LABEL: "annotation",
                  "app.kubernetes.io/name": CHART, "app.kubernetes.io/managed-by": "maestromotif-cli"}
        args = ["annotate", "--pairs", self.pairs, "--out", self.out, "--skill", self.skill, "--backend", self.backend]
        if self.url:
            args += ["--url", self.url]
        if self.model:
            args += ["--model", self.model]
        if self.backend == "embedded":
            args += ["--model-dir", "/data/models"]  # where the chart keeps the embedded model's cache
        args += self.extra_args
        container: dict[str, Any] = {
            "name": "annotate",
            "image": self.image,
            "command": ["maestromotif"],
            "args": args,
            # JOB_COMPLETION_INDEX comes from Kubernetes (Indexed completion mode)
            "env": [{"name": "MAESTROMOTIF_NUM_SHARDS", "value": str(self.shards)},
                    {"name": "HOME", "value": "/tmp"}],
            "resources": {"requests": {"cpu": self.cpu, "memory": self.memory},
                          "limits": {"memory": self.memory}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
        }
        if self.llm_secret:
            container["envFrom"] = [{"secretRef": {"name": self.llm_secret}}]
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": self.claim or f"{release.fullname}-data"}},
                        {"name": "tmp", "emptyDir": {}}],
        }
        if self.service_account:
            pod["serviceAccountName"] = self.service_account
        if self.image_pull_secrets:
            pod["imagePullSecrets"] = [{"name": n} for n in self.image_pull_secrets]
        spec: dict[str, Any] = {
            "completionMode": "Indexed",
            "completions": self.shards,
            "parallelism": self.parallelism or self.shards,
            "backoffLimit": self.backoff_limit,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        }
        if self.ttl_s is not None:
            spec["ttlSecondsAfterFinished"] = self.ttl_s
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": self.name, "namespace": release.namespace, "labels": labels}, "spec": spec}
