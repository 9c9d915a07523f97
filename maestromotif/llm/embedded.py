"""The embedded backend: a GGUF model run in-process by llama.cpp.

The model is loaded once per process (a module-level cache keyed by file and
settings) and used under a lock, since a llama.cpp context is not thread-safe.
Prompts that share a prefix (the score strategy's fixed question) reuse the KV
cache, so only the message-specific tail is evaluated.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maestromotif.llm.base import (
    NO_SPELLINGS,
    YES_SPELLINGS,
    ChatMessage,
    Completion,
    GenerationParams,
    LLMBackend,
    LLMError,
    YesNoScore,
)
from maestromotif.llm.models import DEFAULT_MODEL, ensure_model_file, get_spec
from maestromotif.llm.templates import get_template

_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int, int], tuple[Any, threading.Lock]] = {}


@atexit.register
def _close_all() -> None:
    """Free the models before interpreter teardown (llama.cpp's __del__ fails once its module is gone)."""
    with _LOCK:
        for model, _ in _LOADED.values():
            model.close()
        _LOADED.clear()


def free_cores() -> int:
    """Threads to give llama.cpp: the cores this process may use minus the current load.

    Oversubscribing cores slows llama.cpp 5-20x, so stay at or under what is free.
    MAESTROMOTIF_LLM_THREADS overrides.
    """
    env = os.environ.get("MAESTROMOTIF_LLM_THREADS")
    if env:
        value = int(env)
        if value < 1:
            raise ValueError(f"MAESTROMOTIF_LLM_THREADS: {value} < 1")
        return value
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, int(round(cores - load))))


def load_llama(path: Path, n_ctx: int, n_threads: int) -> tuple[Any, threading.Lock]:
    """The llama.cpp model for this file and settings, loaded at most once per process."""
    key = (str(path), n_ctx, n_threads)
    with _LOCK:
        if key not in _LOADED:
            import llama_cpp  # heavy import, only when the embedded backend is used

            offload = bool(llama_cpp.llama_supports_gpu_offload())
            model = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=-1 if offload else 0,  # all layers on the GPU when the build has one
                logits_all=False,  # we read the last position's logits directly
                verbose=False,
            )
            _LOADED[key] = (model, threading.Lock())
        return _LOADED[key]


class EmbeddedBackend(LLMBackend):
    kind = "embedded"
    supports_scoring = True
    max_concurrency = 1

    def __init__(self, model: str = DEFAULT_MODEL, *, model_dir: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None) -> None:
        self.spec = get_spec(model)
        self.path = ensure_model_file(model, model_dir)
        self.n_threads = n_threads or free_cores()
        self.template = get_template(self.spec.chat_template)
        self._llm, self._lock = load_llama(self.path, n_ctx, self.n_threads)
        self.n_ctx = n_ctx
        self._yes_ids = self._first_token_ids(YES_SPELLINGS)
        self._no_ids = self._first_token_ids(NO_SPELLINGS)

    @property
    def model_id(self) -> str:
        return self.spec.name

    def _first_token_ids(self, spellings: Sequence[str]) -> list[int]:
        ids = set()
        for text in spellings:
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            if len(tokens) == 1:  # only spellings that are one token can be the first token
                ids.add(tokens[0])
        if not ids:
            raise LLMError(f"{self.model_id}: none of {spellings} is a single token")
        return sorted(ids)

    def _tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        prompt = self.template.render(messages)
        tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        if len(tokens) >= self.n_ctx:
            raise LLMError(f"prompt of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
        return tokens

    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        tokens = self._tokens(messages)
        max_new = min(params.max_new_tokens, self.n_ctx - len(tokens))
        start = time.perf_counter()
        with self._lock:
            out = self._llm.create_completion(
                prompt=tokens,
                max_tokens=max_new,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
                seed=params.seed,
                stop=list(self.template.stop) + list(params.stop),
            )
        seconds = time.perf_counter() - start
        choice = out["choices"][0]
        usage = out.get("usage", {})
        return Completion(
            text=choice["text"],
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            finish_reason=str(choice.get("finish_reason") or ""),
        )

    def yes_no_score(self, messages: Sequence[ChatMessage]) -> YesNoScore:
        tokens = self._tokens(messages)
        start = time.perf_counter()
        with self._lock:
            llm = self._llm
            # Reuse the cached prefix: keep the longest common prefix with what the
            # context holds now (at least one token must be evaluated to get logits).
            held = llm.input_ids[: llm.n_tokens]
            prefix = 0
            for a, b in zip(held, tokens[:-1]):
                if a != b:
                    break
                prefix += 1
            llm.n_tokens = prefix  # eval() drops the KV cache after n_tokens
            llm.eval(tokens[prefix:])
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        log_z = top + math.log(np.exp(logits - top).sum())
        yes = float(np.logaddexp.reduce(logits[self._yes_ids]) - log_z)
        no = float(np.logaddexp.reduce(logits[self._no_ids]) - log_z)
        return YesNoScore(yes - no, yes, no, len(tokens) - prefix, time.perf_counter() - start)
