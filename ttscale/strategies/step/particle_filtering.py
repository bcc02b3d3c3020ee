"""Particle filtering (Puri et al. 2025, "A Probabilistic Inference Approach to Inference-Time Scaling
of LLMs using Particle-Based Monte Carlo Methods").

    particles <- N empty partial solutions
    repeat until every particle is finished (or max_steps):
        every unfinished particle takes one step                      (one batched round)
        r_i <- the verifier's reward of particle i                    (finished: last reward kept)
               aggregation="model" (default, the paper's and its_hub's): the whole partial solution
               judged as one step; last | min | prod | mean: its per-step scores aggregated
        w   <- softmax(logit(clip(r)) / T)
               annealing (ePF's entropic annealing, off by default = PF): when ESS(w) / N < 0.5 in the
               first half of max_steps, w <- softmax(logit(clip(r)) / (T * T_anneal)), T_anneal >= 1
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
from ttscale.strategies.step.resampling import (ANNEALING, MACHINE_EPSILON, annealing_temperature,
                                                effective_sample_size, resample, softmax_logit_weights)
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
    await score_nodes(verifier, problem, [p for p in stepped if p.id not in by_id], ctx, whole)
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


RNG_KEY = "particle_filtering"  # the resampling draws' seed: (run seed, problem id, this key)


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
    # entropic particle filtering (ePF, its_hub's EntropicParticleFiltering): none (PF, the paper's) |
    # ess (ePF's default rule) | entropy | base; its trigger and shape as the reference's defaults.
    # (ePF's look-ahead modulation is not here: its reference code raises NotImplementedError.)
    annealing: str = "none"
    anneal_ess_threshold: float = 0.5  # anneal only while ESS / N is below this
    anneal_early_phase: float = 0.5  # ... and step / max_steps is below this
    anneal_value_max: float = 2.0  # annealing=base: T = max(1, value_max - progress)

    def __post_init__(self) -> None:
        if not 0 < self.reward_clip < 0.5:
            raise ValueError(f"reward_clip={self.reward_clip!r} must be in (0, 0.5)")
        if self.annealing not in ANNEALING:
            raise ValueError(f"annealing={self.annealing!r}; choose one of: {', '.join(ANNEALING)}")

    def weights(self, particles: list[Node]) -> np.ndarray:
        return softmax_logit_weights([p.value(self.aggregation) for p in particles], self.temperature, self.reward_clip)

    def annealed_weights(self, particles: list[Node], step: int) -> tuple[np.ndarray, float]:
        """The weights after round `step` (1 after the first step) and the annealing temperature
        applied on top of T (1: none; the reference tempers softmax(logit(r)) once more when the
        weights have collapsed early)."""
        weights = self.weights(particles)
        anneal = annealing_temperature(weights, step, self.generator.max_steps, self.annealing,
                                       self.anneal_ess_threshold, self.anneal_early_phase, self.anneal_value_max)
        if anneal == 1.0:
            return weights, anneal
        rewards = [p.value(self.aggregation) for p in particles]
        return softmax_logit_weights(rewards, self.temperature * anneal, self.reward_clip), anneal

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        rng = np.random.default_rng(derive_seed(ctx.run_seed, problem.id, RNG_KEY))
        ctx.decide("setup", n=self.n, resampling=self.resampling, weight_temperature=self.temperature,
                   reward_clip=self.reward_clip, ess_threshold=self.ess_threshold,
                   resample_finished=self.resample_finished, annealing=self.annealing,
                   anneal_ess_threshold=self.anneal_ess_threshold, anneal_early_phase=self.anneal_early_phase,
                   anneal_value_max=self.anneal_value_max, max_steps=self.generator.max_steps, rng_key=RNG_KEY)
        particles = [Node("0")] * self.n
        rounds = resamplings = annealed = 0
        while not all(p.finished for p in particles):
            particles = await step_particles(self.generator, self.verifier, problem, ctx, particles, f"pf/{rounds}",
                                             whole=self.aggregation == "model")
            rounds += 1
            weights, anneal = self.annealed_weights(particles, rounds)
            annealed += anneal > 1.0
            ess = effective_sample_size(weights)
            before = [p.id for p in particles]
            rewards = [p.value(self.aggregation) for p in particles]
            finished = [p.finished for p in particles]
            if self.ess_threshold is None or ess < self.ess_threshold * self.n:
                particles = resample_particles(particles, weights, self.resampling, self.resample_finished, rng)
                resamplings += 1
                ctx.decide("resampled", round=rounds, nodes=before, rewards=rewards, finished=finished,
                           weights=weights, ess=ess, anneal=anneal, drawn=[p.id for p in particles])
            else:
                ctx.decide("kept", round=rounds, nodes=before, rewards=rewards, finished=finished, weights=weights,
                           ess=ess, anneal=anneal)
        ctx.info.update(particles=self.n, rounds=rounds, resamplings=resamplings)
        if self.annealing != "none":
            ctx.info["annealed_rounds"] = annealed
        return [p.trajectory(p.value(self.aggregation)) for p in particles]


METHODS = {"particle_filtering": ParticleFiltering}  # strategy.search=particle_filtering
