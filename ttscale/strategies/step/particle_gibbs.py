"""Particle Gibbs (Puri et al. 2025, section on iterative particle filtering): several particle-
filtering sweeps; each later sweep is conditioned on reference particle(s) from the sweep before.

    N = n / sweeps particles per sweep: n is the TOTAL budget over all sweeps (as its_hub's budget)
    references <- none
    for sweep in 1..sweeps:
        particles <- (N - R) empty partial solutions
        for round t = 1, 2, ...:
            the free particles take one step and are scored
            ref_t <- each reference cut to its first t steps, with the score it had AT step t
            w <- softmax(logit(r) / T) over free particles and ref_t together
            the N - R free particles are redrawn from all N by w; the references stay
        references <- R draws among the final particles by final weight
    return the last sweep's particles and references

Comparing a reference at the same step as the free particles is the point: its_hub compared the
reference's final score against the free particles' partial scores (a bug this file avoids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ttscale.strategies.context import Context, derive_seed
from ttscale.strategies.step.particle_filtering import step_particles
from ttscale.strategies.step.resampling import MACHINE_EPSILON, resample, softmax_logit_weights
from ttscale.strategies.step.tree import Node, StepGenerator
from ttscale.types import Problem, Trajectory


@dataclass
class ParticleGibbs:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    needs_probability_scores: ClassVar[bool] = True  # particle weights take logit(r): rewards must be in [0, 1]
    verifier: object
    n: int = 8  # particles over ALL sweeps (its_hub's budget); n / sweeps per sweep, references included
    sweeps: int = 2
    references: int = 1
    # the reference's steps: at most 40, the last capped like the others (a particle open there ends unfinished)
    generator: StepGenerator = field(default_factory=lambda: StepGenerator(max_steps=40, last_step="step"))
    temperature: float = field(default=1.0, metadata={"config": "weight_temperature"})  # of softmax(logit(r) / T)
    resampling: str = "multinomial"
    # rewards are clipped to [reward_clip, 1 - reward_clip] before logit: the authors' machine epsilon
    # (its_hub: 1e-7; ttscale before #37: 1e-4, which weighs 0.99999 and 0.9999 alike)
    reward_clip: float = MACHINE_EPSILON
    aggregation: str = "model"  # the reward, as particle filtering's (reference: the whole prefix as one step)

    def __post_init__(self) -> None:
        if not 0 < self.reward_clip < 0.5:
            raise ValueError(f"reward_clip={self.reward_clip!r} must be in (0, 0.5)")
        if self.n % self.sweeps:
            raise ValueError(f"n={self.n} (the total particle budget) must be a multiple of sweeps={self.sweeps}")
        self.per_sweep = self.n // self.sweeps
        if not 0 < self.references < self.per_sweep:
            raise ValueError(f"references={self.references} must be in [1, n / sweeps = {self.per_sweep})")

    def weights(self, nodes: list[Node]) -> np.ndarray:
        return softmax_logit_weights([p.value(self.aggregation) for p in nodes], self.temperature, self.reward_clip)

    async def sweep(self, problem: Problem, ctx: Context, refs: list[Node], index: int,
                    rng: np.random.Generator) -> list[Node]:
        free = [Node(f"s{index}")] * (self.per_sweep - len(refs))
        t = 0
        while not all(p.finished for p in free) or any(t < r.depth for r in refs):
            free = await step_particles(self.generator, self.verifier, problem, ctx, free, f"pg{index}/{t}",
                                        whole=self.aggregation == "model")
            t += 1
            cut = [r.prefix(t, f"s{index}r{j}@{t}") for j, r in enumerate(refs)]
            population = free + cut
            free = [population[i] for i in resample(self.weights(population), len(free), self.resampling, rng)]
        return free + refs

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        rng = np.random.default_rng(derive_seed(ctx.run_seed, problem.id, "particle_gibbs"))
        refs: list[Node] = []
        particles: list[Node] = []
        for index in range(self.sweeps):
            particles = await self.sweep(problem, ctx, refs, index, rng)
            chosen = resample(self.weights(particles), self.references, self.resampling, rng)
            refs = [particles[i] for i in chosen]
        ctx.info.update(budget=self.n, particles_per_sweep=self.per_sweep, sweeps=self.sweeps,
                        references=self.references)
        return [p.trajectory(p.value(self.aggregation)) for p in particles]


METHODS = {"particle_gibbs": ParticleGibbs}  # strategy.search=particle_gibbs
