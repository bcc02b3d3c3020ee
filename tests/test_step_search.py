"""Step-wise search on the scripted backend with a scripted verifier: hand-worked examples."""

import asyncio
import random
import re
from collections import Counter

import numpy as np
import pytest

from ttscale.backends.scripted import ScriptedBackend
from ttscale.strategies import Context, Strategy
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.select.weighted import WeightedVote
from ttscale.strategies.step import (DVTS, AStarDecoding, BeamSearch, Node, ParticleFiltering, ParticleGibbs,
                                     Rebase, StepGenerator, ValueGuidedBlockSearch)
from ttscale.strategies.step.a_star import priority
from ttscale.strategies.step.tree import score_nodes
from ttscale.strategies.step.resampling import (effective_sample_size, resample, softmax_logit_weights,
                                                softmax_weights, split_budget)
from ttscale.types import Completion, Problem, SamplingParams
from ttscale.verifiers.scripted import ScriptedVerifier

STEP = re.compile(r"<([0-9.]+)>")
PROBLEM = Problem(id="p1", question="What is 1+1?", answer="2")
CHAT = Problem(id="p1", question="What is 1+1?", answer="2", messages=[{"role": "user", "content": "What is 1+1?"}])


def path_of(prompt: str) -> str:
    """The tree path a prompt continues: the labels of the steps already written ('' at the root)."""
    return "/".join(STEP.findall(prompt))


def tree_script(final_depth=2, answer=lambda path, i: "2"):
    """Step d of a solution is '<path.i> ...\\n\\n'; at final_depth it ends with a boxed answer and EOS."""
    def script(prompt, params, i):
        path = path_of(prompt)
        depth = len(path.split("/")) if path else 0
        label = f"{path.split('/')[-1] + '.' if path else ''}{i}"
        if depth + 1 >= final_depth:
            return f"<{label}> so \\boxed{{{answer(path, i)}}}"
        return f"<{label}> step\n\nnext"
    return script


def label_scores(table, default=0.5):
    """A verifier scoring a step by its label."""
    return ScriptedVerifier(lambda q, steps: table.get(STEP.findall(steps[-1])[0], default))


def run_search(search, backend, select=None, grader=None, problem=PROBLEM, seed=0):
    ctx = Context(problem=problem, backend=backend, grader=grader, run_seed=seed)
    trajectories = asyncio.run(search(problem, ctx))
    return trajectories, ctx


def gen(**kw):
    return StepGenerator(SamplingParams(temperature=0.8), **{"max_step_tokens": 16, "max_steps": 6, **kw})


# ---- step generation ---------------------------------------------------------------------------

def test_a_step_continues_the_assistant_message_and_keeps_the_delimiter():
    backend = ScriptedBackend(tree_script(final_depth=3))
    ctx = Context(problem=CHAT, backend=backend, grader=None)
    g = gen(continuation="text")
    (first,) = asyncio.run(g.expand(ctx, Node("0"), 1, "k"))
    assert first.steps == ["<0> step\n\n"] and not first.finished and first.step_tokens == [2]
    kids = asyncio.run(g.expand(ctx, first, 2, "k"))
    call = backend.calls[-1]
    assert call.params.n == 2 and call.params.continue_final_message and call.params.include_stop
    assert call.params.stop == ("\n\n",) and call.params.max_tokens == 16
    assert call.prompt.endswith("<0> step\n\n")  # the partial solution is the assistant message
    assert [k.steps[-1] for k in kids] == ["<0.0> step\n\n", "<0.1> step\n\n"]
    assert [k.id for k in kids] == ["0.0.0", "0.0.1"]  # tree paths: stable seed keys
    (done,) = asyncio.run(g.expand(ctx, kids[0], 1, "k"))
    assert done.finished and done.finish_reason == "stop" and done.text.endswith("\\boxed{2}")


def test_a_step_continues_by_token_ids_by_default():
    backend = ScriptedBackend(tree_script(final_depth=3))
    ctx = Context(problem=CHAT, backend=backend, grader=None)
    g = gen()
    (first,) = asyncio.run(g.expand(ctx, Node("0"), 1, "k"))
    assert first.step_ids == [tuple(backend.tokenizer.encode("<0> step\n\n"))] and first.ids == first.step_ids[0]
    kids = asyncio.run(g.expand(ctx, first, 2, "k"))
    call = backend.calls[-1]
    assert not call.params.continue_final_message and call.params.include_stop
    # the prompt's ids (rendered once) then the step's ids: decoded, the prompt text and the step
    assert call.prompt == backend.tokenizer.decode(ctx.prompt_ids().ids) + "<0> step\n\n"
    assert [k.steps[-1] for k in kids] == ["<0.0> step\n\n", "<0.1> step\n\n"]
    with pytest.raises(ValueError, match="continuation"):
        gen(continuation="tokens")


