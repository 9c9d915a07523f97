"""``maestromotif cluster``: status, scale-actors and annotate on a Helm release (Kubernetes API).

Tested against a loopback server that answers like the Kubernetes API, not a live cluster.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

KubeconfigOpt = Annotated[Optional[Path], typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config; in a pod: its service account).")]
ContextOpt = Annotated[Optional[str], typer.Option("--context", help="kubeconfig context (default: the current one).")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="namespace of the release.")]
ReleaseOpt = Annotated[str, typer.Option("--release", help="Helm release name.")]
FullnameOpt = Annotated[Optional[str], typer.Option("--fullname", help="object name prefix if the chart's fullnameOverride is set (default: from the release name).")]


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _release(kubeconfig: Path | None, context: str | None, namespace: str, release: str, name: str | None):  # type: ignore[no-untyped-def]
    from maestromotif.cluster import ClusterError, Release, connect

    if kubeconfig is not None and not kubeconfig.is_file():
        _fail(f"--kubeconfig: no such file: {kubeconfig}", 2)
    try:
        return Release(connect(kubeconfig, context), namespace, release, name)
    except ClusterError as exc:
        _fail(str(exc), 2)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _num(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _learner_grpc_status(address: str, token_file: Path | None, timeout_s: float):  # type: ignore[no-untyped-def]
    """The learner's GetStatus over gRPC (e.g. through `kubectl port-forward`), as TrainingInfo."""
    import grpc

    from maestromotif.cluster import ClusterError, TrainingInfo
    from maestromotif.kit.client import client_options_from_env, make_channel
    from maestromotif.kit.config import ConfigError
    from maestromotif.v1 import learner_pb2, learner_pb2_grpc

    token = None
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ClusterError(f"--token-file: {exc}") from None
    try:
        # TLS/mTLS (and the token, without --token-file) from MAESTROMOTIF_CLIENT_*.
        channel = make_channel(address, client_options_from_env(deadline_s=timeout_s, auth_token=token,
                                                                max_attempts=2))
    except (ConfigError, ValueError) as exc:
        raise ClusterError(f"--learner: {exc}") from None
    try:
        st = learner_pb2_grpc.LearnerStub(channel).GetStatus(learner_pb2.GetStatusRequest(), timeout=timeout_s)
    except grpc.RpcError as exc:
        raise ClusterError(f"learner GetStatus at {address}: {exc.code().name}: {exc.details()}") from None
    finally:
        channel.close()
    return TrainingInfo(
        training=st.mode == "training", policy_version=st.policy_version, samples_trained=st.samples_trained,
        samples_per_second=st.samples_per_second, connected_actors=st.connected_actors,
        connected_envs=st.connected_envs, policy_lag=st.mean_policy_lag, losses=dict(st.losses),
        skill_returns=dict(st.skill_returns), source=f"GetStatus at {address}",
    )


