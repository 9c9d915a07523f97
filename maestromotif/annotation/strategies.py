"""The two ways of asking an LLM which of two transitions better fits a skill.

* ``compare`` (the paper's way): both transitions in one prompt, brief reasoning,
  a final ``best_description`` line; the LAST verdict counts (D20); one retry
  turn on a parse failure; label 3 if still none.
* ``score`` (for small models): each transition alone gets few-shot Yes/No
  questions about the skill (one per phrasing); its LLM score is the mean over
  phrasings of log P(Yes) - log P(No) of the first answer token, cached per
  (skill, shown text). The pair's label compares the two scores with a tie
  margin: by default the label is the LLM's judgement alone (the shown text
  already states the level change).

  Optional and OFF by default: the hand-coded *depth prior* (``depth_prior`` > 0)
  adds the skill's own goal about level changes, as its description states it
  (descender: down is progress, up is worse; ascender: the reverse; discoverer:
  any level change is against the goal; worshipper and merchant: none), times
  ``depth_prior``. With a weight above the LLM's spread it decides every pair
  where exactly one transition changes level, so such labels are not the LLM's:
  every output made with it names it (``label_source``).

Default strategy per backend: ``score`` for the embedded (small) model, since
small models asked to compare answer near chance (nearly always "1"); ``compare``
for served large models, as in the paper (dependencies.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from maestromotif.annotation.prompts import (
    RETRY_PROMPT,
    compare_messages,
    parse_verdict,
    score_messages,
    score_phrasings,
    score_text,
)
from maestromotif.annotation.schema import (
    LABEL_FIRST,
    LABEL_SECOND,
    LABEL_TIE,
    LABEL_UNPARSED,
    RAW_TEXT_MAX_CHARS,
    Transition,
)
from maestromotif.llm.base import ChatMessage, Completion, GenerationParams, LLMBackend
from maestromotif.skills.ids import Skill

STRATEGIES = ("compare", "score")
DEFAULT_TIE_MARGIN = 0.1  # identical messages score identically; ~0.1 separates real differences for 0.5B
# Weight of the hand-coded depth prior, in log-odds units. 0 (the default): labels are the LLM's
# judgement alone, which is the method's point (the LLM designs the reward). The 0.5B model's
# log-odds spread over about 2 units, so a weight of 3.0 (the former default) lets the rule decide
# whenever exactly one transition changes level; kept only as an opt-in, named in every output.
DEFAULT_DEPTH_PRIOR = 0.0


def label_source(depth_prior_weight: float) -> str:
    """How labels were decided, as written into label manifests, reports and bundle reports:
    ``llm`` (the LLM's judgement alone) or ``llm+depth_prior:W`` (the hand-coded prior added)."""
    return "llm" if depth_prior_weight == 0.0 else f"llm+depth_prior:{depth_prior_weight:g}"

# Sign of the prior per skill for a level change of +1 (one deeper) or -1 (one shallower), from
# the skill descriptions (maestromotif.skills.descriptions; method.md 5.2): descender wants down
# and likes up even less than staying; ascender the reverse; discoverer rejects any level change.
_DEPTH_GOAL = {
    Skill.DISCOVERER: {1: -1.0, -1: -1.0},
    Skill.DESCENDER: {1: 1.0, -1: -1.0},
    Skill.ASCENDER: {1: -1.0, -1: 1.0},
}


def depth_direction(transition: Transition) -> int:
    """Sign of the depth change (+1 deeper, -1 shallower, 0 same), as the reward model's diffstats."""
    delta = transition.stats_after[0] - transition.stats_before[0]
    return (delta > 0) - (delta < 0)


def depth_prior(skill: Skill, transition: Transition) -> float:
    """The skill's stated preference about this transition's level change: -1, 0 or +1."""
    direction = depth_direction(transition)
    if direction == 0:
        return 0.0
    return _DEPTH_GOAL.get(Skill(skill), {}).get(direction, 0.0)
# The paper's sampling (method.md 5.3), with a smaller reply budget: a brief reasoning suffices.
COMPARE_PARAMS = GenerationParams(max_new_tokens=768, temperature=0.1, top_p=0.95, top_k=50)


def default_strategy(backend_kind: str) -> str:
    return "score" if backend_kind == "embedded" else "compare"


class AnnotationObserver:
    """Hooks for metrics; the annotator service implements them with Prometheus."""

    def llm_call(self, kind: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None: ...

    def cache_hit(self) -> None: ...

    def parse_failure(self, final: bool) -> None: ...

    def label(self, skill: Skill, label: int) -> None: ...


@dataclass(frozen=True)
class Annotation:
    label: int
    raw_text: str
    first_score: float = math.nan
    second_score: float = math.nan


@dataclass(frozen=True)
class TransitionScore:
    """A transition's score under the score strategy: LLM log-odds plus the weighted depth prior."""

    llm: float
    prior: float

    @property
    def total(self) -> float:
        return self.llm + self.prior


class ScoreCache:
    """Bounded LRU of scores keyed by (skill, shown text); thread-safe."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[tuple[int, str], float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[int, str]) -> float | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[int, str], value: float) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)


class Annotator:
    """Labels pairs for a skill with one backend and one strategy."""

    def __init__(self, backend: LLMBackend, strategy: str | None = None, *,
                 tie_margin: float = DEFAULT_TIE_MARGIN, depth_prior: float = DEFAULT_DEPTH_PRIOR,
                 compare_params: GenerationParams = COMPARE_PARAMS,
                 cache: ScoreCache | None = None, observer: AnnotationObserver | None = None) -> None:
        strategy = strategy or default_strategy(backend.kind)
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy {strategy!r} unknown; choose one of {STRATEGIES}")
        if not 0.0 <= tie_margin < 100.0:
            raise ValueError(f"tie_margin: {tie_margin} not in [0, 100)")
        if not (math.isfinite(depth_prior) and 0.0 <= depth_prior <= 100.0):
            raise ValueError(f"depth_prior: {depth_prior} not in [0, 100]")
        self.backend = backend
        self.strategy = strategy
        self.tie_margin = tie_margin
        self.depth_prior = depth_prior
        self.compare_params = compare_params
        self.cache = cache or ScoreCache()
        self.observer = observer or AnnotationObserver()

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def label_source(self) -> str:
        """``llm``, or ``llm+depth_prior:W`` when the hand-coded prior decided part of the labels."""
        return label_source(self.depth_prior if self.strategy == "score" else 0.0)

    @property
    def provenance(self) -> dict[str, object]:
        """What decided the labels; written into label manifests and check-set reports."""
        return {"model": self.model_id, "strategy": self.strategy, "tie_margin": self.tie_margin,
                "depth_prior": self.depth_prior if self.strategy == "score" else 0.0,
                "label_source": self.label_source, "settings": self.settings_fingerprint}

    @property
    def settings_fingerprint(self) -> str:
        """Hash of everything besides the model that decides a label: strategy, margins, sampling
        and the prompts as rendered for a fixed probe. A ledger is bound to it, so a resumed job
        never mixes labels made under different prompts or settings."""
        probe = Transition("probe previous", "probe current", (1, 0, 10, 10, 1, 1), (2, 5, 9, 10, 1, 2))
        rendered = {
            "strategy": self.strategy,
            "tie_margin": self.tie_margin,
            "depth_prior": self.depth_prior,
            "compare_params": dataclasses.asdict(self.compare_params),
            "retry": RETRY_PROMPT,
            "prompts": [
                [[m.role, m.content] for m in compare_messages(skill, probe, probe)]
                + [[m.role, m.content] for p in range(score_phrasings(skill))
                   for m in score_messages(skill, score_text(probe), p)]
                for skill in Skill
            ],
        }
        return hashlib.sha256(json.dumps(rendered, sort_keys=True).encode()).hexdigest()[:16]

    def annotate(self, skill: Skill, first: Transition, second: Transition, *, seed: int | None = None) -> Annotation:
        if self.strategy == "score":
            return self._annotate_score(Skill(skill), first, second)
        return self._annotate_compare(Skill(skill), first, second, seed)

    # -- score
    def llm_score(self, skill: Skill, transition: Transition) -> float:
        """Mean Yes/No log-odds over the skill's phrasings, cached per (skill, shown text)."""
        text = score_text(transition)
        key = (int(skill), text)
        cached = self.cache.get(key)
        if cached is not None:
            self.observer.cache_hit()
            return cached
        total = 0.0
        phrasings = score_phrasings(skill)
        for phrasing in range(phrasings):
            result = self.backend.yes_no_score(score_messages(skill, text, phrasing))
            self.observer.llm_call("score", result.seconds, result.prompt_tokens, 1)
            total += result.score
        score = total / phrasings
        self.cache.put(key, score)
        return score

    def score_parts(self, skill: Skill, transition: Transition) -> TransitionScore:
        # The shown text states the level change, so caching the LLM part by text is exact;
        # the prior is added outside the cache so that annotators with other weights can share it.
        return TransitionScore(self.llm_score(skill, transition), self.depth_prior * depth_prior(skill, transition))

    def score(self, skill: Skill, transition: Transition) -> float:
        return self.score_parts(skill, transition).total

    def _annotate_score(self, skill: Skill, first: Transition, second: Transition) -> Annotation:
        p1 = self.score_parts(skill, first)
        p2 = self.score_parts(skill, second)
        s1, s2 = p1.total, p2.total
        diff = s1 - s2
        if abs(diff) <= self.tie_margin:
            label = LABEL_TIE
        else:
            label = LABEL_FIRST if diff > 0 else LABEL_SECOND
        if self.depth_prior:
            raw = (f"score first={s1:.4f} second={s2:.4f} (llm {p1.llm:.4f} {p2.llm:.4f}, depth prior "
                   f"{p1.prior:+.2f} {p2.prior:+.2f}) margin={self.tie_margin}")
        else:
            raw = f"score first={s1:.4f} second={s2:.4f} (llm only) margin={self.tie_margin}"
        return Annotation(label, raw, s1, s2)

    # -- compare
    def _chat(self, messages: Sequence[ChatMessage], seed: int | None) -> Completion:
        params = self.compare_params
        if seed is not None:
            params = GenerationParams(params.max_new_tokens, params.temperature, params.top_p, params.top_k, seed,
                                      params.stop)
        completion = self.backend.chat(messages, params)
        self.observer.llm_call("compare", completion.seconds, completion.prompt_tokens, completion.completion_tokens)
        return completion

    def _annotate_compare(self, skill: Skill, first: Transition, second: Transition, seed: int | None) -> Annotation:
        messages = compare_messages(skill, first, second)
        reply = self._chat(messages, seed).text
        label = parse_verdict(reply)
        raw = reply
        if label is None:
            self.observer.parse_failure(final=False)
            retry = [*messages, ChatMessage("assistant", reply[:8000]), ChatMessage("user", RETRY_PROMPT)]
            second_reply = self._chat(retry, seed).text
            raw = f"{reply}\n\n[retry]\n{second_reply}"
            label = parse_verdict(second_reply)
            if label is None:
                self.observer.parse_failure(final=True)
                label = LABEL_UNPARSED
        return Annotation(label, raw[:RAW_TEXT_MAX_CHARS])
