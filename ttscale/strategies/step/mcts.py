"""Monte Carlo tree search over reasoning steps, as llm-reasoners' MCTS (reasoners/algorithm/mcts.py,
the search of RAP: Hao et al. 2023, "Reasoning with Language Model is Planning with World Model").

A tree node is a partial solution. Expanding it samples k next steps (the actions) in one call; the
verifier gives each new step a reward r (the reference's fast_reward and reward are the same number
here: a step's "state" is the step itself, so nothing more is known once it is taken).

    root <- the empty solution
    for n iterations (the reference's n_iters):
        SELECT     path <- [root]; while the last node has children and is not terminal:
                       go to the child with the largest UCT(c) = Q(c) + w_exp * sqrt(ln N(parent) / max(1, N(c)))
                       (N: the node's visits; Q: calc_q of its returns, or its reward while unvisited)
        EXPAND     if the leaf is not terminal: sample k next steps from it, score each step
        SIMULATE   from the leaf, go to the child of the highest reward (simulate=max), expand it, ...
                   until a terminal node: a finished solution or the depth limit (strategy.max_steps)
        BACKUP     bottom up, each node on the path records cum_reward(rewards of it and of the nodes
                   below it on the path) as one more return (its visit count is its number of returns)
    output (max_reward): among visited nodes, the path to a solution (a node that ended by itself, not
            at the depth limit or the token budget) with the largest cum_reward of its rewards (the
            root's excluded); NO solution if none was reached

Budget `n` is iterations, what the reference counts (n_iters): an iteration expands its leaf and every
node its simulation passes through (one call sampling k next steps each, at most max_steps of them), or
nothing when it selects a finished node. (An earlier version counted expansions with 10 iterations at
most: the iteration cap bound first, so n = 16, 64 or 1000 ran the same search.) Defaults are the MCTS
class's (w_exp 1, n_iters 10, cum_reward sum, calc_q mean, simulate max, output max_reward);
RAP's GSM8K run sets cum_reward=mean and calc_q=max (conf/strategy/mcts.yaml says how). Options
beyond the reference: `selection=puct` (AlphaZero's rule, prior = softmax over siblings of the step's
mean token logprob, as the LLM tree searches of TS-LLM and OpenR), and `output=all` (every visited
terminal path to strategy.select, scored by its cum_reward).

Not reproduced from RAP's GSM8K run: its answer is a vote over the tree's terminal nodes weighted by
edge rewards (MCTSAggregation; `tree_output=all` with strategy.select=weighted_vote is the closest
here), its last action at the depth limit is one greedy step forced to answer (here: the last step
is k samples generated to the end, strategy.last_step=complete), and it drops duplicate actions.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ttscale.strategies.context import Context
from ttscale.strategies.select.base import MissingStatistic
from ttscale.strategies.step.resampling import softmax_weights
from ttscale.strategies.step.tree import Node, StepGenerator, score_nodes
from ttscale.types import Problem, Trajectory

REDUCERS = {"sum": sum, "mean": lambda xs: sum(xs) / len(xs), "max": max}


@dataclass(eq=False)
class TreeNode:
    """A partial solution in the tree, with its reward and the returns backed up through it."""

    node: Node
    parent: TreeNode | None = None
    reward: float = 0.0  # the verifier's score of its newest step (the root: 0, as the reference)
    prior: float = 1.0  # selection=puct: P(step | parent), normalised among its siblings
    children: list[TreeNode] | None = None  # None: not expanded yet
    returns: list[float] = field(default_factory=list)  # the reference's cum_rewards
    visited: bool = False  # on a selected or simulated path (the reference's state is not None)

    @property
    def visits(self) -> int:
        return len(self.returns)

    @property
    def terminal(self) -> bool:
        """Where the search stops: the reference's terminal state or its depth limit (a finished node:
        end of sequence, the answer marker, the token budget or max_steps)."""
        return self.node.finished

    @property
    def solution(self) -> bool:
        """What the output may return: the reference's is_terminal, a solution that ended by itself
        (end of sequence, a stop string or the answer marker), never one cut by the token budget or the
        depth limit (the reference scores those -inf)."""
        return self.node.finished and self.node.finish_reason == "stop"


@dataclass
class _Run:
    """One problem's search state."""

    problem: Problem
    ctx: Context
    rng: random.Random
    expansions: int = 0