def test_steps_finish_on_the_answer_marker_the_step_cap_and_the_token_budget():
    marker = ScriptedBackend(lambda p, params, i: "so \\boxed{3}\n\nand more")
    ctx = Context(problem=PROBLEM, backend=marker, grader=None)
    (node,) = asyncio.run(gen().expand(ctx, Node("0"), 1, "k"))
    assert node.finished and node.finish_reason == "stop"  # the step holds \boxed, though it hit the delimiter

    endless = ScriptedBackend(lambda p, params, i: "more words here\n\n")
    ctx = Context(problem=PROBLEM, backend=endless, grader=None)
    g = gen(max_steps=3)
    node = Node("0")
    while not node.finished:
        (node,) = asyncio.run(g.expand(ctx, node, 1, "k"))
    assert node.depth == 3 and node.finished
    assert endless.calls[-1].params.stop == ()  # the last step is generated without the delimiter stop
    assert endless.calls[-1].params.max_tokens == 2048 - 6  # ... and may use the rest of the budget

    ctx = Context(problem=PROBLEM, backend=endless, grader=None)
    g = gen(max_steps=50, max_tokens=7)
    node = Node("0")
    while not node.finished:
        (node,) = asyncio.run(g.expand(ctx, node, 1, "k"))
    assert node.num_tokens <= 7 and node.finish_reason == "length"
    assert endless.calls[-1].params.max_tokens == 1  # only the budget's remainder is asked for


def test_the_particle_methods_cap_their_last_step_like_the_reference():
    # Puri et al.'s code and its_hub: the step at the cap is an ordinary step, and a particle still
    # open there ends unfinished ("length"); search-and-learn's beam search lets that step finish
    endless = ScriptedBackend(lambda p, params, i: "more words here\n\n")
    ctx = Context(problem=PROBLEM, backend=endless, grader=None)
    g = gen(max_steps=3, last_step="step")
    node = Node("0")
    while not node.finished:
        (node,) = asyncio.run(g.expand(ctx, node, 1, "k"))
    assert node.depth == 3 and node.finish_reason == "length"
    assert all(c.params.stop == ("\n\n",) and c.params.max_tokens == 16 for c in endless.calls)
    for method in (ParticleFiltering, ParticleGibbs):
        generator = method(verifier=None).generator
        assert (generator.max_steps, generator.last_step) == (40, "step")
    assert BeamSearch(verifier=None).generator.last_step == "complete"
    with pytest.raises(ValueError, match="last_step"):
        gen(last_step="finish")


def test_block_steps_are_fixed_token_counts():
    backend = ScriptedBackend(lambda p, params, i: "a b c d e f g h i j")
    ctx = Context(problem=PROBLEM, backend=backend, grader=None)
    (node,) = asyncio.run(gen(block_tokens=4).expand(ctx, Node("0"), 1, "k"))
    assert node.step_tokens == [4] and not node.finished and backend.calls[0].params.stop == ()


# ---- resampling --------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["multinomial", "systematic", "stratified"])
def test_resampling_copies_match_the_weights(scheme):
    w = np.array([0.1, 0.2, 0.3, 0.4])
    rng = np.random.default_rng(0)
    counts = Counter()
    for _ in range(500):
        counts.update(resample(w, 20, scheme, rng))
    share = np.array([counts[i] for i in range(4)]) / (500 * 20)
    assert np.allclose(share, w, atol=0.01)
    if scheme == "systematic":  # each index gets floor or ceil of N w_i copies
        one = Counter(resample(w, 20, scheme, rng))
        assert all(abs(one[i] - 20 * w[i]) < 1 for i in range(4))


