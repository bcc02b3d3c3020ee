"""Strategies: a search composed with a selection (and a verifier where one is needed)."""

from ttscale.strategies.context import Context, derive_seed
from ttscale.strategies.search import ParallelSampling
from ttscale.strategies.select import BestScore, MajorityVote, Selection
from ttscale.strategies.strategy import Strategy, best_of_n, self_consistency

__all__ = [
    "BestScore", "Context", "MajorityVote", "ParallelSampling", "Selection", "Strategy",
    "best_of_n", "derive_seed", "self_consistency",
]
