"""The token-level contract (stream / abort / token-id prompts / score / running statistics) on the
scripted backend, and the methods built on it, traced by hand."""

import asyncio
import contextlib
import math
import random
from dataclasses import replace

import pytest

from ttscale.backends.base import StreamFold, fold
from ttscale.backends.scripted import ScriptedBackend, pieces, traced
from ttscale.confidence import RunningStats, StatsSpec, sequence_stats
from ttscale.strategies import Context, MajorityVote, Strategy
from ttscale.strategies.search.deepconf_online import DeepConfOnline, threshold
from ttscale.strategies.search.eager import EntropyBranching
from ttscale.strategies.search.set_cover_pruning import SetCoverPruning, greedy_cover
from ttscale.strategies.select import WeightedVote
from ttscale.types import Problem, SamplingParams, TokenPrompt

PROBLEM = Problem(id="p", question="q", answer="7", messages=[{"role": "user", "content": "q"}])


def context(backend, grader=None, problem=PROBLEM):
    return Context(problem=problem, backend=backend, grader=grader)


async def read_all(stream):
    out = []
    async with contextlib.aclosing(stream) as deltas:
        async for d in deltas:
            out.append(d)
    return out


# ---- running statistics ------------------------------------------------------------------------

@pytest.mark.parametrize("n,window", [(0, 4), (1, 4), (3, 4), (4, 4), (37, 4), (200, 16), (50, 1)])
def test_running_statistics_equal_the_batch_ones(n, window):
    rng = random.Random(n * 31 + window)
    sampled = [-rng.random() * 3 for _ in range(n)]
    tops = [[-rng.random() * 5 for _ in range(rng.randint(1, 5))] for _ in range(n)]
    spec = StatsSpec(window=window, tail=window, bottom_frac=0.1)
    running, i = RunningStats(spec, keep_series=True), 0
    while i < n:  # deltas of uneven sizes, as a stream delivers them
        k = rng.randint(1, 7)
        running.update(sampled[i:i + k], tops[i:i + k])
        i += k
    assert running.stats() == sequence_stats(sampled, tops, spec)
    from ttscale.confidence import token_series

    assert running.series() == token_series(sampled, tops)
    if n >= window:  # the newest full window, as the batch's last group
        newest = token_series(sampled, tops)["confidence"][-window:]
        assert running.group_confidence == pytest.approx(sum(newest) / window)  # the lowest full window so far is the batch statistic's lowest group
        assert running.lowest_group_confidence == sequence_stats(sampled, tops, spec)["lowest_group_confidence"]
    else:
        assert running.group_confidence is None and running.lowest_group_confidence is None


# ---- the contract on the scripted backend ------------------------------------------------------

def test_stream_gives_the_generate_text_ids_and_statistics():
    tops = [[-0.5, -2.0], [-0.1, -3.0], [-1.0, -1.5], [-0.2, -2.5]]
    backend = ScriptedBackend(lambda text, params, i: traced("one two three \\boxed{7}", tops), top_logprobs=True)
    params = SamplingParams(logprobs=2)
    generated = asyncio.run(backend.generate("q", params)).completions[0]
    deltas = asyncio.run(read_all(backend.stream("q", params)))
    streamed = fold(deltas)
    assert [len(d.token_ids) for d in deltas] == [1, 1, 1, 1] and deltas[0].prompt_tokens == 1
    assert streamed.text == generated.text and streamed.token_ids == generated.token_ids
    assert streamed.stats == generated.stats and streamed.finish_reason == "stop"
    assert streamed.cumulative_logprob == pytest.approx(generated.cumulative_logprob)


