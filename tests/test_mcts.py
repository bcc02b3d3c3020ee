"""MCTS over steps on the scripted backend, worked by hand against llm-reasoners' MCTS (see the module doc)."""

import asyncio
import math

import pytest

from test_step_search import PROBLEM, gen, label_scores, path_of, run_search, tree_script
from ttscale.backends.scripted import ScriptedBackend
from ttscale.build import build_strategy
from ttscale.config import group_config
from ttscale.strategies import Context, MissingStatistic
from ttscale.strategies.step import MCTS, Node
from ttscale.strategies.step.mcts import TreeNode
from ttscale.types import Problem

# rewards of each step by its label (tree_script: the third step of a solution is its last, boxed)
REWARDS = {"0": 0.4, "1": 0.6, "1.0": 0.5, "1.1": 0.7, "1.1.0": 0.9, "1.1.1": 0.2,
           "0.0": 0.3, "0.1": 0.8, "0.1.0": 0.1, "0.1.1": 0.95}


def mcts(**kw):
    return MCTS(label_scores(REWARDS, default=0.0), **{"k": 2, "generator": gen(), **kw})


def test_first_iteration_expands_the_root_and_simulates_down_the_highest_reward_to_a_finished_solution():
    backend = ScriptedBackend(tree_script(final_depth=3))
    trajectories, ctx = run_search(mcts(n=1), backend)
    # root -> {<0> .4, <1> .6}: follow <1>, expand it -> {<1.0> .5, <1.1> .7}: follow <1.1>, expand it ->
    # {<1.1.0> .9, <1.1.1> .2}: follow <1.1.0>, finished (boxed): no expansion
    assert [path_of(c.prompt) for c in backend.calls] == ["", "1", "1/1.1"]
    assert [c.params.n for c in backend.calls] == [2, 2, 2]
    (best,) = trajectories
    assert best.steps[-1].startswith("<1.1.0>") and best.text.endswith("\\boxed{2}")
    assert best.score == pytest.approx(0.6 + 0.7 + 0.9)  # cum_reward=sum of the path's rewards, root excluded
    assert ctx.info == {**ctx.info, "iterations": 1, "expansions": 3, "found": True, "tree_nodes": 7}


def test_backup_appends_each_nodes_return_from_itself_down():
    search = mcts()
    root = TreeNode(Node("0"))
    a = TreeNode(Node("0.0"), root, reward=0.5)
    b = TreeNode(Node("0.0.1"), a, reward=0.25)
    search.backup([root, a, b])
    assert root.returns == [0.75] and a.returns == [0.75] and b.returns == [0.25]
    rap = mcts(cum_reward="mean", calc_q="max")  # RAP's GSM8K settings
    rap.backup([root, a, b])
    assert root.returns[-1] == pytest.approx(0.25) and a.returns[-1] == pytest.approx(0.375) and b.returns[-1] == 0.25
    assert rap.q(a) == 0.75 and mcts().q(a) == pytest.approx((0.75 + 0.375) / 2)


def test_uct_and_puct_rules():
    search = mcts(exploration=2.0)
    parent = TreeNode(Node("0"), returns=[1.0, 1.0, 1.0, 1.0])
    unvisited = TreeNode(Node("0.0"), parent, reward=0.3)
    visited = TreeNode(Node("0.1"), parent, reward=0.3, returns=[0.5, 0.7])
    # Q of an unvisited child is its reward; N(c) counts as 1 (max(1, N)), as the reference
    assert search.uct(unvisited) == pytest.approx(0.3 + 2.0 * math.sqrt(math.log(4) / 1))
    assert search.uct(visited) == pytest.approx(0.6 + 2.0 * math.sqrt(math.log(4) / 2))
    visited.prior = 0.25
    assert mcts(exploration=2.0, selection="puct").puct(visited) == pytest.approx(0.6 + 2.0 * 0.25 * 2 / 3)


def test_later_iterations_exploit_until_the_root_has_two_visits_then_explore_the_unvisited_sibling():
    """ln N(root) = 0 after one iteration, so the second iteration follows the best Q down to the
    solution found (no expansion); at the third, w_exp=10 makes the unvisited <0> win UCT."""
    backend = ScriptedBackend(tree_script(final_depth=3))
    trajectories, ctx = run_search(mcts(n=3, exploration=10.0), backend)
    assert [path_of(c.prompt) for c in backend.calls] == ["", "1", "1/1.1", "0", "0/0.1"]
    assert ctx.info["iterations"] == 3 and ctx.info["expansions"] == 5
    (best,) = trajectories  # <0> .4 + <0.1> .8 + <0.1.1> .95 = 2.15 < 2.2 of the first path
    assert best.steps[-1].startswith("<1.1.0>") and best.score == pytest.approx(2.2)
    everything = run_search(mcts(n=3, exploration=10.0, output="all"),
                            ScriptedBackend(tree_script(final_depth=3)))[0]
    assert sorted(round(t.score, 6) for t in everything) == [2.15, 2.2]  # the visited terminal paths only


