"""phi-Decoding (Xu et al. 2025, "phi-Decoding: Adaptive Foresight Sampling for Balanced
Inference-Time Exploration and Exploitation"), as the authors' code runs it.

    beams = M copies of the empty solution, values V = 0
    for step t = 1 .. T_max:
        candidates = N one-step continuations of each beam                      (M x N)
        in-width:  keep a candidate if its step's mean logprob > mean - sigma * std over all
                   candidates (refill to M from the rest by softmax(mean logprob / tau))
        foresight: roll each kept candidate out to the end of the solution (one sample);
                   value = the rollout's mean token logprob, advantage = value - V[its beam]
        select M new beams without replacement from the candidates with advantage > 0:
                   p = (softmax(cluster share of its rollout) + softmax(advantage / tau)) / 2,
                   clusters = k-means (K) over TF-IDF vectors of the rollouts' texts;
                   fewer than M with advantage > 0: p = softmax(advantage / tau) over all kept
        in-depth:  stop once a cluster holds more than delta of the rollouts (and t >= T_min),
                   or once the M selected steps are identical (t > T_min)
    complete each beam once; pick one: the larger of 2 clusters of the completions (advantage > 0),
    sampled within it by softmax(advantage / tau)  (none with advantage > 0: softmax(-advantage / tau))

Defaults are the code's: M 4, N 4, T_min 4, T_max 8, K 3, delta 0.7, sigma 1, tau 0.1 (the paper
writes 0.6 for its two softmax temperatures; the code uses 0.1 and samples steps at 0.6), foresight
rollouts and completions at temperature 1 (vLLM's default, which the code leaves), steps of one line.
Step likelihoods (in-width pruning) are the PROCESSED logprobs of the sampled steps, at their
temperature 0.6, as the code's vLLM (V0) reported them: the CLI starts vLLM with
`logprobs_mode=processed_logprobs` for this search (rollouts at temperature 1 are the same either way).
The code's final pick indexes the first cluster whichever is larger (a bug fixed in its refactor):
the larger cluster is used here (on a tie, the second, as both versions do). The code never marks a
beam finished; here a step with the answer (or end-of-sequence) finishes it, it is not expanded
again and stays a candidate whose rollout is empty: value 0 (`finished_value: zero`, the code's
guarded mean over no tokens; vLLM would give it its end-of-sequence token's logprob, near 0) or
its last step's mean logprob (`step`). `final_pick: all` returns every beam's completion to the
configured selection.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ttscale.strategies.context import Context, derive_seed
from ttscale.strategies.step.tree import Node, StepGenerator
from ttscale.types import Problem, Trajectory

FINISHED_VALUES = ("zero", "step")
FINAL_PICKS = ("phi", "all")


def softmax(values, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(values, dtype=float) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def width_keep(step_logps: list[float], sigma: float) -> list[int]:
    """In-width pruning: the candidates whose step mean logprob is above mean - sigma * std."""
    mean, std = float(np.mean(step_logps)), float(np.std(step_logps))
    return [i for i, v in enumerate(step_logps) if v > mean - sigma * std]


def cluster_labels(texts: list[str], k: int, seed: int) -> list[int] | None:
    """k-means over TF-IDF vectors of the texts (scikit-learn, as the reference); None when they
    cannot be clustered (fewer texts than clusters, no words): the caller falls back as the code does."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(texts) < k:
        return None
    try:
        vectors = TfidfVectorizer().fit_transform(texts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct texts than clusters
            return [int(x) for x in KMeans(n_clusters=k, n_init="auto", random_state=seed).fit_predict(vectors)]
    except ValueError:  # an empty vocabulary
        return None


def selection_weights(adv: list[float], labels: list[int], k: int, tau: float) -> np.ndarray:
    """The mean of softmax(each rollout's cluster share) and softmax(advantage / tau)."""
    shares = [labels.count(c) / len(labels) for c in range(k)]
    p = (softmax([shares[label] for label in labels]) + softmax(adv, tau)) / 2
    return p / p.sum()


def mean_logprob(total: float | None, tokens: int) -> float:
    if total is None:
        raise ValueError("phi-decoding needs the sampled tokens' logprobs, and the backend returned none")
    return total / (tokens + 1e-8)  # the code's guard: an empty rollout's value is 0


@dataclass
class PhiDecoding:
    needs_generator = True  # given the step generator (steps of strategy.step_delimiter), not a verifier
    logprobs_mode = "processed_logprobs"  # the engine mode this search needs (the CLI starts the engine so)

    generator: StepGenerator
    n: int = 4  # M: beams kept (step_beam_size)
    rollouts: int = 4  # N: candidate steps per beam (num_rollout)
    min_steps: int = 4  # T_min (least_foresight_num)
    max_steps: int = field(default=8, metadata={"config": "foresight_steps"})  # T_max (num_foresight)
    clusters: int = 3  # K
    delta: float = 0.7  # in-depth pruning: the largest cluster's share that stops foresight
    sigma: float = 1.0  # in-width pruning
    tau: float = field(default=0.1, metadata={"config": "phi_tau"})  # softmax temperature of advantages
    foresight_temperature: float = 1.0
    finished_value: str = "zero"
    final_pick: str = "phi"

    def __post_init__(self) -> None:
        for key in ("n", "rollouts", "max_steps", "clusters"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")
        if not 0 < self.delta <= 1 or self.tau <= 0 or self.sigma < 0:
            raise ValueError("delta must be in (0, 1], phi_tau > 0 and sigma >= 0")
        if self.finished_value not in FINISHED_VALUES:
            raise ValueError(f"finished_value={self.finished_value!r}; choose one of: {', '.join(FINISHED_VALUES)}")
        if self.final_pick not in FINAL_PICKS:
            raise ValueError(f"final_pick={self.final_pick!r}; choose one of: {', '.join(FINAL_PICKS)}")
        if self.generator.params.logprobs is None:
            self.generator = replace(self.generator, params=replace(self.generator.params, logprobs=0))

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        ctx.require_logprobs_mode(self.logprobs_mode, "phi-decoding (its in-width pruning, as the reference)")
        rng = np.random.default_rng(derive_seed(ctx.run_seed, problem.id, "phi"))
        seed = derive_seed(ctx.run_seed, problem.id, "phi/kmeans")
        beams, values = [Node(str(i)) for i in range(self.n)], [0.0] * self.n
        stop_foresight, steps, pruned, stopped_early = False, 0, 0, False
        for t in range(self.max_steps):
            if all(b.finished for b in beams):
                break
            steps = t + 1
            expanded = await self.generator.expand_all(ctx, [(b, self.rollouts) for b in beams], key=f"step{t}")
            cands = [(j, c) for j, children in enumerate(expanded) for c in children]
            cands += [(j, b) for j, b in enumerate(beams) if b.finished]  # a finished beam stays a candidate
            keep = self._width(cands, rng)
            pruned += len(cands) - len(keep)
            rolled = await self._foresight(ctx, [cands[i][1] for i in keep], f"foresight{t}")
            adv = [value - values[cands[i][0]] for i, (value, _) in zip(keep, rolled)]
            texts = [text for _, text in rolled]
            chosen, shares = self._select(adv, texts, rng, seed)
            beams = [cands[keep[i]][1] for i in chosen]
            values = [rolled[i][0] for i in chosen]
            if shares is not None and max(shares) > self.delta:
                stop_foresight = True
            if stop_foresight and t + 1 >= self.min_steps:
                stopped_early = t + 1 < self.max_steps
                break
            if len({b.steps[-1].strip() if b.steps else "" for b in beams}) == 1 and t >= self.min_steps:
                stopped_early = t + 1 < self.max_steps
                break
        finals = await self._complete(ctx, beams)
        ctx.info.update({"foresight_steps": steps, "stopped_early": stopped_early, "width_pruned": pruned})
        trajectories = [node.trajectory() for node, _, _ in finals]
        if self.final_pick == "all":
            return trajectories
        pick = self._final_pick([v - values[j] for j, (_, v, _) in enumerate(finals)],
                                [text for _, _, text in finals], rng, seed)
        ctx.info["picked_beam"] = pick
        return [trajectories[pick]]

    def _width(self, cands: list[tuple[int, Node]], rng: np.random.Generator) -> list[int]:
        """In-width pruning, refilled to M from the pruned by softmax(step mean logprob / tau)."""
        logps = [mean_logprob(n.step_logprobs[-1], n.step_tokens[-1]) for _, n in cands]
        keep = width_keep(logps, self.sigma)
        short = min(self.n, len(cands)) - len(keep)
        if short > 0:
            rest = [i for i in range(len(cands)) if i not in keep]
            p = softmax([logps[i] for i in rest], 0.1)  # the code's 0.1
            keep += [rest[i] for i in rng.choice(len(rest), size=short, replace=False, p=p)]
        return sorted(keep)

    async def _foresight(self, ctx: Context, nodes: list[Node], key: str) -> list[tuple[float, str]]:
        """(value, rollout text) of each candidate: its rollout to the end of the solution."""

        async def one(node: Node) -> tuple[float, str]:
            if node.finished:  # nothing left to roll out
                return self._finished_value(node), "" if self.finished_value == "zero" else node.steps[-1]
            _, c = await self.generator.complete(ctx, node, key, self.foresight_temperature)
            return mean_logprob(c.cumulative_logprob, c.num_tokens), c.text

        return list(await asyncio.gather(*(one(n) for n in nodes)))

    def _select(self, adv: list[float], texts: list[str], rng: np.random.Generator, seed: int
                ) -> tuple[list[int], list[float] | None]:
        """M indices into the kept candidates, and the cluster shares when clustering ran."""
        m = min(self.n, len(adv))
        positive = [i for i, (a, text) in enumerate(zip(adv, texts)) if a > 0 and text.strip()]
        if len(positive) >= m:
            labels = cluster_labels([texts[i] for i in positive], self.clusters, seed)
            if labels is not None:
                shares = [labels.count(c) / len(labels) for c in range(self.clusters)]
                p = selection_weights([adv[i] for i in positive], labels, self.clusters, self.tau)
                picked = rng.choice(len(positive), size=m, replace=False, p=p / p.sum())
                return [positive[i] for i in picked], shares
        return list(rng.choice(len(adv), size=m, replace=False, p=softmax(adv, self.tau))), None

    async def _complete(self, ctx: Context, beams: list[Node]) -> list[tuple[Node, float, str]]:
        """Each beam completed once (a finished beam as it is): the solution, its completion's mean
        logprob and the completion's text (empty for a finished beam)."""

        async def one(node: Node) -> tuple[Node, float, str]:
            done, c = await self.generator.complete(ctx, node, "final", self.foresight_temperature)
            if c is None:
                return done, self._finished_value(node), ""
            return done, mean_logprob(c.cumulative_logprob, c.num_tokens), c.text

        return list(await asyncio.gather(*(one(b) for b in beams)))

    def _finished_value(self, node: Node) -> float:
        """The value of a finished node, which has nothing left to roll out (see the module doc)."""
        return 0.0 if self.finished_value == "zero" else mean_logprob(node.step_logprobs[-1], node.step_tokens[-1])

    def _final_pick(self, adv: list[float], texts: list[str], rng: np.random.Generator, seed: int) -> int:
        """The code's pick over the completions (their texts only, not the shared steps)."""
        positive = [i for i, (a, text) in enumerate(zip(adv, texts)) if a > 0 and text.strip()]
        if not positive:
            return int(rng.choice(len(adv), p=softmax([-a for a in adv], self.tau)))
        labels = cluster_labels([texts[i] for i in positive], 2, seed)
        if labels is not None:
            larger = 0 if labels.count(0) > labels.count(1) else 1
            members = [i for i, label in zip(positive, labels) if label == larger]
        else:  # the code falls back to every completion
            members = list(range(len(adv)))
        p = softmax([adv[i] for i in members], self.tau)
        return members[int(rng.choice(len(members), p=p))]


METHODS = {"phi_decoding": PhiDecoding}  # strategy.search=phi_decoding
