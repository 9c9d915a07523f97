#!/usr/bin/env python3
"""Build the service images and start each one for real: ``make images`` / ``make images-test``.

    python scripts/images.py build [--targets learner,reward] [--no-cuda]
    python scripts/images.py test  [--targets ...]
    python scripts/images.py lock-cuda

Docker: if ``DOCKER_HOST`` is set and answers, that daemon is used. Otherwise (as root)
the script starts its own ``dockerd`` with no bridge network and its state in a folder of
its own (``$MAESTROMOTIF_DOCKER_STATE``, default /tmp/maestromotif-docker), and stops it
by its PID when done. Builds and containers use ``--network host`` only, so all traffic
stays on this machine's own interfaces; the services under test bind 127.0.0.1.

Base image: by default a local Debian bookworm base with Debian's python3.11, made with
``debootstrap --variant=minbase`` and ``docker import`` (no registry is needed);
``--base python:3.11-slim-bookworm`` uses the public image instead.

The CPU torch pinned in requirements.lock (``torch==2.13.0+cpu``) is copied into the
build context (docker/wheels/) when pip finds it offline; otherwise the Dockerfile's
default, PyTorch's CPU index, serves it (see scripts/torch_source.py). pip's CA bundle,
if pip is configured with one, reaches the builder stages as a build secret only.

Missing tools (docker.io, debootstrap) are installed with apt-get.
Results (seconds, bytes) go to build/images/report.json, logs to build/images/logs/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import torch_source  # noqa: E402  (a sibling script, not a package)

DOCKERFILE = ROOT / "docker" / "Dockerfile"
WHEELS = ROOT / "docker" / "wheels"
OUT = ROOT / "build" / "images"
LOCAL_DEBIAN = "local/debian:bookworm"
LOCAL_BASE = "local/python:3.11-slim-bookworm"
PUBLIC_BASE = "python:3.11-slim-bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Target:
    name: str  # Dockerfile target
    service: str  # what ENTRYPOINT serves
    cuda: bool = False

    def image(self, version: str) -> str:
        return f"maestromotif/{self.service}:{version}{'-cuda' if self.cuda else ''}"


# Build order: targets sharing stages follow each other, so later ones reuse the cache.
TARGETS = (
    Target("learner", "learner"),
    Target("actors", "actors"),
    Target("reward", "reward"),
    Target("annotator", "annotator"),
    Target("codegen", "codegen"),
    Target("learner-cuda", "learner", cuda=True),
    Target("reward-cuda", "reward", cuda=True),
)
UID = 10001


class ImagesError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {message}", flush=True)


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, **kw: object) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, text=True, capture_output=True, **kw)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        raise ImagesError(f"{' '.join(cmd[:4])}... failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")
    return done


# ---------------------------------------------------------------------------- tools
def ensure_tools(*, need_debootstrap: bool) -> None:
    missing = [pkg for exe, pkg in (("dockerd", "docker.io"), ("debootstrap", "debootstrap"))
               if (exe != "debootstrap" or need_debootstrap) and not shutil.which(exe)
               and not Path(f"/usr/sbin/{exe}").exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ImagesError(f"missing {', '.join(missing)}; install them (apt-get install -y {' '.join(missing)}) or run as root")
    say(f"installing {', '.join(missing)} with apt-get")
    run(["apt-get", "update", "-qq"])
    run(["apt-get", "install", "-y", "-qq", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def docker_cli() -> str:
    """A docker client that can drive BuildKit (build secrets, bind mounts in RUN).

    Docker >= 23 clients build through the buildx plugin; without it they refuse
    BuildKit. Clients before 23 (Debian bookworm's docker.io 20.10) use the daemon's
    built-in BuildKit with DOCKER_BUILDKIT=1.
    """
    candidates = [c for c in (shutil.which("docker"), "/usr/bin/docker") if c and Path(c).exists()]
    for cli in dict.fromkeys(candidates):
        if run([cli, "buildx", "version"], check=False).returncode == 0:
            return cli
        out = run([cli, "version", "--format", "{{.Client.Version}}"], check=False).stdout.strip()
        try:
            if int(out.split(".")[0]) < 23:
                return cli
        except ValueError:
            continue
    raise ImagesError(f"no docker client with BuildKit among {candidates or ['(none)']}: "
                      "install the buildx plugin or Debian's docker.io")


class Docker:
    """A docker client bound to one daemon (ours or the user's)."""

    def __init__(self, cli: str, host: str) -> None:
        self.cli = cli
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "1"}

    def __call__(self, *args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess:
        return run([self.cli, *args], env=self.env, check=check, **kw)

    def has_image(self, ref: str) -> bool:
        return self(*("image", "inspect", ref), check=False).returncode == 0


@contextlib.contextmanager
def daemon(state: Path) -> Iterator[Docker]:
    cli = docker_cli()
    user_host = os.environ.get("DOCKER_HOST")
    if user_host:
        docker = Docker(cli, user_host)
        if docker("info", check=False).returncode != 0:
            raise ImagesError(f"DOCKER_HOST={user_host} does not answer (unset it to let this script start dockerd)")
        say(f"using the daemon at {user_host}")
        yield docker
        return
    if os.geteuid() != 0:
        raise ImagesError("starting dockerd needs root; or set DOCKER_HOST to a running daemon")
    state.mkdir(parents=True, exist_ok=True)
    sock = state / "docker.sock"
    host = f"unix://{sock}"
    docker = Docker(cli, host)
    if sock.exists() and docker("info", check=False).returncode == 0:
        say(f"dockerd already running at {host}")  # started by another run of this script
        yield docker
        return
    log = (state / "dockerd.log").open("ab")
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    say(f"starting dockerd (state in {state}, log {state / 'dockerd.log'})")
    proc = subprocess.Popen(
        [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false",
         "--data-root", str(state / "root"), "--exec-root", str(state / "exec"),
         "--pidfile", str(state / "docker.pid"), "-H", host],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while docker("info", check=False).returncode != 0:
            if proc.poll() is not None:
                raise ImagesError(f"dockerd exited with {proc.returncode}; see {state / 'dockerd.log'}")
            if time.monotonic() > deadline:
                raise ImagesError(f"dockerd did not answer within 60 s; see {state / 'dockerd.log'}")
            time.sleep(0.5)
        yield docker
    finally:
        say(f"stopping dockerd (pid {proc.pid})")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---------------------------------------------------------------------------- build
def make_local_base(docker: Docker, state: Path, mirror: str) -> None:
    """LOCAL_BASE: a debootstrap import of Debian bookworm plus docker/base.Dockerfile (Python)."""
    if docker.has_image(LOCAL_BASE):
        say(f"base {LOCAL_BASE} present")
        return
    t0 = time.monotonic()
    if not docker.has_image(LOCAL_DEBIAN):
        rootfs = state / "rootfs"
        if rootfs.exists():
            shutil.rmtree(rootfs)
        say("debootstrap --variant=minbase bookworm (a few minutes)")
        done = run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror], check=False)
        if done.returncode != 0:
            raise ImagesError(f"debootstrap failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-2000:]}; "
                              f"see {rootfs}/debootstrap/debootstrap.log")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        say(f"docker import -> {LOCAL_DEBIAN}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run([docker.cli, "import", "--change", "ENV LANG=C.UTF-8", "-", LOCAL_DEBIAN],
                             stdin=tar.stdout, env=docker.env, capture_output=True, text=True)
        tar.wait()
        if tar.returncode != 0 or imp.returncode != 0:
            raise ImagesError(f"docker import failed: {imp.stderr.strip()}")
        shutil.rmtree(rootfs)
    say(f"building {LOCAL_BASE} from docker/base.Dockerfile (Debian's python3.11)")
    log_path = OUT / "logs" / "base.log"
    empty = OUT / "empty-context"  # the base build needs no files
    empty.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        done = subprocess.run([docker.cli, "build", "--network", "host", "--progress", "plain",
                               "-f", str(ROOT / "docker" / "base.Dockerfile"), "--build-arg", f"DEBIAN={LOCAL_DEBIAN}",
                               "-t", LOCAL_BASE, str(empty)],
                              env=docker.env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise ImagesError(f"building {LOCAL_BASE} failed; last lines of {log_path}:\n{tail}")
    say(f"base ready in {time.monotonic() - t0:.0f} s")


def pip_cert() -> Path | None:
    """The CA bundle pip is configured with (PIP_CERT or pip's `cert` setting), if any."""
    env = os.environ.get("PIP_CERT")
    if env:
        return Path(env)
    out = run([sys.executable, "-m", "pip", "config", "list"], check=False).stdout
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".cert"):
            return Path(value.strip().strip("'\""))
    return None


def stage_torch_wheel() -> str | None:
    """Copy the pinned CPU torch into docker/wheels/ if pip has it offline.

    Returns the TORCH_INDEX build argument: "" (wheel staged) or None (keep the
    Dockerfile's default, PyTorch's CPU index).
    """
    WHEELS.mkdir(parents=True, exist_ok=True)
    pin = torch_source.torch_pin(ROOT / "requirements.lock")
    if not torch_source.needs_pytorch_index(pin):
        return ""
    assert pin is not None
    if not torch_source.locally_available(pin):
        say(f"{pin} not found offline: the build takes it from {torch_source.PYTORCH_CPU_INDEX}")
        return None
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-index", "--dest", str(WHEELS), pin])
    say(f"{pin} staged in {WHEELS.relative_to(ROOT)} from pip's local find-links")
    return ""


def build(args: argparse.Namespace) -> int:
    targets = select_targets(args.targets, args.no_cuda)
    ensure_tools(need_debootstrap=args.base == LOCAL_BASE)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "logs").mkdir(exist_ok=True)
    tag = version()
    report: dict[str, object] = {"machine": machine(), "load_before": os.getloadavg(), "version": tag,
                                 "base": args.base, "targets": {}}
    torch_index = stage_torch_wheel()
    cert = pip_cert()
    with daemon(args.state) as docker:
        if args.base == LOCAL_BASE:
            make_local_base(docker, args.state, args.mirror)
        for i, target in enumerate(targets, 1):
            image = target.image(tag)
            log_path = OUT / "logs" / f"{target.name}.log"
            cmd = ["build", "--network", "host", "--progress", "plain", "-f", str(DOCKERFILE),
                   "--target", target.name, "--build-arg", f"BASE={args.base}", "-t", image]
            if torch_index is not None:
                cmd += ["--build-arg", f"TORCH_INDEX={torch_index}"]
            if cert is not None and cert.is_file():
                cmd += ["--secret", f"id=pip-ca,src={cert}"]
            say(f"[{i}/{len(targets)}] building {image} (target {target.name}; log {log_path.relative_to(ROOT)})")
            t0 = time.monotonic()
            with log_path.open("w") as log:
                done = subprocess.run([docker.cli, *cmd, str(ROOT)], env=docker.env, stdout=log, stderr=subprocess.STDOUT)
            seconds = time.monotonic() - t0
            if done.returncode != 0:
                tail = log_path.read_text(errors="replace").splitlines()[-25:]
                raise ImagesError(f"building {image} failed ({done.returncode}) after {seconds:.0f} s; "
                                  f"last lines of {log_path}:\n" + "\n".join(tail))
            size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout.strip())
            steps, cached = build_steps(log_path.read_text(errors="replace"))
            say(f"[{i}/{len(targets)}] {image}: {size / 1e6:,.0f} MB in {seconds:.0f} s "
                f"({cached} of {steps} steps from the build cache)")
            report["targets"][target.name] = {  # type: ignore[index]
                "image": image, "seconds": round(seconds, 1), "size_bytes": size,
                "steps": steps, "steps_cached": cached,
            }
    report["load_after"] = os.getloadavg()
    merge_report("build", report)
    return 0


