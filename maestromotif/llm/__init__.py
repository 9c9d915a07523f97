"""LLM backends behind one interface (``LLMBackend``), shared by annotation and code generation.

``make_backend("embedded" | "openai" | "tgi", ...)`` builds one; see ``base`` for
the interface and error classes.
"""

from __future__ import annotations

from typing import Any

from maestromotif.llm.base import (
    BackendResponseError,
    BackendUnavailable,
    ChatMessage,
    Completion,
    GenerationParams,
    LLMBackend,
    LLMError,
    ModelUnavailable,
    ScoringUnsupported,
    YesNoScore,
)

BACKENDS = ("embedded", "openai", "tgi")


def make_backend(kind: str, *, url: str | None = None, model: str | None = None, **options: Any) -> LLMBackend:
    """Build a backend; remote kinds need ``url``. Options go to the backend's constructor."""
    if kind == "embedded":
        from maestromotif.llm.embedded import EmbeddedBackend

        return EmbeddedBackend(model or "0.5b", **options)
    if kind in ("openai", "tgi"):
        if not url:
            raise ValueError(f"backend {kind!r} needs a url (e.g. http://127.0.0.1:8000)")
        from maestromotif.llm.remote import OpenAIBackend, TGIBackend

        if kind == "openai":
            return OpenAIBackend(url, model=model, **options)
        return TGIBackend(url, model=model or "tgi", **options)
    raise ValueError(f"backend {kind!r} unknown; choose one of {BACKENDS}")


__all__ = [
    "BACKENDS", "BackendResponseError", "BackendUnavailable", "ChatMessage", "Completion", "GenerationParams",
    "LLMBackend", "LLMError", "ModelUnavailable", "ScoringUnsupported", "YesNoScore", "make_backend",
]
