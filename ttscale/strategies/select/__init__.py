"""Selection: how one answer is chosen from scored, answer-grouped trajectories."""

from ttscale.strategies.select.base import Selection, Selector
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.select.majority import MajorityVote

__all__ = ["BestScore", "MajorityVote", "Selection", "Selector"]
