"""A stand-in model for a first look, no engine: it knows each problem's reference answer.

`backend=demo` (or `DemoBackend(problems)` in a script) writes a two-step solution, "Let me think
step by step." then "The answer is N.", and N is the reference with probability `accuracy` (0.35 by
default), else one of six near misses. Its right answers are written confidently and its wrong ones
hesitantly (their invented top-k logprobs), as a calibrated model's would be. So on it:
- majority voting rises with n (the right answer is the most frequent one);
- best-of-n by mean logprob, confidence-weighted votes and guided step-wise search with
  verifier=mean_token_prob rise faster (the verifier can tell right from wrong);
- pass@k rises towards 1;
- as a GenSelect judge it names a shown solution with the reference answer 80% of the time.
It is a demonstration of the pipeline, never a result: every number it gives is made by its
`accuracy` and the rule above. Summaries say backend=demo.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

from ttscale.backends.scripted import ScriptedBackend
from ttscale.types import Problem, SamplingParams

FIRST_STEP = "Let me think step by step."
MISSES = (-3, -2, -1, 1, 2, 3)


class DemoBackend(ScriptedBackend):
    def __init__(self, problems: Iterable[Problem] = (), accuracy: float = 0.35, synthetic_logprobs: int = 20,
                 logprobs_mode: str = "raw_logprobs"):
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"accuracy={accuracy!r} must be in [0, 1]")
        super().__init__(self._solution, synthetic_logprobs=synthetic_logprobs, logprobs_mode=logprobs_mode)
        self.accuracy = accuracy
        self.references: dict[str, str] = {}
        self._answering: str | None = None
        self.learn(problems)

    def learn(self, problems: Iterable[Problem]) -> None:
        """The problems whose questions it will recognise in a prompt, and their references."""
        for p in problems:
            if p.question and p.answer is not None:
                self.references[p.question] = str(p.answer)

    def _reference(self, text: str) -> tuple[str, str] | None:
        """(question, reference) of the known question that appears last in the prompt (after any
        few-shot examples)."""
        found = [(text.rfind(q), q) for q in self.references if q in text]
        if not found:
            return None
        _, question = max(found)
        return question, self.references[question]

    def _answer(self, text: str, params: SamplingParams, index: int) -> str:
        known = self._reference(text)
        if known is None:
            return "42"
        question, reference = known
        u = zlib.crc32(f"{params.seed or 0}|{index}|{question}".encode()) / 2 ** 32
        if u < self.accuracy:
            return reference
        miss = MISSES[int((u - self.accuracy) / (1 - self.accuracy) * len(MISSES)) % len(MISSES)]
        try:
            return str(int(reference.replace(",", "")) + miss)
        except ValueError:
            return str(miss)

    def _judgment(self, text: str, params: SamplingParams, index: int) -> str:
        """A GenSelect judge prompt: it names a shown solution with the reference answer 80% of the
        time (when one is shown), else one at random."""
        shown = re.findall(r"Solution (\d+): .*?The answer is (-?[\d,]+)", text, re.S)
        known = self._reference(text)
        u = zlib.crc32(f"{params.seed or 0}|{index}|judge".encode()) / 2 ** 32
        right = [i for i, a in shown if known and a.replace(",", "") == known[1].replace(",", "")]
        if right and u < 0.8:
            pick = right[0]
        else:
            pick = shown[int(u * len(shown)) % len(shown)][0] if shown else "0"
        return f"Solution {pick} looks right.\nJudgment: {pick}"

    def _solution(self, text: str, params: SamplingParams, index: int) -> str:
        if "candidate solutions" in text and "Judgment: [IDX]" in text:
            return self._judgment(text, params, index)
        answer = f"The answer is {self._answer(text, params, index)}."
        if FIRST_STEP in text:  # a step-wise search continues the solution: finish it
            return answer
        return f"{FIRST_STEP}\n\n{answer}"

    def _complete(self, text: str, params: SamplingParams, index: int):
        known = self._reference(text)
        self._answering = known[1].replace(",", "") if known else None  # read by _invented_top for this call
        try:
            return super()._complete(text, params, index)
        finally:
            self._answering = None

    def _invented_top(self, params: SamplingParams, index: int, position: int, word: str) -> dict[str, float]:
        # A confident token: its logprob near 0, the alternatives far below (low entropy, high DeepConf
        # confidence); a hesitant one: a lower logprob, alternatives close to it.
        value = word.strip().rstrip(".").replace(",", "")
        if value.lstrip("-").isdigit() and value != self._answering:  # a wrong answer: hesitant
            first, gap, step = -1.2, 0.2, 0.2
        else:  # the right answer, and the boilerplate around either (with a little noise): confident
            noise = zlib.crc32(f"{params.seed}|{index}|{position}".encode()) / 2 ** 32
            first, gap, step = (-0.05, 6.0, 0.5) if value.lstrip("-").isdigit() else (-0.02 - 0.1 * noise, 5.0, 0.5)
        return {word: first, **{f"alt{j}": first - gap - step * (j - 1) for j in range(1, self.synthetic)}}
