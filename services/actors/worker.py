"""One actor process: N vectorized games streaming compact observations to the learner.

Runs in its own process (spawned by the actor service). It holds no policy weights:
each step it sends the compact batch on the learner's ``Act`` stream and applies the
actions that come back. On any stream failure (learner restart, network) it registers
again with jittered exponential backoff and carries on with the same games.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np

from maestromotif.skills.controller import controller_factory

log = logging.getLogger("maestromotif.actors.worker")

# how long one Act stream may live before it is re-opened (every RPC carries a deadline)
STREAM_DEADLINE_S = 24 * 3600.0


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker process needs (picklable)."""

    index: int
    learner_address: str
    num_envs: int
    seed: int
    # "exploration" (reference training policy over skills), "none", or a loader of generated code
    skill_policy: str | Callable[[], Any]
    actor_name: str
    deadline_s: float
    auth_token: str | None
    tls_ca_file: str | None
    tls_client_cert_file: str | None  # mTLS: the certificate the learner's client CA must have signed
    tls_client_key_file: str | None
    tls_server_name: str | None
    max_message_bytes: int
    backoff_initial_s: float
    backoff_max_s: float
    max_steps: int  # stop after this many env steps (0: run until told to stop)
    # pid of the actor service that spawned this worker: if it dies (kill -9, OOM) the worker
    # stops too, instead of playing on as an orphan beside the replacement's workers
    parent_pid: int = 0


def _encode(obs: dict[str, np.ndarray], rewards: np.ndarray, dones: np.ndarray, time_outs: np.ndarray,
            actor_id: str, seq: int, finished: list[Any], competence: np.ndarray | None = None) -> Any:
    from maestromotif.v1 import learner_pb2

    n = int(obs["skills"].shape[0])
    return learner_pb2.EnvStepBatch(
        actor_id=actor_id,
        sequence=seq,
        num_envs=n,
        tty_chars=obs["tty_chars"].tobytes(),
        tty_colors=obs["tty_colors"].tobytes(),
        messages=obs["messages"].tobytes(),
        stats=obs["stats"].astype("<f4", copy=False).tobytes(),
        skills=obs["skills"].tobytes(),
        message_counts=obs["message_counts"].astype("<f4", copy=False).tobytes(),
        stat_changes=obs["stat_changes"].astype("<f4", copy=False).tobytes(),
        rewards=rewards.astype("<f4", copy=False).tobytes(),
        dones=dones.astype(np.uint8, copy=False).tobytes(),
        time_outs=time_outs.astype(np.uint8, copy=False).tobytes(),
        competence=b"" if competence is None else competence.astype("<f4", copy=False).tobytes(),
        finished_episodes=[
            learner_pb2.EpisodeSummary(
                env_index=int(ep.env_index),
                steps=int(ep.steps),
                env_return=float(ep.env_return),
                skill_steps=[int(s) for s in ep.skill_steps],
                max_depth=int(ep.max_depth),
            )
            for ep in finished
        ],
    )


def client_options(settings: WorkerSettings) -> Any:
    """The worker's channel options to the learner: deadline, token, TLS and (mTLS) client certificate."""
    from pathlib import Path

    from maestromotif.kit.client import ClientOptions

    return ClientOptions(
        deadline_s=settings.deadline_s,
        auth_token=settings.auth_token,
        tls_ca_file=Path(settings.tls_ca_file) if settings.tls_ca_file else None,
        tls_client_cert_file=Path(settings.tls_client_cert_file) if settings.tls_client_cert_file else None,
        tls_client_key_file=Path(settings.tls_client_key_file) if settings.tls_client_key_file else None,
        tls_server_name=settings.tls_server_name,
        max_message_bytes=settings.max_message_bytes,
    )