def test_closing_a_stream_aborts_it_and_its_tokens_are_counted():
    backend = ScriptedBackend(lambda text, params, i: " ".join(f"w{k}" for k in range(100)))
    ctx = context(backend)

    async def first(k):
        got = StreamFold()
        async with contextlib.aclosing(ctx.stream(ctx.prompt, SamplingParams(max_tokens=1000))) as deltas:
            async for d in deltas:
                got.add(d)
                if got.num_tokens == k:
                    break
        return got

    got = asyncio.run(first(7))
    assert got.num_tokens == 7 and backend.generated_tokens == 7 and backend.aborted == 1
    assert ctx.usage.completion_tokens == 7 and ctx.usage.backend_calls == 1


def test_cancelling_the_reader_aborts_the_stream():
    backend = ScriptedBackend(lambda text, params, i: " ".join(["w"] * 1000), token_delay=0.001)
    ctx = context(backend)

    async def main():
        task = asyncio.create_task(read_all(ctx.stream(ctx.prompt, SamplingParams(max_tokens=2000))))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert backend.aborted == 1 and 0 < backend.generated_tokens < 1000
    assert ctx.usage.completion_tokens == backend.generated_tokens


def test_a_stream_is_cut_at_max_tokens_and_reading_to_the_end_is_no_abort():
    backend = ScriptedBackend(lambda text, params, i: traced("a b c d e", [[-0.1]] * 5))  # not cut by the script
    c = fold(asyncio.run(read_all(backend.stream("q", SamplingParams(max_tokens=3)))))
    assert c.text == "a b c" and c.finish_reason == "length" and backend.aborted == 0

    async def stop_at_the_last(stream):  # the reader leaves right after the final delta
        async with contextlib.aclosing(stream) as deltas:
            async for d in deltas:
                if d.finished:
                    break

    asyncio.run(stop_at_the_last(backend.stream("q", SamplingParams(max_tokens=9))))
    assert backend.aborted == 0


def test_token_id_prompts_continue_by_ids():
    seen = []
    backend = ScriptedBackend(lambda text, params, i: seen.append(text) or "step two")
    first = asyncio.run(backend.generate("Question: q\nAnswer:", SamplingParams())).completions[0]
    prompt = TokenPrompt(backend.encode("Question: q\nAnswer:")).extend(first.token_ids)
    out = asyncio.run(backend.generate(prompt, SamplingParams()))
    assert seen[-1] == "Question: q\nAnswer:step two" and out.prompt_tokens == len(prompt)
    assert "".join(pieces("a  b\n\n c ")) == "a  b\n\n c " and len(pieces("a  b\n\n c ")) == 3


def test_score_returns_one_logprob_per_completion_token():
    backend = ScriptedBackend(lambda text, params, i: "x", scorer=lambda prompt, words: [-float(len(w)) for w in words])
    ids = backend.encode("the prompt")
    completion = backend.tokenizer.encode(" ab cde")
    assert asyncio.run(backend.score(ids, completion)) == [-3.0, -4.0]
    assert backend.scored == [(ids, completion)]


# ---- DeepConf online ---------------------------------------------------------------------------

def conf_trace(text, confidences):
    return traced(text, [[-c] for c in confidences])  # one top logprob: token confidence c


def deepconf_backend(warm, online, token_delay=0.0):
    online = iter(online)
    return ScriptedBackend(lambda text, params, i: warm[i] if params.n > 1 else next(online),
                           top_logprobs=True, token_delay=token_delay)


def solve(search, select, backend, grader):
    return asyncio.run(Strategy(search, select).solve(PROBLEM, context(backend, grader)))


def deepconf(**kw):
    params = SamplingParams(logprobs=1, stats=StatsSpec(window=2, tail=2))
    return DeepConfOnline(**{"n": 6, "params": params, "warmup": 4, "eta": 50, "tau": 0.95, "parallel": 1, **kw})


WARM = [conf_trace("a b \\boxed{7}", [1, 1, 1]), conf_trace("a b \\boxed{8}", [2, 2, 2]),
        conf_trace("a c \\boxed{7}", [3, 3, 3]), conf_trace("a c \\boxed{8}", [4, 4, 4])]


