"""The real vLLM CPU engine with SmolLM2-135M: one engine for the whole module."""

import asyncio

import pytest

from ttscale import DatasetSpec, PromptTemplate, load_problems, run, self_consistency
from ttscale.strategies import best_of_n
from ttscale.types import SamplingParams

pytestmark = pytest.mark.integration


def fixture_problems(k):
    spec = DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k", id_prefix="gsm8k-test", limit=k)
    template = PromptTemplate(user="{question}", system="Solve step by step. End with: The answer is N.")
    return template.apply(load_problems(spec))


def test_generate_counts_tokens_logprobs_and_stops(vllm_backend):
    msgs = [{"role": "user", "content": "Count: one, two, three, four, five, six."}]
    params = SamplingParams(n=3, temperature=0.8, max_tokens=40, logprobs=2, stop=(",",), include_stop=True,
                            keep_token_logprobs=True)
    out = asyncio.run(vllm_backend.generate(msgs, params))
    assert len(out.completions) == 3
    assert out.prompt_tokens == 3 * len(vllm_backend.encode(msgs)) > 30  # once per sample, as vLLM counts
    for c in out.completions:
        assert c.num_tokens == len(c.token_logprobs) > 0
        assert c.cumulative_logprob < 0
        assert all(len(t.top) >= 2 for t in c.token_logprobs)  # top-2 (+ the sampled token)
        assert c.stats["tokens"] == c.num_tokens
        assert abs(c.stats["sum_logprob"] - c.cumulative_logprob) < 1e-3
        assert 0 <= c.stats["mean_entropy"] <= 1.0 + 1e-9  # top-2: at most one bit
        assert c.finish_reason in ("stop", "length")
        if c.stop_reason == ",":  # ended at the stop string (not at end-of-sequence): it is kept
            assert c.finish_reason == "stop" and c.text.endswith(",")
        assert "," not in c.text[:-1]


def test_fast_top_p_draws_the_samples_vllms_own_top_p_draws(vllm_backend):
    """backends/top_p.py on the real engine: with per-request seeds, a request filtered by ttscale's
    processor and the same request filtered by vLLM's sort give the same tokens (a peaked temperature
    and a flat one, whose rows need the processor's full-sort fallback)."""
    assert vllm_backend.fast_top_p  # on by default on the CPU build
    msgs = [{"role": "user", "content": "Write a short poem about a lighthouse."}]

    def draw(temperature, top_p=0.9):
        params = SamplingParams(n=4, temperature=temperature, top_p=top_p, max_tokens=32, seed=1234, logprobs=0)
        return [(c.token_ids, round(c.cumulative_logprob, 3))
                for c in asyncio.run(vllm_backend.generate(msgs, params)).completions]

    seeds = vllm_backend.per_request_seed
    vllm_backend.per_request_seed = True
    try:
        for temperature in (0.7, 2.0):
            ours = draw(temperature)
            vllm_backend.fast_top_p = False  # the same engine, vLLM's own top-p
            try:
                theirs = draw(temperature)
            finally:
                vllm_backend.fast_top_p = True
            assert ours == theirs and len({ids for ids, _ in ours}) > 1
        assert draw(2.0, top_p=1.0) != ours  # so the filter did act (the processor is registered and runs)
    finally:
        vllm_backend.per_request_seed = seeds


def test_greedy_is_repeatable_and_prefix_cache_hits(vllm_backend):
    long_system = "You are a careful assistant. " * 40  # several KV blocks of shared prefix
    msgs = [{"role": "system", "content": long_system}, {"role": "user", "content": "What is 2+3?"}]
    params = SamplingParams(temperature=0.0, max_tokens=24)
    first = asyncio.run(vllm_backend.generate(msgs, params))
    second = asyncio.run(vllm_backend.generate(msgs, params))
    assert first.completions[0].text == second.completions[0].text
    assert second.cached_prompt_tokens > 0


def test_continue_final_message(vllm_backend):
    msgs = [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "2 + 3 ="}]
    ids = vllm_backend.encode(msgs, continue_final_message=True)
    assert vllm_backend.tokenizer.decode(ids).rstrip().endswith("2 + 3 =")
    out = asyncio.run(vllm_backend.generate(msgs, SamplingParams(temperature=0.0, max_tokens=8,
                                                                  continue_final_message=True)))
    assert out.completions[0].num_tokens > 0