def build_steps(log: str) -> tuple[int, int]:
    """(steps, steps answered from the cache) in a BuildKit plain-progress log."""
    steps = set(re.findall(r"^#(\d+) \[(?!internal\])[^\]]*\] (?!FROM )", log, re.M))
    cached = set(re.findall(r"^#(\d+) CACHED", log, re.M))
    return len(steps), len(cached & steps)


def machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)}


def merge_report(key: str, data: dict[str, object]) -> None:
    path = OUT / "report.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    if key == "build" and "build" in current:
        # Keep numbers of targets not rebuilt now, and a target's first (uncached) build
        # time when this run took it all from the cache.
        old = current["build"].get("targets", {})
        merged = dict(old)
        for name, rec in data["targets"].items():  # type: ignore[attr-defined]
            prev = old.get(name)
            if prev and rec["steps"] and rec["steps_cached"] == rec["steps"] and prev.get("steps_cached", 0) < prev.get("steps", 1):
                # the image may have changed since (built by another target's run): its size is today's
                merged[name] = {**prev, "size_bytes": rec["size_bytes"], "cached_rebuild_seconds": rec["seconds"]}
            else:
                merged[name] = rec
        data["targets"] = merged
    if key == "test" and "test" in current:
        # `--targets` runs add up: keep results of images not tested in this run
        data["results"] = {**current["test"].get("results", {}), **data["results"]}  # type: ignore[dict-item]
    current[key] = data
    path.write_text(json.dumps(current, indent=2) + "\n")
    say(f"report: {path.relative_to(ROOT)}")


