"""Fixtures of the security tests: a private PKI made by the openssl command, and env isolation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))


@pytest.fixture(autouse=True)
def _no_maestromotif_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's MAESTROMOTIF_* variables must not change what the tests see.
    for key in list(os.environ):
        if key.startswith("MAESTROMOTIF_"):
            monkeypatch.delenv(key)


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate it signed (localhost, 127.0.0.1), a client certificate it signed,
    and a client certificate signed by another CA (which servers must refuse)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.pem", d / f"{name}-key.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", str(key), "-out", str(cert))
    return cert, key


def _leaf(d: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    cert, key, csr, extfile = d / f"{name}.pem", d / f"{name}-key.pem", d / f"{name}.csr", d / f"{name}.ext"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(csr))
    extfile.write_text(ext)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-extfile", str(extfile), "-out", str(cert))
    return cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    d = tmp_path_factory.mktemp("pki")
    ca = _ca(d, "maestromotif-test-ca")
    rogue_ca = _ca(d, "rogue-ca")
    server = _leaf(d, "server", ca, "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:mm-maestromotif-reward,DNS:mm-maestromotif-learner\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
    client = _leaf(d, "client", ca, "extendedKeyUsage=clientAuth\n")
    rogue = _leaf(d, "rogue", rogue_ca, "extendedKeyUsage=clientAuth\n")
    return Pki(ca[0], server[0], server[1], client[0], client[1], rogue[0], rogue[1])
