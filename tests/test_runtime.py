import asyncio
import json

import pytest

from ttscale import run, self_consistency
from ttscale.backends.scripted import ScriptedBackend
from ttscale.runtime import arun
from ttscale.results import load_results
from ttscale.types import Problem


def problems(k=6):
    return [Problem(id=f"p{i}", question=f"question {i}", answer=str(i)) for i in range(k)]


def answer_script(prompt, params, index):
    """Answers problem i with i, except problem 3 (wrong) and problem 4 (raises)."""
    i = int(prompt.split()[-1])
    if i == 4:
        raise RuntimeError("backend exploded on problem 4")
    return f"\\boxed{{{i if i != 3 else 99}}}"


def test_runs_concurrently_grades_and_isolates_failures(tmp_path, grader):
    backend = ScriptedBackend(answer_script, delay=0.05)
    outcome = run(self_consistency(n=2), problems(), backend, output=tmp_path / "r.jsonl", grader=grader,
                  progress=False, concurrency=4)
    by_id = {r.problem_id: r for r in outcome.results}
    assert by_id["p4"].error == "RuntimeError: backend exploded on problem 4"
    assert by_id["p3"].correct is False and by_id["p0"].correct is True
    assert outcome.summary["errors"] == 1
    # an errored problem is not a wrong answer: accuracy is over the 5 graded, the error counted beside
    assert by_id["p4"].correct is None and outcome.summary["graded"] == 5
    assert outcome.summary["accuracy"] == 4 / 5
    assert outcome.summary["accuracy_over"].startswith("graded problems")
    assert backend.max_in_flight == 4  # bounded concurrency, really concurrent
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line)["problem_id"] for line in lines)


def test_resume_skips_finished_problems_and_cuts_a_partial_line(tmp_path, grader):
    out = tmp_path / "r.jsonl"
    first = ScriptedBackend(answer_script)
    run(self_consistency(n=1), problems(3), first, output=out, grader=grader, progress=False)
    with open(out, "a") as handle:
        handle.write('{"problem_id": "p9", "answ')  # a write killed half-way
    second = ScriptedBackend(answer_script)
    outcome = run(self_consistency(n=1), problems(6), second, output=out, grader=grader, progress=False)
    assert len(second.calls) == 3  # only p3, p4, p5
    assert outcome.summary["resumed"] == 3
    assert sorted(load_results(out)) == [f"p{i}" for i in range(6)]
    assert [r.problem_id for r in outcome.results] == [f"p{i}" for i in range(6)]


def test_candidates_are_graded_for_pass_at_n(grader):
    def script(prompt, params, index):
        return ["\\boxed{5}", "\\boxed{5}", "\\boxed{1}"][index]

    outcome = run(self_consistency(n=3), [Problem(id="a", question="q 1", answer="1")], ScriptedBackend(script),
                  grader=grader, progress=False)
    result = outcome.results[0]
    assert result.correct is False
    assert [c.correct for c in result.candidates] == [False, False, True]
    assert outcome.summary["pass_at_n"] == 1.0


def test_run_works_inside_a_running_event_loop(grader):
    async def notebook_cell():
        return run(self_consistency(n=1), problems(2), ScriptedBackend(answer_script), grader=grader, progress=False)

    outcome = asyncio.run(notebook_cell())
    assert outcome.summary["accuracy"] == 1.0


def test_arun_and_duplicate_ids(grader):
    import pytest

    dup = [Problem(id="x", question="q 1"), Problem(id="x", question="q 2")]
    with pytest.raises(ValueError, match="unique"):
        asyncio.run(arun(self_consistency(n=1), dup, ScriptedBackend(answer_script), grader=grader, progress=False))


def test_only_backend_unavailable_problems_are_solved_again_on_resume():
    from ttscale.results import unavailable
    from ttscale.types import Result

    down = Result("a", None, error="ttscale.backends.base.BackendUnavailable: no endpoint answered",
                  error_type="BackendUnavailable")
    mentions = Result("b", None, error="ValueError: a message quoting 'BackendUnavailable: x'", error_type="ValueError")
    older = Result("c", None, error="ttscale.backends.base.BackendUnavailable: no endpoint answered")  # no error_type
    assert unavailable(down) and not unavailable(mentions) and unavailable(older)
    assert not unavailable(Result("d", "1"))
    assert Result.from_dict(json.loads(json.dumps(down.to_dict()))).error_type == "BackendUnavailable"