def test_weights_ess_and_budget_split():
    w = softmax_logit_weights([0.5, 0.5])
    assert np.allclose(w, [0.5, 0.5])
    w = softmax_logit_weights([0.8, 0.2])  # logit 0.8 = ln 4, logit 0.2 = -ln 4: odds 16:1
    assert np.isclose(w[0] / w[1], 16.0)
    assert np.isfinite(softmax_logit_weights([1.0, 0.0])).all()  # clipped to [eps, 1 - eps]
    # #37: the clip is the authors' machine epsilon: 0.99999 and 0.9999 weigh about 10:1 (a 1e-4 clip: 1:1)
    w = softmax_logit_weights([0.99999, 0.9999])
    assert w[0] / w[1] == pytest.approx(10.0, rel=1e-3)
    w = softmax_logit_weights([1.0, 0.99999])  # a certain reward still outweighs a near-certain one, finitely
    assert np.isfinite(w).all() and w[0] > 0.99
    w = softmax_logit_weights([0.99999, 0.9999], eps=1e-7)  # its_hub's clip, an option (reward_clip)
    assert w[0] / w[1] == pytest.approx(10.0, rel=1e-2)
    for bad in (float("nan"), -0.3, 1.5):  # a missing reward or one that is not a probability: an error
        with pytest.raises(ValueError, match="rewards in \\[0, 1\\]"):
            softmax_logit_weights([0.5, bad])
    assert effective_sample_size([1, 1, 1, 1]) == pytest.approx(4.0)
    assert effective_sample_size([1, 0, 0, 0]) == pytest.approx(1.0)
    assert split_budget(8, [0.5, 0.3, 0.2]) == [4, 2, 2]
    assert sum(split_budget(7, softmax_weights([0.9, 0.1, 0.5], 0.2))) == 7


# ---- particle filtering ------------------------------------------------------------------------

def test_particle_filtering_resamples_towards_the_good_step_and_extends_copies_in_one_call(grader):
    backend = ScriptedBackend(tree_script(final_depth=2, answer=lambda path, i: path))
    verifier = label_scores({"2": 0.99}, default=0.01)  # first step <2> is far better than <0>, <1>, <3>
    pf = ParticleFiltering(verifier, n=4, generator=gen(), resampling="systematic")
    trajectories, ctx = run_search(pf, backend)
    # round 1: four separate particles from the empty solution (one call, n=4); resampling keeps <2> only
    assert [c.params.n for c in backend.calls] == [4, 4]
    assert path_of(backend.calls[1].prompt) == "2"  # the four copies of <2> extend in ONE call with n=4
    assert all(t.steps[0].startswith("<2>") for t in trajectories) and len(trajectories) == 4
    assert ctx.info["rounds"] == 2 and ctx.usage.backend_calls == 2
    assert ctx.usage.verifier_calls == 8  # every new step scored once
    assert ctx.usage.completion_tokens == sum(len(t.text.split()) for t in trajectories)


def test_particle_filtering_without_finished_resampling_keeps_finished_particles():
    # particle 0 finishes at step 1 with a poor score; it is kept because finished ones do not take part
    def script(prompt, params, i):
        path = path_of(prompt)
        if not path:
            return "<0> \\boxed{1}" if i == 0 else f"<{i}> step\n\n"
        return f"<{path}.{i}> \\boxed{{2}}"
    verifier = label_scores({"0": 0.01}, default=0.9)
    pf = ParticleFiltering(verifier, n=3, generator=gen(), resample_finished=False)
    trajectories, _ = run_search(pf, ScriptedBackend(script))
    assert trajectories[0].text == "<0> \\boxed{1}" and trajectories[0].score == 0.01


def test_particle_filtering_is_reproducible_with_a_seed():
    def script(prompt, params, i):  # depends on the request's seed, as sampling would
        r = random.Random(params.seed * 31 + i).random()
        path = path_of(prompt)
        end = len(path.split("/")) >= 2 if path else False
        return f"<{r:.3f}> \\boxed{{{int(r * 3)}}}" if end else f"<{r:.3f}> step\n\n"
    verifier = ScriptedVerifier(lambda q, steps: float(STEP.findall(steps[-1])[0]))
    first, _ = run_search(ParticleFiltering(verifier, n=6, generator=gen()), ScriptedBackend(script), seed=5)
    again, _ = run_search(ParticleFiltering(verifier, n=6, generator=gen()), ScriptedBackend(script), seed=5)
    other, _ = run_search(ParticleFiltering(verifier, n=6, generator=gen()), ScriptedBackend(script), seed=6)
    assert [t.text for t in first] == [t.text for t in again]
    assert [t.text for t in first] != [t.text for t in other]


def test_ess_threshold_skips_resampling_when_weights_are_even():
    verifier = label_scores({}, default=0.5)  # all equal: ESS = N, never below 0.5 N
    pf = ParticleFiltering(verifier, n=4, generator=gen(), ess_threshold=0.5)
    trajectories, ctx = run_search(pf, ScriptedBackend(tree_script(final_depth=3)))
    assert ctx.info["resamplings"] == 0
    assert sorted(t.steps[0] for t in trajectories) == [f"<{i}> step\n\n" for i in range(4)]


# ---- particle Gibbs ----------------------------------------------------------------------------

def test_reference_prefix_carries_the_score_it_had_at_that_step():
    ref = Node("r", ["a\n\n", "b\n\n", "c"], [0.1, 0.2, 0.9], True, "stop", [1, 1, 1], [-1.0, -1.0, -1.0])
    cut = ref.prefix(1, "x")
    assert cut.steps == ["a\n\n"] and cut.step_scores == [0.1] and not cut.finished and cut.value() == 0.1
    assert ref.prefix(5, "y").finished and ref.prefix(5, "y").value() == 0.9


