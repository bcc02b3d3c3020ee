"""Budget forcing (s1), worked by hand on scripted models: the upper bound cuts the reasoning and
appends the end of thinking, the lower bound replaces an end of thinking by the extension, all by
token ids; then the answer phase, read alone."""

import asyncio

import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.strategies import Context, MajorityVote, Strategy
from ttscale.strategies.search.budget_forcing import BudgetForcing, before_stop
from ttscale.types import Problem, SamplingParams

PROBLEM = Problem(id="p", question="What is 3 + 4?", answer="7", messages=[{"role": "user", "content": "What is 3 + 4?"}])
S1 = {"thinking_start": "<|im_start|>think", "thinking_stop": "<|im_start|>", "thinking_end": "<|im_start|>answer",
      "extension": "Wait", "budget_suffix": "\nFinal Answer:"}  # the s1 code's markers


def solve(script, **kw):
    backend = ScriptedBackend(script)
    search = BudgetForcing(**{"params": SamplingParams(temperature=0.0, max_tokens=999), **kw})
    ctx = Context(problem=PROBLEM, backend=backend, grader=None)
    from ttscale.graders import MathGrader

    with MathGrader() as grader:
        ctx.grader = grader
        result = asyncio.run(Strategy(search, MajorityVote()).solve(PROBLEM, ctx))
    return result, backend


def test_the_upper_bound_cuts_the_reasoning_and_asks_for_the_answer():
    def script(text, params, index):
        if text.endswith("Final Answer:"):
            return " 7"
        return "hmm " * 50  # never ends its reasoning

    result, backend = solve(script, max_thinking_tokens=8, **S1)
    (c,) = result.candidates
    assert c.stats == {"thinking_tokens": 8.0, "extensions": 0.0, "budget_cut": 1.0}
    think, answer = backend.calls
    assert think.params.max_tokens == 8 and think.params.stop == ("<|im_start|>",) and think.prompt.endswith("<|im_start|>think")
    # the code: a newline (the reasoning did not end with one), the end of thinking, "Final Answer:"
    assert answer.prompt.endswith("hmm hmm hmm hmm hmm hmm hmm hmm\n<|im_start|>answer\nFinal Answer:")
    assert answer.params.max_tokens == 256 and result.answer == "7"
    assert result.usage.completion_tokens == 8 + 1 and c.num_tokens == 9


def test_the_lower_bound_replaces_each_end_of_thinking_by_the_extension():
    def script(text, params, index):
        if text.endswith("Final Answer:") or text.endswith("<|im_start|>answer"):
            return " 7"
        rounds = text.count("Wait")
        return f"Maybe {3 + rounds}.<|im_start|>"  # tries to end its reasoning at once

    result, backend = solve(script, num_ignore=2, **S1)
    (c,) = result.candidates
    assert c.stats["extensions"] == 2 and c.stats["budget_cut"] == 0
    prompts = [call.prompt for call in backend.calls]
    assert len(prompts) == 4  # three rounds of thinking, one answer
    # each end of thinking is dropped and the extension put in its place, by ids
    assert prompts[1].endswith("<|im_start|>thinkMaybe 3.Wait")
    assert prompts[2].endswith("<|im_start|>thinkMaybe 3.WaitMaybe 4.Wait")
    assert prompts[3].endswith("<|im_start|>thinkMaybe 3.WaitMaybe 4.WaitMaybe 5.<|im_start|>answer")
    # the answer is read from the answer phase only: "Maybe 3" in the reasoning does not vote
    assert result.answer == "7" and "Maybe 5." in c.text


def test_min_thinking_tokens_extends_until_the_reasoning_is_long_enough():
    def script(text, params, index):
        if text.endswith("The answer is"):
            return " 7."
        return "two words The answer is"

    result, backend = solve(script, num_ignore=0, min_thinking_tokens=7)
    (c,) = result.candidates
    # rounds of 2 generated + 1 forced (" Wait,") tokens: 3, 6, then 8 >= 7 ends it
    assert c.stats == {"thinking_tokens": 8.0, "extensions": 2.0, "budget_cut": 0.0}
    # (the space before a dropped delimiter is kept; the scripted tokenizer has no token for a lone space)
    assert backend.calls[-1].prompt.endswith("two words  Wait,two words  Wait,two wordsThe answer is")
    assert result.answer == "7"


def test_a_cut_through_a_token_keeps_its_text_before_the_delimiter():
    vocab = ScriptedBackend(lambda *a: "").tokenizer
    ids = vocab.encode("so 5.The answer is")  # " 5.The" is one token: the delimiter starts inside it
    keep, split = before_stop(vocab.decode, ids, "so 5.The answer is", "The answer is")
    assert vocab.decode(keep) == "so" and split == " 5."
    whole, none = before_stop(vocab.decode, ids, "so 5.The answer is", None)  # end of sequence: all of it
    assert whole == ids and none == ""


