"""DEER (#37), worked by hand on scripted models: reasoning continued by token ids up to each
transition, a trial answer's confidence from its tokens' probabilities, the exit, the answer after
the end of thinking (the CPU engine's run: test_integration_vllm.py)."""

from __future__ import annotations

import asyncio
import math

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.graders import MathGrader
from ttscale.strategies import Context, MajorityVote, Strategy
from ttscale.strategies.search.deer import DEER, confidence
from ttscale.strategies.select.base import MissingStatistic
from ttscale.types import Completion, Problem, SamplingParams, TokenLogprob

PROBLEM = Problem(id="p", question="What is 3 + 4?", answer="7", messages=[{"role": "user", "content": "What is 3 + 4?"}])
R1 = {"thinking_start": "", "thinking_stop": "</think>", "thinking_end": "\n</think>\n\n"}


def trial(text: str, p: float) -> Completion:
    """A trial answer whose every token has probability p."""
    words = text.split()
    return Completion(text=text, num_tokens=len(words), finish_reason="stop",
                      token_logprobs=[TokenLogprob(w, math.log(p), {w: math.log(p)}) for w in words])


def solve(script, **kw):
    backend = ScriptedBackend(script)
    search = DEER(**{"params": SamplingParams(temperature=0.0, max_tokens=200), **R1, **kw})
    with MathGrader() as grader:
        ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
        result = asyncio.run(Strategy(search, MajorityVote()).solve(PROBLEM, ctx))
    return result, backend


def thinker(confidences):
    """Reasons 'step k' then 'Wait' forever; the k-th trial answer has confidence confidences[k]."""
    def script(text, params, index):
        if text.endswith("\n</think>\n\n"):
            return "So the answer is \\boxed{7}."
        if text.endswith("\\boxed"):
            k = text.count("Wait")  # the k-th trial: k transitions put back before it
            return trial("{ 7", confidences[min(k, len(confidences) - 1)])
        if "Wait" not in params.stop:  # no more trials: it would think on and on
            return " more" * 300
        return f" step {text.count('Wait')} is done. Wait"
    return script


def test_a_confident_trial_answer_ends_the_reasoning():
    """Trial 1 at 0.5 (go on, "Wait" put back), trial 2 at 0.99 (> 0.95): the reasoning stops there,
    the end of thinking is appended and the answer sampled."""
    result, backend = solve(thinker([0.5, 0.99]))
    prompts = [c.prompt for c in backend.calls]
    kinds = ["probe" if p.endswith("\\boxed") else "answer" if p.endswith("</think>\n\n") else "think" for p in prompts]
    assert kinds == ["think", "probe", "think", "probe", "answer"]
    assert prompts[1].endswith(" step 0 is done.\n**Final Answer**\n\\boxed")  # the transition is not shown
    assert prompts[2].endswith(" step 0 is done.Wait")  # put back after an unconfident trial
    probe = backend.calls[1].params
    assert probe.max_tokens == 20 and probe.logprobs == 1 and "}." in probe.stop and probe.temperature == 1.0
    assert backend.calls[0].params.stop == ("</think>", "Wait")
    assert prompts[4].endswith(" step 1 is done.\n</think>\n\n")
    (c,) = result.candidates
    assert c.stats["early_exit"] == 1 and c.stats["probes"] == 2 and c.stats["trial_confidence"] == pytest.approx(0.99)
    assert result.answer == "7"


def test_no_confident_trial_thinks_to_the_budget_and_probes_stop_after_max_probes():
    result, backend = solve(thinker([0.5]), max_probes=2, think_ratio=0.5)
    probes = [c for c in backend.calls if c.prompt.endswith("\\boxed")]
    assert len(probes) == 2
    assert "Wait" not in backend.calls[-2].params.stop  # after max_probes thinking runs to its end or budget
    (c,) = result.candidates
    assert c.stats["early_exit"] == 0 and c.stats["budget_exit"] == 1 and c.stats["thinking_tokens"] <= 100
    answer = backend.calls[-1]
    assert answer.params.max_tokens == 200 - int(c.stats["thinking_tokens"])  # what is left of max_tokens


def test_an_end_of_sequence_inside_the_reasoning_is_probed_like_a_transition():
    """The code probes a chunk that ended without "</think>" (an end of sequence) and, unconfident,
    puts "Wait" back and thinks on; "</think>" itself ends the reasoning with no probe."""
    def script(text, params, index):
        if text.endswith("\n</think>\n\n"):
            return "\\boxed{7}"
        if text.endswith("\\boxed"):
            return trial("{ 7", 0.5)
        return " I stop here." if "Wait" not in text else " all done.</think>"

    result, backend = solve(script)
    kinds = ["probe" if c.prompt.endswith("\\boxed") else "answer" if c.prompt.endswith("</think>\n\n") else "think"
             for c in backend.calls]
    assert kinds == ["think", "probe", "think", "answer"]
    assert backend.calls[2].prompt.endswith(" I stop here.Wait")
    (c,) = result.candidates
    assert c.stats["probes"] == 1 and c.stats["early_exit"] == 0 and result.answer == "7"


def test_confidence_policies_and_a_missing_statistic():
    # the first token (the box's "{") is left out, as the code's start_index = 1
    t = Completion(text="{ a b", num_tokens=3, token_logprobs=[TokenLogprob("{", math.log(0.1)),
                                                                TokenLogprob("a", math.log(0.9)), TokenLogprob("b", math.log(0.4))])
    assert confidence(t, "avg1") == pytest.approx(0.65) and confidence(t, "min") == pytest.approx(0.4)
    assert confidence(t, "avg2") == pytest.approx(math.sqrt(0.36))
    assert confidence(Completion(text="{", num_tokens=1), "avg1") == 0.0  # nothing after the first token
    with pytest.raises(MissingStatistic, match="no logprobs"):
        confidence(Completion(text="{ 7", num_tokens=2), "avg1")
    with pytest.raises(ValueError, match="deer_policy"):
        DEER(policy="max")
