"""Sampling-level methods on token-id prompts (power sampling, fractured sampling, phi-decoding),
worked by hand on test doubles: a toy language model with known likelihoods, and scripted solutions."""

import asyncio
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.strategies import Context, MajorityVote, Strategy
from ttscale.strategies.search.power_sampling import PowerSampling, log_acceptance
from ttscale.types import Completion, GenerateOutput, Problem, SamplingParams, TokenLogprob, TokenPrompt

PROBLEM = Problem(id="p", question="q", answer="7", messages=[{"role": "user", "content": "q"}])

# ---- a toy language model: 3 tokens, next-token probabilities depend on the previous token --------

VOCAB = "abc"
START = 3  # the prompt's only token
TABLE = {START: [0.6, 0.3, 0.1], 0: [0.2, 0.5, 0.3], 1: [0.7, 0.1, 0.2], 2: [0.3, 0.3, 0.4]}


class ToyLM:
    """A model with exact likelihoods: `generate` samples from p at the request's temperature and
    reports processed logprobs (log q of the sampled distribution), `score` gives raw log p."""

    top_logprobs = False

    def __init__(self, seed: int = 0, logprobs_mode: str = "processed_logprobs"):
        self.rng = np.random.default_rng(seed)
        self.logprobs_mode = logprobs_mode
        self.generated = 0

    @staticmethod
    def dist(prev: int, temperature: float) -> np.ndarray:
        p = np.array(TABLE[prev]) ** (1.0 / temperature)
        return p / p.sum()

    def encode(self, prompt, continue_final_message=False, add_special_tokens=True):
        return list(prompt.ids) if isinstance(prompt, TokenPrompt) else [START]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(VOCAB[i] for i in ids)

    async def generate(self, prompt, params: SamplingParams) -> GenerateOutput:
        ids = list(self.encode(prompt))
        out, lps = [], []
        for _ in range(params.max_tokens):
            q = self.dist(ids[-1], params.temperature)
            tok = int(self.rng.choice(3, p=q))
            out.append(tok)
            ids.append(tok)
            lps.append(math.log(q[tok]))
        self.generated += len(out)
        c = Completion(text=self.decode(out), num_tokens=len(out), finish_reason="length",
                       cumulative_logprob=sum(lps), token_ids=tuple(out),
                       token_logprobs=[TokenLogprob(VOCAB[t], lp, {}) for t, lp in zip(out, lps)])
        return GenerateOutput(completions=[c], prompt_tokens=len(self.encode(prompt)))

    async def score(self, prompt_ids, completion_ids):
        prev, out = prompt_ids[-1], []
        for tok in completion_ids:
            out.append(math.log(TABLE[prev][tok]))
            prev = tok
        return out

    def close(self):
        pass


def toy_p(seq) -> float:
    prev, p = START, 1.0
    for tok in seq:
        p *= TABLE[prev][tok]
        prev = tok
    return p


def test_mh_ratio_by_hand():
    # alpha 2: target p^2; current suffix p = e^-1 (q e^-0.5), proposed p = e^-0.5 (q e^-1)
    assert log_acceptance(2.0, [-0.5], [-1.0], [-1.0], [-0.5]) == pytest.approx(2 * -0.5 + -0.5 - 2 * -1.0 + 1.0)


@pytest.mark.parametrize("alpha", [2.0, 4.0])
def test_power_sampling_chain_targets_p_to_the_alpha(alpha):
    """10k MH steps over 3-token sequences of a 3-token vocabulary: the chain's visits match p^alpha."""
    search = PowerSampling(params=SamplingParams(temperature=1 / alpha, max_tokens=3), alpha=alpha, blocks=1,
                           mcmc_steps=10_000)
    ctx = Context(problem=PROBLEM, backend=ToyLM(seed=int(alpha)), grader=None)
    visits: Counter = Counter()
    stats = {"proposals": 0, "accepted": 0}
    asyncio.run(search.run_chain(ctx, 0, stats, visit=lambda chain: visits.update([tuple(chain.ids)])))
    assert sum(visits.values()) == 10_000 and stats["proposals"] == 10_000
    seqs = list(itertools.product(range(3), repeat=3))
    target = np.array([toy_p(s) ** alpha for s in seqs])
    target /= target.sum()
    seen = np.array([visits[s] for s in seqs]) / 10_000
    tv = 0.5 * np.abs(seen - target).sum()
    assert tv < 0.05, (tv, dict(zip(seqs, seen.round(3))))
    # not the proposal's own distribution: q is p at temperature 1/alpha token by token, not p^alpha
    q = np.array([math.prod(ToyLM.dist(prev, 1 / alpha)[t] for prev, t in zip((START,) + s[:-1], s)) for s in seqs])
    assert 0.5 * np.abs(seen - q).sum() > tv
    assert 0 < stats["accepted"] < 10_000