def select_targets(names: str | None, no_cuda: bool) -> list[Target]:
    chosen = list(TARGETS)
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        known = {t.name for t in TARGETS}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ImagesError(f"--targets: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
        chosen = [t for t in TARGETS if t.name in wanted]
    if no_cuda:
        chosen = [t for t in chosen if not t.cuda]
    return chosen


# ---------------------------------------------------------------------------- test
# What each service needs to start in a bare container (beyond the tmpfs /tmp and /data):
# the reward service has no trained bundles here, so it serves untrained models (a smoke
# run, as its own docs say); the LLM services use the embedded model baked into the image.
SERVICE_ARGS: dict[str, list[str]] = {
    "reward": ["--set", "init_random=true"],
}
# Services an image serves beside its own ENTRYPOINT's (by command: `maestromotif serve agent`).
ALSO_SERVES: dict[str, tuple[str, ...]] = {"actors": ("agent",)}

# Beyond health: one short real workload per image, run read-only as uid 10001, that must
# print "SMOKE OK". The CPU/CUDA checks also prove which torch build the image carries.
_TORCH = """
import torch
x = torch.randn(64, 64)
assert torch.isfinite(x @ x).all()
cuda = torch.version.cuda is not None
assert cuda == {cuda}, f"torch {{torch.__version__}} CUDA build: {{cuda}}"
print("SMOKE OK torch", torch.__version__, "cuda build" if cuda else "cpu build", "gpu present:", torch.cuda.is_available())
"""
_NLE = """
import numpy as np
from maestromotif.env.nethack_env import NetHackMonk
env = NetHackMonk(seed=1)
env.reset()
rng = np.random.default_rng(0)
for _ in range(300):
    out = env.step(int(rng.integers(env.action_space.n)))
    if out[2] or out[3]:
        env.reset()
print("SMOKE OK NetHack: 300 steps")
"""
# Each LLM image runs its own service's default model (annotator: the 0.5B; codegen: the 1.5B).
_LLM = """
from llama_cpp import Llama
from {module} import {constant} as model
from maestromotif.llm.models import ensure_model_file
path = ensure_model_file(model)  # baked into the image; SHA-256 checked again here
llm = Llama(str(path), n_ctx=256, n_threads=1, verbose=False)
text = llm.create_completion("def add(a, b):", max_tokens=8, temperature=0.0)["choices"][0]["text"]
assert text.strip(), "empty completion"
print("SMOKE OK llama.cpp", model, repr(text))
"""
SMOKE: dict[str, str] = {
    "learner": _TORCH.format(cuda=False), "reward": _TORCH.format(cuda=False),
    "learner-cuda": _TORCH.format(cuda=True), "reward-cuda": _TORCH.format(cuda=True),
    "actors": _NLE,
    "annotator": _LLM.format(module="maestromotif.llm.models", constant="DEFAULT_MODEL"),
    "codegen": _LLM.format(module="maestromotif.codegen.generate", constant="DEFAULT_CODEGEN_MODEL"),
}


def smoke(docker: Docker, target: Target, image: str) -> str:
    done = docker("run", "--rm", "--network", "host", "--read-only", "--user", f"{UID}:{UID}",
                  "--tmpfs", "/tmp:rw,size=512m", "--entrypoint", "python", image, "-c", SMOKE[target.name],
                  check=False, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("SMOKE OK")]
    if done.returncode != 0 or not lines:
        raise ImagesError(f"{image}: smoke check failed ({done.returncode}):\n{(done.stderr or done.stdout)[-1500:]}")
    return lines[-1][len("SMOKE OK "):]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available_services() -> list[str]:
    """Every service this tree serves: services/<name>/server.py and the modes a package also
    serves from its own code and image (``EXTRA_SERVICES``: the actors' agent), as the kit sees them."""
    from maestromotif.kit.server import available_services as kit_services

    return sorted(kit_services())


def serving_plan(targets: list[Target], services: list[str]) -> list[tuple[str, Target]]:
    """(service, target) for each container `images-test` starts: every target serves its own
    service, and the image of a package with extra modes serves those too (actors -> agent)."""
    plan: list[tuple[str, Target]] = []
    for t in targets:
        for service in (t.service, *ALSO_SERVES.get(t.name, ())):
            if service in services:
                plan.append((service, t))
    return plan


# ---------------------------------------------------------------------------- workloads
# After SERVING and /metrics, some services get a real request through their own API, and
# the metrics it must move are read again. Each returns what it saw (for the report).
_CHECKPOINT = """
import sys
from maestromotif.training.settings import TrainingSettings
from maestromotif.training.sf2 import LearnerDriver
driver = LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=256), sys.argv[1], "exp")
driver.save({"env_steps": 0})
print("CHECKPOINT OK")
"""
_ISOLATION = """
import json
from maestromotif.codegen.validate import validate_code
from maestromotif.skills.reference import reference_source
from maestromotif.codegen.isolation import run_isolated
r = validate_code(reference_source("gnomish"), "task_policy")
# Code past the allow-list (as in tests/codegen) tries the network from the isolated child.
probe = run_isolated("import socket\\ns = socket.socket()\\ns.connect(('127.0.0.1', 9))\\nemit('connected')",
                     preload=("socket",))
print("ISOLATION", json.dumps({"valid": r.valid, "layers": list(r.isolation),
                               "connect": probe.error or "connected", "connected": "connected" in probe.events}))
"""


def make_agent_checkpoint(docker: Docker, image: str) -> tuple[Path, list[str]]:
    """An untrained small-preset learner checkpoint, written by the actors image itself
    (read-only root, uid 10001, no network) into a host folder; returns the folder and the
    `docker run` arguments that mount it read-only for the agent."""
    import tempfile

    OUT.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="agent-checkpoint-", dir=OUT))
    folder.chmod(0o777)  # uid 10001 writes here; the folder is removed after the test
    done = docker("run", "--rm", "--network", "none", "--read-only", "--user", f"{UID}:{UID}",
                  "--tmpfs", "/tmp:rw,size=512m", "-v", f"{folder}:/ckpt:rw", "--entrypoint", "python",
                  image, "-c", _CHECKPOINT, "/ckpt", check=False, timeout=600)
    if done.returncode != 0 or "CHECKPOINT OK" not in done.stdout:
        shutil.rmtree(folder, ignore_errors=True)
        raise ImagesError(f"agent ({image}): writing an untrained checkpoint failed ({done.returncode}):\n"
                          f"{(done.stderr or done.stdout)[-1500:]}")
    return folder, ["-v", f"{folder}:/ckpt:ro", "-e", "MAESTROMOTIF_AGENT_CHECKPOINT=/ckpt/exp"]


