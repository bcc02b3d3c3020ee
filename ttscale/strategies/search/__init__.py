"""Search: how candidate trajectories are produced."""

from ttscale.strategies.search.adaptive import AdaptiveSampling
from ttscale.strategies.search.deepconf_online import DeepConfOnline
from ttscale.strategies.search.parallel import ParallelSampling
from ttscale.strategies.search.sequential import SequentialRefinement
from ttscale.strategies.search.set_cover_pruning import SetCoverPruning

__all__ = ["AdaptiveSampling", "DeepConfOnline", "ParallelSampling", "SequentialRefinement", "SetCoverPruning"]
