"""Turn a composed config into objects: the strategy (build/strategy.py), and what it runs on — the
problems, the grader, the model's weights, the backend (build/inputs.py) — each checked before anything
starts, errors as one-line ConfigError."""

from ttscale.build.common import ConfigError
from ttscale.build.inputs import (BACKENDS, build_backend, build_grader, build_model_path, build_problems, check_grader,
                                  check_model, make_backend, model_stop, needs_model_weights)
from ttscale.build.strategy import (DEFAULT_TOP_K, STEP_KEYS, STRATEGY_KEYS, VERIFIERS, DeclaredBackend, build_strategy,
                                    build_verifier, check_statistics, check_strategy_overrides, declared_backend,
                                    logprobs_mode, strategy_keys)
from ttscale.strategies.budget import BUDGET_KNOBS, budget_knob, budget_step

__all__ = ["BACKENDS", "BUDGET_KNOBS", "ConfigError", "DEFAULT_TOP_K", "DeclaredBackend", "STEP_KEYS",
           "STRATEGY_KEYS", "VERIFIERS", "budget_knob", "budget_step", "build_backend", "build_grader",
           "build_model_path", "build_problems", "build_strategy", "build_verifier", "check_grader",
           "check_model", "check_statistics", "check_strategy_overrides", "declared_backend",
           "logprobs_mode", "make_backend", "model_stop", "needs_model_weights", "strategy_keys"]
