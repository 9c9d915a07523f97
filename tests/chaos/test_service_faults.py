"""Faults in the annotator, codegen and agent services, and corrupted or unwritable files (issue 15, item 2).

The services run as real processes on loopback (``LocalProcesses``, the code ``maestromotif up``
uses); a fault is a real ``kill -9`` (``os.kill(pid, SIGKILL)``) at a moment chosen by a seeded
random generator, followed by a real restart on the same port. The LLM is the loopback TGI
double (``tests/llm/tgi_double.py``): what is tested is each service's fault handling, not the
LLM. A full disk is a real, tiny tmpfs when this process may mount one, else (or with
``CHAOS_DISK=rlimit``) a file-size limit of 0 bytes (``RLIMIT_FSIZE``, ``SIGXFSZ`` ignored), under
which every write fails the same way.

Every wait polls with a deadline; nothing asserts on time. The tests marked ``chaos`` run with
``make chaos``; the unmarked ones are fast and also run in ``make test``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
from tgi_double import TGIDouble  # noqa: E402

from maestromotif.annotation.job import AnnotationJob, JobSpec  # noqa: E402
from maestromotif.annotation.schema import (  # noqa: E402
    DatasetError,
    PairRecord,
    Transition,
    read_labels,
    read_pair_dataset,
    write_pair_dataset,
)
from maestromotif.annotation.strategies import Annotator  # noqa: E402
from maestromotif.codegen import ArtifactKind  # noqa: E402
from maestromotif.codegen.artifacts import (  # noqa: E402
    ArtifactError,
    ArtifactPolicyLoader,
    ArtifactRecord,
    ArtifactStore,
    Message,
    Sampling,
)
from maestromotif.codegen.validate import validate_code  # noqa: E402
from maestromotif.fileio import WriteError  # noqa: E402
from maestromotif.kit import ClientOptions, make_channel  # noqa: E402
from maestromotif.kit.local import LocalProcesses, ServiceProcess, ServiceStartError  # noqa: E402
from maestromotif.llm import make_backend  # noqa: E402
from maestromotif.skills.ids import SKILL_NAMES, Skill  # noqa: E402
from maestromotif.skills.reference import reference_source  # noqa: E402
from maestromotif.v1 import (  # noqa: E402
    agent_pb2,
    agent_pb2_grpc,
    annotator_pb2,
    annotator_pb2_grpc,
    codegen_pb2,
    codegen_pb2_grpc,
    reward_pb2,
    reward_pb2_grpc,
)

REPO = Path(__file__).resolve().parents[2]
GOOD_POLICY = reference_source("gnomish")
CODE_REPLY = f"Here is the policy.\n```python\n{GOOD_POLICY}```\n"


# --------------------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTROMOTIF_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    value = cond()
    assert value, f"not reached within {timeout:g} s: {what}"
    return value


class Service:
    """One service as a real process on fixed loopback ports, killable with SIGKILL and restartable."""

    def __init__(self, name: str, sets: list[str], log_dir: Path) -> None:
        self.name, self.sets = name, sets
        self.port, self.metrics_port = _free_port(), _free_port()
        self.procs = LocalProcesses(grace_s=5.0, env=_env(), log_dir=log_dir)
        self.current: ServiceProcess | None = None
        self.log = log_dir / f"{name}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.current is not None
        return self.current.proc.pid

    def start(self, timeout_s: float = 120.0) -> ServiceProcess:
        self.current = self.procs.start(self.name, self.port, self.metrics_port, self.sets, timeout_s=timeout_s)
        return self.current

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> list[psutil.Process]:
        """SIGKILL the service process (only it: what a crash or the OOM killer does); its children before."""
        children = self.descendants()
        os.kill(self.pid, signal.SIGKILL)
        assert self.current is not None
        self.current.proc.wait(timeout=30)
        return children

    def stop(self) -> None:
        self.procs.stop()


def _alive(processes: list[psutil.Process]) -> list[str]:
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return out


def _records(n: int) -> list[PairRecord]:
    messages = ["You kill the newt!", "You descend the stairs.", "", "$ - 12 gold pieces.", "You find a hidden passage."]
    out = []
    for k in range(n):
        d = 1 + k % 5
        first = Transition("", messages[k % 5], (d, k, 12, 14, 1, 1), (d + (k % 3 == 0), k, 12, 14, 1, 1))
        second = Transition("Hello", messages[(k * 3 + 1) % 5], (d, 0, 10, 14, 1, 1), (d, 7, 10, 14, 2, 1))
        out.append(PairRecord(first, second, "chaos", k, 100))
    return out


def _ledger_count(labels_dir: Path) -> int:
    ledger = labels_dir / "ledger" / "shard00000-of-00001.sqlite"
    if not ledger.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)) as db:
            return int(db.execute("SELECT COUNT(*) FROM labels").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return 0


def _check_label_set(labels_dir: Path, skills: list[str], pairs: Any = None, complete: bool = False) -> int:
    """Every label file a manifest lists verifies (sha256, schema, one label per pair); returns labels read."""
    n = 0
    for skill in skills:
        if not (labels_dir / skill / "manifest.json").exists():
            assert not complete, f"{skill}: no manifest"
            continue
        table = read_labels(labels_dir, skill, pairs=pairs, require_complete=complete)
        ids = table.column("pair_id").to_pylist()
        assert len(ids) == len(set(ids)), f"{skill}: a pair labelled twice"
        n += len(ids)
    return n


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------- full disk


def _can_mount_tmpfs(directory: Path) -> bool:
    if os.environ.get("CHAOS_DISK") == "rlimit" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(directory)],
                         capture_output=True, timeout=30)
    return res.returncode == 0


class Disk:
    """A folder whose file system can be made full on demand (tmpfs filled up, or RLIMIT_FSIZE 0)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmpfs = _can_mount_tmpfs(root)
        self._filler = root / "filler.bin"
        self._saved: tuple[int, int] | None = None
        self._handler: Any = None
        self.full = False

    @property
    def mode(self) -> str:
        return "tmpfs" if self.tmpfs else "rlimit-fsize"

    def fill(self) -> None:
        if self.tmpfs:
            with open(self._filler, "ab", buffering=0) as fh:  # unbuffered: close() has nothing left to flush
                for size in (65536, 4096, 512, 1):  # down to the last byte
                    with contextlib.suppress(OSError):
                        while fh.write(b"\0" * size):
                            pass
        else:
            self._handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
            self._saved = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, self._saved[1]))
        self.full = True

    def free(self) -> None:
        if self.tmpfs:
            self._filler.unlink(missing_ok=True)
        elif self._saved is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._saved)
            signal.signal(signal.SIGXFSZ, self._handler)
            self._saved = None
        self.full = False

    def close(self) -> None:
        self.free()
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.root)], capture_output=True, timeout=30)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    d = Disk(tmp_path / "small-disk")
    d.root.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        d.close()


NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


# =================================================================================== annotator


@pytest.mark.chaos
def test_annotator_kill9_during_a_job_then_restart_labels_each_pair_exactly_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    pairs = root / "pairs"
    n_pairs, skills = 40, list(SKILL_NAMES)
    write_pair_dataset(pairs, _records(n_pairs), gap_steps=100)
    labels = root / "labels"
    total = n_pairs * len(skills)
    rng = random.Random(1505)
    with TGIDouble(delay_s=0.03) as llm:
        svc = Service("annotator", ["backend=tgi", f"llm_url={llm.url}", f"data_root={root}", "llm_concurrency=4",
                                    "llm_timeout_s=10"], tmp_path / "logs")
        try:
            request = annotator_pb2.StartJobRequest(pairs_dir="pairs", labels_dir="labels",
                                                    strategy=annotator_pb2.SCORE)
            kills = []
            for _round in range(2):
                svc.start()
                channel = make_channel(svc.address, ClientOptions(deadline_s=30))
                annotator_pb2_grpc.AnnotatorStub(channel).StartJob(request)
                before = _ledger_count(labels)
                target = before + rng.randint(10, 60)
                _until(lambda t=target: _ledger_count(labels) >= t, 120, f"{target} labels in the ledger")
                children = svc.kill9()
                channel.close()
                kills.append(_ledger_count(labels))
                assert not _alive(children), "processes left behind by the killed annotator"
                # On disk right after the crash: the ledger opens, and any label file a manifest lists verifies.
                assert _check_label_set(labels, skills) <= total
            assert kills[-1] < total, "the kills came after the job had finished: nothing was tested"
            svc.start()
            channel = make_channel(svc.address, ClientOptions(deadline_s=30))
            stub = annotator_pb2_grpc.AnnotatorStub(channel)
            job_id = stub.StartJob(request).job_id
            status = _until(
                lambda: (s := stub.GetJobStatus(annotator_pb2.GetJobStatusRequest(job_id=job_id))).state
                in (annotator_pb2.SUCCEEDED, annotator_pb2.FAILED) and s,
                180, "the resumed job to finish")
            channel.close()
            assert status.state == annotator_pb2.SUCCEEDED, status.error
            assert all(p.done == p.total == n_pairs for p in status.progress)
        finally:
            svc.stop()
        asked = len(llm.requests)
    dataset = read_pair_dataset(pairs)
    assert _check_label_set(labels, skills, pairs=dataset, complete=True) == total
    assert _ledger_count(labels) == total
    assert not _temp_files(labels), _temp_files(labels)
    print(json.dumps({"fault": "annotator kill -9", "pairs": total, "ledger_at_kills": kills,
                      "llm_requests": asked, "labelled": total, "duplicates": 0, "missing": 0}))