def register(app: typer.Typer) -> None:
    cluster = typer.Typer(name="cluster", no_args_is_help=True,
                          help="Act on a MaestroMotif Helm release through the Kubernetes API.")
    app.add_typer(cluster)

    @cluster.command("status")
    def status(
        kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, namespace: NamespaceOpt = "default",
        release: ReleaseOpt = "maestromotif", fullname: FullnameOpt = None,
        metrics_port: Annotated[int, typer.Option("--learner-metrics-port", min=1, max=65535, help="the learner Service's metrics port.")] = 9091,
        learner: Annotated[Optional[str], typer.Option("--learner", help="read the training numbers from the learner's GetStatus at HOST:PORT instead (e.g. after `kubectl port-forward svc/<fullname>-learner 50051`).")] = None,
        token_file: Annotated[Optional[Path], typer.Option("--token-file", help="bearer token for --learner, when the release has auth on.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables.")] = False,
    ) -> None:
        """Pods and Deployments of the release, and the learner's training step, samples/s and
        connected actors: from its /metrics through the API server's service proxy, or from its
        GetStatus with --learner."""
        from maestromotif.cluster import ClusterError

        rel = _release(kubeconfig, context, namespace, release, fullname)
        try:
            st = rel.status(metrics_port, read_learner=learner is None)
        except ClusterError as exc:
            _fail(str(exc))
        if learner is not None:
            try:
                st.training = _learner_grpc_status(learner, token_file, 15.0)
            except ClusterError as exc:
                st.training_error = str(exc)
        if as_json:
            typer.echo(json.dumps(dataclasses.asdict(st), indent=2))
            return
        typer.echo(f"release {st.release} in namespace {st.namespace}")
        if not st.pods and not st.deployments:
            typer.echo(f"  no pods or Deployments with label app.kubernetes.io/instance={st.release}")
        if st.deployments:
            typer.echo(f"\n{'DEPLOYMENT':<40} {'READY':>9}")
            for d in sorted(st.deployments, key=lambda d: d.name):
                typer.echo(f"{d.name:<40} {f'{d.ready}/{d.desired}':>9}")
        if st.pods:
            typer.echo(f"\n{'POD':<48} {'COMPONENT':<12} {'PHASE':<10} {'READY':>5} {'RESTARTS':>8} {'AGE':>5}  NODE")
            for p in sorted(st.pods, key=lambda p: (p.component, p.name)):
                typer.echo(f"{p.name:<48} {p.component:<12} {p.phase:<10} {p.ready:>5} {p.restarts:>8} "
                           f"{_age(p.age_s):>5}  {p.node}")
        typer.echo("")
        t = st.training
        if t is None:
            typer.echo(f"training: unavailable ({st.training_error})")
            if learner is None:
                typer.echo(f"  (with NetworkPolicies the API server may not reach the metrics port: run "
                           f"`kubectl -n {namespace} port-forward svc/{rel.component_name('learner')} 50051` "
                           "and pass --learner 127.0.0.1:50051)")
        else:
            mode = {True: "training", False: "serving only", None: "unknown mode"}[t.training]
            typer.echo(f"learner ({mode}): step (policy version) {_num(t.policy_version)}, "
                       f"samples trained {_num(t.samples_trained)}, samples/s {_num(t.samples_per_second, '{:,.1f}')}, "
                       f"connected actors {_num(t.connected_actors)} ({_num(t.connected_envs)} games), "
                       f"policy lag {_num(t.policy_lag, '{:.2f}')}")
            if t.losses:
                typer.echo("  losses: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(t.losses.items())))
            if t.skill_returns:
                typer.echo("  intrinsic return per skill run: "
                           + ", ".join(f"{k} {v:.3f}" for k, v in sorted(t.skill_returns.items())))
            typer.echo(f"  from {t.source}")

    @cluster.command("scale-actors")
    def scale_actors(
        replicas: Annotated[int, typer.Argument(help="number of actor pods (0 pauses acting).", min=0, max=10000)],
        kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, namespace: NamespaceOpt = "default",
        release: ReleaseOpt = "maestromotif", fullname: FullnameOpt = None,
    ) -> None:
        """Set the actors Deployment's replicas (the learner keeps training while actors come and go).
        With the chart's HorizontalPodAutoscaler on, the autoscaler overrides this."""
        from maestromotif.cluster import ClusterError

        rel = _release(kubeconfig, context, namespace, release, fullname)
        try:
            before, after = rel.scale_actors(replicas)
        except ClusterError as exc:
            _fail(str(exc))
        typer.echo(f"deployment {rel.component_name('actors')}: replicas {before} -> {after}")

    @cluster.command("annotate")
    def annotate(
        shards: Annotated[int, typer.Option("--shards", min=1, max=10000, help="number of shards = completion indexes of the Indexed Job.")],
        url: Annotated[Optional[str], typer.Option("--url", help="LLM server base URL (openai, tgi backends).")] = None,
        backend: Annotated[str, typer.Option("--backend", help="embedded | openai | tgi (as `maestromotif annotate`).")] = "openai",
        model: Annotated[Optional[str], typer.Option("--model", help="model id (remote) or 0.5b|1.5b (embedded).")] = None,
        skill: Annotated[str, typer.Option("--skill", help="all or a skill name.")] = "all",
        pairs: Annotated[str, typer.Option("--pairs", help="pair dataset path inside the pod (the data volume is at /data).")] = "/data/pairs",
        out: Annotated[str, typer.Option("--out", help="label set path inside the pod.")] = "/data/labels",
        image: Annotated[Optional[str], typer.Option("--image", help="image to run (default: the release's annotator image, <registry>/<prefix>/annotator:<tag> of its actors image).")] = None,
        claim: Annotated[Optional[str], typer.Option("--claim", help="PVC mounted at /data (default: <fullname>-data).")] = None,
        llm_secret: Annotated[Optional[str], typer.Option("--llm-secret", help="Secret whose keys become environment variables (LLM API key).")] = None,
        parallelism: Annotated[Optional[int], typer.Option("--parallelism", min=1, help="shards running at once (default: all).")] = None,
        backoff_limit: Annotated[int, typer.Option("--backoff-limit", min=0, max=1000, help="pod failures before the Job fails.")] = 6,
        extra: Annotated[Optional[list[str]], typer.Option("--arg", help="one more argument for `maestromotif annotate` in each pod; repeatable (e.g. --arg=--concurrency --arg=16).")] = None,
        name: Annotated[Optional[str], typer.Option("--name", help="Job name (default: <fullname>-annotate-<UTC time>).")] = None,
        follow: Annotated[bool, typer.Option("--follow/--no-follow", help="follow the Job with a progress bar until it ends.")] = True,
        poll: Annotated[float, typer.Option("--poll", min=0.05, max=600, help="seconds between status reads.")] = 5.0,
        timeout: Annotated[Optional[float], typer.Option("--timeout", min=1, help="give up following after this many seconds.")] = None,
        kubeconfig: KubeconfigOpt = None, context: ContextOpt = None, namespace: NamespaceOpt = "default",
        release: ReleaseOpt = "maestromotif", fullname: FullnameOpt = None,
    ) -> None:
        """Create the annotation Indexed Job (one completion index per shard, each pod runs
        `maestromotif annotate` on its shard, resumable) and follow it with a progress bar."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from maestromotif.cluster import AnnotationJobSpec, ClusterError

        rel = _release(kubeconfig, context, namespace, release, fullname)
        job_name = name or f"{rel.fullname}-annotate-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        try:
            spec = AnnotationJobSpec(shards=shards, image=image or "", name=job_name, pairs=pairs, out=out,
                                     backend=backend, url=url, model=model, skill=skill, claim=claim,
                                     llm_secret=llm_secret, parallelism=parallelism, backoff_limit=backoff_limit,
                                     extra_args=list(extra or []))
            spec.image = image or "placeholder"
            spec.validate()  # fail on bad options before calling the cluster
            defaults = rel.pod_defaults(need_image=image is None)
            spec.image = image or defaults["image"]
            spec.image_pull_secrets = defaults.get("image_pull_secrets", [])
            spec.service_account = defaults.get("service_account")
            body = spec.manifest(rel)
            rel.create_job(body)
        except ClusterError as exc:
            _fail(str(exc))
        typer.echo(f"created Job {job_name} in namespace {namespace}: {shards} shards, image {spec.image}")
        if not follow:
            return
        console = Console(stderr=True)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"annotate {job_name}", total=shards, detail="")

            def show(p):  # type: ignore[no-untyped-def]
                bar.update(task, completed=p.succeeded, detail=f"running {p.active}, pod failures {p.failed}")

            try:
                final = rel.follow_job(job_name, show, poll_s=poll, timeout_s=timeout)
            except ClusterError as exc:
                bar.stop()
                _fail(str(exc))
        typer.echo(f"Job {job_name} complete: {final.succeeded}/{final.completions} shards, {final.failed} pod failures")
