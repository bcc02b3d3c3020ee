"""Shared fixtures. The real vLLM engine is started once per test session (it takes ~40-60 s)."""

from __future__ import annotations

import pytest

from ttscale.graders.math import MathGrader


@pytest.fixture(scope="session")
def grader():
    with MathGrader(workers=2, timeout=10.0) as g:
        yield g


@pytest.fixture(scope="session")
def smollm2_path():
    from ttscale.build import build_model_path
    from ttscale.config import group_config

    return build_model_path(group_config("model", "smollm2-135m"))


@pytest.fixture(scope="session")
def vllm_backend(smollm2_path):
    from ttscale.backends.vllm import VLLMBackend

    backend = VLLMBackend(
        smollm2_path,
        seed=0,
        engine_args={"dtype": "float32", "enforce_eager": True, "max_model_len": 2048},
        env={"VLLM_CPU_KVCACHE_SPACE": 2, "VLLM_CPU_OMP_THREADS_BIND": "all"},
    )
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def vllm_processed_backend(smollm2_path):
    """The engine in processed-logprobs mode (what power sampling and phi-decoding need; the CLI starts
    such an engine for them), shared by the tests that need it."""
    from ttscale.backends.vllm import VLLMBackend

    backend = VLLMBackend(
        smollm2_path,
        seed=0,
        # no stat loggers: its Prometheus collectors would take the process registry's place, and a test
        # reads the session engine's counts there
        engine_args={"dtype": "float32", "enforce_eager": True, "max_model_len": 2048,
                     "logprobs_mode": "processed_logprobs", "disable_log_stats": True},
        env={"VLLM_CPU_KVCACHE_SPACE": 1, "VLLM_CPU_OMP_THREADS_BIND": "all"},
    )
    yield backend
    backend.close()
