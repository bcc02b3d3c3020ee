"""Analysis of results: metrics with confidence intervals."""

from ttscale.analysis.metrics import bootstrap_ci

__all__ = ["bootstrap_ci"]
