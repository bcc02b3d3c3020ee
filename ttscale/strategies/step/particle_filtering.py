"""Particle filtering (Puri et al. 2025, "A Probabilistic Inference Approach to Inference-Time Scaling
of LLMs using Particle-Based Monte Carlo Methods").

    particles <- N empty partial solutions
    repeat until every particle is finished (or max_steps):
        every unfinished particle takes one step                      (one batched round)
        r_i <- the verifier's reward of particle i                    (finished: last reward kept)
               aggregation="model" (default, the paper's and its_hub's): the whole partial solution
               judged as one step; last | min | prod | mean: its per-step scores aggregated
        w   <- softmax(logit(clip(r)) / T)
        if ESS(w) < ess_threshold * N (always, when no threshold):
            particles <- N draws by w (multinomial | systematic | stratified);
            with resample_finished=False only unfinished particles are redrawn, among themselves
    return the particles, scored by their last reward (select: best_score | weighted_vote)

Copies of one particle are extended in one backend call with n = copies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ttscale.strategies.context import Context, derive_seed
from ttscale.strategies.step.resampling import MACHINE_EPSILON, effective_sample_size, resample, softmax_logit_weights
from ttscale.strategies.step.tree import Node, StepGenerator, score_nodes
from ttscale.types import Problem, Trajectory


async def step_particles(gen: StepGenerator, verifier, problem: Problem, ctx: Context,
                         particles: list[Node], key: str, whole: bool = False) -> list[Node]:
    """Every unfinished particle takes one step; copies of one node share a call; new steps are scored."""
    copies = Counter(p.id for p in particles if not p.finished)
    by_id = {p.id: p for p in particles}
    children = await gen.expand_all(ctx, [(by_id[i], k) for i, k in copies.items()], key)
    fresh = {i: iter(kids) for i, kids in zip(copies, children)}
    stepped = [p if p.finished else next(fresh[p.id]) for p in particles]
    await score_nodes(verifier, problem, [p for p in stepped if p.id not in by_id], ctx.usage, whole)
    return stepped


def resample_particles(particles: list[Node], weights: np.ndarray, scheme: str, finished_too: bool,
                       rng: np.random.Generator) -> list[Node]:
    """N particles drawn by weight; finished particles stay put unless they take part."""
    pool = [i for i, p in enumerate(particles) if finished_too or not p.finished]
    if not pool:
        return particles
    w = weights[pool]
    drawn = iter(pool[j] for j in resample(w / w.sum(), len(pool), scheme, rng))
    return [particles[next(drawn)] if (finished_too or not p.finished) else p for p in particles]


@dataclass
class ParticleFiltering:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    needs_probability_scores: ClassVar[bool] = True  # particle weights take logit(r): rewards must be in [0, 1]
    verifier: object
    n: int = 8  # particles
    # the reference's steps: at most 40, the last capped like the others (a particle open there ends unfinished)
    generator: StepGenerator = field(default_factory=lambda: StepGenerator(max_steps=40, last_step="step"))
    temperature: float = field(default=1.0, metadata={"config": "weight_temperature"})  # of softmax(logit(r) / T)  # of the softmax over logit rewards
    resampling: str = "multinomial"
    # rewards are clipped to [reward_clip, 1 - reward_clip] before logit: the authors' machine epsilon
    # (its_hub: 1e-7; ttscale before #37: 1e-4, which weighs 0.99999 and 0.9999 alike)
    reward_clip: float = MACHINE_EPSILON
    ess_threshold: float | None = None  # resample only when ESS < threshold * N
    resample_finished: bool = True
    aggregation: str = "model"  # the reward: "model" = whole partial solution as one step (reference)

    def __post_init__(self) -> None:
        if not 0 < self.reward_clip < 0.5:
            raise ValueError(f"reward_clip={self.reward_clip!r} must be in (0, 0.5)")

    def weights(self, particles: list[Node]) -> np.ndarray:
        return softmax_logit_weights([p.value(self.aggregation) for p in particles], self.temperature, self.reward_clip)

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        rng = np.random.default_rng(derive_seed(ctx.run_seed, problem.id, "particle_filtering"))
        particles = [Node("0")] * self.n
        rounds = resamplings = 0
        while not all(p.finished for p in particles):
            particles = await step_particles(self.generator, self.verifier, problem, ctx, particles, f"pf/{rounds}",
                                             whole=self.aggregation == "model")
            rounds += 1
            weights = self.weights(particles)
            ess = effective_sample_size(weights)
            before = [p.id for p in particles]
            rewards = [p.value(self.aggregation) for p in particles]
            if self.ess_threshold is None or ess < self.ess_threshold * self.n:
                particles = resample_particles(particles, weights, self.resampling, self.resample_finished, rng)
                resamplings += 1
                ctx.decide("resampled", round=rounds, nodes=before, rewards=rewards, weights=weights, ess=ess,
                           drawn=[p.id for p in particles])
            else:
                ctx.decide("kept", round=rounds, nodes=before, rewards=rewards, weights=weights, ess=ess)
        ctx.info.update(particles=self.n, rounds=rounds, resamplings=resamplings)
        return [p.trajectory(p.value(self.aggregation)) for p in particles]


METHODS = {"particle_filtering": ParticleFiltering}  # strategy.search=particle_filtering