def test_particle_gibbs_compares_the_reference_at_the_same_step():
    # A reference with a poor first step (0.01) but a great final score (0.99); the free particles'
    # first steps score 0.6. Compared at step 1 (right), the free particles win round 1 and round 2
    # continues them; compared at the reference's final score (the its_hub bug), every free particle
    # would copy the reference's first step and round 2 would continue "<0>".
    def script(prompt, params, i):
        path = path_of(prompt)
        return f"<{i + 1}> step\n\n" if not path else f"<{path.split('/')[-1]}.{i}> \\boxed{{2}}"
    verifier = label_scores({}, default=0.6)
    backend = ScriptedBackend(script)
    pg = ParticleGibbs(verifier, n=8, sweeps=2, references=1, generator=gen(), resampling="systematic")
    assert pg.per_sweep == 4  # n is the total budget over the sweeps (its_hub's)
    ref = Node("r", ["<0> step\n\n", "<0.0> \\boxed{2}"], [0.01, 0.99], True, "stop", [2, 2], [-1.0, -1.0])
    ctx = Context(problem=PROBLEM, backend=backend, grader=None)
    particles = asyncio.run(pg.sweep(PROBLEM, ctx, [ref], 1, np.random.default_rng(0)))
    assert [c.params.n for c in backend.calls] == [3, 1, 1, 1]
    assert sorted(path_of(c.prompt) for c in backend.calls[1:]) == ["1", "2", "3"]
    assert len(particles) == 4 and particles[-1] is ref and all(p.finished for p in particles)


def test_particle_gibbs_runs_its_sweeps():
    backend = ScriptedBackend(tree_script(final_depth=3))
    pg = ParticleGibbs(label_scores({"1": 0.9}), n=12, sweeps=3, references=2, generator=gen())
    trajectories, ctx = run_search(pg, backend)
    assert len(trajectories) == 4 and all(t.finish_reason == "stop" for t in trajectories)
    assert ctx.info["sweeps"] == 3 and ctx.info["budget"] == 12 and ctx.info["particles_per_sweep"] == 4
    # first sweep 4 free particles, later sweeps 2 free + 2 references: about n particles in all
    with pytest.raises(ValueError, match="references"):
        ParticleGibbs(verifier=None, n=4, references=2)
    with pytest.raises(ValueError, match="multiple of sweeps"):
        ParticleGibbs(verifier=None, n=5, sweeps=2)


# ---- beam search and DVTS ----------------------------------------------------------------------

def test_beam_search_keeps_the_top_n_over_m_and_expands_each_m_times():
    backend = ScriptedBackend(tree_script(final_depth=3))
    verifier = label_scores({"0": 0.1, "1": 0.4, "2": 0.9, "3": 0.7, "2.1": 0.8, "3.0": 0.95})
    beam = BeamSearch(verifier, n=4, beam_width=2, generator=gen())
    trajectories, ctx = run_search(beam, backend)
    assert [c.params.n for c in backend.calls] == [4, 2, 2, 2, 2]
    assert [path_of(c.prompt) for c in backend.calls[1:3]] == ["2", "3"]  # the top 4/2 = 2 beams
    # round 2: 2.0 2.1 3.0 3.1 scored 0.5 0.8 0.95 0.5 -> keep 3.0 and 2.1
    assert [path_of(c.prompt) for c in backend.calls[3:]] == ["3/3.0", "2/2.1"]
    assert len(trajectories) == 4 and all(t.finish_reason == "stop" for t in trajectories)
    assert ctx.usage.verifier_calls == 4 + 4 + 4


def test_beam_search_lookahead_scores_ahead_but_keeps_one_step():
    backend = ScriptedBackend(tree_script(final_depth=3))
    # <0> looks poor, but its greedy continuation <0.0> is excellent: with lookahead 1 it is kept
    verifier = label_scores({"0": 0.1, "1": 0.5, "0.0": 0.99, "1.0": 0.2})
    beam = BeamSearch(verifier, n=2, beam_width=2, generator=gen(), lookahead=1, lookahead_scoring="lookahead")
    run_search(beam, backend)
    lookahead_calls = [c for c in backend.calls if c.params.temperature == 0.0]
    assert lookahead_calls and all(c.params.n == 1 for c in lookahead_calls)
    expansions = [path_of(c.prompt) for c in backend.calls if c.params.temperature != 0.0]
    assert expansions[:2] == ["", "0"]


