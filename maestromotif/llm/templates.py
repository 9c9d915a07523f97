"""Chat templates for backends that take a raw prompt (embedded llama.cpp, TGI /generate).

Each template renders messages and opens the assistant turn, so the next token
the model produces is the first token of its reply (what the score strategy
reads). Served chat APIs (OpenAI-compatible) apply the model's own template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maestromotif.llm.base import ChatMessage


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    stop: tuple[str, ...]

    def render(self, messages: Sequence[ChatMessage]) -> str:
        if self.name == "chatml":  # Qwen2.5 and others
            body = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
            return body + "<|im_start|>assistant\n"
        if self.name == "llama3":  # Llama 3.x Instruct
            body = "".join(
                f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content}<|eot_id|>" for m in messages
            )
            return "<|begin_of_text|>" + body + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        raise ValueError(f"unknown chat template {self.name!r}")


TEMPLATES = {
    "chatml": ChatTemplate("chatml", ("<|im_end|>", "<|endoftext|>")),
    "llama3": ChatTemplate("llama3", ("<|eot_id|>", "<|end_of_text|>")),
}


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"chat template {name!r} unknown; choose one of {sorted(TEMPLATES)}") from None