@dataclass
class MCTS:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    verifier: object
    n: int = 10  # iterations (the reference's n_iters)
    k: int = 4  # next steps sampled per expansion (RAP's n_action)
    generator: StepGenerator = field(default_factory=StepGenerator)
    exploration: float = 1.0  # the reference's w_exp
    cum_reward: str = "sum"  # a path's return: sum (the class's default) | mean (RAP's GSM8K) | max
    calc_q: str = "mean"  # Q from a node's returns: mean (the class's default) | max (RAP's GSM8K) | sum
    # the child a simulation follows, by reward: max | sample (in proportion) | random
    simulate_strategy: str = field(default="max", metadata={"config": "simulate"})
    # uct (the reference) | puct (prior: the step's mean token probability)
    selection: str = field(default="uct", metadata={"config": "tree_policy"})
    # max_reward (the reference) | follow_max | all (every visited terminal path, to strategy.select)
    output: str = field(default="max_reward", metadata={"config": "tree_output"})

    def __post_init__(self) -> None:
        choices = {"cum_reward": tuple(REDUCERS), "calc_q": tuple(REDUCERS), "simulate_strategy": ("max", "sample", "random"),
                   "selection": ("uct", "puct"), "output": ("max_reward", "follow_max", "all")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r}; choose one of: {', '.join(allowed)}")
        if self.n < 1 or self.k < 1:
            raise ValueError(f"n (iterations) and k must be >= 1 (got {self.n}, {self.k})")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        """One problem's search (the instance is shared by every problem in flight: state lives in `run`)."""
        run = _Run(problem, ctx, random.Random(f"{ctx.run_seed}/{problem.id}/mcts"))
        root = TreeNode(Node("0"), visited=True)
        for iteration in range(self.n):
            path = self.select(root)
            ctx.decide("selected", iteration=iteration, nodes=[t.node.id for t in path[1:]],
                       values=[self.q(t) if t.visits else None for t in path[1:]])
            if not path[-1].terminal:
                await self.expand(run, path[-1])
                chosen = len(path)
                await self.simulate(run, path)
                ctx.decide("simulated", iteration=iteration, nodes=[t.node.id for t in path[chosen:]],
                           rewards=[t.reward for t in path[chosen:]])
            self.backup(path)
            ctx.decide("backed_up", iteration=iteration, nodes=[t.node.id for t in path],
                       returns=[t.returns[-1] for t in path])
        best = self.best_paths(run, root)
        ctx.decide("output", rule=self.output, paths=[[t.node.id for t in p[1:]] for p in best],
                   returns=[self.path_return(p) for p in best])
        ctx.info.update(iterations=self.n, expansions=run.expansions, k=self.k, found=bool(best),
                        tree_nodes=_count(root))
        return [self.trajectory(path) for path in best]

    # ---- the four phases ---------------------------------------------------------------------------

    def select(self, node: TreeNode) -> list[TreeNode]:
        path = [node]
        while node.children and not node.terminal:
            node = max(node.children, key=self.uct if self.selection == "uct" else self.puct)
            # an unvisited node selected at the depth limit is not expanded, so (as in the reference,
            # where its state stays unknown) it does not become visited: it backs up its reward only
            node.visited = node.visited or node.node.depth < self.generator.max_steps
            path.append(node)
        return path

    async def expand(self, run: _Run, node: TreeNode) -> None:
        """k next steps of `node`, each scored by the verifier (one expansion)."""
        if node.terminal or node.children is not None:
            return
        run.expansions += 1
        children = await self.generator.expand(run.ctx, node.node, self.k, "mcts")
        await score_nodes(self.verifier, run.problem, children, run.ctx)
        node.children = [TreeNode(c, node, reward=c.step_scores[-1]) for c in children]
        run.ctx.decide("expanded", node=node.node.id, children=[c.id for c in children],
                       rewards=[c.reward for c in node.children])
        if self.selection == "puct":
            for child, p in zip(node.children, _priors(children)):
                child.prior = p

    async def simulate(self, run: _Run, path: list[TreeNode]) -> None:
        node = path[-1]
        while node.children and not node.terminal:
            node = node.children[self._simulate_choice(run.rng, [c.reward for c in node.children])]
            node.visited = True
            path.append(node)
            await self.expand(run, node)

    def backup(self, path: list[TreeNode]) -> None:
        rewards: list[float] = []
        for node in reversed(path):
            rewards.append(node.reward)
            node.returns.append(REDUCERS[self.cum_reward](rewards[::-1]))

    # ---- selection rules ---------------------------------------------------------------------------

    def q(self, node: TreeNode) -> float:
        return REDUCERS[self.calc_q](node.returns) if node.returns else node.reward

    def uct(self, node: TreeNode) -> float:
        parent_visits = node.parent.visits if node.parent else 1
        return self.q(node) + self.exploration * math.sqrt(math.log(max(parent_visits, 1)) / max(1, node.visits))

    def puct(self, node: TreeNode) -> float:
        parent_visits = node.parent.visits if node.parent else 1
        return self.q(node) + self.exploration * node.prior * math.sqrt(parent_visits) / (1 + node.visits)

    def _simulate_choice(self, rng: random.Random, rewards: list[float]) -> int:
        if self.simulate_strategy == "max":
            return int(np.argmax(rewards))  # the first of equal rewards, as np.argmax in the reference
        if self.simulate_strategy == "random":
            return rng.randrange(len(rewards))
        weights = [max(r, 0.0) for r in rewards]  # the reference draws with p = rewards (probabilities)
        if not sum(weights):
            return rng.randrange(len(rewards))
        return rng.choices(range(len(rewards)), weights=weights)[0]

    # ---- output ------------------------------------------------------------------------------------

    def path_return(self, path: list[TreeNode]) -> float:
        return REDUCERS[self.cum_reward]([n.reward for n in path[1:]])

    def terminal_paths(self, root: TreeNode) -> list[list[TreeNode]]:
        """Every path from the root to a visited solution, through visited nodes only."""
        out, stack = [], [[root]]
        while stack:
            path = stack.pop()
            node = path[-1]
            if node.terminal:
                if node.solution:
                    out.append(path)
                continue
            stack += [[*path, c] for c in reversed(node.children or []) if c.visited]
        return out

    def best_paths(self, run: _Run, root: TreeNode) -> list[list[TreeNode]]:
        if self.output == "follow_max":  # the child of the largest reward at each step, from the root
            path = [root]
            while not path[-1].terminal and any(c.visited for c in path[-1].children or []):
                path.append(max((c for c in path[-1].children if c.visited), key=lambda c: c.reward))
            if not path[-1].solution:  # a dead end: no solution (the reference returns the partial one)
                run.ctx.info["partial"] = path[-1].node.text[-2000:]
                return []
            return [path]
        paths = self.terminal_paths(root)
        if self.output == "all":
            return paths
        return [max(paths, key=self.path_return)] if paths else []

    def trajectory(self, path: list[TreeNode]) -> Trajectory:
        leaf = path[-1]
        return leaf.node.trajectory(self.path_return(path))


def _priors(children: list[Node]) -> list[float]:
    """P(step) among siblings: softmax of each step's mean token logprob (length-normalised)."""
    means = []
    for c in children:
        logprob, tokens = c.step_logprobs[-1], c.step_tokens[-1]
        if logprob is None:
            raise MissingStatistic("mcts selection=puct needs each step's logprob; the backend returned none")
        means.append(logprob / max(tokens, 1))
    return list(softmax_weights(means))


def _count(node: TreeNode) -> int:
    return 1 + sum(_count(c) for c in node.children or [])


METHODS = {"mcts": MCTS}  # strategy.search=mcts
