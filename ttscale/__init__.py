"""ttscale: test-time scaling of LLM reasoning. A strategy is async code for one problem; the
runtime runs many problems at once and the backend batches their requests."""

from ttscale.data import DatasetSpec, PromptTemplate, load_problems
from ttscale.graders import MathGrader, extract_answer, grade_batch, is_equivalent
from ttscale.runtime import RunResult, arun, run
from ttscale.strategies import (DVTS, AStarDecoding, BeamSearch, BestScore, DeepConfVote, MajorityVote,
                                ParallelSampling, ParticleFiltering, ParticleGibbs, Rebase, StepGenerator, Strategy,
                                ValueGuidedBlockSearch, WeightedVote, best_of_n, self_consistency)
from ttscale.types import Completion, Delta, Problem, Result, SamplingParams, TokenPrompt, Trajectory, Usage
from ttscale.verifiers import GroundTruth, MeanLogprob, Scores, SelfEvaluation, Traits

__version__ = "0.1.0"

__all__ = [
    "AStarDecoding", "BeamSearch", "BestScore", "Completion", "DVTS", "Delta", "TokenPrompt", "DatasetSpec", "DeepConfVote", "GroundTruth",
    "MajorityVote", "MathGrader", "MeanLogprob", "ParallelSampling", "ParticleFiltering", "ParticleGibbs", "Problem",
    "PromptTemplate", "Rebase", "Result", "RunResult", "SamplingParams", "Scores", "SelfEvaluation", "StepGenerator",
    "Strategy", "Traits", "Trajectory", "Usage", "ValueGuidedBlockSearch", "WeightedVote", "arun", "best_of_n",
    "extract_answer", "grade_batch", "is_equivalent", "load_problems", "run", "self_consistency",
]