def test_cancelling_a_request_aborts_it(vllm_backend):
    async def scenario():
        # greedy counting to a thousand: deterministic, and far longer than the second before the cancel
        # (a sampled "long story" could end at end-of-sequence within that second on a fast engine)
        long = SamplingParams(max_tokens=2000, temperature=0.0)
        task = asyncio.create_task(vllm_backend.generate("Count from 1 to 1000, separated by commas.", long))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the engine keeps serving
        return await vllm_backend.generate("Hi", SamplingParams(max_tokens=4, temperature=0.0))

    assert asyncio.run(scenario()).completions[0].num_tokens > 0


def test_self_consistency_end_to_end(vllm_backend, grader, tmp_path):
    problems = fixture_problems(3)
    strategy = self_consistency(n=3, params=SamplingParams(temperature=0.8, top_p=0.95, max_tokens=160))
    outcome = run(strategy, problems, vllm_backend, output=tmp_path / "r.jsonl", grader=grader, progress=False)
    assert outcome.summary["problems"] == 3 and outcome.summary["errors"] == 0
    for result in outcome.results:
        assert len(result.candidates) == 3
        assert result.usage.completion_tokens == sum(c.num_tokens for c in result.candidates) > 0
        assert result.correct in (True, False)
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3


def test_best_of_n_end_to_end(vllm_backend, grader):
    outcome = run(best_of_n(n=2, params=SamplingParams(temperature=0.8, max_tokens=96)), fixture_problems(2),
                  vllm_backend, grader=grader, progress=False)
    for result in outcome.results:
        assert all(c.score is not None and c.score <= 0 for c in result.candidates)


def test_budget_forcing_on_the_real_engine(vllm_backend, grader):
    """s1 budget forcing by token ids on SmolLM2 (the chat pair: its reasoning ends at "The answer
    is"): a tight budget cuts the reasoning; a loose one lets the model end it, and each end is
    extended once by " Wait," before the answer phase."""
    from ttscale.strategies import BudgetForcing, MajorityVote, Strategy

    problems = fixture_problems(2)
    greedy = SamplingParams(temperature=0.0, top_p=1.0)
    for budget in (12, 200):
        search = BudgetForcing(params=greedy, max_thinking_tokens=budget, num_ignore=1, answer_tokens=16)
        outcome = run(Strategy(search, MajorityVote(), name="budget_forcing"), problems, vllm_backend, grader=grader,
                      progress=False)
        assert outcome.summary["errors"] == 0
        for result in outcome.results:
            (c,) = result.candidates
            assert 0 < c.stats["thinking_tokens"] <= budget
            assert result.usage.completion_tokens == c.num_tokens > 0
            if budget == 12:
                assert c.stats["budget_cut"] == 1 and result.usage.backend_calls == 2  # one round, then the answer
            elif not c.stats["budget_cut"]:
                assert c.stats["extensions"] == 1 and " Wait," in c.text
            assert "The answer is" in c.text


def test_genselect_on_the_real_engine(vllm_backend, grader):
    """SmolLM2 judges four of its own samples in one prompt, twice; each verdict is parsed or
    counted as unparsed, and every judge call is in usage."""
    from ttscale.strategies import GenSelect, ParallelSampling, Strategy

    strategy = Strategy(ParallelSampling(4, SamplingParams(temperature=0.8, max_tokens=96)),
                        GenSelect(window=4, judgments=2, judge_tokens=48), name="genselect")
    outcome = run(strategy, fixture_problems(2), vllm_backend, grader=grader, progress=False)
    assert outcome.summary["errors"] == 0
    for result in outcome.results:
        assert result.info["judge_calls"] == 2 and 0 <= result.info["unparsed"] <= 2
        assert result.usage.backend_calls == 1 + 2
        if result.info["unparsed"] == 2:  # no verdict: no answer, never a default pick
            assert result.answer is None