def test_deepconf_online_threshold_stop_and_vote_by_hand(grader):
    # warm-up lowest group confidences 1 (7), 2 (8), 3 (7), 4 (8): s = 50th percentile = 2.5.
    # consensus over T (all four): 7 = 1 + 3, 8 = 2 + 4 -> 0.6 < 0.95, so traces are streamed.
    # trace 5: windows of 2 tokens 3, 2 -> stopped at its 3rd token (group 2 < 2.5): not in T.
    # trace 6: confidence 5, answer 7: T votes 7 = 9, 8 = 6 -> 0.6; n = 6 reached.
    # final vote over the traces at or above s: 3 (7), 4 (8), 5 (7) -> 7 = 8 vs 8 = 4.
    online = [conf_trace("x y z w \\boxed{8}", [3, 3, 1, 1, 3]), conf_trace("x \\boxed{7}", [5, 5])]
    backend = deepconf_backend(WARM, online)
    result = solve(deepconf(), WeightedVote("lowest_group_confidence"), backend, grader)
    assert threshold([1, 2, 3, 4], 50) == 2.5 and result.info["threshold"] == 2.5
    assert result.answer == "7" and [c.answer for c in result.candidates] == ["7", "8", "7"]
    assert result.info["traces_stopped"] == 1 and result.info["traces_below_threshold"] == 2
    assert result.info["traces_launched"] == 6 and result.info["consensus"] == pytest.approx(9 / 15)
    assert backend.generated_tokens == 3 + 2  # the stopped trace generated 3 tokens, not 5
    assert result.usage.completion_tokens == 12 + 3 + 2
    # final_vote=all: every trace of T votes (the paper's pseudo-code)
    everyone = solve(deepconf(vote="all"), WeightedVote("lowest_group_confidence"), deepconf_backend(WARM, online),
                     grader)
    assert [c.answer for c in everyone.candidates] == ["7", "8", "7", "8", "7"] and everyone.answer == "7"


def test_deepconf_online_stops_sampling_at_consensus(grader):
    warm = [conf_trace("a \\boxed{7}", [c, c]) for c in (1, 2, 3, 4)]  # every voter says 7: consensus 1
    backend = deepconf_backend(warm, [])
    result = solve(deepconf(n=64), WeightedVote("lowest_group_confidence"), backend, grader)
    assert result.info["traces_launched"] == 4 and result.info["traces_not_sampled"] == 60
    assert result.info["consensus"] == 1.0 and backend.generated_tokens == 0 and result.answer == "7"


def test_deepconf_online_aborts_the_traces_in_flight_at_consensus(grader):
    # two traces stream at once; the short one finishes, consensus 13/19 >= tau 0.65, the long one is aborted
    online = [conf_trace("x \\boxed{7}", [9, 9]), conf_trace(" ".join(["y"] * 4000), [9] * 4000)]
    backend = deepconf_backend(WARM, online, token_delay=0.002)
    result = solve(deepconf(tau=0.65, parallel=2), WeightedVote("lowest_group_confidence"), backend, grader)
    assert result.info["traces_aborted_at_consensus"] == 1 and backend.aborted == 1
    assert 2 < backend.generated_tokens < 2 + 4000
    assert result.usage.completion_tokens == 12 + backend.generated_tokens and result.answer == "7"


def test_deepconf_online_refuses_a_backend_without_logprobs(grader):
    backend = ScriptedBackend(lambda text, params, i: "\\boxed{7}")
    with pytest.raises(ValueError, match="top-k logprobs"):
        asyncio.run(deepconf()(PROBLEM, context(backend, grader)))
    with pytest.raises(ValueError, match="eta"):
        deepconf(eta=100)
    with pytest.raises(ValueError, match="vote"):
        deepconf(vote="some")


# ---- set-cover pruning -------------------------------------------------------------------------

