"""Selection: how one answer is chosen from scored, answer-grouped trajectories."""

from ttscale.strategies.select.base import MissingStatistic, Selection, Selector
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.select.codet import CodeT
from ttscale.strategies.select.deepconf import DeepConfVote
from ttscale.strategies.select.genselect import GenSelect
from ttscale.strategies.select.majority import MajorityVote
from ttscale.strategies.select.mbr_exec import MBRExec
from ttscale.strategies.select.rpc import RPCVote
from ttscale.strategies.select.s_star import SStar
from ttscale.strategies.select.self_certainty import SelfCertainty
from ttscale.strategies.select.tail_entropy import TailEntropy
from ttscale.strategies.select.weighted import WeightedVote

__all__ = ["BestScore", "CodeT", "DeepConfVote", "GenSelect", "MBRExec", "MajorityVote", "MissingStatistic", "RPCVote", "SStar", "Selection", "Selector", "SelfCertainty", "TailEntropy",
           "WeightedVote"]