def test_mcts_on_the_real_engine(vllm_backend, grader):
    """MCTS over SmolLM2's steps, judged by SmolLM2 itself (self-evaluation): every expansion is one
    k-sample call, every step is scored, and an answer is a path that ended by itself, scored by the
    sum of its step rewards."""
    from ttscale.strategies import MCTS, BestScore, StepGenerator, Strategy
    from ttscale.verifiers import SelfEvaluation

    generator = StepGenerator(SamplingParams(temperature=0.8, top_p=0.95), max_step_tokens=48, max_steps=3,
                              max_tokens=256)
    search = MCTS(SelfEvaluation(vllm_backend), n=3, k=2, generator=generator)
    outcome = run(Strategy(search, BestScore(), name="mcts"), fixture_problems(3), vllm_backend, grader=grader,
                  progress=False)
    assert outcome.summary["errors"] == 0
    for result in outcome.results:
        info = result.info
        assert info["iterations"] == 3 and 1 <= info["expansions"] <= 3 * generator.max_steps
        assert info["tree_nodes"] == 1 + 2 * info["expansions"]  # k = 2 children per expansion
        assert result.usage.verifier_calls >= 2 * info["expansions"]  # each new step judged
        for c in result.candidates:
            assert c.finish_reason == "stop" and 1 <= len(c.step_scores) <= 3
            assert c.score == pytest.approx(sum(c.step_scores)) and all(0 <= s <= 1 for s in c.step_scores)
    for result in outcome.results:  # a problem on which no path ended within 3 steps has no answer, not a guess
        if not result.candidates:  # (SmolLM2 usually ends one; CPU kernels' scheduling can change which)
            assert result.answer is None and not result.correct


def test_self_evaluation_on_the_real_engine(vllm_backend, grader):
    from ttscale.strategies import Strategy
    from ttscale.strategies.search import ParallelSampling
    from ttscale.strategies.select import WeightedVote
    from ttscale.verifiers import SelfEvaluation

    verifier = SelfEvaluation(vllm_backend, granularity="step", aggregation="min", max_steps=3)
    strategy = Strategy(ParallelSampling(2, SamplingParams(temperature=0.8, max_tokens=96)), WeightedVote("score"),
                        verifier, name="weighted_self_eval")
    outcome = run(strategy, fixture_problems(2), vllm_backend, grader=grader, progress=False)
    for result in outcome.results:
        assert result.error is None
        assert result.usage.verifier_calls >= 2 and result.usage.verifier_tokens > 0
        for c in result.candidates:
            assert 0.0 <= c.score <= 1.0 and 1 <= len(c.step_scores) <= 3
            assert c.score == pytest.approx(min(c.step_scores))
            assert any(s != 0.5 for s in c.step_scores)  # Yes/No really read from the logprobs


def test_prompt_longer_than_the_context_finishes_with_length(vllm_backend):
    huge = "word " * (vllm_backend.max_model_len + 50)
    out = asyncio.run(vllm_backend.generate(huge, SamplingParams(n=2, max_tokens=16)))
    assert [c.finish_reason for c in out.completions] == ["length", "length"]
    near = "word " * (vllm_backend.max_model_len - 40)  # room for fewer tokens than asked: capped
    out = asyncio.run(vllm_backend.generate(near, SamplingParams(max_tokens=400, temperature=0.0)))
    assert out.prompt_tokens + out.completions[0].num_tokens <= vllm_backend.max_model_len


def test_continuation_keeps_the_trailing_step_delimiter(vllm_backend):
    msgs = [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "Step 1: add.\n\n"}]
    ids = vllm_backend.encode(msgs, continue_final_message=True)
    assert vllm_backend.tokenizer.decode(ids).endswith("Step 1: add.\n\n")


def test_step_generation_on_the_engine_continues_the_message_and_hits_the_prefix_cache(vllm_backend):
    from ttscale.strategies import Context
    from ttscale.strategies.step import Node, StepGenerator
    from ttscale.types import Problem

    problem = Problem(id="s1", question="Count to five.", answer="5",
                      messages=[{"role": "system", "content": "You are a careful assistant. " * 20},
                                {"role": "user", "content": "Count from one to five. Write each number on its own line."}])
    ctx = Context(problem=problem, backend=vllm_backend, grader=None)
    gen = StepGenerator(SamplingParams(temperature=0.0), delimiter="\n", max_step_tokens=24, max_steps=4)
    partial = Node("0", ["1\n"], step_tokens=[2], step_logprobs=[0.0])  # one step already written
    (child,) = asyncio.run(gen.expand(ctx, partial, 1, "t"))
    assert child.steps[0] == "1\n" and child.depth == 2 and child.steps[1].strip()
    assert child.finished or child.steps[1].endswith("\n")  # stopped at the delimiter, which is kept
    assert "2" in child.steps[1]  # it continued the assistant's list rather than starting a new answer
    (again,) = asyncio.run(gen.expand(ctx, partial, 1, "t"))
    assert again.text == child.text
    assert ctx.usage.cached_prompt_tokens > 0  # the re-sent prefix came from vLLM's prefix cache


# ---- the token-level contract on the real engine -----------------------------------------------

def _generated_total():
    """vLLM's own count of generated tokens (its Prometheus counter), summed over engines."""
    from prometheus_client import REGISTRY

    return sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == "vllm:generation_tokens_total")


