"""Verifiers score trajectories per step and overall."""

from ttscale.verifiers.base import AGGREGATIONS, Scores, Verifier, aggregate, split_steps
from ttscale.verifiers.logprob import MeanLogprob
from ttscale.verifiers.oracle import GroundTruth
from ttscale.verifiers.self_eval import SelfEvaluation

__all__ = ["AGGREGATIONS", "GroundTruth", "MeanLogprob", "Scores", "SelfEvaluation", "Verifier", "aggregate",
           "split_steps"]
