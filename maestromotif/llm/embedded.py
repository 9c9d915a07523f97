"""The embedded backend: a GGUF model run in-process by llama.cpp.

The model is loaded once per process (a module-level cache keyed by file and
settings) and used under a lock, since a llama.cpp context is not thread-safe.
Prompts that share a prefix (the score strategy's fixed question) reuse the KV
cache, so only the message-specific tail is evaluated. Since several prefixes
take turns (one per skill and question phrasing), the KV state of each recent
prefix (everything before the final user turn) is kept in a small LRU and
restored instead of being recomputed: a restore copies a few MB, a recompute
costs a forward pass over a few hundred tokens.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import os
import threading
import time
from collections import OrderedDict
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


def free_cores(*, own_machine: bool = False) -> int:
    """Threads to give llama.cpp: the cores this process may use minus the current load.

    Oversubscribing cores slows llama.cpp 5-20x, so stay at or under what is free.
    ``own_machine``: every core, whatever the load average says (the pipeline runs its stages one
    after the other, so part of the load it sees is its own previous stage's, and on 2 cores a load
    of 1.5 already left llama.cpp one thread). MAESTROMOTIF_LLM_THREADS overrides both.
    """
    env = os.environ.get("MAESTROMOTIF_LLM_THREADS")
    if env:
        value = int(env)
        if value < 1:
            raise ValueError(f"MAESTROMOTIF_LLM_THREADS: {value} < 1")
        return value
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if own_machine:
        return cores
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

    # Prefixes shorter than this are cheap to recompute; longer ones have their KV state kept.
    MIN_SAVED_PREFIX = 32

    def __init__(self, model: str = DEFAULT_MODEL, *, model_dir: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, prefix_states: int = 16) -> None:
        if not 0 <= prefix_states <= 256:
            raise ValueError(f"prefix_states: {prefix_states} not in [0, 256]")
        self.spec = get_spec(model)
        self.path = ensure_model_file(model, model_dir)
        self.n_threads = n_threads or free_cores()
        self.template = get_template(self.spec.chat_template)
        self._llm, self._lock = load_llama(self.path, n_ctx, self.n_threads)
        self.n_ctx = n_ctx
        self._yes_ids = self._first_token_ids(YES_SPELLINGS)
        self._no_ids = self._first_token_ids(NO_SPELLINGS)
        # token prefix -> llama.cpp sequence state (KV cells of that prefix); per backend object,
        # used under the model lock. Roughly 12 KB per token for the 0.5B model.
        self.prefix_states = prefix_states
        self._states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self.prefix_restores = 0

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
        timed_out = False
        criteria = None
        if params.time_limit_s is not None:
            import llama_cpp  # loaded already by load_llama

            deadline = start + params.time_limit_s

            def past_deadline(_ids: Any, _logits: Any) -> bool:
                nonlocal timed_out
                timed_out = timed_out or time.perf_counter() > deadline
                return timed_out

            criteria = llama_cpp.StoppingCriteriaList([past_deadline])
        with self._lock:
            out = self._llm.create_completion(
                prompt=tokens,
                max_tokens=max_new,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
                seed=params.seed,
                stop=list(self.template.stop) + list(params.stop),
                stopping_criteria=criteria,
            )
        seconds = time.perf_counter() - start
        choice = out["choices"][0]
        usage = out.get("usage", {})
        return Completion(
            text=choice["text"],
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            finish_reason="time" if timed_out else str(choice.get("finish_reason") or ""),
        )

    def _shared_prefix(self, messages: Sequence[ChatMessage], tokens: list[int]) -> int:
        """Length of the prompt part that precedes the final message (same for every text asked)."""
        if len(messages) < 2 or self.prefix_states == 0:
            return 0
        head = self._llm.tokenize(self.template.render(messages[:-1]).encode("utf-8"), add_bos=False, special=True)
        n = 0
        for a, b in zip(head, tokens[:-1]):
            if a != b:
                break
            n += 1
        return n if n >= self.MIN_SAVED_PREFIX else 0

    def _save_state(self, key: tuple[int, ...]) -> None:
        ctx = self._llm._ctx.ctx
        size = int(llama_cpp_module().llama_state_seq_get_size(ctx, 0))
        buffer = (ctypes.c_uint8 * size)()
        written = int(llama_cpp_module().llama_state_seq_get_data(ctx, buffer, size, 0))
        if 0 < written <= size:
            self._states[key] = bytes(buffer)[:written]
            self._states.move_to_end(key)
            while len(self._states) > self.prefix_states:
                self._states.popitem(last=False)

    def _restore_state(self, key: tuple[int, ...]) -> bool:
        llm = self._llm
        data = self._states[key]
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)  # the sequence must be empty before a state is set
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if int(llama_cpp_module().llama_state_seq_set_data(llm._ctx.ctx, buffer, len(data), 0)) != len(data):
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            llm.n_tokens = 0
            del self._states[key]
            return False
        llm.input_ids[: len(key)] = key
        llm.n_tokens = len(key)
        self._states.move_to_end(key)
        self.prefix_restores += 1
        return True

    def yes_no_score(self, messages: Sequence[ChatMessage]) -> YesNoScore:
        tokens = self._tokens(messages)
        start = time.perf_counter()
        with self._lock:
            llm = self._llm
            shared = self._shared_prefix(messages, tokens)
            # Reuse the cached prefix: keep the longest common prefix with what the
            # context holds now (at least one token must be evaluated to get logits).
            held = llm.input_ids[: llm.n_tokens]
            prefix = 0
            for a, b in zip(held, tokens[:-1]):
                if a != b:
                    break
                prefix += 1
            key = tuple(tokens[:shared])
            if shared > prefix and key in self._states and self._restore_state(key):
                prefix = shared
            llm.n_tokens = prefix  # eval() drops the KV cache after n_tokens
            if shared > prefix:
                # evaluate up to the end of the shared prefix, keep its state, then the tail
                llm.eval(tokens[prefix:shared])
                self._save_state(key)
                prefix_done = shared
            else:
                prefix_done = prefix
            llm.eval(tokens[prefix_done:])
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        log_z = top + math.log(np.exp(logits - top).sum())
        yes = float(np.logaddexp.reduce(logits[self._yes_ids]) - log_z)
        no = float(np.logaddexp.reduce(logits[self._no_ids]) - log_z)
        return YesNoScore(yes - no, yes, no, len(tokens) - prefix, time.perf_counter() - start)


def llama_cpp_module() -> Any:
    import llama_cpp  # imported lazily, like in load_llama

    return llama_cpp