def test_beam_search_by_default_generates_lookahead_but_scores_the_current_text():
    """search-and-learn's beam search: lookahead steps are generated (and cost tokens) but the beam's
    current text is what the PRM scores, so <1> (0.5) beats <0> (0.1) whatever <0.0> would score."""
    backend = ScriptedBackend(tree_script(final_depth=3))
    verifier = label_scores({"0": 0.1, "1": 0.5, "0.0": 0.99, "1.0": 0.2})
    beam = BeamSearch(verifier, n=2, beam_width=2, generator=gen(), lookahead=1)
    _, ctx = run_search(beam, backend)
    assert [c for c in backend.calls if c.params.temperature == 0.0]  # generated and counted
    expansions = [path_of(c.prompt) for c in backend.calls if c.params.temperature != 0.0]
    assert expansions[:2] == ["", "1"]
    assert all("0.0" not in t for t in verifier.seen)  # the lookahead text is never scored


def test_beam_search_refills_to_n_beams_as_beams_finish():
    """Reference: each round expands n beams, the kept ones copied round-robin, however many finished.
    <0> finishes at once; the one unfinished survivor <1> then gets all n = 4 expansions."""
    def script(prompt, params, i):
        path = path_of(prompt)
        if not path:
            return ["<0> \\boxed{1}", "<1> step\n\nx", "<2> step\n\nx", "<3> step\n\nx"][i]
        return f"<{path.split('/')[-1]}.{i}> " + ("\\boxed{2}" if path.count("/") >= 1 else "step\n\nx")
    verifier = label_scores({"1": 0.9, "2": 0.2, "3": 0.1})
    refill = BeamSearch(verifier, n=4, beam_width=4, generator=gen())
    backend = ScriptedBackend(script)
    run_search(refill, backend)
    assert [(path_of(c.prompt), c.params.n) for c in backend.calls[:2]] == [("", 4), ("1", 4)]
    fixed = BeamSearch(verifier, n=4, beam_width=2, generator=gen(), refill=False)
    backend = ScriptedBackend(script)
    run_search(fixed, backend)  # keeps n / M = 2 beams (<1>, <2>) and expands each M = 2 times
    assert [(path_of(c.prompt), c.params.n) for c in backend.calls[1:3]] == [("1", 2), ("2", 2)]
    refill = BeamSearch(verifier, n=4, beam_width=2, generator=gen())
    backend = ScriptedBackend(script)
    run_search(refill, backend)  # the same 2 kept beams, copied back to 4: 2 copies each
    assert [(path_of(c.prompt), c.params.n) for c in backend.calls[1:3]] == [("1", 2), ("2", 2)]


def test_beam_search_filters_duplicate_unfinished_beams_only():
    """search-and-learn: the filter runs on the active beams after the finished ones are set aside, so
    four identical finished beams all stay; identical unfinished beams are kept once before the top-k."""
    backend = ScriptedBackend(lambda p, params, i: "<0> same \\boxed{1}")
    beam = BeamSearch(label_scores({}), n=4, beam_width=2, generator=gen(), filter_duplicates=True)
    trajectories, _ = run_search(beam, backend)
    assert len(trajectories) == 4

    def script(prompt, params, i):
        path = path_of(prompt)
        if not path:
            return ["<1> step\n\nx", "<1> step\n\nx", "<2> step\n\nx", "<3> step\n\nx"][i]
        return f"<{path.split('/')[-1]}.{i}> \\boxed{{2}}"
    verifier = label_scores({"1": 0.9, "2": 0.5, "3": 0.1})
    backend = ScriptedBackend(script)
    run_search(BeamSearch(verifier, n=4, beam_width=2, generator=gen(), filter_duplicates=True), backend)
    assert [path_of(c.prompt) for c in backend.calls[1:]] == ["1", "2"]  # the copy of <1> dropped: <2> kept
    backend = ScriptedBackend(script)
    run_search(BeamSearch(verifier, n=4, beam_width=2, generator=gen()), backend)
    assert [path_of(c.prompt) for c in backend.calls[1:]] == ["1", "1"]  # without the filter: <1> twice


