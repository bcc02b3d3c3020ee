"""Verifiers score trajectories per step and overall."""

from ttscale.verifiers.base import AGGREGATIONS, Scores, Traits, Verifier, aggregate, split_steps, traits_of
from ttscale.verifiers.logprob import MeanLogprob, MeanTokenProbability
from ttscale.verifiers.oracle import GroundTruth
from ttscale.verifiers.self_eval import SelfEvaluation

__all__ = ["AGGREGATIONS", "GroundTruth", "MeanLogprob", "MeanTokenProbability", "Scores", "SelfEvaluation", "Traits",
           "Verifier", "aggregate", "split_steps", "traits_of"]