def test_greedy_cover_by_hand():
    sets = [{1, 2}, {1, 2}, {3, 4}, {1, 3}]
    assert greedy_cover(sets, [1.0, 0.5, 1.0, 0.1]) == [3, 1, 2]  # 0.1/2, then 0.5/1 vs 1/1 ...
    assert greedy_cover(sets, [1.0, 1.0, 1.0, 9.0], covered={3, 4}) == [0]


def test_set_cover_pruning_by_hand(grader):
    # at 2 tokens: H0 {a, b} cost e^0.1, H1 {a, b} cost e^1, H2 {g, h} cost e^0.5 -> cover H0, H2; H1 aborted.
    # at 4 tokens H0 and H2 share nothing: both kept; they finish and vote 1 : 2 (tie: the first).
    texts = [("a b c d \\boxed{7}", -0.1), ("a b e f \\boxed{7}", -1.0), ("g h i j \\boxed{2}", -0.5)]
    scripts = iter(texts)

    def script(text, params, i):
        words, lp = next(scripts)
        return traced(words, [[lp]] * 5)

    backend = ScriptedBackend(script)
    search = SetCoverPruning(n=3, params=SamplingParams(logprobs=0), step=2)
    result = solve(search, MajorityVote(), backend, grader)
    assert result.info["pruned_at"] == {"1": 2} and result.info["pruned"] == 1 and backend.aborted == 1
    assert [c.answer for c in result.candidates] == ["7", "2"] and result.answer == "7"
    assert 2 <= result.info["pruned_tokens"] < 5
    assert result.usage.completion_tokens == 10 + result.info["pruned_tokens"] == backend.generated_tokens


def test_set_cover_pruning_keeps_min_keep_and_prunes_duplicates(grader):
    same = lambda text, params, i: "a b c \\boxed{7}"  # noqa: E731  identical hypotheses cover each other
    pruned = solve(SetCoverPruning(n=3, step=1), MajorityVote(), ScriptedBackend(same), grader)
    kept = solve(SetCoverPruning(n=3, step=1, min_keep=3), MajorityVote(), ScriptedBackend(same), grader)
    assert pruned.info["pruned"] == 2 and len(pruned.candidates) == 1 and pruned.answer == "7"
    assert kept.info["pruned"] == 0 and len(kept.candidates) == 3
    with pytest.raises(ValueError, match="cost"):
        SetCoverPruning(cost="nope")


# ---- EAGer ---------------------------------------------------------------------------------------

def flat(text):  # every token certain: entropy 0
    return traced(text, [[-0.01]] * len(pieces(text)))


def eager_script(root, branches):
    """The root's completion for the bare prompt; a branch's by the text it continues."""
    def script(text, params, i):
        for start, completion in branches.items():
            if text.endswith(start):
                return completion
        return root
    return script


def test_eager_branches_at_a_high_entropy_token_with_the_top2_token(grader):
    # " b" is sampled with top-2 {" b", " x"} at 50/50: entropy ln 2 = 0.69 nats > 0.5 -> a branch from
    # "a" continued by " x" (the parent keeps " b"); the branch's own tokens are certain: no more branches.
    tops = [{"a": -0.01}, {" b": math.log(0.5), " x": math.log(0.5)}, {" c": -0.01}, {" \\boxed{1}": -0.01}]
    root = traced("a b c \\boxed{1}", tops)
    backend = ScriptedBackend(eager_script(root, {"a x": flat(" y \\boxed{2}")}), top_logprobs=True)
    search = EntropyBranching(n=4, params=SamplingParams(logprobs=2, max_tokens=50), threshold=0.5, dynamic=False)
    result = solve(search, MajorityVote(), backend, grader)
    assert [c.text for c in result.candidates] == ["a b c \\boxed{1}", "a x y \\boxed{2}"]
    assert result.info["branch_points"] == ["0@1"] and result.info["sequences"] == 2
    assert [c.num_tokens for c in result.candidates] == [4, 4]
    # the branch continued by ids: the prompt's ids, "a", then the forced " x"
    assert backend.calls[-1].prompt == backend.tokenizer.decode(ctx_ids(backend)) + "a x"
    assert result.usage.completion_tokens == 4 + 2  # the shared prefix and the forced token are not re-generated
    assert result.candidates[1].stats["tokens"] == 4  # statistics over the whole sequence, prefix included


