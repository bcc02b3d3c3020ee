"""Graders: decide whether an answer is right. Math here; code execution in ttscale.graders.code."""

from ttscale.graders.code.grader import CodeGrader
from ttscale.graders.math import MathGrader, extract_answer, grade_batch, is_equivalent

__all__ = ["CodeGrader", "MathGrader", "extract_answer", "grade_batch", "is_equivalent"]