def metric_samples(mport: int, family: str) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    return [line for line in body.splitlines() if line.startswith(family + "{") and not line.endswith(" 0.0")]


def workload_codegen(docker: Docker, cid: str, port: int, mport: int) -> dict[str, object]:
    """ValidateCode of the reference gnomish policy (no LLM needed): every stage must pass,
    so the isolated child ran inside the container; then which isolation layers it had."""
    import grpc

    from maestromotif.kit.client import make_channel
    from maestromotif.skills.reference import reference_source
    from maestromotif.v1 import codegen_pb2, codegen_pb2_grpc, common_pb2

    with make_channel(f"127.0.0.1:{port}") as channel:
        stub = codegen_pb2_grpc.CodegenStub(channel)
        t0 = time.monotonic()
        try:
            report = stub.ValidateCode(codegen_pb2.ValidateCodeRequest(
                code=reference_source("gnomish"), kind=codegen_pb2.TASK_POLICY), timeout=300)
            info = stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=30)
        except grpc.RpcError as exc:
            raise ImagesError(f"codegen: {exc.code().name}: {exc.details()}") from None  # type: ignore[attr-defined]
        seconds = time.monotonic() - t0
    checks = [(c.name, c.passed) for c in report.checks]
    if not report.valid:
        failed = [f"{c.name}: {c.detail[:300]}" for c in report.checks if not c.passed]
        raise ImagesError(f"codegen: ValidateCode of the reference gnomish policy is not valid: {failed}\n"
                          f"{report.sandbox_output[-800:]}")
    # The gRPC report does not carry the isolation layers; the same validation, run by the
    # server's own user inside the same container, shows them.
    done = docker("exec", cid, "python", "-c", _ISOLATION, check=False, timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("ISOLATION ")), "")
    if not line:
        raise ImagesError(f"codegen: isolation probe failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")
    isolation = json.loads(line[len("ISOLATION "):])
    if not isolation["valid"] or not {"netns", "seccomp"} & set(isolation["layers"]) or isolation["connected"]:
        raise ImagesError(f"codegen: validation in the container had no network isolation: {isolation}")
    verdicts = metric_samples(mport, "maestromotif_codegen_stage_verdicts_total")
    if not verdicts:
        raise ImagesError("codegen: maestromotif_codegen_stage_verdicts_total has no samples after ValidateCode")
    return {"validate_code": {"valid": True, "checks": [n for n, _ in checks], "seconds": round(seconds, 1)},
            "isolation_layers": isolation["layers"], "child_connect": isolation["connect"], "model": info.model_version,
            "backend": info.details.get("backend", ""), "stage_verdict_samples": len(verdicts)}