def test_a_rerun_solves_errored_problems_again_and_keeps_what_the_failed_try_cost(tmp_path, grader):
    out = tmp_path / "r.jsonl"
    first = run(self_consistency(n=2), problems(), ScriptedBackend(answer_script), output=out, grader=grader,
                progress=False)
    assert first.summary["errors"] == 1

    def fixed(prompt, params, index):  # the cause of problem 4's error mended
        i = int(prompt.split()[-1])
        return f"\\boxed{{{i if i != 3 else 99}}}"

    again = ScriptedBackend(fixed)
    second = run(self_consistency(n=2), problems(), again, output=out, grader=grader, progress=False)
    assert len(again.calls) == 1  # only p4, once (n=2 in one call)
    assert second.summary["errors"] == 0 and second.summary["retried"] == 1 and second.summary["resumed"] == 5
    p4 = next(r for r in second.results if r.problem_id == "p4")
    assert p4.correct is True and p4.info["earlier_attempts"][0]["error"].startswith("RuntimeError")
    assert second.summary["accuracy"] == 5 / 6
    # retry_errors=False: an errored row stays as it is
    out2 = tmp_path / "r2.jsonl"
    run(self_consistency(n=1), problems(), ScriptedBackend(answer_script), output=out2, grader=grader, progress=False)
    kept = ScriptedBackend(fixed)
    third = run(self_consistency(n=1), problems(), kept, output=out2, grader=grader, progress=False, retry_errors=False)
    assert kept.calls == [] and third.summary["errors"] == 1


def test_wall_time_adds_up_over_the_parts_of_a_run(tmp_path, grader):
    from ttscale.results import run_wall_seconds

    out = tmp_path / "r.jsonl"
    first = run(self_consistency(n=1), problems(3), ScriptedBackend(answer_script, delay=0.3), output=out,
                grader=grader, progress=False)
    assert first.summary["wall_seconds"] >= 0.3
    resumed = run(self_consistency(n=1), problems(3), ScriptedBackend(answer_script), output=out, grader=grader,
                  progress=False)
    assert resumed.summary["resumed"] == 3
    # the resume's own moment is added to the first part's time, never put in its place
    assert resumed.summary["wall_seconds"] >= first.summary["wall_seconds"]
    assert run_wall_seconds(out) == resumed.summary["wall_seconds"]
    assert resumed.summary["wall_seconds_per_problem"] == resumed.summary["wall_seconds"] / 3


def test_a_killed_part_of_a_run_keeps_its_wall_time(tmp_path, grader):
    """A part that never closed (SIGKILL) lasted until its last result was written; a run from before
    parts were kept takes its first part from summary.json."""
    from ttscale.results import open_part, parts_path, run_wall_seconds

    out = tmp_path / "r.jsonl"
    run(self_consistency(n=1), problems(2), ScriptedBackend(answer_script, delay=0.2), output=out, grader=grader,
        progress=False)
    closed = run_wall_seconds(out)
    # a killed part: opened, two results written 5 s after its start, never closed
    number = open_part(out, [])
    started = json.loads(parts_path(out).read_text().splitlines()[-1])["started"]
    with open(out, "a") as handle:
        for i, pid in enumerate(("k1", "k2")):
            handle.write(json.dumps({"problem_id": pid, "answer": None, "info": {"finished_at": started + 3 + 2 * i}}) + "\n")
    assert number == 1 and run_wall_seconds(out) == pytest.approx(closed + 5.0)
    # from before parts were kept: the summary's wall time is the first part's
    legacy = tmp_path / "old" / "results.jsonl"
    legacy.parent.mkdir()
    legacy.write_text(out.read_text().splitlines()[0] + "\n")
    (legacy.parent / "summary.json").write_text(json.dumps({"wall_seconds": 42.0}))
    from ttscale.results import load_results

    open_part(legacy, list(load_results(legacy).values()))
    assert run_wall_seconds(legacy) == pytest.approx(42.0)
