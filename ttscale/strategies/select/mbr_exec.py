"""Execution-based minimum Bayes risk (MBR-exec; Shi et al. 2022, "Natural Language to Code
Translation with Execution"), and AlphaCode's filter-then-cluster (Li et al. 2022) as its option:
candidates run on test inputs, and the one whose outputs agree with the most others is chosen.

    inputs   <- the task's visible tests' inputs (the reference: the inputs of the examples the
                prompt shows), and/or inputs of tests the model writes (CodeT's prompt; AlphaCode's
                clustering runs on generated inputs)
    for each sample i: outputs(i) = its program's value on every input (the sandbox; a raised error
                is a value, a run that gives no value at all does not vote)
    loss(i, j) = 1 if outputs(i) and outputs(j) differ on any input, else 0   (the paper's hard loss)
    choose: argmin_i sum_j loss(i, j) over the samples, the first sampled on ties
           = a sample of the largest class of samples with identical outputs

filter=visible (AlphaCode): only samples that pass the visible tests take part, all of them when
none pass. Generated inputs are the model's untrusted code: only literal calls are run
(generated.py). Sandbox runs and their seconds are counted in the result's info; test-writing calls
are policy calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ttscale.graders.code.generated import call_of
from ttscale.graders.code.grader import task_of
from ttscale.strategies.context import Context
from ttscale.strategies.select.base import Selection
from ttscale.strategies.select.codet import generate_tests, run_all, sandbox_cost
from ttscale.types import Problem, Trajectory

INPUTS = ("visible", "generated", "both")
FILTERS = ("none", "visible")


@dataclass
class MBRExec:
    needs_scores = False
    needs_stats = False
    needs_probability_scores = False
    needs_code = True  # a code dataset's programs and tests (refused on a math dataset before the run)
    needs_context = True  # it runs programs (and may write inputs): Strategy awaits `choose(problem, ctx, ...)`
    # visible (the reference: the shown examples' inputs) | generated (model-written) | both
    inputs: str = field(default="visible", metadata={"config": "exec_inputs"})
    # none (MBR-exec) | visible (AlphaCode: only samples passing the visible tests are clustered)
    filter: str = field(default="none", metadata={"config": "exec_filter"})
    test_samples: int = 100  # generated inputs: CodeT's test samples and reading (codet.py)
    tests_per_sample: int = 5
    test_temperature: float = 0.8
    test_top_p: float = 0.95
    test_tokens: int = 300
    show_examples: bool = field(default=False, metadata={"config": "test_prompt_examples"})

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs={self.inputs!r}; choose one of: {', '.join(INPUTS)}")
        if self.filter not in FILTERS:
            raise ValueError(f"filter={self.filter!r}; choose one of: {', '.join(FILTERS)}")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        raise TypeError("mbr_exec runs programs: use it inside a Strategy (it awaits choose(problem, ctx, ...))")

    async def choose(self, problem: Problem, ctx: Context, trajectories: Sequence[Trajectory],
                     groups: Sequence[int | None]) -> Selection:
        task = task_of(problem)
        programs = [t.answer for t in trajectories]
        unique = list(dict.fromkeys(p for p in programs if p is not None))
        if not unique:
            return Selection(None, {"reason": "no program to choose"})
        probes = list(task.probes) if self.inputs in ("visible", "both") else []
        info: dict = {}
        if self.inputs in ("generated", "both"):
            found = await generate_tests(problem, ctx, self.test_samples, self.tests_per_sample, self.test_temperature,
                                         self.test_top_p, self.test_tokens, self.show_examples, "mbr_exec/inputs")
            calls = [c for c in (call_of(t) for t in found.tests) if c is not None]
            probes += [c for c in dict.fromkeys(calls) if c not in probes]
            info.update({"generated_inputs": len(calls), "dropped_tests": found.dropped})
        visible = task.visible_tests if self.filter == "visible" else ()
        info["inputs"] = len(probes)
        if not probes:
            info["reason"] = "no input to run the programs on"
            return Selection(next(i for i, p in enumerate(programs) if p is not None), info)
        verdicts = await run_all(problem, ctx, unique, visible, probes)
        info.update(sandbox_cost(verdicts.values()))
        pool = [i for i, p in enumerate(programs) if p is not None]
        if visible:
            passing = [i for i in pool if verdicts[programs[i]] is not None and verdicts[programs[i]].passed]
            info["passed_visible"] = len(passing)
            pool = passing or pool
        outputs = {}
        for i in pool:
            values = verdicts[programs[i]].probes if verdicts[programs[i]] is not None else []
            if values and any(v is not None for v in values):
                outputs[i] = tuple(values)
        if not outputs:
            info["reason"] = "no program gave a value on the inputs"
            return Selection(pool[0], info)
        # sum_j loss(i, j) over the samples is smallest for the largest class of identical outputs
        classes = Counter(outputs.values())
        best = max(classes.values())
        chosen = next(i for i in outputs if classes[outputs[i]] == best)
        info.update({"output_classes": len(classes), "chosen_class_size": best, "voters": len(outputs)})
        return Selection(chosen, info)


METHODS = {"mbr_exec": MBRExec}  # strategy.select=mbr_exec
