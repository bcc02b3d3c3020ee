"""Backends sample completions. vLLM (in-process async engine) and a scripted test double.

`VLLMBackend` is imported from ttscale.backends.vllm so that importing ttscale never imports vLLM.
"""

from ttscale.backends.base import Backend
from ttscale.backends.scripted import ScriptedBackend

__all__ = ["Backend", "ScriptedBackend"]
