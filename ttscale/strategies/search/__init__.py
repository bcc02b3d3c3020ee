"""Search: how candidate trajectories are produced."""

from ttscale.strategies.search.adaptive import AdaptiveSampling
from ttscale.strategies.search.parallel import ParallelSampling
from ttscale.strategies.search.sequential import SequentialRefinement

__all__ = ["AdaptiveSampling", "ParallelSampling", "SequentialRefinement"]
