"""Search: how candidate trajectories are produced."""

from ttscale.strategies.search.parallel import ParallelSampling

__all__ = ["ParallelSampling"]
