"""A gRPC health probe that speaks TLS and mTLS, for Kubernetes exec probes.

The kubelet's native gRPC probe has no TLS, so with ``tls.enabled`` the chart runs
``python -m maestromotif.kit.probe --config /etc/maestromotif/config.yaml --server-name NAME``.
It reads only the settings file's plain keys (``port``, TLS files), not the service's settings
model, so that it starts in a fraction of a second without importing the service (torch).
Exit 0 when the server reports SERVING, 1 otherwise, 2 on a bad settings file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml


def options_from_settings(settings: dict[str, Any], server_name: str | None, timeout_s: float) -> Any:
    from maestromotif.kit.client import ClientOptions

    ca = settings.get("peer_tls_ca_file") or settings.get("tls_cert_file")
    mutual = bool(settings.get("tls_client_ca_file"))
    return ClientOptions(
        deadline_s=timeout_s,
        max_attempts=1,
        tls_ca_file=Path(ca) if settings.get("tls_cert_file") and ca else None,
        tls_client_cert_file=Path(settings["peer_tls_cert_file"]) if mutual and settings.get("peer_tls_cert_file") else None,
        tls_client_key_file=Path(settings["peer_tls_key_file"]) if mutual and settings.get("peer_tls_key_file") else None,
        tls_server_name=server_name or settings.get("peer_tls_server_name"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maestromotif.kit.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="the service's settings file (YAML/JSON)")
    parser.add_argument("--server-name", default=None, help="name to check in the server's certificate")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds")
    args = parser.parse_args(argv)
    try:
        settings = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        port = int(settings["port"])
        options = options_from_settings(settings, args.server_name, args.timeout)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        print(f"probe: {args.config}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    import grpc

    from maestromotif.kit.client import check_health, make_channel

    channel = make_channel(f"127.0.0.1:{port}", options)
    try:
        status = check_health(channel, timeout_s=args.timeout)
    except grpc.RpcError as exc:
        print(f"probe: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    finally:
        channel.close()
    print("SERVING" if status == 1 else f"status {status}")
    return 0 if status == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