async def _stream(backend, prompt, params, stop_after=None):
    import contextlib

    from ttscale.backends.base import StreamFold

    fold = StreamFold(params.stats)
    async with contextlib.aclosing(backend.stream(prompt, params)) as deltas:
        async for d in deltas:
            fold.add(d)
            if stop_after is not None and fold.num_tokens >= stop_after:
                fold.abort()
                break
    return fold


def test_stream_equals_generate_and_score_equals_the_sampled_logprobs(vllm_backend):
    msgs = [{"role": "user", "content": "What is 12 times 7? Explain."}]
    params = SamplingParams(temperature=0.0, max_tokens=48, logprobs=5)
    generated = asyncio.run(vllm_backend.generate(msgs, params)).completions[0]
    streamed = asyncio.run(_stream(vllm_backend, msgs, params)).completion()
    assert streamed.text == generated.text and streamed.token_ids == generated.token_ids
    assert streamed.finish_reason == generated.finish_reason and streamed.stats == generated.stats
    scored = asyncio.run(vllm_backend.score(vllm_backend.encode(msgs), list(generated.token_ids)))
    assert len(scored) == generated.num_tokens
    assert sum(scored) == pytest.approx(generated.cumulative_logprob, abs=1e-3)


def test_a_closed_stream_is_aborted_in_the_engine(vllm_backend):
    async def scenario():
        before = _generated_total()
        msgs = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]
        fold = await _stream(vllm_backend, msgs, SamplingParams(temperature=0.0, max_tokens=1500), stop_after=16)
        await asyncio.sleep(1.0)  # an unaborted request would go on generating meanwhile
        engine = vllm_backend._engine
        return fold, _generated_total() - before, engine.output_processor.get_num_unfinished_requests()

    fold, generated, unfinished = asyncio.run(scenario())
    assert fold.num_tokens == 16 and fold.finish_reason == "abort" and unfinished == 0
    assert generated - fold.num_tokens <= 2  # at most the engine step in flight when the abort arrived


def _vllm_prompt_counts():
    from prometheus_client import REGISTRY

    values = {s.name: s.value for m in REGISTRY.collect() for s in m.samples}
    return values.get("vllm:prompt_tokens_total", 0.0), values.get("vllm:prompt_tokens_cached_total", 0.0)


def test_n_streams_cost_what_an_n_request_costs_and_usage_counts_it_as_vllm(vllm_backend):
    """vLLM runs an n-sample request as n child requests: the prefix cache serves the shared prompt
    to all but the first. n streams of a fresh prompt do the same work, and both ways our usage
    equals vLLM's own count of prompt tokens and cached prompt tokens."""
    def fresh(tag):
        return [{"role": "user", "content": f"{tag}: " + "Name every prime number below fifty. " * 30}]

    async def streams(msgs, n):
        folds = await asyncio.gather(*(_stream(vllm_backend, msgs, SamplingParams(temperature=0.8, max_tokens=4,
                                                                                   seed=i)) for i in range(n)))
        return sum(f.prompt_tokens for f in folds), sum(f.cached_prompt_tokens for f in folds)

    async def n_request(msgs, n):
        out = await vllm_backend.generate(msgs, SamplingParams(n=n, temperature=0.8, max_tokens=4))
        return out.prompt_tokens, out.cached_prompt_tokens

    work = {}
    for tag, name, way in ((1, "streams", streams), (2, "n-request", n_request)):  # fresh prompts, same length
        before = _vllm_prompt_counts()
        ours = asyncio.run(way(fresh(f"Run {tag}"), 4))
        after = _vllm_prompt_counts()
        assert ours == (after[0] - before[0], after[1] - before[1]), name  # as vLLM counted it
        work[name] = ours
    prompt = work["streams"][0] // 4
    assert work["streams"][0] == work["n-request"][0] == 4 * prompt
    assert work["streams"][1] > 0 and work["n-request"][1] > 0  # the shared prefix was served from the cache
    assert work["streams"][1] == work["n-request"][1]  # the same work