def test_n_samples_are_forced_each_and_vote():
    def script(text, params, index):
        if text.rstrip().endswith("The answer is"):
            return " 7." if params.seed % 3 else " 5."
        return "Thinking hard. The answer is"

    result, _ = solve(script, n=6, num_ignore=1)
    assert len(result.candidates) == 6 and all(c.stats["extensions"] == 1 for c in result.candidates)
    answers = [c.answer for c in result.candidates]
    assert set(answers) <= {"5", "7"} and result.answer == max(set(answers), key=answers.count)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min_thinking_tokens=9 is above max_thinking_tokens=8"):
        BudgetForcing(max_thinking_tokens=8, min_thinking_tokens=9)
    with pytest.raises(ValueError, match="extension is empty"):
        BudgetForcing(extension="")
    with pytest.raises(ValueError, match="thinking_stop must be"):
        BudgetForcing(thinking_stop="")


def test_the_strategy_config_takes_the_markers_from_the_model_config():
    from ttscale.cli import check_overrides

    assert check_overrides(["backend=scripted", "strategy=budget_forcing"]) is None
    assert check_overrides(["backend=scripted", "strategy=budget_forcing", "strategy.max_thinking_tokens=0"]) is not None
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ttscale.config import CONFIG_NAME, conf_dir, register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose(config_name=CONFIG_NAME, overrides=["strategy=budget_forcing", "model.thinking.stop='</think>'",
                                                           "model.thinking.end='</think>'"])
    strategy = OmegaConf.to_container(cfg.strategy, resolve=True)
    assert strategy["thinking_stop"] == strategy["thinking_end"] == "</think>" and strategy["extension"] == " Wait,"


def test_thinking_tokens_are_a_leaderboard_axis_of_their_own(tmp_path):
    import subprocess
    import sys

    from ttscale.analysis import leaderboard

    proc = subprocess.run([sys.executable, "-m", "ttscale.cli", "-m", "backend=demo", "strategy=budget_forcing",
                           "strategy.max_thinking_tokens=4,64", "dataset.limit=3", "progress=false",
                           f"hydra.sweep.dir={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["cell"]: r for r in leaderboard([tmp_path])}
    tight, loose = rows["strategy.max_thinking_tokens=4"], rows["strategy.max_thinking_tokens=64"]
    assert tight["thinking_tokens_per_problem"] == 4 < loose["thinking_tokens_per_problem"]


def test_the_runs_stop_strings_stop_the_reasoning_too():
    """#37: a base model reasons into an invented next question; s1 adds the run's stops to
    until_thinking, so the reasoning ends there (as at the delimiter) and the question is dropped."""
    def script(text, params, index):
        if text.endswith("<|im_start|>answer"):
            return " 7"
        return "3 plus 4 is 7.\n\nQuestion: what is 5 + 5? Answer: 10"

    search_params = SamplingParams(temperature=0.0, max_tokens=999, stop=("\n\nQuestion:",))
    backend = ScriptedBackend(script)
    search = BudgetForcing(params=search_params, num_ignore=0, max_thinking_tokens=64, **S1)
    from ttscale.graders import MathGrader

    with MathGrader() as grader:
        ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
        result = asyncio.run(Strategy(search, MajorityVote()).solve(PROBLEM, ctx))
    think, answer = backend.calls
    assert think.params.stop == ("<|im_start|>", "\n\nQuestion:")
    assert "Question" not in answer.prompt and answer.prompt.endswith("3 plus 4 is 7.<|im_start|>answer")
    assert result.answer == "7"


def crossing_script(text, params, index):
    if text.endswith("Final Answer:") or text.endswith("<|im_start|>answer"):
        return " 7"
    if "Wait" not in text:
        return " a b c<|im_start|>"  # tries to stop: " a", " b", then " c" + "Wait" encoded together (1 id)
    return " d e f g h i<|im_start|>"  # 6 more: 3 + 6 = 9 > 8, and it stopped by itself


def test_crossing_the_budget_in_an_extension_round_ends_as_that_round_ended():
    """#37: s1's code caps every round at the whole budget, cuts the reasoning to it afterwards, and
    ends a round that stopped by itself with the plain end of thinking (no "Final Answer:")."""
    result, backend = solve(crossing_script, max_thinking_tokens=8, num_ignore=1, **S1)
    first, second, answer = backend.calls
    assert first.params.max_tokens == 8 and second.params.max_tokens == 8  # the whole budget each round
    assert answer.prompt.endswith(" a b cWait d e f g h<|im_start|>answer")  # cut to 8 ids, the plain end
    (c,) = result.candidates
    assert c.stats == {"thinking_tokens": 8.0, "extensions": 1.0, "budget_cut": 1.0}
    # crossing=cut (ttscale's earlier rule): the second round is capped at the 5 left, cut, "Final Answer:"
    result, backend = solve(crossing_script, max_thinking_tokens=8, num_ignore=1, crossing="cut", **S1)
    first, second, answer = backend.calls
    assert second.params.max_tokens == 5
    assert answer.prompt.endswith("d e f g h\n<|im_start|>answer\nFinal Answer:")