def ctx_ids(backend):
    return backend.encode(PROBLEM.messages)


def test_eager_caps_sequences_and_restarts_when_the_sample_was_neither_top_token(grader):
    # the sampled " z" is neither top-1 " b" nor top-2 " x": the root stops, two sequences restart from "a"
    tops = [{"a": -0.01}, {" b": math.log(0.5), " x": math.log(0.5)}, {" c": -0.01}, {" \\boxed{1}": -0.01}]
    root = traced("a z c \\boxed{1}", tops, sampled=[-0.01, -5.0, -0.01, -0.01])
    backend = ScriptedBackend(eager_script(root, {"a b": flat(" \\boxed{3}"), "a x": flat(" \\boxed{2}")}),
                              top_logprobs=True)
    search = EntropyBranching(n=2, params=SamplingParams(logprobs=2, max_tokens=50), threshold=0.5, dynamic=False)
    result = solve(search, MajorityVote(), backend, grader)
    assert sorted(c.text for c in result.candidates) == ["a b \\boxed{3}", "a x \\boxed{2}"]
    assert result.info["replaced"] == 1 and result.info["sequences"] == 2
    capped = solve(EntropyBranching(n=1, params=SamplingParams(logprobs=2), threshold=0.5, dynamic=False),
                   MajorityVote(), ScriptedBackend(eager_script(traced("a b c \\boxed{1}", tops), {}),
                                                   top_logprobs=True), grader)
    assert capped.info["sequences"] == 1 and capped.info["branch_points"] == []


def test_eager_dynamic_threshold_and_bad_settings(grader):
    # dynamic: the 0.69-nat token (ln 2) is above the threshold 0.5 but not above the 99th percentile
    # of the entropies before it (0, 1.10 = ln 3: 1.087), so only the first branches
    third = {" b": math.log(1 / 3), " x": math.log(1 / 3), " y": math.log(1 / 3)}
    half = {" b": math.log(0.5), " x": math.log(0.5)}
    root = traced("a b b c", [{"a": -0.01}, third, half, {" c": -0.01}])
    backend = ScriptedBackend(eager_script(root, {"a x": flat(" end"), "a b x": flat(" end")}), top_logprobs=True)
    result = solve(EntropyBranching(n=8, params=SamplingParams(logprobs=3), threshold=0.5), MajorityVote(),
                   backend, grader)
    assert result.info["branch_points"] == ["0@1"]
    with pytest.raises(ValueError, match="branch_token"):
        EntropyBranching(branch_token="top3")
    with pytest.raises(ValueError, match="top-k"):
        EntropyBranching(params=SamplingParams(logprobs=1))


