"""One interface for every LLM backend (annotation and code generation share it).

A backend does two things:

* ``chat``: generate a reply to a list of chat messages, with explicit limits;
* ``yes_no_score``: the log-probability margin ``log P(Yes) - log P(No)`` of the
  first answer token, for the *score* annotation strategy.

Errors are split by what the caller should do: ``BackendUnavailable`` (the
server is down, overloaded or timed out: wait and retry, lose nothing) versus
``BackendResponseError`` (the server answered something unusable) versus
``ScoringUnsupported`` (this backend cannot give token log-probabilities).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]

# The first answer token may be spelt several ways; each side's probability is the
# sum over its spellings (computed as a log-sum-exp).
YES_SPELLINGS: tuple[str, ...] = ("Yes", "yes", " Yes", " yes", "YES")
NO_SPELLINGS: tuple[str, ...] = ("No", "no", " No", " no", "NO")

MAX_PROMPT_CHARS = 32_000  # our prompts are a few KB; anything bigger is a bug upstream


class LLMError(RuntimeError):
    """Base class of backend errors."""


class BackendUnavailable(LLMError):
    """Transient: connection refused, timeout, 5xx, overloaded. Retrying later may work."""


class BackendResponseError(LLMError):
    """The backend answered, but not with something usable (malformed JSON, missing fields)."""


class ScoringUnsupported(LLMError):
    """The backend cannot return token log-probabilities, so the score strategy cannot run."""


class ModelUnavailable(LLMError):
    """The embedded model's files are missing or fail their integrity check."""


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"ChatMessage.role: {self.role!r} is not system/user/assistant")
        if len(self.content) > MAX_PROMPT_CHARS:
            raise ValueError(f"ChatMessage.content: {len(self.content)} chars, more than {MAX_PROMPT_CHARS}")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings; every backend passes max_new_tokens and a timeout explicitly."""

    max_new_tokens: int = 512
    temperature: float = 0.1
    top_p: float = 0.95
    top_k: int = 50
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Wall-clock limit of one reply (embedded: generation stops at it, finish_reason "time");
    # remote backends are bounded by their request timeout. None: no limit beyond max_new_tokens.
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_new_tokens <= 8192:
            raise ValueError(f"max_new_tokens: {self.max_new_tokens} not in [1, 8192]")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature: {self.temperature} not in [0, 2]")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p: {self.top_p} not in (0, 1]")
        if self.time_limit_s is not None and not 0.0 < self.time_limit_s <= 3600.0:
            raise ValueError(f"time_limit_s: {self.time_limit_s} not in (0, 3600]")


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str = ""


@dataclass(frozen=True)
class YesNoScore:
    """``score = yes_logprob - no_logprob`` for the first answer token."""

    score: float
    yes_logprob: float
    no_logprob: float
    prompt_tokens: int
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


class LLMBackend(ABC):
    """A chat model reachable in-process or over the network."""

    #: "embedded", "openai" or "tgi"
    kind: str = ""
    #: whether ``yes_no_score`` works
    supports_scoring: bool = False
    #: how many requests may run at once (1 for an in-process model)
    max_concurrency: int = 1

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identifier of the model that answers (recorded with every label)."""

    @abstractmethod
    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        """Generate one reply."""

    def yes_no_score(self, messages: Sequence[ChatMessage]) -> YesNoScore:
        """Log-probability margin of Yes over No as the first reply token."""
        raise ScoringUnsupported(f"backend {self.kind!r} cannot return token log-probabilities")

    def close(self) -> None:
        """Release connections (the embedded model stays cached for the process)."""


def logsumexp(values: Iterable[float]) -> float:
    items = [v for v in values if v is not None and not math.isnan(v)]
    if not items:
        return -math.inf
    top = max(items)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in items))


def margin_from_top_logprobs(top: dict[str, float]) -> tuple[float, float, float]:
    """(score, yes, no) from a {token text: logprob} map of the first reply token.

    A side absent from the list has a log-probability below the smallest one
    listed; we take that smallest value minus log(2) as its upper bound, so the
    margin stays finite and its sign right.
    """
    if not top:
        raise BackendResponseError("no top log-probabilities in the reply")
    floor = min(top.values()) - math.log(2.0)
    yes = logsumexp(top[t] for t in YES_SPELLINGS if t in top)
    no = logsumexp(top[t] for t in NO_SPELLINGS if t in top)
    yes = yes if yes > -math.inf else floor
    no = no if no > -math.inf else floor
    return yes - no, yes, no