def test_an_iteration_ends_at_the_depth_limit_and_no_finished_solution_is_no_answer():
    backend = ScriptedBackend(tree_script(final_depth=9))
    search = mcts(n=1, generator=gen(last_step="step"))  # the step at the limit is capped: it cannot finish
    trajectories, ctx = run_search(search, backend)
    depth = search.generator.max_steps  # the root and each node down to the limit are expanded once
    assert trajectories == [] and len(backend.calls) == depth
    assert ctx.info["expansions"] == depth and not ctx.info["found"] and ctx.info["iterations"] == 1


def test_the_budget_n_counts_iterations_and_changes_the_search():
    """#37: at the old defaults (n = 64 expansions, 10 iterations) n never bound. Now n is the
    reference's n_iters: more iterations, more of the tree expanded and visited."""
    sizes = {}
    for n in (4, 16, 64):
        backend = ScriptedBackend(tree_script(final_depth=6))
        _, ctx = run_search(mcts(n=n), backend)
        assert ctx.info["iterations"] == n
        sizes[n] = (ctx.info["expansions"], ctx.info["tree_nodes"])
    assert sizes[4] < sizes[16] < sizes[64], sizes
    assert sizes[64][0] > sizes[16][0] + 10, sizes  # the old budget: 17 expansions at n = 64 and 16 at n = 16


def test_follow_max_takes_the_best_reward_child_at_each_step():
    backend = ScriptedBackend(tree_script(final_depth=3))
    (best,), _ = run_search(mcts(n=3, exploration=10.0, output="follow_max"), backend)
    assert best.steps[-1].startswith("<1.1.0>")  # <1> .6 > <0> .4, then <1.1>, then <1.1.0>


def test_one_instance_serves_concurrent_problems_as_it_serves_each_alone():
    """The runtime shares one search instance across every problem in flight: no per-problem state on it."""
    search = mcts(n=3, exploration=10.0)
    problems = [Problem(id=f"p{i}", question="What is 1+1?", answer="2") for i in range(3)]

    async def both():
        backend = ScriptedBackend(tree_script(final_depth=3), delay=0.001)
        ctxs = [Context(problem=p, backend=backend, grader=None) for p in problems]
        return await asyncio.gather(*(search(p, c) for p, c in zip(problems, ctxs))), ctxs

    together, ctxs = asyncio.run(both())
    alone = [run_search(search, ScriptedBackend(tree_script(final_depth=3)), problem=p)[0] for p in problems]
    assert [[t.text for t in ts] for ts in together] == [[t.text for t in ts] for ts in alone]
    assert [c.info["expansions"] for c in ctxs] == [5, 5, 5]


def test_puct_needs_step_logprobs():
    class NoLogprobs(ScriptedBackend):
        async def generate(self, prompt, params):
            out = await super().generate(prompt, params)
            for c in out.completions:
                c.cumulative_logprob = None
            return out

    with pytest.raises(MissingStatistic, match="selection=puct needs each step's logprob"):
        run_search(mcts(selection="puct"), NoLogprobs(tree_script(final_depth=3)))
    trajectories, _ = run_search(mcts(selection="puct"), ScriptedBackend(tree_script(final_depth=3)))
    assert trajectories and trajectories[0].text.endswith("\\boxed{2}")


def test_config_builds_the_reference_defaults_and_refuses_unknown_choices():
    strategy = build_strategy(group_config("strategy", "mcts"), {"name": "mean_token_prob"})
    search = strategy.search
    assert isinstance(search, MCTS) and (search.n, search.exploration, search.k) == (10, 1.0, 4)
    assert (search.cum_reward, search.calc_q, search.simulate_strategy, search.selection, search.output) == \
        ("sum", "mean", "max", "uct", "max_reward")
    assert search.generator.max_steps == 5  # the reference's depth_limit
    rap = build_strategy({**group_config("strategy", "mcts"), "cum_reward": "mean", "calc_q": "max",
                          "tree_policy": "puct"}, {"name": "mean_token_prob"}).search
    assert (rap.cum_reward, rap.calc_q, rap.selection) == ("mean", "max", "puct")
    from ttscale.build import ConfigError

    with pytest.raises(ConfigError, match="simulate_strategy='best'; choose one of: max, sample, random"):
        build_strategy({**group_config("strategy", "mcts"), "simulate": "best"}, {"name": "mean_token_prob"})


def test_a_path_cut_at_the_depth_limit_or_the_token_budget_is_no_solution():
    """The reference's output takes terminal states only: a node stopped by the depth limit scores -inf."""
    def script(prompt, params, i):  # never ends by itself: every step is open
        return f"<{path_of(prompt).split('/')[-1] + '.' if path_of(prompt) else ''}{i}> step\n\nnext"
    backend = ScriptedBackend(script)
    trajectories, ctx = run_search(mcts(generator=gen(max_steps=2, last_step="step")), backend)
    assert trajectories == [] and not ctx.info["found"] and ctx.info["expansions"] >= 2