def test_power_sampling_builds_blocks_and_counts_scoring():
    backend = ToyLM(seed=1)
    search = PowerSampling(params=SamplingParams(temperature=0.25, max_tokens=8), alpha=4.0, blocks=4, mcmc_steps=2)
    ctx = Context(problem=PROBLEM, backend=backend, grader=None)
    (t,) = asyncio.run(search(PROBLEM, ctx))
    assert t.num_tokens == 8 and len(t.text) == 8 and t.finish_reason == "length"
    assert ctx.info["mcmc_proposals"] == 4 * 2
    # every generate call (4 blocks + 8 proposals) is scored once: 2 calls each
    assert ctx.usage.backend_calls == 2 * (4 + 8)
    assert ctx.usage.completion_tokens == backend.generated


def test_power_sampling_refuses_raw_logprobs_and_a_wrong_temperature():
    search = PowerSampling(params=SamplingParams(temperature=0.25, max_tokens=8), alpha=4.0, blocks=2)
    ctx = Context(problem=PROBLEM, backend=ToyLM(logprobs_mode="raw_logprobs"), grader=None)
    with pytest.raises(ValueError, match="processed logprobs.*logprobs_mode=processed_logprobs"):
        asyncio.run(search(PROBLEM, ctx))
    with pytest.raises(ValueError, match="strategy.temperature=0.25"):
        PowerSampling(params=SamplingParams(temperature=0.8, max_tokens=8), alpha=4.0)
    with pytest.raises(ValueError, match="mh_suffix"):
        PowerSampling(params=SamplingParams(temperature=0.25), mh_suffix="all")


# ---- fractured sampling ------------------------------------------------------------------------

from ttscale.strategies.search.fractured_sampling import FracturedSampling, cut, depth_weight  # noqa: E402
from ttscale.strategies.select import WeightedVote  # noqa: E402

TRACE = "s1 s2 s3 s4 s5 s6 s7 \\boxed{7}."  # 8 tokens


def fractured_script(text, params, index):
    if "Final answer:" not in text:
        return TRACE
    seen = sum(f"s{i}" in text for i in range(1, 8))
    return "7}" if seen >= 6 else "3}"  # cut at depth 1 or 2 of 4 (2 or 4 tokens): 3; at 3 (6 tokens) or 4: 7


def fractured(grader, **kw):
    backend = ScriptedBackend(fractured_script)
    search = FracturedSampling(**{"n": 2, "params": SamplingParams(max_tokens=64), "depths": 4, "answers": 2, **kw})
    ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
    result = asyncio.run(Strategy(search, WeightedVote("search_weight")).solve(PROBLEM, ctx))
    return result, backend, ctx


