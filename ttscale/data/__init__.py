"""Datasets and prompt templates."""

from ttscale.data.loaders import DatasetError, DatasetSpec, load_problems
from ttscale.data.prompts import PromptTemplate

__all__ = ["DatasetError", "DatasetSpec", "PromptTemplate", "load_problems"]
