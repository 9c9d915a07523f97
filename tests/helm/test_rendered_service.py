"""A real service started from the settings file the chart renders, called the way the
kubelet's gRPC probe and Prometheus call it, with the chart's token file."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helmchart import FULL, VALUE_SETS, one, render

from maestromotif.kit.client import ClientOptions, make_channel
from maestromotif.kit.server import load_spec, start
from maestromotif.v1 import reward_pb2, reward_pb2_grpc


def test_reward_from_rendered_settings_answers_probes_metrics_and_checks_the_token(tmp_path: Path) -> None:
    values = json.loads(json.dumps(VALUE_SETS["auth-on"]))
    values["reward"] = {"config": {"init_random": True}}
    objects = render(values)
    text = one(objects, "ConfigMap", f"{FULL}-reward")["data"]["config.yaml"]
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-t0ken-for-tests\n")  # what the Secret mounts
    config_file = tmp_path / "config.yaml"
    config_file.write_text(text.replace("/etc/maestromotif/auth/token", str(token_file)))
    # Loopback and free ports here; everything else as rendered.
    overrides = {"host": "127.0.0.1", "port": 0, "metrics_host": "127.0.0.1", "metrics_port": 0,
                 "bundle_dir": str(tmp_path / "bundles")}
    svc = start(load_spec("reward"), config_file=config_file, overrides=overrides)
    try:
        container = one(objects, "Deployment", f"{FULL}-reward")["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["grpc"] == {"port": 50053}  # service "" = the whole server
        with grpc.insecure_channel(svc.address) as channel:
            # The kubelet's probe: grpc.health.v1.Health/Check, service "", no token.
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as info:
                reward_pb2_grpc.RewardStub(channel).GetModelInfo(reward_pb2.GetModelInfoRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with make_channel(svc.address, ClientOptions(deadline_s=10, auth_token="s3cr3t-t0ken-for-tests")) as channel:
            reward_pb2_grpc.RewardStub(channel).GetModelInfo(reward_pb2.GetModelInfoRequest())
        # The ServiceMonitor's endpoint: GET /metrics on the metrics port.
        monitor = one(objects, "ServiceMonitor", FULL)["spec"]["endpoints"][0]
        url = f"http://127.0.0.1:{svc.metrics_port}{monitor['path']}"
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        assert "maestromotif_grpc_server_auth_failures_total" in body
    finally:
        svc.stop(1.0)