def run_worker(settings: WorkerSettings, events: Any, stop: Any) -> None:
    """Process entry point. ``events`` is a multiprocessing queue of statistics for the parent."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from tenacity import Retrying, retry_if_exception, stop_any, wait_exponential_jitter

    from maestromotif.env.vec import VecEnv
    from maestromotif.kit.client import make_channel
    from maestromotif.v1 import learner_pb2, learner_pb2_grpc

    def orphaned() -> bool:
        return bool(settings.parent_pid) and os.getppid() != settings.parent_pid

    def should_stop() -> bool:
        if stop.is_set() or stop_local.is_set():
            return True
        if orphaned():
            log.warning("actor %d: the actor service (pid %d) is gone; stopping", settings.index, settings.parent_pid)
            stop_local.set()
            return True
        return False

    stop_local = threading.Event()

    def emit(*event: Any) -> None:
        try:
            events.put_nowait((settings.index, *event))
        except Exception:  # noqa: BLE001 - statistics must never stop the games
            pass

    seeds = [settings.seed * 100_003 + settings.index * 10_007 + i for i in range(settings.num_envs)]
    env = VecEnv(seeds, controller_factory=controller_factory(settings.skill_policy, settings.seed + settings.index))
    obs = env.reset()
    n = settings.num_envs
    rewards = np.zeros(n, np.float32)
    dones = np.zeros(n, np.uint8)
    time_outs = np.zeros(n, np.uint8)
    finished: list[Any] = []
    total_steps = 0
    channel = make_channel(settings.learner_address, client_options(settings))
    stub = learner_pb2_grpc.LearnerStub(channel)

    class _Stop(Exception):
        pass

    def register() -> str:
        if should_stop():
            raise _Stop()
        resp = stub.RegisterActor(
            learner_pb2.RegisterActorRequest(
                actor_name=f"{settings.actor_name}-{settings.index}", num_envs=n, version=_version()
            ),
            timeout=settings.deadline_s,
        )
        spec = resp.spec
        if (spec.crop_size, spec.message_length, spec.stats_length) != (
            obs["tty_chars"].shape[1], obs["messages"].shape[1], obs["stats"].shape[1]
        ):
            raise RuntimeError(f"learner expects observation spec {spec}, this actor produces another")
        return resp.actor_id

    retrying = Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, grpc.RpcError)),
        wait=wait_exponential_jitter(initial=settings.backoff_initial_s, max=settings.backoff_max_s),
        stop=stop_any(lambda _state: should_stop()),
        reraise=True,
    )
    try:
        while not should_stop():
            try:
                actor_id = retrying(register)
            except _Stop:
                break
            except grpc.RpcError:
                break  # stopping while the learner is unreachable
            emit("connected", 1)
            outgoing: queue.Queue[Any] = queue.Queue()
            seq = 0
            outgoing.put(_encode(obs, rewards, dones, time_outs, actor_id, seq, finished, env.competence))
            finished = []
            sent_at = time.perf_counter()
            try:
                responses = stub.Act(iter(outgoing.get, None), timeout=STREAM_DEADLINE_S)
                for resp in responses:
                    rtt = time.perf_counter() - sent_at
                    if resp.sequence != seq:
                        raise RuntimeError(f"sequence: got {resp.sequence}, expected {seq}")
                    actions = np.frombuffer(resp.actions, np.uint8)
                    if actions.shape != (n,):
                        raise RuntimeError(f"actions: {actions.shape[0]} for {n} envs")
                    t0 = time.perf_counter()
                    obs, r, d, to, eps = env.step(actions)
                    env_s = time.perf_counter() - t0
                    rewards, dones, time_outs = r.copy(), d.copy(), to.copy()
                    total_steps += n
                    emit("step", n, rtt, env_s, int(resp.policy_version))
                    for ep in eps:
                        emit("episode", int(ep.steps), float(ep.env_return), tuple(int(s) for s in ep.skill_steps), int(ep.max_depth))
                    if should_stop() or (settings.max_steps and total_steps >= settings.max_steps):
                        outgoing.put(None)
                        break
                    seq += 1
                    outgoing.put(_encode(obs, rewards, dones, time_outs, actor_id, seq, list(eps), env.competence))
                    sent_at = time.perf_counter()
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                log.warning("actor %d: stream ended (%s: %s); reconnecting", settings.index, code.name, exc.details())  # type: ignore[attr-defined]
                emit("reconnect", code.name)
            finally:
                outgoing.put(None)
                emit("connected", 0)
            if settings.max_steps and total_steps >= settings.max_steps:
                break
            if not should_stop():
                time.sleep(float(np.random.uniform(0, settings.backoff_initial_s)))  # jitter before re-registering
    finally:
        channel.close()
        env.close()
        emit("exit", total_steps)
        if orphaned():
            # nobody reads the statistics any more: exiting must not wait to flush them into
            # a full pipe (the process would hang there)
            with contextlib.suppress(Exception):
                events.cancel_join_thread()


def _version() -> str:
    import maestromotif

    return maestromotif.__version__


def run_thread_stop_event() -> threading.Event:
    """A stop flag for running a worker in a thread (tests, benchmarks)."""
    return threading.Event()
