"""Model sources: where weights come from, verified and converted once into a cached HF folder."""

from ttscale.models.source import ModelPart, ModelSource, ModelSourceError, resolve_model

__all__ = ["ModelPart", "ModelSource", "ModelSourceError", "resolve_model"]
