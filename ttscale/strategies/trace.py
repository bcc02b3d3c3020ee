"""One problem's trace: what a search generated, what its verifier said, what it decided.

Recorded through the Context (strategies/context.py), never by a method itself, except the decisions
a method names (`ctx.decide("resampled", ...)`):
- samples: each completion of a `generate` call, each streamed sample (aborted when the search
  closed it before it finished), with its key, tokens, finish reason and token statistics;
- nodes: each partial solution a step-wise search grew (StepGenerator.expand registers them), with
  its parent, the step it added, and its step scores as they stand when the problem ends (the
  verifier's scores are written onto the node);
- calls: each backend call (kind, key, n, tokens, start and end in seconds from the problem's start);
- decisions: what the search named, in order, with the values that decided;
- and, when the problem ends, its candidates (answer, score, the node or sample they came from), the
  vote groups over their answers, its usage and its grade.

A run's traces are one compressed JSON Lines file, a problem per line (`trace.jsonl.gz` beside
results.jsonl; ttscale/tracing/recorder.py writes and reads it): what the viewer (tracing/page.py) and
replay (tracing/replay.py) read. This module sits with the Context, below the tracing package, which
reads and shows what it records.
"""

from __future__ import annotations

import math
import time
from typing import Any


def plain(value: Any) -> Any:
    """JSON-ready: numpy numbers and arrays as Python ones, nan and inf as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy array or scalar
        return plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


class Trace:
    """The record of one problem's search. Cheap when off: the Context holds None instead."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.samples: list[dict] = []
        self.calls: list[dict] = []
        self.decisions: list[dict] = []
        self._nodes: list[tuple[Any, Any, str]] = []  # (Node, parent Node, role): serialised at the end

    def now(self) -> float:
        return round(time.perf_counter() - self.started, 4)

    def call(self, kind: str, key: str, n: int, started: float, prompt_tokens: int, completion_tokens: int,
             error: str | None = None, **more: Any) -> None:
        """A backend (or verifier) call: its tokens, start and end; `error` when it raised."""
        self.calls.append({"kind": kind, "key": key, "n": n, "start": started, "end": self.now(),
                           "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           **({"error": error} if error else {}), **plain(more)})

    def sample(self, key: str, text: str, tokens: int, finish_reason: str | None, stats: dict | None = None,
               role: str = "sample", after: str | None = None) -> str:
        """A whole sample (not a step): a child of the problem's root, or of the latest sample of key
        `after` (a call that continues another: budget forcing's next thinking round). role: sample (a
        solution, or part of one), or what else a call asked for: judge, tests, inputs, probe."""
        sample_id = f"s{len(self.samples)}"
        parent = next((s["id"] for s in reversed(self.samples) if s["key"] == after), None) if after else None
        self.samples.append({"id": sample_id, "key": key, "role": role, "parent": parent, "text": text,
                             "tokens": tokens, "finish_reason": finish_reason, "stats": plain(stats or {})})
        return sample_id

    def node(self, node: Any, parent: Any, role: str = "step") -> None:
        """A partial solution a step-wise search grew from `parent` (role: step; lookahead or rollout for
        one scored or played out, not kept in the tree)."""
        self._nodes.append((node, parent, role))

    def decide(self, kind: str, **values: Any) -> None:
        """A decision the search names: resampled, kept, pruned, aborted, expanded, selected, forced, ..."""
        self.decisions.append({"kind": kind, "t": self.now(), **plain(values)})

    def nodes(self) -> list[dict]:
        """The grown nodes as they stand now, with unique ids (a lookahead's id can repeat a child's).
        Every empty solution is the root "0" (particle Gibbs names each sweep's root: kept as `tree`); a
        parent the search made without growing it (particle Gibbs' reference cut to a step) is shown as
        its own chain of steps from the root, role "reference"."""
        out, seen, named = [], set(), {}

        def unique(node_id: str) -> str:
            while node_id in seen:
                node_id += "'"
            seen.add(node_id)
            return node_id

        def entry(node, depth: int, node_id: str, parent_id: str, role: str, tree=None) -> dict:
            last = depth == node.depth
            return {"id": node_id, "parent": parent_id, "tree": tree, "role": role, "depth": depth,
                    "step": node.steps[depth - 1] if depth else "",
                    "step_tokens": node.step_tokens[depth - 1] if depth else 0, "tokens": sum(node.step_tokens[:depth]),
                    "scores": plain(list(node.step_scores[:depth])), "finished": node.finished and last,
                    "finish_reason": node.finish_reason if last else None,
                    "step_logprob": plain(node.step_logprobs[depth - 1]) if depth and len(node.step_logprobs) >= depth else None,
                    # the whole solution's token statistics, where it ended (a candidate's are these)
                    "stats": plain(node.stats) if last and node.finished else {}}

        def parent_of(parent) -> str:
            if parent.depth == 0:
                return "0"
            if id(parent) not in named:
                chain = "0"
                for depth in range(1, parent.depth + 1):
                    link = unique(parent.id if depth == parent.depth else f"{parent.id}:{depth}")
                    out.append(entry(parent, depth, link, chain, "reference"))
                    chain = link
                named[id(parent)] = chain
            return named[id(parent)]

        for node, parent, role in self._nodes:
            parent_id = parent_of(parent)
            node_id = unique(node.id if role == "step" else f"{node.id}~{role}")
            named[id(node)] = node_id
            out.append(entry(node, node.depth, node_id, parent_id, role, parent.id if parent.depth == 0 else None))
        return out

    def to_dict(self, result: Any, method: str, run_seed: int | None = None) -> dict:
        """The problem's line: everything recorded, and its result (answer, candidates, votes, grade)."""
        nodes = self.nodes()
        texts: dict[str, str] = {}  # a candidate's text -> the node or sample it came from
        full = {"0": ""}
        for node in nodes:
            full[node["id"]] = full.get(node["parent"], "") + node["step"]
            if node["role"] == "step":
                texts.setdefault(full[node["id"]], node["id"])
        solutions = [s for s in self.samples if s["role"] == "sample"]
        for sample in solutions:
            texts.setdefault(sample["text"], sample["id"])
        candidates, groups, used = [], {}, set()
        for index, candidate in enumerate(result.candidates):
            candidates.append({"answer": candidate.answer, "score": plain(candidate.score),
                               "from": texts.get(candidate.text) or _ending(candidate, solutions, used),
                               "tokens": candidate.num_tokens, "finish_reason": candidate.finish_reason,
                               "group": candidate.group, "correct": candidate.correct,
                               "step_scores": plain(list(candidate.step_scores)), "stats": plain(dict(candidate.stats))})
            label = f"group {candidate.group}" if candidate.group is not None else f"answer {candidate.answer!r}"
            groups.setdefault(label, {"answer": candidate.answer, "members": [], "chosen": False, "score_sum": None})
            group = groups[label]
            group["members"].append(index)
            group["chosen"] |= result.answer is not None and candidate.answer == result.answer
            if candidate.score is not None and math.isfinite(candidate.score):  # what a weighted vote sums
                group["score_sum"] = (group["score_sum"] or 0.0) + float(candidate.score)
        votes = sorted(groups.values(), key=lambda g: -len(g["members"]))
        return {"problem": result.problem_id, "method": method, "run_seed": run_seed, "answer": result.answer,
                "reference": result.reference, "correct": result.correct, "error": result.error,
                "usage": plain(result.usage.to_dict()), "seconds": self.now(),
                "samples": self.samples, "nodes": nodes, "calls": self.calls, "decisions": self.decisions,
                "candidates": candidates, "votes": votes, "info": plain(_small(result.info))}


def _ending(candidate: Any, samples: list[dict], used: set) -> str | None:
    """The sample a candidate's text ends with, when no sample is the whole of it: the last call of a
    chain (budget forcing's thinking rounds, then its answer) whose calls' tokens add up to the
    candidate's, or a lone sample of 8 characters or more. Each sample is given to one candidate."""
    by_id = {s["id"]: s for s in samples}

    def chain_tokens(sample: dict) -> int:
        total = 0
        while sample is not None:
            total += sample["tokens"]
            sample = by_id.get(sample.get("parent"))
        return total

    for sample in reversed(samples):
        if sample["id"] in used or not candidate.text.endswith(sample["text"]):
            continue
        if (sample.get("parent") and chain_tokens(sample) == candidate.num_tokens) or len(sample["text"]) >= 8:
            used.add(sample["id"])
            return sample["id"]
    return None


def _small(info: dict) -> dict:
    """The result's info without the prompt and other bulk the trace does not need again."""
    return {k: v for k, v in info.items() if k not in ("prompt", "earlier_attempts")}
