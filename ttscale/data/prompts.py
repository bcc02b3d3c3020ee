"""Prompt templates: a problem becomes chat messages (optionally with worked examples first)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ttscale.types import Message, Problem


@dataclass(frozen=True)
class PromptTemplate:
    """user: the user turn, with `{question}` replaced by the problem (no other braces are touched,
    so LaTeX like `\\boxed{}` is safe). few_shot: worked examples, each {question, solution}, shown
    as earlier user/assistant turns. system: an optional system message."""

    user: str = "{question}"
    system: str | None = None
    few_shot: Sequence[dict[str, str]] = field(default_factory=tuple)

    def messages(self, question: str) -> list[Message]:
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for example in self.few_shot:
            out.append({"role": "user", "content": self.user.replace("{question}", example["question"])})
            out.append({"role": "assistant", "content": example["solution"]})
        out.append({"role": "user", "content": self.user.replace("{question}", question)})
        return out

    def apply(self, problems: Sequence[Problem]) -> list[Problem]:
        return [replace(p, messages=self.messages(p.question)) for p in problems]