def workload_agent(docker: Docker, cid: str, port: int, mport: int) -> dict[str, object]:
    """Evaluate (2 episodes of gnomish, 100 steps each) and PlayTask (one episode, 30 steps)
    with the mounted untrained checkpoint; then GetServerInfo must name the loaded checkpoint."""
    import grpc

    from maestromotif.kit.client import make_channel
    from maestromotif.v1 import agent_pb2, agent_pb2_grpc, common_pb2

    task = agent_pb2.TaskSelector(task_name="gnomish")
    with make_channel(f"127.0.0.1:{port}") as channel:
        stub = agent_pb2_grpc.AgentStub(channel)
        try:
            t0 = time.monotonic()
            ev = stub.Evaluate(agent_pb2.EvaluateRequest(task=task, episodes=2, seed=0, max_steps=100), timeout=300)
            t1 = time.monotonic()
            events = list(stub.PlayTask(agent_pb2.PlayTaskRequest(task=task, seed=3, max_steps=30,
                                                                   step_event_every=10), timeout=300))
            t2 = time.monotonic()
            info = stub.GetServerInfo(common_pb2.GetServerInfoRequest(), timeout=30)
        except grpc.RpcError as exc:
            raise ImagesError(f"agent: {exc.code().name}: {exc.details()}") from None  # type: ignore[attr-defined]
    if ev.episodes != 2 or not 0 < ev.mean_steps <= 100:
        raise ImagesError(f"agent: Evaluate answered {ev.episodes} episodes, mean steps {ev.mean_steps}")
    ends = [e.end for e in events if e.WhichOneof("event") == "end"]
    steps = [e.step for e in events if e.WhichOneof("event") == "step"]
    if len(ends) != 1 or not 0 < ends[0].steps <= 30:
        raise ImagesError(f"agent: PlayTask stream had {len(ends)} end events ({[str(e) for e in ends]})")
    checkpoint = info.details.get("checkpoint", "")
    if not checkpoint.startswith("/ckpt/exp/") or info.model_version == "":
        raise ImagesError(f"agent: GetServerInfo names no loaded checkpoint: {dict(info.details)}")
    episodes = metric_samples(mport, "maestromotif_agent_episodes_total")
    if not any('task="gnomish"' in line for line in episodes):
        raise ImagesError(f"agent: maestromotif_agent_episodes_total has no gnomish samples: {episodes}")
    return {"evaluate": {"episodes": ev.episodes, "mean_steps": round(ev.mean_steps, 1),
                         "success_rate": ev.success_rate, "policy_errors": ev.policy_errors,
                         "seconds": round(t1 - t0, 1)},
            "play_task": {"steps": ends[0].steps, "reason": ends[0].reason, "step_events": len(steps),
                          "events": len(events), "seconds": round(t2 - t1, 1)},
            "checkpoint": checkpoint, "model_version": info.model_version,
            "episode_metric_samples": episodes}


