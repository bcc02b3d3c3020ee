"""Graders: decide whether an answer is right. Math here; code execution in its own module."""

from ttscale.graders.math import MathGrader, extract_answer, grade_batch, is_equivalent

__all__ = ["MathGrader", "extract_answer", "grade_batch", "is_equivalent"]
