"""mTLS between real services on loopback, each configured through its own settings model.

1. reward requires client certificates (``tls_client_ca_file``); the learner's own reward client
   (``services.learner.server.RewardClient``), on a channel built from a LearnerConfig exactly as
   the learner builds it (``ClientOptions.for_peer``), scores a batch; the same caller without a
   client certificate, with one from another CA, or in plaintext is refused.
2. codegen requires client certificates; the agent (itself on mTLS) composes a task through it:
   with its ``peer_tls_cert_file`` the call reaches codegen (which generates and answers), without
   it the agent's call to codegen is refused and codegen generated nothing.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import Pki
from tgi_double import TGIDouble

from maestromotif.kit import load_spec
from maestromotif.kit.client import ClientOptions, client_options_from_env, make_channel
from maestromotif.kit.testing import running
from maestromotif.v1 import agent_pb2_grpc, codegen_pb2, codegen_pb2_grpc, common_pb2


def _server_tls(pki: Pki) -> dict[str, Any]:
    return {"tls_cert_file": str(pki.server_cert), "tls_key_file": str(pki.server_key),
            "tls_client_ca_file": str(pki.ca)}


def _mutual(pki: Pki, deadline_s: float = 30.0) -> ClientOptions:
    return ClientOptions(deadline_s=deadline_s, tls_ca_file=pki.ca, tls_client_cert_file=pki.client_cert,
                         tls_client_key_file=pki.client_key, max_attempts=1)


def _batch(n: int = 4) -> tuple[np.ndarray, ...]:
    messages = np.zeros((n, 256), np.uint8)
    messages[:, :5] = np.frombuffer(b"Hello", np.uint8)
    return (np.arange(n, dtype=np.uint8) % 5, messages, np.zeros((n, 5), np.float32), np.ones(n, np.float32))


def test_learner_scores_on_reward_only_with_its_client_certificate(pki: Pki) -> None:
    from maestromotif.training.engine import RewardUnavailable
    from services.learner.server import RewardClient

    learner_spec = load_spec("learner")
    with running(load_spec("reward"), client=_mutual(pki), init_random=True, threads=1, **_server_tls(pki)) as reward:

        def learner_client(**peer: Any) -> RewardClient:
            config = learner_spec.load_config(overrides={"reward_address": reward.address, "port": 0,
                                                         "metrics_port": 0, **peer})
            options = ClientOptions.for_peer(config, max_attempts=1, deadline_s=20.0)
            return RewardClient(make_channel(reward.address, options), 20.0)

        ok = learner_client(peer_tls_ca_file=str(pki.ca), peer_tls_cert_file=str(pki.client_cert),
                            peer_tls_key_file=str(pki.client_key))
        rewards = ok(*_batch())
        assert rewards.shape == (4,) and np.isfinite(rewards).all()
        assert ok.model_version

        refused = {
            "no client certificate": learner_client(peer_tls_ca_file=str(pki.ca)),
            "certificate of another CA": learner_client(peer_tls_ca_file=str(pki.ca),
                                                        peer_tls_cert_file=str(pki.rogue_cert),
                                                        peer_tls_key_file=str(pki.rogue_key)),
            "plaintext": learner_client(),
        }
        for what, client in refused.items():
            # the learner's client reports an unreachable reward service as RewardUnavailable
            # (the engine then holds back), with the gRPC status first in the message
            with pytest.raises(RewardUnavailable, match="^UNAVAILABLE") as err:
                client(*_batch())
            assert isinstance(err.value.__cause__, grpc.RpcError), (what, err.value)
        # Health needs no token but still the client certificate: mTLS covers the whole port.
        from maestromotif.kit.client import check_health

        assert check_health(reward.channel) == 1


def test_a_client_certificate_needs_its_ca_and_key() -> None:
    spec = load_spec("reward")
    from maestromotif.kit.config import ConfigError

    with pytest.raises(ConfigError, match="peer_tls_cert_file and peer_tls_key_file must be set together"):
        spec.load_config(overrides={"peer_tls_cert_file": __file__})
    with pytest.raises(ConfigError, match="needs peer_tls_ca_file"):
        spec.load_config(overrides={"peer_tls_cert_file": __file__, "peer_tls_key_file": __file__})


def _generations(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(m) for m in re.findall(r"^maestromotif_codegen_generations_total\{[^}]*\} (\S+)$", text, re.M))


def test_agent_composes_through_codegen_over_mtls(pki: Pki, tmp_path: Path) -> None:
    with TGIDouble(reply="I would pick the discoverer first.") as llm, \
            running(load_spec("codegen"), client=_mutual(pki), backend="tgi", llm_url=llm.url, llm_timeout_s=10.0,
                    store_dir=str(tmp_path / "artifacts"), max_repair_rounds=0, **_server_tls(pki)) as codegen:

        def agent(**peer: Any) -> Any:
            return running(load_spec("agent"), client=_mutual(pki, 120.0), checkpoint=str(tmp_path / "none"),
                           codegen_address=codegen.address, peer_tls_ca_file=str(pki.ca), **peer, **_server_tls(pki))

        with agent(peer_tls_cert_file=str(pki.client_cert), peer_tls_key_file=str(pki.client_key)) as good:
            with pytest.raises(grpc.RpcError) as err:
                agent_pb2_grpc.AgentStub(good.channel).ComposeTask(
                    codegen_pb2.ComposeTaskRequest(prompt="Go down the stairs."), timeout=120)
            # Codegen answered (the LLM double writes no code): a validation failure, not a refused connection.
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value
            assert "no valid policy" in err.value.details()
        reached = _generations(codegen.metrics_port)
        assert reached >= 1

        with agent() as bad:  # the same agent without its client certificate
            with pytest.raises(grpc.RpcError) as err:
                agent_pb2_grpc.AgentStub(bad.channel).ComposeTask(
                    codegen_pb2.ComposeTaskRequest(prompt="Go down the stairs."), timeout=60)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
            assert "codegen ComposeTask: UNAVAILABLE" in err.value.details()
        assert _generations(codegen.metrics_port) == reached

        # A command-line client takes its certificate from MAESTROMOTIF_CLIENT_TLS_*; without one it is refused.
        env = {"MAESTROMOTIF_CLIENT_TLS_CA_FILE": str(pki.ca), "MAESTROMOTIF_CLIENT_TLS_CERT_FILE": str(pki.client_cert),
               "MAESTROMOTIF_CLIENT_TLS_KEY_FILE": str(pki.client_key)}
        for env_now, refused in ((env, False), ({"MAESTROMOTIF_CLIENT_TLS_CA_FILE": str(pki.ca)}, True)):
            with make_channel(codegen.address, client_options_from_env(env_now, deadline_s=10.0, max_attempts=1)) as ch:
                try:
                    codegen_pb2_grpc.CodegenStub(ch).GetServerInfo(common_pb2.GetServerInfoRequest())
                    assert not refused
                except grpc.RpcError as exc:
                    assert refused and exc.code() == grpc.StatusCode.UNAVAILABLE, exc


def test_actors_stream_to_the_learner_only_with_their_client_certificate(pki: Pki, tmp_path: Path) -> None:
    """actors -> learner over mTLS: the worker processes present peer_tls_cert_file (spawned, so the
    settings travel through WorkerSettings); without it the learner never sees them connect."""
    import time

    from maestromotif.v1 import learner_pb2, learner_pb2_grpc

    with running(load_spec("reward"), client=_mutual(pki), init_random=True, threads=1, **_server_tls(pki)) as reward, \
            running(load_spec("learner"), client=_mutual(pki), reward_address=reward.address,
                    train_dir=str(tmp_path / "runs"), preset="small", batch_size=256,
                    peer_tls_ca_file=str(pki.ca), peer_tls_cert_file=str(pki.client_cert),
                    peer_tls_key_file=str(pki.client_key), **_server_tls(pki)) as learner:
        status = learner_pb2_grpc.LearnerStub(learner.channel)

        def connected_within(seconds: float) -> int:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                n = status.GetStatus(learner_pb2.GetStatusRequest()).connected_actors
                if n:
                    return int(n)
                time.sleep(0.5)
            return 0

        common = dict(learner_address=learner.address, processes=1, seed=3, peer_tls_ca_file=str(pki.ca),
                      backoff_max_s=1.0, **_server_tls(pki))
        # Started together: one actor without a client certificate (3 games), one with it (2 games).
        with running(load_spec("actors"), client=_mutual(pki), envs_per_process=3, actor_name="no-cert", **common), \
                running(load_spec("actors"), client=_mutual(pki), envs_per_process=2, actor_name="with-cert",
                        peer_tls_cert_file=str(pki.client_cert), peer_tls_key_file=str(pki.client_key), **common):
            assert connected_within(120) == 1
            # The one without a certificate started first and retries every second at most: never let in.
            for _ in range(6):
                st = status.GetStatus(learner_pb2.GetStatusRequest())
                assert (st.connected_actors, st.connected_envs) == (1, 2)
                time.sleep(0.5)