WORKLOADS = {"codegen": workload_codegen, "agent": workload_agent}


def check_container(docker: Docker, service: str, image: str, timeout_s: float) -> dict[str, object]:
    scratch: Path | None = None
    extra: list[str] = []
    if service == "agent":
        scratch, extra = make_agent_checkpoint(docker, image)
    try:
        return _check_container(docker, service, image, timeout_s, extra)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _check_container(docker: Docker, service: str, image: str, timeout_s: float, extra: list[str]) -> dict[str, object]:
    from maestromotif.kit.client import NotServingError, wait_for_serving

    port, mport = free_port(), free_port()
    prefix = f"MAESTROMOTIF_{service.upper()}_"
    name = f"mm-imgtest-{service}-{os.getpid()}"
    cmd = ["run", "-d", "--name", name, "--network", "host", "--read-only", "--user", f"{UID}:{UID}",
           "--tmpfs", "/tmp:rw,size=512m", "--tmpfs", f"/data:rw,size=512m,uid={UID},gid={UID}",
           "-e", f"{prefix}HOST=127.0.0.1", "-e", f"{prefix}PORT={port}",
           "-e", f"{prefix}METRICS_HOST=127.0.0.1", "-e", f"{prefix}METRICS_PORT={mport}", *extra]
    # Peers point at a free port nobody serves: other services on this host (other people's
    # tests) must never receive this container's calls; each service retries its peers
    # in the background and is healthy without them.
    from maestromotif.kit.server import load_spec

    for field in load_spec(service).config_cls.model_fields:
        if field.endswith("_address"):
            cmd += ["-e", f"{prefix}{field.upper()}=127.0.0.1:{free_port()}"]
    if service == "agent":
        cmd += ["--entrypoint", "maestromotif", image, "serve", "agent"]
    else:
        cmd += [image]
    cmd += SERVICE_ARGS.get(service, [])
    t0 = time.monotonic()
    cid = docker(*cmd).stdout.strip()
    result: dict[str, object] = {"image": image, "grpc_port": port, "metrics_port": mport}
    try:
        def alive() -> bool:
            out = docker("inspect", "-f", "{{.State.Running}}", cid, check=False).stdout.strip()
            return out == "true"

        try:
            wait_for_serving(f"127.0.0.1:{port}", timeout_s=timeout_s, alive=alive)
        except NotServingError as exc:
            logs = docker("logs", "--tail", "40", cid, check=False)
            raise ImagesError(f"{service} ({image}): {exc}\n--- container log ---\n{logs.stdout}{logs.stderr}") from None
        result["seconds_to_serving"] = round(time.monotonic() - t0, 1)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as resp:
                body = resp.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            raise ImagesError(f"{service} ({image}): GET /metrics on port {mport} failed: {exc}") from None
        families = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")]
        if not families:
            raise ImagesError(f"{service} ({image}): /metrics has no metric families")
        result["metric_families"] = len(families)
        result["project_metric_families"] = sum(f.startswith("maestromotif_") for f in families)
        uid = docker("exec", cid, "id", "-u").stdout.strip()
        if uid != str(UID):
            raise ImagesError(f"{service} ({image}): runs as uid {uid}, expected {UID}")
        probe = docker("exec", cid, "sh", "-c", "touch /opt/venv/x 2>&1 || true").stdout
        if "Read-only file system" not in probe:
            raise ImagesError(f"{service} ({image}): root filesystem is writable ({probe.strip()!r})")
        result["uid"] = int(uid)
        if service in WORKLOADS:
            result["workload"] = WORKLOADS[service](docker, cid, port, mport)
        t1 = time.monotonic()
        docker("stop", "-t", "30", cid)
        code = docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip()
        result["stop_seconds"] = round(time.monotonic() - t1, 1)
        result["exit_code"] = int(code)
        if code != "0":
            logs = docker("logs", "--tail", "20", cid, check=False)
            raise ImagesError(f"{service} ({image}): exited with {code} on SIGTERM\n{logs.stdout}{logs.stderr}")
        return result
    finally:
        docker("rm", "-f", cid, check=False)


