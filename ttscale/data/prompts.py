"""Prompt templates: a problem becomes chat messages (optionally with worked examples first)."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Mapping
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

    def text(self, question: str, plain: Mapping[str, str]) -> str:
        """The prompt as plain text for a base model (no chat template). `plain` holds formats with
        `{content}`: question, answer (for worked examples), and system; then `generation` is appended."""
        fmt = {**PLAIN_DEFAULTS, **plain}
        parts = [fmt["system"].replace("{content}", self.system)] if self.system else []
        for example in self.few_shot:
            parts.append(fmt["question"].replace("{content}", self.user.replace("{question}", example["question"])))
            parts.append(fmt["answer"].replace("{content}", example["solution"]))
        parts.append(fmt["question"].replace("{content}", self.user.replace("{question}", question)))
        return "".join(parts) + fmt["generation"]

    def apply(self, problems: Sequence[Problem], plain: Mapping[str, str] | None = None) -> list[Problem]:
        """Render each problem: chat messages, or plain text when `plain` formats are given (base models)."""
        if plain is not None:
            return [replace(p, messages=None, text=self.text(p.question, plain)) for p in problems]
        return [replace(p, messages=self.messages(p.question)) for p in problems]


PLAIN_DEFAULTS = {"system": "{content}\n\n", "question": "Question: {content}\n", "answer": "Answer: {content}\n\n",
                  "generation": "Answer:", "stop": "\nQuestion:"}
