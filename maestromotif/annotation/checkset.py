"""The shipped quality check set (``checkset.yaml``) and agreement measurement.

The set is split into two halves so that prompt work cannot overfit unseen:
``dev`` (iterate on it) and ``holdout`` (only ever reported). A pair's half
depends on its position among the pairs of its skill, in blocks of two
(positions 0-1 dev, 2-3 holdout, 4-5 dev, ...), so that each half holds
both orders (better transition first and second) of every skill.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from maestromotif.annotation.schema import LABEL_FIRST, LABEL_SECOND, Transition
from maestromotif.annotation.strategies import Annotator, label_source
from maestromotif.skills.ids import Skill, parse_skill, skill_name

_DEFAULT_STATS = {"depth": 3, "gold": 0, "hp": 14, "hp_max": 14, "xp_level": 3, "hunger": 1}
_ALLOWED_KEYS = {"message", "prev", "depth", "gold"}


@dataclass(frozen=True)
class CheckCase:
    index: int
    skill: Skill
    first: Transition
    second: Transition
    expected: int  # 0 or 1
    half: str = "dev"  # "dev" or "holdout" (see module docstring)


HALVES = ("dev", "holdout")


def checkset_half(position_in_skill: int) -> str:
    """Half of the pair at this position among its skill's pairs (0-based)."""
    return "dev" if position_in_skill % 4 < 2 else "holdout"


def _transition(spec: Mapping[str, Any], where: str) -> Transition:
    if not isinstance(spec, Mapping) or set(spec) - _ALLOWED_KEYS:
        raise ValueError(f"{where}: expected a mapping with keys from {sorted(_ALLOWED_KEYS)}")
    before = dict(_DEFAULT_STATS)
    after = dict(_DEFAULT_STATS)
    for key in ("depth", "gold"):
        if key in spec:
            pair = spec[key]
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError(f"{where}.{key}: expected [before, after]")
            before[key], after[key] = int(pair[0]), int(pair[1])
    order = ("depth", "gold", "hp", "hp_max", "xp_level", "hunger")
    return Transition(str(spec.get("prev", "")), str(spec.get("message", "")),
                      tuple(before[k] for k in order), tuple(after[k] for k in order))  # type: ignore[arg-type]


def load_checkset(path: str | Path | None = None) -> list[CheckCase]:
    if path is None:
        text = resources.files("maestromotif.annotation").joinpath("checkset.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    entries = yaml.safe_load(text)
    if not isinstance(entries, list):
        raise ValueError("check set: expected a list of entries")
    cases = []
    seen: dict[Skill, int] = {}
    for i, entry in enumerate(entries):
        where = f"check set entry {i}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a mapping")
        expected = {"first": LABEL_FIRST, "second": LABEL_SECOND}.get(entry.get("expected"))
        if expected is None:
            raise ValueError(f"{where}.expected: must be 'first' or 'second'")
        skill = parse_skill(entry.get("skill"))
        position = seen.get(skill, 0)
        seen[skill] = position + 1
        cases.append(CheckCase(i, skill, _transition(entry.get("first"), f"{where}.first"),
                               _transition(entry.get("second"), f"{where}.second"), expected,
                               checkset_half(position)))
    return cases


@dataclass
class EvalReport:
    per_skill: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (agree, total)
    # (half, name) -> (agree, total), half in HALVES
    per_half_skill: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    mistakes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    model: str = ""
    strategy: str = ""
    depth_prior: float = 0.0  # weight of the hand-coded depth prior (0: the LLM's judgement alone)

    @property
    def agree(self) -> int:
        return sum(a for a, _ in self.per_skill.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.per_skill.values())

    @property
    def agreement(self) -> float:
        return self.agree / self.total if self.total else 0.0

    @property
    def pairs_per_second(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0

    def half(self, half: str) -> tuple[int, int]:
        """(agree, total) over one half of the check set."""
        items = [v for (h, _), v in self.per_half_skill.items() if h == half]
        return sum(a for a, _ in items), sum(t for _, t in items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "strategy": self.strategy,
            "depth_prior": self.depth_prior,
            "label_source": label_source(self.depth_prior),
            "overall": {"agree": self.agree, "total": self.total, "agreement": round(self.agreement, 4)},
            "per_skill": {k: {"agree": a, "total": t, "agreement": round(a / t, 4) if t else 0.0}
                          for k, (a, t) in self.per_skill.items()},
            "per_half": {
                half: {
                    "agree": self.half(half)[0], "total": self.half(half)[1],
                    "agreement": round(self.half(half)[0] / self.half(half)[1], 4) if self.half(half)[1] else 0.0,
                    "per_skill": {k: {"agree": a, "total": t, "agreement": round(a / t, 4) if t else 0.0}
                                  for (h, k), (a, t) in self.per_half_skill.items() if h == half},
                }
                for half in HALVES
            },
            "pairs_per_second": round(self.pairs_per_second, 3),
            "seconds": round(self.seconds, 2),
            "mistakes": self.mistakes,
        }


def evaluate(annotator: Annotator, cases: list[CheckCase],
             progress: Callable[[int], None] | None = None) -> EvalReport:
    """Label every case and count agreement with the expected label (a tie counts as a miss)."""
    report = EvalReport(model=annotator.model_id, strategy=annotator.strategy,
                        depth_prior=annotator.depth_prior if annotator.strategy == "score" else 0.0)
    start = time.perf_counter()
    for case in cases:
        result = annotator.annotate(case.skill, case.first, case.second, seed=1516 + case.index)
        name = skill_name(case.skill)
        agree, total = report.per_skill.get(name, (0, 0))
        ok = result.label == case.expected
        report.per_skill[name] = (agree + int(ok), total + 1)
        agree, total = report.per_half_skill.get((case.half, name), (0, 0))
        report.per_half_skill[(case.half, name)] = (agree + int(ok), total + 1)
        if not ok:
            report.mistakes.append({"index": case.index, "half": case.half, "skill": name, "first": case.first.message,
                                    "second": case.second.message, "expected": case.expected,
                                    "label": result.label, "raw": result.raw_text[-300:]})
        if progress:
            progress(1)
    report.seconds = time.perf_counter() - start
    return report
