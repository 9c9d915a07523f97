"""The artifact store: content addressing, atomic records, tamper detection, and only validated code loads."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hostile_corpus import VALID_POLICY

from maestromotif.codegen import ArtifactKind
from maestromotif.codegen.artifacts import (
    ArtifactError,
    ArtifactPolicyLoader,
    ArtifactRecord,
    ArtifactStore,
    Message,
    Sampling,
    code_sha256,
)
from maestromotif.codegen.validate import ValidationReport, validate_code
from maestromotif.skills.reference import reference_skill_functions_source
from maestromotif.skills.sandbox import ComposedPolicy, SandboxedPolicy, SandboxedSkillFunctions


def record_for(code: str, kind: ArtifactKind, report: ValidationReport, task: str | None = "gnomish") -> ArtifactRecord:
    return ArtifactRecord(
        kind=kind,
        task=task,
        code=code,
        prompt="Write a policy that reaches the Gnomish Mines.",
        backend="embedded",
        model_id="Qwen2.5-Coder-0.5B-Instruct-Q4_K_M",
        model_digest="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        sampling=Sampling(temperature=0.2, max_tokens=2048, seed=7, repair_rounds=1),
        transcript=(Message(role="user", content="write it"), Message(role="assistant", content=code)),
        validation=report.to_dict(),
    )


@pytest.fixture(scope="module")
def valid_report() -> ValidationReport:
    report = validate_code(VALID_POLICY, ArtifactKind.TASK_POLICY)
    assert report.valid, report.errors
    return report


@pytest.fixture(scope="module")
def invalid_report() -> ValidationReport:
    report = validate_code(VALID_POLICY.replace("return DISCOVERER", "return MERCHANT"), ArtifactKind.TASK_POLICY)
    assert not report.valid
    return report


def test_put_get_list(tmp_path, valid_report) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put(record_for(VALID_POLICY, ArtifactKind.TASK_POLICY, valid_report))
    assert sha == code_sha256(VALID_POLICY)
    assert (tmp_path / f"{sha}.json").is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writer left nothing behind
    back = store.get(sha)
    assert back.code == VALID_POLICY and back.report == valid_report and back.sampling.seed == 7
    assert back.created.tzinfo is not None and back.created <= datetime.now(timezone.utc)
    assert back.transcript[1].content == VALID_POLICY
    [summary] = store.list()
    assert summary.sha256 == sha and summary.valid and summary.kind == "task_policy" and summary.error is None
    assert store.put(record_for(VALID_POLICY, ArtifactKind.TASK_POLICY, valid_report)) == sha  # idempotent
    policy = store.load_policy(sha)
    assert isinstance(policy, SandboxedPolicy) and policy.base_turns == 50


def test_tampered_and_corrupt_files_are_clear_errors(tmp_path, valid_report) -> None:
    store = ArtifactStore(tmp_path)
    sha = store.put(record_for(VALID_POLICY, ArtifactKind.TASK_POLICY, valid_report))
    path = tmp_path / f"{sha}.json"
    data = json.loads(path.read_text())

    data["code"] = data["code"].replace("DESCENDER", "MERCHANT")
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=rf"{path}.*tampered.*does not match the code"):
        store.get(sha)

    data = json.loads(json.dumps(data))
    data["code"] = VALID_POLICY.replace("DESCENDER", "MERCHANT")
    data["sha256"] = code_sha256(data["code"])  # consistent inside, but not the file's name
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="renamed or tampered"):
        store.get(sha)

    path.write_text("{not json")
    with pytest.raises(ArtifactError, match=rf"{path} is not valid JSON"):
        store.get(sha)
    with pytest.raises(ArtifactError, match="not valid JSON"):
        store.load_policy(sha)
    assert store.list()[0].error is not None

    good = json.loads(record_for(VALID_POLICY, ArtifactKind.TASK_POLICY, valid_report).model_dump_json())
    path.write_text(json.dumps({**good, "extra": 1}))
    with pytest.raises(ArtifactError, match="extra"):
        store.get(sha)
    path.write_text(json.dumps({**good, "validation": {**good["validation"], "valid": False}}))
    with pytest.raises(ArtifactError, match="disagrees"):
        store.get(sha)
    with pytest.raises(ArtifactError, match="64 lower-case hex"):
        store.get("../../etc/passwd")
    with pytest.raises(ArtifactError, match="no artifact"):
        store.get("0" * 64)


def test_only_validated_artifacts_of_the_right_kind_load(tmp_path, valid_report, invalid_report) -> None:
    store = ArtifactStore(tmp_path)
    bad_code = VALID_POLICY.replace("return DISCOVERER", "return MERCHANT")
    bad = store.put(record_for(bad_code, ArtifactKind.TASK_POLICY, invalid_report))
    with pytest.raises(ArtifactError, match="did not pass validation.*harness"):
        store.load_policy(bad)
    good = store.put(record_for(VALID_POLICY, ArtifactKind.TASK_POLICY, valid_report))
    with pytest.raises(ArtifactError, match="not a skill_functions"):
        store.load_skill_functions(good)

    skills_code = reference_skill_functions_source()
    skills_report = validate_code(skills_code, ArtifactKind.SKILL_FUNCTIONS)
    skills = store.put(record_for(skills_code, ArtifactKind.SKILL_FUNCTIONS, skills_report, task=None))
    assert isinstance(store.load_skill_functions(skills), SandboxedSkillFunctions)
    with pytest.raises(ArtifactError, match="not a task_policy or training_policy"):
        store.load_policy(skills)
    composed = ArtifactPolicyLoader(str(tmp_path), good, skills)()
    assert isinstance(composed, ComposedPolicy) and composed.has_custom_termination


def test_record_validation() -> None:
    with pytest.raises(ValueError, match="task name"):
        ArtifactRecord(kind="task_policy", code="x", prompt="", backend="b", model_id="m", model_digest="d",
                       sampling=Sampling(temperature=0.2, max_tokens=10, repair_rounds=0),
                       validation={"valid": False, "stages": [], "sandbox_output": "", "isolation": [],
                                   "agreement": None})
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=-1, max_tokens=10, repair_rounds=0)


def test_resolve_policy_spec(tmp_path, valid_report) -> None:
    from maestromotif.codegen.artifacts import resolve_policy_spec

    assert resolve_policy_spec("gnomish", None) == "gnomish"
    sha = ArtifactStore(tmp_path).put(record_for(VALID_POLICY, ArtifactKind.TASK_POLICY, valid_report))
    loader = resolve_policy_spec(f"artifact:{sha}", tmp_path)
    assert isinstance(loader, ArtifactPolicyLoader) and loader.policy == sha
    with pytest.raises(ArtifactError, match="no artifact folder"):
        resolve_policy_spec(f"artifact:{sha}", None)
    with pytest.raises(ArtifactError, match="64 lower-case hex"):
        resolve_policy_spec("artifact:abc", tmp_path)
    with pytest.raises(ArtifactError, match="no artifact"):
        resolve_policy_spec(f"artifact:{sha}+{'1' * 64}", tmp_path)
