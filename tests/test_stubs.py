"""The committed gRPC stubs in maestromotif/v1 must match what protoc generates from protos/ now."""

from __future__ import annotations

from pathlib import Path

from maestromotif import protogen

COMMITTED = protogen.REPO_ROOT / "maestromotif" / "v1"


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    fresh_dir = tmp_path / "maestromotif" / "v1"
    fresh = {p.name: p.read_bytes() for p in fresh_dir.iterdir() if p.is_file()}
    committed = {p.name: p.read_bytes() for p in COMMITTED.iterdir() if p.is_file() and p.suffix in (".py", ".pyi")}
    assert len(protogen.proto_files()) >= 6
    assert sorted(fresh) == sorted(committed), "stub files differ; run `make protos`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}; run `make protos` and commit maestromotif/v1"


def test_every_proto_has_stubs() -> None:
    for proto in protogen.proto_files():
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (COMMITTED / f"{proto.stem}{suffix}").is_file(), f"{proto.name}: missing {suffix}"