def test_beam_search_keeps_the_first_n_finished_beams_as_the_code():
    """#37: in the round the n-th beam finishes, search-and-learn keeps the first n finished (its
    sort_completed=False), not the n of the highest score. <0> finishes at once (score 0.1); the next
    round finishes 4 more: the first 4 are <0>, <1.0>, <1.1>, <2.0>; by score it would be the last 4."""
    def script(prompt, params, i):
        path = path_of(prompt)
        if not path:
            return ["<0> \\boxed{1}", "<1> step\n\nx", "<2> step\n\nx", "<3> step\n\nx"][i]
        return f"<{path.split('/')[-1]}.{i}> \\boxed{{2}}"
    verifier = label_scores({"0": 0.1, "1": 0.8, "2": 0.7, "3": 0.1, "1.0": 0.2, "1.1": 0.3, "2.0": 0.9, "2.1": 0.95})
    first, _ = run_search(BeamSearch(verifier, n=4, beam_width=2, generator=gen()), ScriptedBackend(script))
    assert [STEP.findall(t.steps[-1])[0] for t in first] == ["0", "1.0", "1.1", "2.0"]
    best, _ = run_search(BeamSearch(verifier, n=4, beam_width=2, generator=gen(), sort_completed=True),
                         ScriptedBackend(script))
    assert [STEP.findall(t.steps[-1])[0] for t in best] == ["2.1", "2.0", "1.1", "1.0"]


def test_dvts_subtrees_follow_their_best_child_and_return_their_final_siblings():
    """search-and-learn: n / M subtrees, each returning its last round's M siblings: n candidates."""
    backend = ScriptedBackend(tree_script(final_depth=3))
    verifier = label_scores({"0": 0.9, "1": 0.1, "0.1": 0.8, "0.0": 0.3, "0.1.0": 0.6, "0.1.1": 0.7})
    dvts = DVTS(verifier, n=4, beam_width=2, generator=gen())
    trajectories, ctx = run_search(dvts, backend)
    assert len(trajectories) == 4 and all(t.finish_reason == "stop" for t in trajectories)
    assert ctx.info["subtrees"] == 2
    continued = sorted(path_of(c.prompt) for c in backend.calls if path_of(c.prompt))
    assert continued == ["0", "0", "0/0.1", "0/0.1"]  # both subtrees pick <0>, then <0.1>
    assert sorted(STEP.findall(t.steps[-1])[0] for t in trajectories) == ["0.1.0", "0.1.0", "0.1.1", "0.1.1"]
    assert sorted(t.score for t in trajectories) == pytest.approx([0.6, 0.6, 0.7, 0.7])  # last step scores
    chosen_only = DVTS(verifier, n=4, beam_width=2, generator=gen(), return_siblings=False)
    trajectories, _ = run_search(chosen_only, ScriptedBackend(tree_script(final_depth=3)))
    assert len(trajectories) == 2


# ---- A* ----------------------------------------------------------------------------------------

def test_a_star_pops_the_lowest_f_and_stops_at_the_first_complete_solution():
    backend = ScriptedBackend(tree_script(final_depth=3))
    # f(a) = 1 - r. Root -> <0> 0.9 (f .1), <1> 0.5 (f .5). Pop <0> -> <0.0> .2 (f .1+.8=.9),
    # <0.1> .3 (f .1+.7=.8). Next pop: <1> (f .5) -> <1.0> .95 (f .5+.05=.55), <1.1> .1.
    # Next pop: <1.0> (f .55), expanded into finished <1.0.0> .9 (f=.5*(.5+.05)... ) -> popped -> done.
    verifier = label_scores({"0": 0.9, "1": 0.5, "0.0": 0.2, "0.1": 0.3, "1.0": 0.95, "1.1": 0.1,
                             "1.0.0": 0.9, "1.0.1": 0.2}, default=0.0)
    astar = AStarDecoding(verifier, n=10, k=2, generator=gen())
    trajectories, ctx = run_search(astar, backend)
    assert [path_of(c.prompt) for c in backend.calls] == ["", "0", "1", "1/1.0"]
    assert len(trajectories) == 1 and trajectories[0].steps[-1].startswith("<1.0.0>")
    assert ctx.info["expansions"] == 4 and ctx.info["found"]


def test_a_star_priority():
    node = Node("x", ["a", "b", "c"], [0.8, 0.6, 0.9])
    assert priority(node) == pytest.approx((0.2 + 0.4) / 2 + 0.1)
    assert priority(node, g_weight=0.0) == pytest.approx(0.1)


def test_a_star_out_of_budget_without_a_complete_solution_returns_none(grader):
    """No complete state when the budget runs out: no solution (its own outcome), never the partial
    one passed off as an answer."""
    backend = ScriptedBackend(tree_script(final_depth=9))
    astar = AStarDecoding(label_scores({}), n=2, k=2, generator=gen())
    trajectories, ctx = run_search(astar, backend)
    assert trajectories == [] and ctx.info["expansions"] == 2 and not ctx.info["found"] and ctx.info["partial"]
    import ttscale

    outcome = ttscale.run(Strategy(astar, BestScore()), [PROBLEM], ScriptedBackend(tree_script(final_depth=9)),
                          grader=grader, progress=False)
    (result,) = outcome.results
    assert result.info["no_finished_solution"] and result.answer is None and result.correct is False
    assert outcome.summary["no_finished_solution"] == 1 and outcome.summary["no_candidates"] == 1


