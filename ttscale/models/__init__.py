"""Model sources: where weights come from, verified and converted once into a cached HF folder."""

from ttscale.models.source import ModelSource, resolve_model

__all__ = ["ModelSource", "resolve_model"]
