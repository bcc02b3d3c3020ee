"""Search: how candidate trajectories are produced."""

from ttscale.strategies.search.adaptive import AdaptiveSampling
from ttscale.strategies.search.budget_forcing import BudgetForcing
from ttscale.strategies.search.deepconf_online import DeepConfOnline
from ttscale.strategies.search.deer import DEER
from ttscale.strategies.search.eager import EntropyBranching
from ttscale.strategies.search.fractured_sampling import FracturedSampling
from ttscale.strategies.search.parallel import ParallelSampling
from ttscale.strategies.search.power_sampling import PowerSampling
from ttscale.strategies.search.rsa import RSA
from ttscale.strategies.search.self_debug import SelfDebug
from ttscale.strategies.search.sequential import SequentialRefinement
from ttscale.strategies.search.set_cover_pruning import SetCoverPruning

__all__ = ["AdaptiveSampling", "BudgetForcing", "DEER", "DeepConfOnline", "EntropyBranching", "FracturedSampling", "ParallelSampling",
           "PowerSampling", "RSA", "SelfDebug", "SequentialRefinement", "SetCoverPruning"]
