"""The chart's TLS values, rendered by the real Helm engine and run: reward and a learner client from
their rendered settings files, the exec probe from the rendered Deployment, mTLS enforced."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import Pki

from maestromotif.kit import load_spec
from maestromotif.kit.client import ClientOptions, check_health, make_channel
from maestromotif.kit.probe import main as probe_main
from maestromotif.kit.server import start

pytest.importorskip("helm_python")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helm"))
from helmchart import FULL, notes, render  # noqa: E402

TLS_ON = {"tls": {"enabled": True, "mutual": True, "secretName": "mm-tls"}}
DEPLOYED = ("learner", "actors", "reward", "codegen", "agent")


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def test_tls_values_reach_every_service() -> None:
    objects = render(TLS_ON)
    for svc in DEPLOYED:
        config = json.loads(_one(objects, "ConfigMap", f"{FULL}-{svc}")["data"]["config.yaml"])
        assert config["tls_cert_file"] == "/etc/maestromotif/tls/tls.crt"
        assert config["tls_client_ca_file"] == config["peer_tls_ca_file"] == "/etc/maestromotif/tls/ca.crt"
        assert config["peer_tls_cert_file"] == "/etc/maestromotif/tls/tls.crt"
        pod = _one(objects, "Deployment", f"{FULL}-{svc}")["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
        assert volume["secret"]["secretName"] == "mm-tls"
        container = pod["containers"][0]
        assert {"name": "tls", "mountPath": "/etc/maestromotif/tls", "readOnly": True} in container["volumeMounts"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["exec"]["command"][:3] == ["python", "-m", "maestromotif.kit.probe"], (svc, probe)
    text = notes(TLS_ON)
    assert "grpcurl -cacert ca.crt -cert tls.crt -key tls.key" in text and "-plaintext" not in text
    # TLS off (the default): native gRPC probes, no TLS settings.
    plain = render({})
    config = json.loads(_one(plain, "ConfigMap", f"{FULL}-reward")["data"]["config.yaml"])
    assert not any(k.startswith(("tls_", "peer_tls")) for k in config)
    assert "grpc" in _one(plain, "Deployment", f"{FULL}-reward")["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    # TLS on without a Secret fails at render, naming the value.
    with pytest.raises(Exception, match="tls.secretName"):
        render({"tls": {"enabled": True}})


def test_rendered_tls_settings_run(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(__import__("os").environ):
        if var.startswith("MAESTROMOTIF_"):
            monkeypatch.delenv(var)
    # The mounted Secret, as the pod sees it (tls.crt, tls.key, ca.crt).
    secret = tmp_path / "tls"
    secret.mkdir()
    shutil.copy(pki.server_cert, secret / "tls.crt")
    shutil.copy(pki.server_key, secret / "tls.key")
    shutil.copy(pki.ca, secret / "ca.crt")
    objects = render(TLS_ON)

    def settings(svc: str, **changes: Any) -> Path:
        data = json.loads(_one(objects, "ConfigMap", f"{FULL}-{svc}")["data"]["config.yaml"].replace(
            "/etc/maestromotif/tls", str(secret)))
        data.update(changes)
        path = tmp_path / f"{svc}.yaml"
        path.write_text(json.dumps(data))
        return path

    reward_file = settings("reward", host="127.0.0.1", port=0, metrics_host="127.0.0.1", metrics_port=0,
                           init_random=True, threads=1)
    reward = start(load_spec("reward"), config_file=reward_file)
    try:
        # The exec probe exactly as the Deployment runs it (its settings file with the port bound here).
        pod = _one(objects, "Deployment", f"{FULL}-reward")["spec"]["template"]["spec"]
        command = pod["containers"][0]["readinessProbe"]["exec"]["command"]
        probe_file = settings("reward", port=reward.port)
        args = [probe_file.as_posix() if a == "/etc/maestromotif/config.yaml" else a for a in command[3:]]
        assert probe_main(args) == 0
        # The learner's rendered settings, pointed at this reward: its peer channel works over mTLS.
        from services.learner.server import RewardClient

        learner = load_spec("learner").load_config(config_file=settings(
            "learner", reward_address=reward.address, port=0, metrics_port=0, train_dir=str(tmp_path / "runs")))
        client = RewardClient(make_channel(reward.address, ClientOptions.for_peer(learner, max_attempts=1)), 20.0)
        n = 3
        rewards = client(np.zeros(n, np.uint8), np.zeros((n, 256), np.uint8), np.zeros((n, 5), np.float32),
                         np.ones(n, np.float32))
        assert rewards.shape == (n,)
        # Without a client certificate: refused, even for health.
        bare = make_channel(reward.address, ClientOptions(deadline_s=5, tls_ca_file=secret / "ca.crt", max_attempts=1))
        with pytest.raises(grpc.RpcError) as err:
            check_health(bare)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        bare.close()
        # The probe fails when the server's certificate does not name what it checks.
        assert probe_main(["--config", str(probe_file), "--server-name", "someone-else", "--timeout", "3"]) == 1
    finally:
        reward.stop(grace=1.0)
