"""Verifiers score trajectories. The logprob scorer needs no model beyond the policy's own output."""

from ttscale.verifiers.base import Verifier
from ttscale.verifiers.logprob import MeanLogprob

__all__ = ["MeanLogprob", "Verifier"]