# ---- value-guided block search and REBASE ------------------------------------------------------

def test_block_search_keeps_n_over_beam_width_beams_chosen_over_all_children():
    """value-guided-search: n=4, beam_width=2 keeps 2 beams with 2 children each; the best children over
    ALL parents fill the slots (both may come from one parent); only kept beams form the final pool."""
    def script(prompt, params, i):  # 7 words: cut to a 4-token block; the fourth block finishes
        depth = len(STEP.findall(prompt))
        return f"<{depth}.{i}> w w w w w w " if depth < 3 else f"<{depth}.{i}> \\boxed{{{i % 2}}}"
    values = {"0.1": 0.9, "0.3": 0.8, "0.1/1.0": 0.9, "0.1/1.1": 0.85, "0.3/1.0": 0.2, "0.3/1.1": 0.3}
    value = ScriptedVerifier(lambda q, steps: values.get("/".join(STEP.findall(" ".join(steps))), 0.1))
    backend = ScriptedBackend(script)
    vgs = ValueGuidedBlockSearch(value, n=4, beam_width=2, block_tokens=4, generator=gen())
    trajectories, ctx = run_search(vgs, backend)
    # round 1: 4 blocks from the empty solution (the 2 beams are one node); then 2 kept beams x 2 each
    assert [c.params.n for c in backend.calls] == [4, 2, 2, 2, 2, 2, 2]
    assert all(c.params.max_tokens == 4 and c.params.stop == () for c in backend.calls)
    assert sorted(path_of(c.prompt) for c in backend.calls[1:3]) == ["0.1", "0.3"]
    # round 3 continues only <0.1>'s children: the best 2 of all 4 were both its own
    assert sorted(path_of(c.prompt) for c in backend.calls[3:5]) == ["0.1/1.0", "0.1/1.1"]
    assert len(trajectories) == 2 and all(t.finish_reason == "stop" for t in trajectories)
    assert ctx.info["beam_width"] == 2 and ctx.info["block_tokens"] == 4 and ctx.info["beams"] == 2


def test_rebase_splits_the_remaining_budget_by_softmax_of_rewards():
    backend = ScriptedBackend(tree_script(final_depth=2))
    verifier = label_scores({"0": 0.9, "1": 0.5, "2": 0.1, "3": 0.1})
    rebase = Rebase(verifier, n=4, generator=gen(), temperature=0.2, rounding="largest_remainder")
    trajectories, ctx = run_search(rebase, backend)
    expected = split_budget(4, softmax_weights([0.9, 0.5, 0.1, 0.1], 0.2))
    assert expected == [3, 1, 0, 0]
    second = {path_of(c.prompt): c.params.n for c in backend.calls[1:]}
    assert second == {"0": 3, "1": 1}  # <2> and <3> get no share and are pruned
    assert len(trajectories) == 4 and ctx.info["depth"] == 2


def test_rebase_by_default_rounds_as_its_reference_code():
    """thu-wyz/rebase: in descending reward, ceil(W_left * e_i / S_left). Weights e = exp(r / 0.2) for
    r = 0.9, 0.5, 0.1, 0.1 are 90.0, 12.2, 1.6, 1.6 (S = 105.5): <0> takes ceil(4 * 90 / 105.5) = 4."""
    from ttscale.strategies.step.resampling import ceil_shares

    assert ceil_shares(4, softmax_weights([0.9, 0.5, 0.1, 0.1], 0.2)) == [4, 0, 0, 0]
    # 7 * 0.4 = 2.8 -> 3 (4 left of 0.6); 4 * 0.3 / 0.6 = 2 -> 2 (2 left of 0.3); 2 * 0.2 / 0.3 -> 2; none left
    assert ceil_shares(7, [0.4, 0.3, 0.2, 0.1]) == [3, 2, 2, 0]
    assert sum(ceil_shares(9, softmax_weights([0.2, 0.9, 0.6], 0.5))) == 9
    backend = ScriptedBackend(tree_script(final_depth=2))
    verifier = label_scores({"0": 0.9, "1": 0.5, "2": 0.1, "3": 0.1})
    run_search(Rebase(verifier, n=4, generator=gen(), temperature=0.2), backend)
    assert {path_of(c.prompt): c.params.n for c in backend.calls[1:]} == {"0": 4}


# ---- composed with selection, through Strategy --------------------------------------------------

