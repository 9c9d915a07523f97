"""Backends that call a served model over HTTP: any OpenAI-compatible server, and TGI.

Every call has a timeout and an explicit max_new_tokens. A few quick retries
(tenacity, exponential backoff with jitter) absorb blips; after that a
``BackendUnavailable`` goes up so that the caller (the annotation job) can wait
and report instead of losing work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from maestromotif.llm.base import (
    BackendResponseError,
    BackendUnavailable,
    ChatMessage,
    Completion,
    GenerationParams,
    LLMBackend,
    YesNoScore,
    margin_from_top_logprobs,
)
from maestromotif.llm.templates import get_template

T = TypeVar("T")
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a reply is bounded by max tokens; more is not an LLM answer
TOP_LOGPROBS = 20


def _quick_retry(attempts: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    return retry(
        retry=retry_if_exception_type(BackendUnavailable),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.2, max=2.0),
        reraise=True,
    )


def _normalise_base_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url: {url!r} must start with http:// or https://")
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAIBackend(LLMBackend):
    """Any server with the OpenAI chat-completions API: vLLM, TGI's messages API, llama.cpp's server."""

    kind = "openai"

    def __init__(self, url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, max_concurrency: int = 8, retries: int = 3,
                 completion_template: str = "chatml") -> None:
        self.base_url = _normalise_base_url(url)
        key = api_key if api_key is not None else os.environ.get("MAESTROMOTIF_LLM_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._key = key
        self.timeout_s = timeout_s
        self.max_concurrency = max(1, max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, limits=limits)
        self._retries = retries
        self._model = model
        self._template = get_template(completion_template)
        self.supports_scoring = True  # decided per server at the first scoring call
        self._chat_logprobs: bool | None = None

    def _redact(self, text: str) -> str:
        """``text`` without the API key: servers may echo the key they refused in their error body."""
        return text.replace(self._key, "<api key>") if self._key else text

    @property
    def model_id(self) -> str:
        if self._model is None:
            data = self._request("GET", "/v1/models")
            try:
                self._model = str(data["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise BackendResponseError(f"{self.base_url}/v1/models: no model listed") from None
        return self._model

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        @_quick_retry(self._retries)
        def call() -> Any:
            try:
                response = self._client.request(method, path, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                raise BackendUnavailable(f"{self.base_url}{path}: {type(exc).__name__}: {exc}") from exc
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise BackendUnavailable(f"{self.base_url}{path}: HTTP {response.status_code}")
            if len(response.content) > MAX_RESPONSE_BYTES:
                raise BackendResponseError(f"{self.base_url}{path}: response larger than {MAX_RESPONSE_BYTES} bytes")
            if response.status_code != 200:
                raise BackendResponseError(
                    f"{self.base_url}{path}: HTTP {response.status_code}: {self._redact(response.text)[:300]}"
                )
            try:
                return response.json()
            except ValueError:
                raise BackendResponseError(f"{self.base_url}{path}: reply is not JSON") from None

        return call()

    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        start = time.perf_counter()
        data = self._request("POST", "/v1/chat/completions", body)
        seconds = time.perf_counter() - start
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendResponseError(f"{self.base_url}: chat reply without choices[0].message.content") from None
        if not isinstance(text, str):
            raise BackendResponseError(f"{self.base_url}: message content is not a string")
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=seconds,
            finish_reason=str(choice.get("finish_reason") or ""),
        )

    def yes_no_score(self, messages: Sequence[ChatMessage]) -> YesNoScore:
        start = time.perf_counter()
        top: dict[str, float] | None = None
        prompt_tokens = 0
        if self._chat_logprobs is not False:
            body = {
                "model": self.model_id,
                "messages": [{"role": m.role, "content": m.content} for m in messages],
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "top_logprobs": TOP_LOGPROBS,
            }
            try:
                data = self._request("POST", "/v1/chat/completions", body)
                entries = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                top = {str(e["token"]): float(e["logprob"]) for e in entries}
                prompt_tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
                self._chat_logprobs = True
            except (BackendResponseError, KeyError, IndexError, TypeError, ValueError):
                if self._chat_logprobs:  # worked before: this reply is broken, not the feature
                    raise BackendResponseError(f"{self.base_url}: chat reply without top_logprobs") from None
                self._chat_logprobs = False
        if top is None:
            # Fall back to the legacy completions API with our own chat template.
            body = {
                "model": self.model_id,
                "prompt": self._template.render(messages),
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": TOP_LOGPROBS,
            }
            data = self._request("POST", "/v1/completions", body)
            try:
                raw = data["choices"][0]["logprobs"]["top_logprobs"][0]
                top = {str(k): float(v) for k, v in raw.items()}
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                raise BackendResponseError(f"{self.base_url}: no token log-probabilities in either API") from None
            prompt_tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
        score, yes, no = margin_from_top_logprobs(top)
        return YesNoScore(score, yes, no, prompt_tokens, time.perf_counter() - start)

    def close(self) -> None:
        self._client.close()


class TGIBackend(LLMBackend):
    """Hugging Face text-generation-inference through its ``/generate`` API (``text-generation`` client).

    TGI's raw API takes a prompt string, so chats are rendered with a named
    template (``llama3`` for the paper's Llama 3.1 models, ``chatml`` for Qwen).
    """

    kind = "tgi"
    supports_scoring = True

    def __init__(self, url: str, *, model: str = "tgi", template: str = "llama3", timeout_s: int = 120,
                 max_concurrency: int = 8, retries: int = 3) -> None:
        from text_generation import Client  # imported here: only this backend needs it

        self.base_url = _normalise_base_url(url)
        # The client's defaults are a 10 s timeout and 20 new tokens: both are always set here.
        self._client = Client(self.base_url, timeout=int(timeout_s))
        self._model = model
        self._template = get_template(template)
        self.max_concurrency = max(1, max_concurrency)
        self._retries = retries

    @property
    def model_id(self) -> str:
        return self._model

    def _generate(self, prompt: str, **kwargs: Any) -> Any:
        import requests
        from text_generation import errors

        @_quick_retry(self._retries)
        def call() -> Any:
            try:
                return self._client.generate(prompt, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise BackendUnavailable(f"{self.base_url}: {type(exc).__name__}: {exc}") from exc
            except (errors.OverloadedError, errors.ShardNotReadyError, errors.ShardTimeoutError,
                    errors.RateLimitExceededError) as exc:
                raise BackendUnavailable(f"{self.base_url}: {type(exc).__name__}: {exc}") from exc
            except errors.UnknownError as exc:  # TGI answers 5xx this way
                raise BackendUnavailable(f"{self.base_url}: {exc}") from exc
            except (errors.ValidationError, errors.BadRequestError, errors.GenerationError,
                    errors.NotFoundError, errors.IncompleteGenerationError) as exc:
                raise BackendResponseError(f"{self.base_url}: {type(exc).__name__}: {exc}") from exc
            except (ValueError, KeyError, TypeError) as exc:  # malformed JSON or fields
                raise BackendResponseError(f"{self.base_url}: malformed reply: {exc}") from exc

        return call()

    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        sampling = params.temperature > 0
        start = time.perf_counter()
        response = self._generate(
            self._template.render(messages),
            max_new_tokens=params.max_new_tokens,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling and params.top_p < 1.0 else None,
            top_k=params.top_k if sampling else None,
            seed=params.seed if sampling else None,
            stop_sequences=list(self._template.stop) + list(params.stop),
        )
        text = response.generated_text
        for stop in self._template.stop:  # TGI keeps the matched stop sequence in the text
            if text.endswith(stop):
                text = text[: -len(stop)]
        return Completion(
            text=text,
            prompt_tokens=len(response.details.prefill),
            completion_tokens=int(response.details.generated_tokens),
            seconds=time.perf_counter() - start,
            finish_reason=str(response.details.finish_reason.value),
        )

    def yes_no_score(self, messages: Sequence[ChatMessage]) -> YesNoScore:
        start = time.perf_counter()
        response = self._generate(
            self._template.render(messages), max_new_tokens=1, do_sample=False, top_n_tokens=TOP_LOGPROBS
        )
        top_tokens = response.details.top_tokens
        if not top_tokens or not top_tokens[0]:
            raise BackendResponseError(f"{self.base_url}: reply has no top_tokens (is top_n_tokens enabled?)")
        top = {t.text: float(t.logprob) for t in top_tokens[0] if t.logprob is not None}
        score, yes, no = margin_from_top_logprobs(top)
        return YesNoScore(score, yes, no, len(response.details.prefill), time.perf_counter() - start)