def test_fractured_depths_and_weights_by_hand():
    assert [cut(8, h, 4) for h in (1, 2, 3, 4)] == [2, 4, 6, 8]
    assert [depth_weight(h, 4, "linear") for h in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert depth_weight(3, 4, "uniform") == 1.0


def test_fractured_sampling_budget_and_vote_by_hand(grader):
    result, backend, ctx = fractured(grader)
    # 2 trajectories x 4 depths x 2 answers; at depth 4 each trajectory's own answer is one of the 2
    assert len(result.candidates) == 16
    assert sorted(c.stats["depth"] for c in result.candidates) == sorted([1, 2, 3, 4] * 4)
    answers = [(c.stats["depth"], c.answer) for c in result.candidates]
    assert all(a == ("3" if d <= 2 else "7") for d, a in answers), answers
    # calls: the trajectories, then one per (trajectory, depth); answer tokens: "3}" / "7}" are 1 token
    assert result.usage.backend_calls == 1 + 2 * 4
    assert result.usage.completion_tokens == 2 * 8 + 2 * (2 + 2 + 2 + 1)
    # the answer prompts are the trajectory's first cut tokens and the cue, as token ids
    cue_calls = [c for c in backend.calls if "Final answer:" in c.prompt]
    kept = [len(re.findall(r"s\d", c.prompt)) + ("boxed{7}." in c.prompt) for c in cue_calls]
    assert sorted(kept) == [2, 2, 4, 4, 6, 6, 8, 8]
    # prompt tokens, per sample: the question (1), the cut, the cue (3)
    assert result.usage.prompt_tokens == 2 * 1 + sum(c.params.n * (1 + k + 3) for c, k in zip(cue_calls, kept))
    # uniform weights: 8 votes for 3, 8 for 7: a tie, the first sampled group (depth 1's "3") wins
    assert result.answer == "3" and result.info["tie"] == ["3", "7"]
    linear, _, _ = fractured(grader, depth_weighting="linear")  # 3: 4 x (0.1 + 0.2); 7: 4 x (0.3 + 0.4)
    assert linear.answer == "7" and linear.info["weights"] == {"7": pytest.approx(2.8), "3": pytest.approx(1.2)}
    last, _, _ = fractured(grader, last_depths=1)  # the paper's H = -1: only the whole trajectories
    assert last.answer == "7" and len(last.candidates) == 4 and last.usage.backend_calls == 1 + 2


def test_fractured_answers_cut_by_the_cap_do_not_vote(grader):
    # Early depths (1, 2) ramble past answer_tokens: their text after the cue "Final answer: \\boxed{"
    # must not vote (the cue's "Final answer:" is no answer). Depth 3 closes a box before the cap:
    # that closed box counts. Depth 4: the trajectories' own answers, 7.
    def script(text, params, index):
        if "Final answer:" not in text:
            return TRACE
        seen = sum(f"s{i}" in text for i in range(1, 8))
        if seen <= 4:
            return "3 3 3 3 3 3 3 3 3 3 3 3"
        return "7} because s7 gives it and so on" if seen == 6 else "7}"
    backend = ScriptedBackend(script)
    search = FracturedSampling(n=2, params=SamplingParams(max_tokens=64), depths=4, answers=4, answer_tokens=4)
    ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
    result = asyncio.run(Strategy(search, WeightedVote("search_weight")).solve(PROBLEM, ctx))
    by_depth = {}
    for c in result.candidates:
        by_depth.setdefault(c.stats["depth"], set()).add((c.finish_reason, c.answer))
    assert by_depth[1] == by_depth[2] == {("length", None)}  # 16 cut fragments: no votes
    assert by_depth[3] == {("length", "7")}  # cut after its box closed
    assert result.answer == "7" and result.info["weights"] == {"7": pytest.approx(16.0)}


def test_fractured_sampling_bad_settings():
    with pytest.raises(ValueError, match="depth_weighting"):
        FracturedSampling(depth_weighting="exp")
    with pytest.raises(ValueError, match="last_depths"):
        FracturedSampling(depths=4, last_depths=5)


# ---- phi-decoding ------------------------------------------------------------------------------

from ttscale.strategies.step.phi_decoding import (PhiDecoding, cluster_labels, selection_weights,  # noqa: E402
                                                 softmax, width_keep)
from ttscale.strategies.step.tree import StepGenerator  # noqa: E402


def test_phi_in_width_pruning_by_hand():
    # mean -1.75, std 1.299: keep above -3.049
    assert width_keep([-1.0, -1.0, -1.0, -4.0], 1.0) == [0, 1, 2]
    assert width_keep([-1.0, -2.0, -3.0], 0.0) == [0]  # sigma 0: above the mean only
    assert width_keep([-1.0, -1.0], 1.0) == []  # all equal: none strictly above (the code refills to M)


def test_phi_clusters_and_selection_weights_by_hand():
    labels = cluster_labels(["so the answer is 7", "so the answer is 7", "thus we get 9 apples"], 2, seed=0)
    assert labels[0] == labels[1] != labels[2]
    assert cluster_labels(["a b", "c d"], 3, seed=0) is None  # fewer texts than clusters: the code's fallback
    p = selection_weights([0.5, 0.2, 0.3], [0, 0, 1], 2, 0.1)
    shares = np.exp([2 / 3, 2 / 3, 1 / 3])
    adv = np.exp([5.0, 2.0, 3.0])
    assert p == pytest.approx((shares / shares.sum() + adv / adv.sum()) / 2)
    assert softmax([0.0, math.log(3.0)]) == pytest.approx([0.25, 0.75])


def phi_script(text, params, index):
    """Steps s1..s4 then the answer; a rollout's (no delimiter) likelihood rises with its depth."""
    done = sum(f"s{i}\n" in text for i in range(1, 5))
    rest = "".join(f"s{i}\n" for i in range(done + 1, 5)) + "The answer is \\boxed{7}."
    if "\n" in params.stop:  # a step
        return rest.split("\n")[0] + "\n" if done < 4 else rest
    words = len(rest.split())
    return Completion(text=rest, num_tokens=words, finish_reason="stop", cumulative_logprob=-0.5 / (done + 1) * words)


def phi(grader, **kw):
    backend = ScriptedBackend(phi_script, logprobs_mode="processed_logprobs")
    gen = StepGenerator(SamplingParams(temperature=0.6, logprobs=0), delimiter="\n", max_step_tokens=16,
                        max_steps=32, max_tokens=64, answer_marker="\\boxed")
    search = PhiDecoding(gen, **{"n": 2, "rollouts": 2, "min_steps": 2, "max_steps": 8, "clusters": 2, **kw})
    ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
    return asyncio.run(Strategy(search, MajorityVote()).solve(PROBLEM, ctx)), backend


def test_phi_decoding_in_depth_pruning_by_hand(grader):
    # step 1: rollouts' mean logprob -0.25 < V=0: no advantage > 0, softmax fallback (no clusters);
    # step 2: -0.167 - (-0.25) > 0 for all, identical rollouts form one cluster (share 1 > 0.7): stop
    # at T_min = 2; then each of the 2 beams is completed once and one is picked
    result, backend = phi(grader)
    assert result.info["foresight_steps"] == 2 and result.info["stopped_early"] is True
    assert result.answer == "7" and len(result.candidates) == 1
    assert result.candidates[0].text == "s1\ns2\ns3\ns4\nThe answer is \\boxed{7}."
    # 2 steps x (2 expansions + 2 rollouts) + 2 completions: of 4 candidate steps with equal likelihoods
    # none is strictly above mean - sigma * std, and the code refills to M = 2 from the pruned
    assert result.usage.backend_calls == 2 * (2 + 2) + 2 and result.info["width_pruned"] == 4
    late, _ = phi(grader, min_steps=3)  # the stop waits for T_min
    assert late.info["foresight_steps"] == 3
    same, _ = phi(grader, delta=1.0, min_steps=1)  # no cluster holds more than all; the code's second rule:
    assert same.info["foresight_steps"] == 2  # the M selected steps are identical and t >= T_min (0-based t = 1)
    full, _ = phi(grader, min_steps=8)  # never early: the 5th step finishes every beam
    assert full.info["foresight_steps"] == 5 and full.info["stopped_early"] is False


def test_phi_decoding_final_pick_all_returns_every_beam(grader):
    result, _ = phi(grader, final_pick="all")
    assert len(result.candidates) == 2 and result.answer == "7"
    with pytest.raises(ValueError, match="final_pick"):
        phi(grader, final_pick="best")
    gen = StepGenerator(SamplingParams(temperature=0.6, logprobs=0), delimiter="\n")
    ctx = Context(problem=PROBLEM, backend=ScriptedBackend(phi_script), grader=grader)  # raw logprobs: refused
    with pytest.raises(ValueError, match="processed logprobs.*logprobs_mode=processed_logprobs"):
        asyncio.run(PhiDecoding(gen)(PROBLEM, ctx))


def test_fractured_sampling_cuts_only_a_thinking_models_reasoning(grader):
    def script(text, params, index):
        if "</think>" not in text:
            return "t1 t2 t3 t4 </think> The answer is \\boxed{9}."
        return "\\boxed{5}." if "t4" not in text else "\\boxed{9}."

    backend = ScriptedBackend(script)
    search = FracturedSampling(n=1, params=SamplingParams(max_tokens=64), depths=2, answers=2,
                               answer_cue=" </think>", answer_stop=())
    ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
    result = asyncio.run(Strategy(search, WeightedVote("search_weight")).solve(PROBLEM, ctx))
    cue_prompts = [c.prompt for c in backend.calls[1:]]
    # depth 1: the first 2 of the 4 reasoning tokens; depth 2: all 4 (the answer after </think> is never cut)
    assert sorted(" ".join(p.split("q", 1)[1].split()) for p in cue_prompts) == ["t1 t2 </think>", "t1 t2 t3 t4 </think>"]
    assert [(c.stats["depth"], c.answer) for c in result.candidates] == [(1, "5"), (1, "5"), (2, "9"), (2, "9")]
    assert result.candidates[2].text.startswith("t1 t2 t3 t4 </think> The answer")  # the own answer is one of m


def test_power_sampling_runs_its_chains_at_once():
    search = PowerSampling(n=3, params=SamplingParams(temperature=0.5, max_tokens=4), alpha=2.0, blocks=2, mcmc_steps=3)
    ctx = Context(problem=PROBLEM, backend=ToyLM(seed=2), grader=None)
    out = asyncio.run(search(PROBLEM, ctx))
    assert len(out) == 3 and all(t.num_tokens == 4 for t in out)
    assert ctx.info["mcmc_proposals"] == 3 * 2 * 3