def test_eager_adapt_gives_the_budget_left_to_the_problems_at_the_cap(grader, tmp_path):
    # n = 2. Problem "A" branches once (2 sequences: at the cap); "B" and "C" do not (1 each): 6 - 4 = 2
    # sequences are left, and all go to A (the only one at the cap) in a second pass of fresh EAGer runs.
    from ttscale import run
    from ttscale.results import load_results

    half = {" b": math.log(0.5), " x": math.log(0.5)}
    branching = traced("a b \\boxed{1}", [{"a": -0.01}, half, {" \\boxed{1}": -0.01}])

    def script(text, params, i):
        if text.startswith("A"):
            return flat(" \\boxed{2}") if text.endswith("a x") else branching
        return flat("so \\boxed{5}")

    problems = [Problem(id=q, question=q, answer="1") for q in ("A", "B", "C")]
    search = EntropyBranching(n=2, params=SamplingParams(logprobs=2), threshold=0.5, dynamic=False,
                              reallocate="adapt")
    backend = ScriptedBackend(script, top_logprobs=True)
    out = tmp_path / "results.jsonl"
    outcome = run(Strategy(search, MajorityVote(), name="eager"), problems, backend, grader=grader, output=out,
                  progress=False)
    a, b, c = outcome.results
    assert a.info["second_pass"] == {"extra": 2, "runs": 1, "sequences": 2, "thresholds": [0.5]}
    assert len(a.candidates) == 4
    assert a.info["sequences"] == 2 and "second_pass" not in b.info and len(b.candidates) == 1
    assert a.usage.completion_tokens == 2 * (3 + 1)  # both passes: a root of 3 tokens and a branch of 1, twice
    assert len(out.read_text().splitlines()) == 4 and load_results(out)["A"].info["second_pass"]["extra"] == 2
    assert search.allocate(outcome.results) == {"A": 2}  # a rerun resumes without a third pass


def test_eager_allocation_by_hand():
    from ttscale.types import Candidate, Result

    def result(pid, sequences, correct):
        return Result(pid, None, candidates=[Candidate("t", "1", None, 1, "stop", correct=correct)],
                      info={"sequences": sequences}, reference="1")

    firsts = [result("a", 4, True), result("b", 1, False), result("c", 4, False), result("d", 2, False),
              result("f", 4, None), Result("e", None, error="boom")]
    # 5 x 4 - 15 = 5 left (the failed problem gives and takes nothing)
    adapt = EntropyBranching(n=4, params=SamplingParams(logprobs=2), reallocate="adapt")
    assert adapt.allocate(firsts) == {"a": 2, "c": 2, "f": 1}  # at the cap: 5 = 2 + 2 + 1, in dataset order
    labels = replace(adapt, reallocate="labels")
    # graded wrong (f's check was undecided: not "unsolved"), the one at the cap first
    assert labels.allocate(firsts) == {"c": 2, "b": 2, "d": 1}
    assert replace(adapt, reallocate="none").allocate(firsts) == {}


def test_deepconf_online_edge_cases(grader):
    # a trace whose only full window below s arrives in its last delta is stopped (not in T), as the
    # reference ends it there; a unanimous vote is consensus 1.0 exactly (tau = 1 fires)
    online = [conf_trace("x \\boxed{8}", [1, 1])]
    result = solve(deepconf(n=5, tau=1.0), WeightedVote("lowest_group_confidence"), deepconf_backend(WARM, online),
                   grader)
    assert result.info["traces_stopped"] == 1 and result.info["traces_launched"] == 5
    agree = [conf_trace("a \\boxed{7}", [c, c]) for c in (1.1, 2.3, 3.7, 4.9)]
    settled = solve(deepconf(n=8, tau=1.0), WeightedVote("lowest_group_confidence"), deepconf_backend(agree, []),
                    grader)
    assert settled.info["consensus"] == 1.0 and settled.info["traces_launched"] == 4
    # empty warm-up traces are left out of the threshold; all empty is an error naming the cause
    empty = traced("", [])
    mixed = solve(deepconf(n=4, warmup=4), WeightedVote("lowest_group_confidence"),
                  deepconf_backend([empty] + WARM[1:], []), grader)
    assert mixed.info["threshold"] == threshold([2, 3, 4], 50)
    with pytest.raises(ValueError, match="every warm-up trace is empty"):
        asyncio.run(deepconf(n=4)(PROBLEM, context(deepconf_backend([empty] * 4, []), grader)))
    with pytest.warns(UserWarning, match="no trace can fill"):
        DeepConfOnline(params=SamplingParams(logprobs=20, max_tokens=512))