def test_token_id_continuation_equals_one_shot_generation(vllm_backend):
    from ttscale.types import TokenPrompt

    msgs = [{"role": "user", "content": "List three colours, one per paragraph."}]
    base = TokenPrompt(vllm_backend.encode(msgs))
    one_shot = asyncio.run(vllm_backend.generate(base, SamplingParams(temperature=0.0, max_tokens=40))).completions[0]
    first = asyncio.run(vllm_backend.generate(base, SamplingParams(temperature=0.0, max_tokens=15))).completions[0]
    rest = asyncio.run(vllm_backend.generate(base.extend(first.token_ids),
                                             SamplingParams(temperature=0.0, max_tokens=25))).completions[0]
    assert first.token_ids + rest.token_ids == one_shot.token_ids
    assert first.text + rest.text == one_shot.text
    # on ChatML, the text continuation renders the same prefix the ids continue
    from ttscale.strategies.step.tree import Node, StepGenerator

    node = Node("0", steps=[first.text], step_ids=[first.token_ids])
    by_text, cont = StepGenerator(continuation="text").prompt(msgs, node, base)
    by_ids, _ = StepGenerator().prompt(msgs, node, base)
    decode = vllm_backend.tokenizer.decode
    assert decode(vllm_backend.encode(by_text, continue_final_message=cont)) == decode(list(by_ids.ids))


def test_token_id_continuation_survives_a_template_that_rewrites_assistant_content(vllm_backend, smollm2_path,
                                                                                   monkeypatch):
    """A Qwen3 / R1-distill style template drops <think> blocks from assistant messages: continuing a
    partial solution as text loses its reasoning (or fails: transformers cannot find the final message
    it was asked to continue); by ids, the prefix is exactly what was generated."""
    from transformers import AutoTokenizer

    from ttscale.strategies.step.tree import Node, StepGenerator
    from ttscale.types import TokenPrompt

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    tok.chat_template = tok.chat_template.replace("message['content']", "message['content'].split('</think>')[-1]")
    monkeypatch.setattr(vllm_backend, "_tokenizer", tok)
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    step = "<think>two and two make four</think>\n\nSo 4.\n\n"
    node = Node("0", steps=[step], step_ids=[tuple(tok.encode(step, add_special_tokens=False))])
    base = TokenPrompt(vllm_backend.encode(msgs))
    by_text, cont = StepGenerator(continuation="text").prompt(msgs, node, base)
    try:
        lost = "two and two make four" not in tok.decode(vllm_backend.encode(by_text, continue_final_message=cont))
    except ValueError:  # "the final message ... is not present in the output": continuation impossible
        lost = True
    assert lost
    by_ids, cont = StepGenerator().prompt(msgs, node, base)
    assert not cont and list(by_ids.ids) == list(base.ids) + list(node.step_ids[0])
    assert tok.decode(by_ids.ids).endswith(step)
    out = asyncio.run(vllm_backend.generate(by_ids, SamplingParams(temperature=0.0, max_tokens=4)))
    assert out.prompt_tokens == len(by_ids)


def test_processed_logprobs_are_the_tempered_distribution_and_power_sampling_runs(vllm_processed_backend, grader):
    """An engine in processed-logprobs mode (power sampling's): at temperature 1 a sampled token's
    logprob equals its raw score; at 1/4 it is log p^4 / Z with Z <= 1, so never below 4 log p."""
    from ttscale.strategies import Context, MajorityVote, Strategy
    from ttscale.strategies.search.power_sampling import PowerSampling

    backend = vllm_processed_backend
    assert backend.logprobs_mode == "processed_logprobs"
    msgs = [{"role": "user", "content": "Name three colours."}]
    ids = backend.encode(msgs)

    async def sample(temperature):
        params = SamplingParams(temperature=temperature, top_p=1.0, max_tokens=24, logprobs=0,
                                keep_token_logprobs=True)
        (c,) = (await backend.generate(msgs, params)).completions
        return [t.logprob for t in c.token_logprobs], await backend.score(ids, list(c.token_ids))

    lq, lp = asyncio.run(sample(1.0))
    assert len(lq) == len(lp) > 0 and lq == pytest.approx(lp, abs=2e-3)
    lq, lp = asyncio.run(sample(0.25))
    assert all(q <= 1e-6 and q >= 4 * p - 2e-3 for q, p in zip(lq, lp)), list(zip(lq, lp))
    assert sum(lq) > sum(lp)

    problem = fixture_problems(1)[0]
    search = PowerSampling(params=SamplingParams(temperature=0.25, top_p=1.0, max_tokens=32), blocks=2,
                           mcmc_steps=2)
    ctx = Context(problem=problem, backend=backend, grader=grader)
    result = asyncio.run(Strategy(search, MajorityVote()).solve(problem, ctx))
    assert result.info["mcmc_proposals"] >= 1 and result.candidates[0].num_tokens > 0
    assert result.usage.backend_calls == 2 * ctx.calls  # every sample (block or proposal) scored once