def test(args: argparse.Namespace) -> int:
    tag = version()
    targets = select_targets(args.targets, args.no_cuda)
    services = available_services()
    smokes: list[tuple[Target, str]] = [(t, t.image(tag)) for t in targets]
    for t in targets:
        if t.service not in services:
            say(f"skip serving {t.image(tag)}: this tree does not serve {t.service!r}")
    plan = [(service, t.image(tag)) for service, t in serving_plan(targets, services)]
    results: dict[str, object] = {}
    failures: list[str] = []
    with daemon(args.state) as docker:
        missing = [img for _, img in smokes if not docker.has_image(img)]
        if missing:
            raise ImagesError(f"not built: {', '.join(sorted(set(missing)))} (run `make images` first)")
        for i, (service, image) in enumerate(plan, 1):
            key = f"{service}@{image}"
            say(f"[{i}/{len(plan)}] {service} from {image}: start read-only as uid {UID}, wait for SERVING")
            try:
                res = check_container(docker, service, image, args.timeout)
            except ImagesError as exc:
                failures.append(str(exc))
                say(f"[{i}/{len(plan)}] FAILED: {exc}")
                continue
            res["tested_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            results[key] = res
            say(f"[{i}/{len(plan)}] {service}: SERVING after {res['seconds_to_serving']} s, "
                f"/metrics {res['metric_families']} families ({res['project_metric_families']} maestromotif_*), "
                f"uid {res['uid']}, stopped cleanly in {res['stop_seconds']} s")
            if "workload" in res:
                say(f"[{i}/{len(plan)}] {service} workload: {json.dumps(res['workload'])}")
        for i, (target, image) in enumerate(smokes, 1):
            say(f"[smoke {i}/{len(smokes)}] {image}: {SMOKE[target.name].strip().splitlines()[0]} ...")
            try:
                t0 = time.monotonic()
                out = smoke(docker, target, image)
            except (ImagesError, subprocess.TimeoutExpired) as exc:
                failures.append(str(exc))
                say(f"[smoke {i}/{len(smokes)}] FAILED: {exc}")
                continue
            results[f"smoke@{image}"] = {"output": out, "seconds": round(time.monotonic() - t0, 1)}
            say(f"[smoke {i}/{len(smokes)}] {out}")
    merge_report("test", {"load_after": os.getloadavg(), "machine": machine(), "results": results, "failures": failures})
    if failures:
        say(f"{len(failures)} of {len(plan) + len(smokes)} checks failed")
        return 1
    say(f"all {len(plan)} containers healthy, {len(smokes)} smoke checks passed")
    return 0


# ---------------------------------------------------------------------------- lock-cuda
def lock_cuda(args: argparse.Namespace) -> int:
    """Resolve torch==<version> (PyPI's CUDA build) against requirements.lock's pins, with hashes."""
    sys.path.insert(0, str(ROOT / "docker"))
    import lockfilter

    lock = ROOT / "requirements.lock"
    pin = torch_source.torch_pin(lock)
    if pin is None:
        raise ImagesError("requirements.lock pins no torch")
    cuda_pin = pin.split("+")[0]
    _, blocks = lockfilter.parse(lock.read_text(), str(lock))
    kept = lockfilter.select(blocks, {"torch"})
    work = OUT / "lock-cuda"
    work.mkdir(parents=True, exist_ok=True)
    (work / "constraints.txt").write_text("".join(f"{b.name}=={b.version}\n" for b in kept))
    (work / "requirements-cuda.in").write_text(f"{cuda_pin}\n-c constraints.txt\n")
    venv = work / "venv"
    if not (venv / "bin" / "pip-compile").exists():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "--quiet", "pip-tools==7.6.2"])
    # Only PyPI: the local find-links hold the +cpu build, which would satisfy the pin.
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env["PIP_CONFIG_FILE"] = os.devnull
    say(f"resolving {cuda_pin} (CUDA build) on PyPI against requirements.lock (a few minutes)")
    run([str(venv / "bin" / "pip-compile"), "--quiet", "--no-emit-index-url", "--no-emit-find-links",
         "--generate-hashes", "--strip-extras", "--allow-unsafe", "--index-url", "https://pypi.org/simple",
         "-o", "requirements-cuda.lock", "requirements-cuda.in"], env=env, cwd=work)
    lines = (work / "requirements-cuda.lock").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if "==" in line and not line.startswith("#"))
    header = [
        f"# {cuda_pin} for the CUDA images (learner-cuda, reward-cuda): PyPI's default Linux build",
        "# and its NVIDIA wheels, resolved against requirements.lock (shared packages keep its pins).",
        "# Regenerate with `make lock-cuda` after requirements.lock changes.",
    ]
    (ROOT / "docker" / "requirements-cuda.lock").write_text("\n".join(header + lines[first:]) + "\n")
    say("wrote docker/requirements-cuda.lock")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (("build", build, "build the images"),
                              ("test", test, "start each image read-only as uid 10001; check health and /metrics"),
                              ("lock-cuda", lock_cuda, "regenerate docker/requirements-cuda.lock (needs PyPI)")):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        if name == "lock-cuda":
            continue
        p.add_argument("--targets", help=f"comma-separated subset of {', '.join(t.name for t in TARGETS)}")
        p.add_argument("--no-cuda", action="store_true", help="skip the CUDA images (about 4 GB of NVIDIA wheels)")
        p.add_argument("--state", type=Path,
                       default=Path(os.environ.get("MAESTROMOTIF_DOCKER_STATE", "/tmp/maestromotif-docker")),
                       help="folder of the dockerd this script starts (images persist there)")
        if name == "build":
            p.add_argument("--base", default=LOCAL_BASE,
                           help=f"base image: {LOCAL_BASE} (made here with debootstrap) or e.g. {PUBLIC_BASE}")
            p.add_argument("--mirror", default=DEBIAN_MIRROR, help="Debian mirror for debootstrap")
        else:
            p.add_argument("--timeout", type=float, default=300.0, help="seconds each service has to report SERVING")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ImagesError, torch_source.TorchSourceError) as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
