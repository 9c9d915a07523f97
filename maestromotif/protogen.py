"""Generate the gRPC stubs in ``maestromotif/v1`` from ``protos/``.

Run with ``make protos`` (or ``python -m maestromotif.protogen``). The stubs are
committed so that the package imports without a build step; a test regenerates
them into a temporary folder and fails when the committed ones are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "maestromotif" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> None:
    """Write ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` under ``out_dir/maestromotif/v1``."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    init = out_dir / "maestromotif" / "v1" / "__init__.py"
    init.write_text('"""Generated gRPC stubs of the maestromotif.v1 API (see protos/). Do not edit."""\n')


if __name__ == "__main__":
    generate(REPO_ROOT)
    print(f"generated stubs for {len(proto_files())} protos in maestromotif/v1", file=sys.stderr)