def test_deer_exits_early_by_trial_answers_on_the_real_engine(vllm_backend, grader):
    """DEER on SmolLM2 with a new paragraph as the transition (it rarely writes "Wait"): reasoning is
    continued by token ids, a trial answer is sampled with its logprobs at each paragraph (two at
    most), and the answer follows "The answer is"; every confidence is a probability."""
    from ttscale.strategies import DEER, MajorityVote, Strategy

    search = DEER(n=1, params=SamplingParams(temperature=0.0, max_tokens=160), transition="\n\n", max_probes=2,
                  thinking_stop="The answer is", thinking_end="The answer is")
    outcome = run(Strategy(search, MajorityVote(), name="deer"), fixture_problems(2), vllm_backend, grader=grader,
                  progress=False)
    assert outcome.summary["errors"] == 0
    probed = 0
    for result in outcome.results:
        (c,) = result.candidates
        assert c.stats["thinking_tokens"] <= 0.9 * 160 and c.stats["probes"] <= 2
        if c.stats["probes"]:
            probed += 1
            assert 0.0 <= c.stats["trial_confidence"] <= 1.0
        assert "The answer is" in c.text  # the end of thinking, then the answer
    assert probed >= 1  # SmolLM2 writes paragraphs: at least one trial answer was asked for


def test_cancel_early_adaptive_sc_on_the_real_engine(vllm_backend, grader):
    """Streams on the real engine: every problem's samples start at once, the finished ones vote, the
    ones still streaming when the rule settles are aborted (counted), and nothing errs."""
    from ttscale.strategies import AdaptiveSampling, MajorityVote, Strategy

    search = AdaptiveSampling(6, SamplingParams(temperature=0.8, top_p=0.95, max_tokens=96), rule="supermajority",
                              threshold=0.6, min_samples=2, mode="cancel_early")
    outcome = run(Strategy(search, MajorityVote(), name="adaptive_sc"), fixture_problems(2), vllm_backend,
                  grader=grader, progress=False)
    assert outcome.summary["errors"] == 0
    for result in outcome.results:
        info = result.info
        assert info["samples_drawn"] + info["samples_aborted"] == 6 and info["samples_drawn"] >= 2, info
        assert len(result.candidates) == info["samples_drawn"]
        assert result.usage.completion_tokens >= sum(c.num_tokens for c in result.candidates)


def test_entropic_particle_filtering_on_the_real_engine(vllm_backend, grader, tmp_path):
    """ePF over SmolLM2's steps judged by SmolLM2 itself: the run has no error, every round is recorded
    in the trace with its annealing temperature, and a round was annealed exactly when its untempered
    weights had collapsed (ESS / N < 0.5) in the first half of the steps, by the reference's rule."""
    import numpy as np

    from ttscale.strategies import BestScore, ParticleFiltering, StepGenerator, Strategy
    from ttscale.strategies.step.resampling import softmax_logit_weights
    from ttscale.tracing import read_traces
    from ttscale.verifiers import SelfEvaluation

    generator = StepGenerator(SamplingParams(temperature=0.8, top_p=0.95), max_step_tokens=32, max_steps=4,
                              max_tokens=128, last_step="step")
    search = ParticleFiltering(SelfEvaluation(vllm_backend), n=4, generator=generator, annealing="ess")
    outcome = run(Strategy(search, BestScore(), name="epf"), fixture_problems(2), vllm_backend, grader=grader,
                  progress=False, trace=tmp_path / "trace.jsonl.gz")
    assert outcome.summary["errors"] == 0
    traces = {t["problem"]: t for t in read_traces(tmp_path)}
    for result in outcome.results:
        trace = traces[result.problem_id]
        rounds = [d for d in trace["decisions"] if d["kind"] in ("resampled", "kept")]
        assert len(rounds) == result.info["rounds"] and result.info["annealed_rounds"] <= len(rounds)
        for d in rounds:
            plain = softmax_logit_weights(d["rewards"])
            ratio = 1 / np.sum(np.clip(plain, 1e-7, 1 - 1e-7) ** 2) / 4
            early = d["round"] / generator.max_steps < 0.5
            if ratio < 0.5 and early:
                assert d["anneal"] == pytest.approx(max(1.0, (1 - d["round"] / 4) / ratio))
            else:
                assert d["anneal"] == 1.0
        assert sum(d["anneal"] > 1 for d in rounds) == result.info["annealed_rounds"]