def test_step_strategies_compose_with_final_selection(grader):
    backend = ScriptedBackend(tree_script(final_depth=2, answer=lambda path, i: "5" if path == "3" else "2"))
    verifier = ScriptedVerifier(lambda q, steps: 0.9 if "\\boxed{5}" in steps[-1] else 0.4)
    for select, expected in ((BestScore(), "5"), (WeightedVote("score"), "2")):
        strategy = Strategy(Rebase(verifier, n=4, generator=gen()), select, None, name="rebase")
        ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
        result = asyncio.run(strategy.solve(PROBLEM, ctx))
        assert result.answer == expected, select
        assert len(result.candidates) >= 4 and all(c.score is not None for c in result.candidates)


def test_usage_counts_every_generated_token_and_verifier_pass():
    backend = ScriptedBackend(tree_script(final_depth=3))
    verifier = label_scores({})
    beam = BeamSearch(verifier, n=4, beam_width=2, generator=gen())
    _, ctx = run_search(beam, backend)
    assert ctx.usage.backend_calls == len(backend.calls)
    assert ctx.usage.completion_tokens == sum(c.num_tokens for call in backend.calls for c in call.completions)
    assert ctx.usage.verifier_calls == len(verifier.seen) == sum(len(call.completions) for call in backend.calls)


# ---- entropic particle filtering (ePF: its_hub's EntropicParticleFiltering) ----------------------------

def test_entropic_annealing_temperature_by_hand():
    from ttscale.strategies.step.resampling import annealing_temperature

    collapsed = [0.97, 0.01, 0.01, 0.01]  # ESS = 1 / 0.9412 = 1.0625: ESS / N = 0.2656 < 0.5
    ratio = 1 / (0.97 ** 2 + 3 * 0.01 ** 2) / 4
    # step 1 of 10 (progress 0.1 < early phase 0.5): ess rule N / ESS * (1 - progress)
    assert annealing_temperature(collapsed, 1, 10, "ess") == pytest.approx(0.9 / ratio)
    entropy = -(0.97 * np.log(0.97) + 3 * 0.01 * np.log(0.01)) / np.log(4)  # normalised: 0.121
    assert annealing_temperature(collapsed, 1, 10, "entropy") == pytest.approx(1 / (entropy + (1 - entropy) * 0.1))
    assert annealing_temperature(collapsed, 1, 10, "base") == pytest.approx(2 - 0.1)
    assert annealing_temperature(collapsed, 6, 10, "ess") == 1.0  # past the early phase: no annealing
    assert annealing_temperature([0.25] * 4, 1, 10, "ess") == 1.0  # diverse weights: none needed
    assert annealing_temperature([0.6, 0.4], 1, 10, "ess") == 1.0  # ESS / N = 0.96
    assert annealing_temperature(collapsed, 1, 10, "none") == 1.0
    assert annealing_temperature([1.0], 1, 10, "ess") == 1.0  # one particle
    assert annealing_temperature([0.45, 0.45, 0.1], 4, 10, "ess") == 1.0  # ESS / N = 0.79
    with pytest.raises(ValueError, match="choose one of: none, ess, entropy, base"):
        annealing_temperature(collapsed, 1, 10, "nope")


def test_entropic_particle_filtering_flattens_a_collapsed_first_round(grader):
    backend = ScriptedBackend(tree_script(final_depth=2, answer=lambda path, i: path))
    verifier = label_scores({"2": 0.99}, default=0.01)
    pf = ParticleFiltering(verifier, n=4, generator=gen(), resampling="systematic", annealing="ess")
    ctx = Context(problem=PROBLEM, backend=backend, grader=grader)
    particles = asyncio.run(pf.generator.expand(ctx, Node("0"), 4, "k"))
    asyncio.run(score_nodes(verifier, PROBLEM, particles, ctx, whole=True))
    plain = pf.weights(particles)  # PF: <2> holds 0.9997 of the weight
    weights, anneal = pf.annealed_weights(particles, 1)
    ess = 1 / np.sum(np.clip(plain, 1e-7, 1 - 1e-7) ** 2)
    assert anneal == pytest.approx(4 / ess * (1 - 1 / 6))  # step 1 of max_steps 6: 3.33
    logit = np.log(0.99 / 0.01)
    good = np.exp(2 * logit / anneal)  # logit(.99) - logit(.01), tempered by the annealing temperature
    assert weights[2] == pytest.approx(good / (good + 3)) and 0.8 < weights[2] < 0.9
    trajectories, ctx = run_search(pf, ScriptedBackend(tree_script(final_depth=2, answer=lambda path, i: path)))
    assert ctx.info["annealed_rounds"] == 1 and len(trajectories) == 4  # round 2: even weights, none
    assert ParticleFiltering(verifier, n=4, generator=gen()).annealing == "none"  # the paper's PF by default
