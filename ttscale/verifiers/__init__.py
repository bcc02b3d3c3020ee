"""Verifiers score trajectories per step and overall."""

from ttscale.verifiers.base import AGGREGATIONS, Scores, Traits, Verifier, aggregate, split_steps, traits_of
from ttscale.verifiers.function import FunctionVerifier, check_verifier
from ttscale.verifiers.logprob import MeanLogprob, MeanTokenProbability
from ttscale.verifiers.oracle import GroundTruth
from ttscale.verifiers.prm import TransformersPRM, VLLMPoolingPRM
from ttscale.verifiers.self_eval import SelfEvaluation
from ttscale.verifiers.unit_tests import UnitTests

__all__ = ["AGGREGATIONS", "FunctionVerifier", "GroundTruth", "MeanLogprob", "MeanTokenProbability", "Scores",
           "SelfEvaluation", "Traits", "TransformersPRM", "UnitTests", "VLLMPoolingPRM", "Verifier", "aggregate",
           "check_verifier", "split_steps", "traits_of"]
