"""ttscale: test-time scaling of LLM reasoning. A strategy is async code for one problem; the
runtime runs many problems at once and the backend batches their requests.

Every building block is importable from here. `VLLMBackend` and `OpenAIBackend` load on first use,
so that importing ttscale never imports vLLM.
"""

from ttscale.analysis import load_run, results_frame
from ttscale.backends import ScriptedBackend
from ttscale.backends.demo import DemoBackend
from ttscale.data import DatasetSpec, PromptTemplate, load_problems
from ttscale.graders import CodeGrader, MathGrader, extract_answer, grade_batch, is_equivalent
from ttscale.runtime import arun, run
from ttscale.results import RunResult
from ttscale.strategies import (DVTS, MCTS, AdaptiveSampling, AStarDecoding, BeamSearch, BestScore, BudgetForcing,
                                CodeT, Context, DeepConfOnline, DeepConfVote, EntropyBranching, FracturedSampling, GenSelect,
                                MajorityVote, MBRExec, MissingStatistic, ParallelSampling, ParticleFiltering, ParticleGibbs,
                                PhiDecoding, PowerSampling, Rebase,
                                RPCVote, SequentialRefinement, SetCoverPruning, StepGenerator, Strategy, DEER, RSA, SStar,
                                SelfCertainty, SelfDebug, TailEntropy,
                                ValueGuidedBlockSearch, WeightedVote, best_of_n, self_consistency)
from ttscale.version import __version__
from ttscale.types import Completion, Delta, Problem, Result, SamplingParams, TokenPrompt, Trajectory, Usage
from ttscale.verifiers import (FunctionVerifier, GroundTruth, MeanLogprob, MeanTokenProbability, Scores,
                               SelfEvaluation, Traits, TransformersPRM, UnitTests, VLLMPoolingPRM)


_LAZY = {"VLLMBackend": "ttscale.backends.vllm", "OpenAIBackend": "ttscale.backends.openai"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ttscale' has no attribute {name!r}")


__all__ = [
    "__version__",
    "AStarDecoding", "AdaptiveSampling", "BeamSearch", "BestScore", "BudgetForcing", "CodeGrader", "CodeT", "Completion", "Context", "DEER",
    "DVTS", "RSA", "SStar", "SelfCertainty", "SelfDebug", "TailEntropy",
    "DatasetSpec", "DeepConfOnline", "DemoBackend", "DeepConfVote", "Delta", "EntropyBranching", "FracturedSampling",
    "FunctionVerifier", "GenSelect", "GroundTruth", "MBRExec", "MCTS", "MajorityVote", "MathGrader", "MeanLogprob", "MeanTokenProbability",
    "MissingStatistic", "OpenAIBackend", "ParallelSampling", "ParticleFiltering", "ParticleGibbs", "PhiDecoding",
    "PowerSampling", "Problem", "PromptTemplate", "RPCVote", "Rebase", "Result", "RunResult", "SamplingParams",
    "Scores", "ScriptedBackend", "SelfEvaluation", "SequentialRefinement", "SetCoverPruning", "StepGenerator",
    "Strategy", "TokenPrompt", "Traits", "Trajectory", "TransformersPRM", "UnitTests", "Usage", "VLLMBackend",
    "VLLMPoolingPRM", "ValueGuidedBlockSearch", "WeightedVote", "arun", "best_of_n", "extract_answer", "grade_batch",
    "is_equivalent", "load_problems", "load_run", "results_frame", "run", "self_consistency",
]