def test_eager_second_pass_thresholds_per_run_as_the_code(grader):
    # no token branches: each run gives one sequence, so 3 extra take 3 runs
    backend = ScriptedBackend(lambda text, params, i: flat("so \\boxed{5}"), top_logprobs=True)
    for mode, sequences, expected in (("adapt", 4, [1.0, 1.0, 0.9]), ("labels", 1, [0.8, 0.64, 0.512 * 0.9])):
        from ttscale.types import Result

        ctx = context(backend, grader)
        first = Result("p", None, info={"sequences": sequences})  # the first pass: at the cap (4) or under it (1)
        search = EntropyBranching(n=4, params=SamplingParams(logprobs=2), threshold=1.0, reallocate=mode)
        assert len(asyncio.run(search.extend(PROBLEM, ctx, 3, first))) == 3
        assert ctx.info["second_pass"]["thresholds"] == pytest.approx(expected)


def test_a_second_pass_scores_only_the_new_trajectories(grader):
    from ttscale.types import Result
    from ttscale.verifiers.base import Scores

    class Counting:  # one verifier call per trajectory scored
        def __init__(self):
            self.scored = 0

        async def score(self, problem, trajectories, usage):
            self.scored += len(trajectories)
            usage.verifier_calls += len(trajectories)
            return [Scores(0.5) for _ in trajectories]

    class Two:  # a search with a second pass of two more samples
        async def __call__(self, problem, ctx):
            return [Trajectory.from_completion(c) for c in await ctx.generate(ctx.prompt, SamplingParams(n=3))]

        async def extend(self, problem, ctx, extra, first):
            ctx.info["more"] = extra
            return [Trajectory.from_completion(c) for c in await ctx.generate(ctx.prompt, SamplingParams(n=extra))]

    from ttscale.strategies.select import BestScore
    from ttscale.types import Trajectory

    verifier = Counting()
    strategy = Strategy(Two(), BestScore(), verifier)
    backend = ScriptedBackend(lambda text, params, i: "\\boxed{7}")
    first = asyncio.run(strategy.solve(PROBLEM, context(backend, grader)))
    assert isinstance(first, Result) and verifier.scored == 3
    second = asyncio.run(strategy.extend(PROBLEM, context(backend, grader), first, 2))
    assert verifier.scored == 5 and second.usage.verifier_calls == 5 and len(second.candidates) == 5
    assert second.info["more"] == 2 and second.usage.completion_tokens == 5


def test_a_step_cut_by_a_stop_string_loses_its_ids():
    from ttscale.strategies.step.tree import Node, StepGenerator
    from ttscale.types import Completion

    g = StepGenerator(SamplingParams(stop=("\nQuestion:",)))
    node = Node("0", steps=["A\n\n"], step_ids=[(1, 2)], step_tokens=[2], step_logprobs=[None], step_series=[None])
    child = g.child(node, 0, Completion("Question: x", 2, "stop", stop_reason="\n\n", token_ids=(3, 4)))
    # "\nQuestion:" starts inside the first step: both steps changed, neither may be continued by its ids
    assert child.steps == ["A\n", ""] and child.step_ids == [None, None] and child.finished
    assert child.prefix(1, "p").ids is None


def test_set_cover_pruning_with_inverse_confidence_cost(grader):
    # cost 1 / confidence: H0 (confidence 0.1) costs 10, H1 (1.0) costs 1, H2 (0.5) costs 2 -> at 2 tokens
    # the cover takes H1, then H2; H0 (the same tokens as H1 so far) is aborted
    texts = iter([("a b c d \\boxed{7}", -0.1), ("a b e f \\boxed{7}", -1.0), ("g h i j \\boxed{2}", -0.5)])

    def script(text, params, i):
        words, lp = next(texts)
        return traced(words, [[lp]] * 5)

    search = SetCoverPruning(n=3, params=SamplingParams(logprobs=1), step=2, cost="inverse_confidence")
    result = solve(search, MajorityVote(), ScriptedBackend(script, top_logprobs=True), grader)
    assert result.info["pruned_at"] == {"0": 2} and [c.answer for c in result.candidates] == ["7", "2"]