# =================================================================================== codegen


def _check_store(store_dir: Path) -> tuple[int, int]:
    """Every artifact file loads and its code hashes to its name; returns (artifacts, temp files left)."""
    store = ArtifactStore(store_dir)
    n = 0
    for path in sorted(store_dir.glob("*.json")):
        record = store.get(path.stem)  # ArtifactError naming the file on any damage
        assert record.sha256 == path.stem
        n += 1
    assert all(s.error is None for s in store.list()), [s.error for s in store.list() if s.error]
    temps = [p for p in store_dir.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")] \
        if store_dir.exists() else []
    return n, len(temps)


def _compose(stub: codegen_pb2_grpc.CodegenStub, seed: int, samples: int, timeout: float = 120.0) -> Any:
    request = codegen_pb2.ComposeTaskRequest(
        prompt="Reach the Gnomish Mines.", task_name="gnomish",
        sampling=codegen_pb2.SamplingSettings(seed=seed, samples=samples))
    return stub.ComposeTask.future(request, timeout=timeout)


@pytest.mark.chaos
def test_codegen_kill9_during_generation_leaves_no_half_written_artifact(tmp_path: Path) -> None:
    store_dir = tmp_path / "artifacts"
    rng = random.Random(1506)
    served = [0]

    def varied(body: dict[str, Any]) -> str:  # each answer's code differs: each sample writes its own artifact
        served[0] += 1
        return CODE_REPLY.replace("```python\n", f"```python\n# answer {served[0]}\n", 1)

    with TGIDouble(delay_s=0.05, reply=varied) as llm:
        svc = Service("codegen", ["backend=tgi", f"llm_url={llm.url}", f"store_dir={store_dir}", "llm_timeout_s=30",
                                  "max_samples=4"], tmp_path / "logs")
        moments, codes, leaked, seen_children, children_at_kill = [], [], [], 0, []
        try:
            # How long one whole generation takes on this machine, from a fresh process: the kills below
            # fall inside one (a fixed 0.05-1.5 s window let an idle machine finish before the kill).
            # The shortest of two, the first also warming the OS's file cache as the rounds find it.
            durations = []
            for seed in (100, 101):
                svc.start()
                channel = make_channel(svc.address, ClientOptions(deadline_s=120))
                started = time.monotonic()
                assert _compose(codegen_pb2_grpc.CodegenStub(channel), seed=seed, samples=4).result().artifact.sha256
                durations.append(time.monotonic() - started)
                channel.close()
                svc.kill9()
            whole_s = min(durations)
            for round_ in range(3):
                svc.start()
                channel = make_channel(svc.address, ClientOptions(deadline_s=120))
                future = _compose(codegen_pb2_grpc.CodegenStub(channel), seed=round_, samples=4)
                # A random moment: while the LLM is asked, while a validation child runs, or while storing.
                wait_s = rng.uniform(0.05, 0.6) * whole_s
                children: list[psutil.Process] = []
                deadline = time.monotonic() + wait_s
                while time.monotonic() < deadline and not future.done():
                    children += [c for c in svc.descendants() if c.pid not in {p.pid for p in children}]
                    time.sleep(0.005)
                at_kill = svc.kill9()
                children += at_kill
                moments.append(round(wait_s, 2))
                seen_children += len(children)
                children_at_kill.append(len(at_kill))
                with pytest.raises(grpc.RpcError) as err:
                    future.result()
                codes.append(err.value.code().name)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
                channel.close()
                # A validation child left running by the killed service dies on its own (bounded).
                leaked += _alive(children)
                _until(lambda c=children: not _alive(c), 60, f"children of the killed codegen to end: {_alive(children)}")
                _check_store(store_dir)
            svc.start()
            channel = make_channel(svc.address, ClientOptions(deadline_s=120))
            stub = codegen_pb2_grpc.CodegenStub(channel)
            result = _compose(stub, seed=99, samples=1).result()
            assert result.artifact.validation.valid
            got = stub.GetArtifact(codegen_pb2.GetArtifactRequest(sha256=result.artifact.sha256))
            assert got.code == result.artifact.code and GOOD_POLICY.strip() in got.code
            channel.close()
        finally:
            svc.stop()
    artifacts, temps = _check_store(store_dir)
    assert artifacts >= 1
    print(json.dumps({"fault": "codegen kill -9", "whole_generation_s": round(whole_s, 2), "kill_after_s": moments,
                      "client_saw": codes, "artifacts": artifacts, "corrupt": 0, "temp_files_left": temps,
                      "validation_children_seen": seen_children, "validation_children_at_kill": children_at_kill,
                      "children_alive_right_after_kill": len(leaked)}))


def test_artifact_temp_files_of_a_killed_writer_are_ignored_then_cleaned(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    sha = _stored_policy(store)
    # What atomic_write leaves when killed between mkstemp and rename: half a JSON file.
    stale = store.root / f".{'0' * 64}.json.abc123.tmp"
    fresh = store.root / f".{'1' * 64}.json.def456.tmp"
    for path in (stale, fresh):
        path.write_text(store.path(sha).read_text()[:100])
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert [s.sha256 for s in store.list()] == [sha] and all(s.error is None for s in store.list())
    assert store.clean_temp(min_age_s=600) == [stale]
    assert fresh.exists() and not stale.exists()  # a writer may still be at work on the fresh one


def _stored_policy(store: ArtifactStore, code: str = GOOD_POLICY) -> str:
    report = validate_code(code, ArtifactKind.TASK_POLICY)
    assert report.valid, report.errors
    return store.put(ArtifactRecord(
        kind=ArtifactKind.TASK_POLICY, task="gnomish", code=code, prompt="Reach the Gnomish Mines.",
        backend="tgi", model_id="double", model_digest="none",
        sampling=Sampling(temperature=0.2, max_tokens=900, seed=1, repair_rounds=0),
        transcript=(Message(role="assistant", content=code),), validation=report.to_dict()))


@pytest.mark.parametrize("damage", ["tampered code", "truncated", "garbage bytes", "empty"])
def test_corrupt_artifact_is_refused_naming_the_file_and_the_loader_keeps_the_last_good(
        tmp_path: Path, damage: str) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    sha = _stored_policy(store)
    path = store.path(sha)
    loader = ArtifactPolicyLoader(str(store.root), sha)
    loader.check()  # what an actor service does at start
    text = path.read_text()
    if damage == "tampered code":
        data = json.loads(text)
        data["code"] = data["code"].replace("return DISCOVERER", "return MERCHANT", 1)
        path.write_text(json.dumps(data))
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbage bytes":
        path.write_bytes(os.urandom(2048))
    else:
        path.write_bytes(b"")
    with pytest.raises(ArtifactError) as err:
        store.get(sha)
    assert str(path) in str(err.value)
    assert [s.error for s in store.list() if s.sha256 == sha] and str(path) in store.list()[0].error
    # A worker that starts now (restart after a crash) still gets the validated policy it was checked with.
    policy = loader()
    assert policy is not None
    # A fresh loader refuses the damaged file, naming it.
    with pytest.raises(ArtifactError) as err:
        ArtifactPolicyLoader(str(store.root), sha).check()
    assert str(path) in str(err.value)


# =================================================================================== agent


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real learner checkpoint (small preset, untrained: the faults, not the play, are tested)."""
    import torch

    from maestromotif.training.settings import TrainingSettings
    from maestromotif.training.sf2 import LearnerDriver

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("train")
    LearnerDriver(TrainingSettings(preset="small", device="cpu", batch_size=8 * 32), root, "exp").save({"env_steps": 0})
    return root / "exp"


@pytest.mark.chaos
def test_agent_kill9_during_play_and_evaluate_streams_then_restart(tmp_path: Path, checkpoint: Path) -> None:
    svc = Service("agent", [f"checkpoint={checkpoint}", f"codegen_address=127.0.0.1:{_free_port()}",
                            "max_episodes_per_caller=4", "max_evaluate_episodes=200"], tmp_path / "logs")
    seen: dict[str, str] = {}
    children_seen: dict[str, int] = {}
    leaked: list[str] = []
    try:
        svc.start()
        # One client channel for the whole test: it must find the restarted agent by itself.
        channel = make_channel(svc.address, ClientOptions(deadline_s=120))
        stub = agent_pb2_grpc.AgentStub(channel)
        for rpc in ("PlayTask", "Evaluate"):
            if rpc == "PlayTask":
                stream = stub.PlayTask(agent_pb2.PlayTaskRequest(
                    task=agent_pb2.TaskSelector(task_name="transactions"), seed=3, max_steps=10_000,
                    step_event_every=1), timeout=300)
                for _ in range(5):  # the episode is being played
                    next(stream)
                children = svc.kill9()
                with pytest.raises(grpc.RpcError) as err:
                    for _ in stream:
                        pass
            else:
                # The check episode before has ended on the server too: the gauge below then means Evaluate.
                _until(lambda: b"maestromotif_agent_active_episodes 0.0" in _metrics(svc), 60, "no episode open")
                future = stub.Evaluate.future(agent_pb2.EvaluateRequest(
                    task=agent_pb2.TaskSelector(task_name="gnomish"), episodes=200, max_steps=2000, seed=1), timeout=300)
                # Evaluating (its envs open) for a moment before the kill.
                _until(lambda: b"maestromotif_agent_active_episodes 1.0" in _metrics(svc), 60, "evaluation running")
                time.sleep(0.3)
                children = svc.kill9()
                with pytest.raises(grpc.RpcError) as err:
                    future.result()
            seen[rpc] = f"{err.value.code().name}: {err.value.details()}"
            children_seen[rpc] = len(children)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, seen[rpc]
            leaked += _alive(children)
            assert not _alive(children), f"env processes left by the killed agent: {_alive(children)}"
            svc.start()

            def served() -> Any:
                try:
                    events = list(stub.PlayTask(agent_pb2.PlayTaskRequest(
                        task=agent_pb2.TaskSelector(task_name="gnomish"), seed=1, max_steps=5), timeout=60))
                    return events and events[-1].WhichOneof("event") == "end"
                except grpc.RpcError:  # the channel reconnects with backoff
                    return False

            _until(served, 90, "the restarted agent to play an episode on the old channel", every=0.5)
        channel.close()
    finally:
        svc.stop()
    print(json.dumps({"fault": "agent kill -9", "client_saw": seen, "child_processes_at_kill": children_seen,
                      "child_processes_left": len(leaked)}))


def _metrics(svc: Service) -> bytes:
    import urllib.request

    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{svc.metrics_port}/metrics", timeout=5).read()
    except OSError:
        return b""


# =================================================================================== reward bundles


@pytest.mark.chaos
def test_reward_keeps_serving_its_bundles_when_a_reload_finds_corrupt_ones(tmp_path: Path) -> None:
    import numpy as np

    from maestromotif.rewards.bundles import (
        WEIGHTS_NAME,
        make_meta,
        random_bundle,
        update_manifest,
        write_bundle,
        write_random_bundle,
    )

    root = tmp_path / "bundles"
    for skill in SKILL_NAMES:
        write_random_bundle(root, skill, seed=1)
    good_manifest = (root / "manifest.json").read_bytes()
    # A new descender bundle whose weights are damaged after it was written (a bad copy, a disk error).
    staging = tmp_path / "staging"
    fresh = random_bundle("descender", seed=7)
    meta, weights = make_meta("descender", fresh.model, mean=0.0, std=1.0, quantiles=None, threshold=0.0,
                              num_unique_transitions=0, config={"init": "random", "seed": 7})
    bad_dir = write_bundle(staging, meta, weights)
    shutil.copytree(bad_dir, root / bad_dir.name)
    bad_weights = root / bad_dir.name / WEIGHTS_NAME
    bad_weights.write_bytes(bad_weights.read_bytes()[:1000])

    svc = Service("reward", [f"bundle_dir={root}", "reload_interval_s=0.2", "threads=1", "device=cpu"],
                  tmp_path / "logs")

    def score(stub: reward_pb2_grpc.RewardStub) -> str:
        n = 4
        reply = stub.Score(reward_pb2.ScoreRequest(
            count=n, skills=np.arange(n, dtype=np.uint8).tobytes(), messages=np.zeros((n, 256), np.uint8).tobytes(),
            stat_changes=np.zeros((n, 5), "<f4").tobytes(), message_counts=np.ones(n, "<f4").tobytes()))
        assert np.isfinite(np.frombuffer(reply.raw_rewards, "<f4")).all()
        return reply.model_version

    try:
        svc.start()
        channel = make_channel(svc.address, ClientOptions(deadline_s=60))
        stub = reward_pb2_grpc.RewardStub(channel)
        version = stub.GetModelInfo(reward_pb2.GetModelInfoRequest()).model_version
        assert score(stub) == version
        faults = {
            "truncated weights": lambda: update_manifest(root, {"descender": meta.version}),
            "garbage manifest": lambda: (root / "manifest.json").write_bytes(os.urandom(300)),
            "truncated manifest": lambda: (root / "manifest.json").write_bytes(good_manifest[: len(good_manifest) // 2]),
        }
        named = {"truncated weights": str(bad_weights), "garbage manifest": str(root / "manifest.json"),
                 "truncated manifest": str(root / "manifest.json")}
        for i, (fault, inject) in enumerate(faults.items(), start=1):
            inject()
            _until(lambda i=i: f'maestromotif_reward_model_reloads_total{{result="failed"}} {i}.0'.encode()
                   in _metrics(svc), 60, f"the reload after {fault} to fail")
            assert named[fault] in svc.log.read_text(errors="replace"), f"{fault}: the log does not name the file"
            assert score(stub) == version, f"{fault}: not serving the previous bundles"
            assert stub.GetModelInfo(reward_pb2.GetModelInfoRequest()).model_version == version
        channel.close()
        # A restart on the corrupt manifest refuses to start and names the file (no silent untrained model).
        svc.kill9()
        with pytest.raises(ServiceStartError):
            svc.start(timeout_s=60)
        assert f"error: bundle_dir: {root / 'manifest.json'}: not valid JSON" in svc.log.read_text(errors="replace")
        (root / "manifest.json").write_bytes(good_manifest)
        svc.start()
        channel = make_channel(svc.address, ClientOptions(deadline_s=60))
        assert score(reward_pb2_grpc.RewardStub(channel)) == version
        channel.close()
    finally:
        svc.stop()


# =================================================================================== label files


def _job(pairs: Path, out: Path, url: str, skills: tuple[Skill, ...] = (Skill.DESCENDER,), **kw: Any) -> AnnotationJob:
    annotator = Annotator(make_backend("tgi", url=url, retries=1), "score")
    return AnnotationJob(JobSpec(str(pairs), str(out), skills), annotator, concurrency=2, **kw)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_label_file_is_named_and_a_rerun_rewrites_it_from_the_ledger(tmp_path: Path, damage: str) -> None:
    pairs, out = tmp_path / "pairs", tmp_path / "labels"
    write_pair_dataset(pairs, _records(12), gap_steps=100)
    with TGIDouble() as llm:
        assert _job(pairs, out, llm.url).run().state == "succeeded"
        label_file = next((out / "descender").glob("labels-*.parquet"))
        good = label_file.read_bytes()
        label_file.write_bytes({"truncated": good[: len(good) // 2], "garbage": os.urandom(len(good)),
                                "empty": b""}[damage])
        with pytest.raises(DatasetError) as err:
            read_labels(out, "descender")
        assert str(label_file) in str(err.value)
        asked = len(llm.requests)
        # The ledger holds every label: the re-run asks the LLM nothing and writes the file again.
        assert _job(pairs, out, llm.url).run().state == "succeeded"
        assert len(llm.requests) == asked
    assert read_labels(out, "descender", pairs=read_pair_dataset(pairs), require_complete=True).num_rows == 12


def test_corrupt_ledger_and_label_manifest_fail_naming_the_file(tmp_path: Path) -> None:
    pairs, out = tmp_path / "pairs", tmp_path / "labels"
    write_pair_dataset(pairs, _records(6), gap_steps=100)
    with TGIDouble() as llm:
        assert _job(pairs, out, llm.url).run().state == "succeeded"
        manifest = out / "descender" / "manifest.json"
        manifest.write_bytes(b'{"format": "maestromotif.labels", "vers')
        status = _job(pairs, out, llm.url).run()
        assert status.state == "failed" and str(manifest) in status.error, status.error
        ledger = out / "ledger" / "shard00000-of-00001.sqlite"
        ledger.write_bytes(os.urandom(8192))
        for suffix in ("-wal", "-shm"):
            Path(f"{ledger}{suffix}").unlink(missing_ok=True)
        status = _job(pairs, out, llm.url).run()
    assert status.state == "failed" and str(ledger) in status.error, status.error


# =================================================================================== full disk


def test_full_disk_while_labelling_names_the_ledger_and_resumes_exactly_once(tmp_path: Path, disk: Disk) -> None:
    pairs, out = tmp_path / "pairs", disk.root / "labels"
    n = 30
    write_pair_dataset(pairs, _records(n), gap_steps=100)
    with TGIDouble(delay_s=0.01) as llm:
        done = [0]

        def fill_after_some(k: int) -> None:
            done[0] += k
            if done[0] == 8 and not disk.full:
                disk.fill()

        try:
            status = _job(pairs, out, llm.url, on_progress=fill_after_some).run()
        finally:
            disk.free()
        assert status.state == "failed", status
        ledger = out / "ledger" / "shard00000-of-00001.sqlite"
        assert str(ledger) in status.error and ("full" in status.error or "large" in status.error), status.error
        kept = _ledger_count(out)
        assert 8 <= kept < n  # what was committed before the disk filled is kept
        status = _job(pairs, out, llm.url).run()
    assert status.state == "succeeded", status.error
    table = read_labels(out, "descender", pairs=read_pair_dataset(pairs), require_complete=True)
    assert table.num_rows == len(set(table.column("pair_id").to_pylist())) == n
    print(json.dumps({"fault": f"full disk ({disk.mode}) while labelling", "labels_kept": kept, "final": n}))


def test_full_disk_while_writing_label_files_keeps_the_previous_ones(tmp_path: Path, disk: Disk) -> None:
    pairs, out = tmp_path / "pairs", disk.root / "labels"
    n = 10
    write_pair_dataset(pairs, _records(n), gap_steps=100)
    with TGIDouble() as llm:
        assert _job(pairs, out, llm.url).run().state == "succeeded"
        label_file = next((out / "descender").glob("labels-*.parquet"))
        before = (label_file.read_bytes(), (out / "descender" / "manifest.json").read_bytes())
        done = [0]

        def fill_after_the_last_label(k: int) -> None:
            done[0] += k
            if done[0] == n:  # every ascender label is in the ledger; the label files come next
                disk.fill()

        # A second job adds a skill; at its end it writes the label files of both from the ledger.
        try:
            status = _job(pairs, out, llm.url, skills=(Skill.DESCENDER, Skill.ASCENDER),
                          on_progress=fill_after_the_last_label).run()
        finally:
            disk.free()
        assert status.state == "failed"
        assert str(label_file) in status.error and "cannot write" in status.error, status.error
        assert (label_file.read_bytes(), (out / "descender" / "manifest.json").read_bytes()) == before
        assert read_labels(out, "descender").num_rows == n
        assert not _temp_files(out), _temp_files(out)
        asked = len(llm.requests)
        status = _job(pairs, out, llm.url, skills=(Skill.DESCENDER, Skill.ASCENDER)).run()  # room again
        assert status.state == "succeeded" and len(llm.requests) == asked  # nothing asked twice
    dataset = read_pair_dataset(pairs)
    for skill in ("descender", "ascender"):
        assert read_labels(out, skill, pairs=dataset, require_complete=True).num_rows == n


def test_full_disk_in_the_artifact_store_names_the_file_and_keeps_the_others(tmp_path: Path, disk: Disk) -> None:
    from maestromotif.kit.testing import running
    from services.codegen.server import SPEC

    store_dir = disk.root / "artifacts"
    store = ArtifactStore(store_dir)
    first = _stored_policy(store)
    before = store.path(first).read_bytes()
    with TGIDouble(reply=CODE_REPLY.replace("return DISCOVERER", "return DESCENDER", 1)) as llm, \
            running(SPEC, backend="tgi", llm_url=llm.url, store_dir=str(store_dir), llm_timeout_s=30.0) as svc:
        stub = codegen_pb2_grpc.CodegenStub(svc.channel)
        disk.fill()
        try:
            with pytest.raises(grpc.RpcError) as err:
                _compose(stub, seed=1, samples=1).result()
        finally:
            disk.free()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
        assert str(store_dir) in err.value.details() and "cannot write" in err.value.details(), err.value.details()
        assert store.path(first).read_bytes() == before
        assert _check_store(store_dir) == (1, 0)
        result = _compose(stub, seed=1, samples=1).result()  # room again: the next request is answered
        assert store.get(result.artifact.sha256).code == result.artifact.code
    assert _check_store(store_dir) == (2, 0)
    # The writer under it: WriteError (an OSError with the cause's errno) names the file.
    other = ArtifactRecord.model_validate({**store.get(first).model_dump(), "code": GOOD_POLICY + "# another\n",
                                           "sha256": ""})
    disk.fill()
    try:
        with pytest.raises(WriteError) as err:
            store.put(other)
    finally:
        disk.free()
    assert err.value.errno in NO_ROOM and str(store_dir) in str(err.value)
    assert _check_store(store_dir) == (2, 0)
