"""Step-wise guided search: partial solutions extended one step at a time and scored by a verifier."""

from ttscale.strategies.step.a_star import AStarDecoding
from ttscale.strategies.step.beam_search import BeamSearch
from ttscale.strategies.step.block_search import ValueGuidedBlockSearch
from ttscale.strategies.step.dvts import DVTS
from ttscale.strategies.step.mcts import MCTS
from ttscale.strategies.step.particle_filtering import ParticleFiltering
from ttscale.strategies.step.particle_gibbs import ParticleGibbs
from ttscale.strategies.step.phi_decoding import PhiDecoding
from ttscale.strategies.step.rebase import Rebase
from ttscale.strategies.step.tree import Node, StepGenerator

__all__ = ["AStarDecoding", "BeamSearch", "DVTS", "MCTS", "Node", "ParticleFiltering", "ParticleGibbs", "PhiDecoding", "Rebase",
           "StepGenerator", "ValueGuidedBlockSearch"]
