"""Strategies: a search composed with a selection (and a verifier where one is needed).

Every building block is importable from here: the searches (sampling and step-wise), the
selections, the step generator and its partial solutions, and the registry that finds methods by
name or import path.
"""

from ttscale.strategies.context import Context, derive_seed
from ttscale.strategies.search import (DEER, RSA, AdaptiveSampling, BudgetForcing, DeepConfOnline, EntropyBranching,
                                      FracturedSampling, ParallelSampling, PowerSampling, SelfDebug, SequentialRefinement,
                                      SetCoverPruning)
from ttscale.strategies.select import (BestScore, CodeT, DeepConfVote, GenSelect, MajorityVote, MBRExec, MissingStatistic, RPCVote,
                                       Selection, Selector, SelfCertainty, SStar, TailEntropy, WeightedVote)
from ttscale.strategies.step import (DVTS, MCTS, AStarDecoding, BeamSearch, Node, ParticleFiltering, ParticleGibbs,
                                     PhiDecoding, Rebase, StepGenerator, ValueGuidedBlockSearch)
from ttscale.strategies.strategy import Strategy, best_of_n, self_consistency

__all__ = [
    "AStarDecoding", "AdaptiveSampling", "BeamSearch", "BestScore", "BudgetForcing", "CodeT", "Context", "DEER", "DVTS",
    "DeepConfOnline", "DeepConfVote", "RSA", "SStar", "SelfDebug",
    "EntropyBranching", "FracturedSampling", "GenSelect", "MBRExec", "MCTS", "MajorityVote", "MissingStatistic", "Node", "ParallelSampling",
    "ParticleFiltering", "ParticleGibbs", "PhiDecoding", "PowerSampling", "RPCVote", "Rebase", "Selection", "Selector", "SelfCertainty", "TailEntropy",
    "SequentialRefinement", "SetCoverPruning", "StepGenerator", "Strategy", "ValueGuidedBlockSearch", "WeightedVote",
    "best_of_n", "derive_seed", "self_consistency",
]
