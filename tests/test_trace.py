"""Traces of searches, hand-checked on the scripted backend (particle filtering, beam search, MCTS,
DeepConf online, budget forcing, GenSelect), the trace file (killed, resumed), replay, and the
viewer page in a real headless Chromium."""

import asyncio
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import CHROMIUM, Browser  # noqa: E402
from test_budget_forcing import PROBLEM as BF_PROBLEM, S1  # noqa: E402
from test_genselect import PROBLEM as GS_PROBLEM, picks  # noqa: E402
from test_mcts import mcts  # noqa: E402
from test_step_search import PROBLEM, gen, label_scores, tree_script  # noqa: E402
from test_token_level import WARM, conf_trace, deepconf, deepconf_backend  # noqa: E402
from ttscale.backends.scripted import ScriptedBackend  # noqa: E402
from ttscale.runtime import run  # noqa: E402
from ttscale.strategies import MajorityVote, ParallelSampling, Strategy  # noqa: E402
from ttscale.strategies.search.budget_forcing import BudgetForcing  # noqa: E402
from ttscale.strategies.select import BestScore, WeightedVote  # noqa: E402
from ttscale.strategies.select.genselect import GenSelect  # noqa: E402
from ttscale.strategies.step import BeamSearch, ParticleFiltering  # noqa: E402
from ttscale.tracing import read_traces  # noqa: E402
from ttscale.tracing.page import write_page  # noqa: E402
from ttscale.tracing.replay import replay_resampling, replayable, reselect  # noqa: E402
from ttscale.types import Problem, SamplingParams  # noqa: E402


def traced(strategy, backend, problem, folder, grader):
    """The strategy run on one problem with trace=...; the problem's trace line."""
    run(strategy, [problem], backend, trace=folder / "trace.jsonl.gz", grader=grader, progress=False)
    (line,) = read_traces(folder)
    return line


def by_kind(trace, kind):
    return [d for d in trace["decisions"] if d["kind"] == kind]


def pf_trace(folder, grader):
    backend = ScriptedBackend(tree_script(final_depth=2, answer=lambda path, i: path))
    verifier = label_scores({"2": 0.99}, default=0.01)  # first step <2> is far better than <0>, <1>, <3>
    search = ParticleFiltering(verifier, n=4, generator=gen(), resampling="systematic")
    return traced(Strategy(search, BestScore(), name="particle_filtering"), backend, PROBLEM, folder, grader)


def beam_trace(folder, grader):
    backend = ScriptedBackend(tree_script(final_depth=3))
    verifier = label_scores({"0": 0.1, "1": 0.4, "2": 0.9, "3": 0.7, "2.1": 0.8, "3.0": 0.95})
    search = BeamSearch(verifier, n=4, beam_width=2, generator=gen())
    return traced(Strategy(search, BestScore(), name="beam_search"), backend, PROBLEM, folder, grader)


def test_particle_filtering_trace(tmp_path, grader):
    trace = pf_trace(tmp_path, grader)
    nodes = {n["id"]: n for n in trace["nodes"]}
    # round 1: four particles from the root in one call; round 2: the four copies of <2> in one call
    assert sorted(nodes) == ["0.0", "0.1", "0.2", "0.2.0", "0.2.1", "0.2.2", "0.2.3", "0.3"]
    assert nodes["0.2"]["step"] == "<2> step\n\n" and nodes["0.2"]["scores"] == [0.99] and nodes["0.2"]["parent"] == "0"
    assert nodes["0.2.3"]["parent"] == "0.2" and nodes["0.2.3"]["finished"] and nodes["0.2.3"]["finish_reason"] == "stop"
    assert [(c["key"], c["n"]) for c in trace["calls"] if c["kind"] == "generate"] == [("pf/0/0", 4), ("pf/1/0.2", 4)]
    verify = [c for c in trace["calls"] if c["kind"] == "verify"]  # the verifier's calls, through the Context
    assert [(c["key"], c["n"], c["scores"]) for c in verify] == [
        ("ScriptedVerifier", 4, [0.01, 0.01, 0.99, 0.01]), ("ScriptedVerifier", 4, [0.99] * 4)]
    (setup,) = by_kind(trace, "setup")
    assert setup["resampling"] == "systematic" and setup["annealing"] == "none" and trace["run_seed"] == 0
    first, second = by_kind(trace, "resampled")
    assert first["round"] == 1 and first["nodes"] == ["0.0", "0.1", "0.2", "0.3"]
    assert first["rewards"] == [0.01, 0.01, 0.99, 0.01] and first["drawn"] == ["0.2"] * 4
    assert first["weights"][2] == pytest.approx(0.99969, abs=1e-4) and first["ess"] == pytest.approx(1.0006, abs=1e-3)
    assert second["weights"] == [0.25] * 4 and second["drawn"] == ["0.2.0", "0.2.1", "0.2.2", "0.2.3"]
    assert [c["from"] for c in trace["candidates"]] == ["0.2.0", "0.2.1", "0.2.2", "0.2.3"]
    assert trace["votes"] == [{"answer": "2", "members": [0, 1, 2, 3], "chosen": True, "score_sum": pytest.approx(3.96)}]
    assert trace["correct"] is True and trace["usage"]["backend_calls"] == 2 and trace["samples"] == []


def test_beam_search_trace_names_what_it_kept_and_pruned(tmp_path, grader):
    trace = beam_trace(tmp_path, grader)
    kept, pruned = by_kind(trace, "kept"), by_kind(trace, "pruned")
    # round 1: <0> .1, <1> .4, <2> .9, <3> .7 -> keep 4/2 = 2: <2>, <3>; round 2: 3.0 (.95) and 2.1 (.8)
    assert [k["nodes"] for k in kept] == [["0.2", "0.3"], ["0.3.0", "0.2.1"]]
    assert [p["nodes"] for p in pruned] == [["0.1", "0.0"], ["0.2.0", "0.3.1"]]
    assert kept[0]["values"] == [0.9, 0.7] and pruned[0]["values"] == [0.4, 0.1]
    (selected,) = by_kind(trace, "selected")
    assert len(selected["nodes"]) == 4 and all(n.startswith(("0.3.0.", "0.2.1.")) for n in selected["nodes"])
    assert len(trace["nodes"]) == 4 + 4 + 4  # three rounds of four beams
    assert {c["from"] for c in trace["candidates"]} == set(selected["nodes"])


def test_mcts_trace_records_each_phase(tmp_path, grader):
    backend = ScriptedBackend(tree_script(final_depth=3))
    trace = traced(Strategy(mcts(n=1), BestScore(), name="mcts"), backend, PROBLEM, tmp_path, grader)
    # the hand-worked first iteration (test_mcts): expand the root, then follow <1> and <1.1> down
    assert [(d["node"], d["children"]) for d in by_kind(trace, "expanded")] == [
        ("0", ["0.0", "0.1"]), ("0.1", ["0.1.0", "0.1.1"]), ("0.1.1", ["0.1.1.0", "0.1.1.1"])]
    assert by_kind(trace, "expanded")[0]["rewards"] == [0.4, 0.6]
    (selected,) = by_kind(trace, "selected")
    assert selected["iteration"] == 0 and selected["nodes"] == []  # the root alone: nothing to choose yet
    (simulated,) = by_kind(trace, "simulated")
    assert simulated["nodes"] == ["0.1", "0.1.1", "0.1.1.0"] and simulated["rewards"] == [0.6, 0.7, 0.9]
    (backed,) = by_kind(trace, "backed_up")
    assert backed["returns"] == pytest.approx([2.2, 2.2, 1.6, 0.9])  # sum of the rewards from each node down
    (output,) = by_kind(trace, "output")
    assert output["paths"] == [["0.1", "0.1.1", "0.1.1.0"]] and output["returns"] == pytest.approx([2.2])
    assert len(trace["nodes"]) == 6 and trace["candidates"][0]["from"] == "0.1.1.0"


def test_deepconf_online_trace_shows_the_threshold_and_the_stopped_trace(tmp_path, grader):
    online = [conf_trace("x y z w \\boxed{8}", [3, 3, 1, 1, 3]), conf_trace("x \\boxed{7}", [5, 5])]
    strategy = Strategy(deepconf(), WeightedVote("lowest_group_confidence"), name="deepconf_online")
    problem = Problem(id="p", question="q", answer="7", messages=[{"role": "user", "content": "q"}])
    trace = traced(strategy, deepconf_backend(WARM, online), problem, tmp_path, grader)
    (threshold,) = by_kind(trace, "threshold")
    assert threshold["value"] == 2.5 and threshold["warmup"] == [1, 2, 3, 4]
    (aborted,) = by_kind(trace, "aborted")
    assert aborted["why"] == "confidence" and aborted["trace"] == "trace/4" and aborted["tokens"] == 3
    samples = {s["key"]: s for s in trace["samples"] if s["key"] != "warmup"}
    assert samples["trace/4"]["finish_reason"] == "aborted" and samples["trace/4"]["tokens"] == 3
    assert samples["trace/5"]["finish_reason"] == "stop" and samples["trace/5"]["text"] == "x \\boxed{7}"
    assert sum(s["key"] == "warmup" for s in trace["samples"]) == 4
    assert [c["kind"] for c in trace["calls"]] == ["generate", "stream", "stream"]
    assert len(by_kind(trace, "consensus")) == 2


def test_budget_forcing_trace_names_each_forced_extension(tmp_path, grader):
    def script(text, params, index):
        if text.endswith("<|im_start|>answer"):
            return " 7"
        return f"Maybe {3 + text.count('Wait')}.<|im_start|>"

    search = BudgetForcing(params=SamplingParams(temperature=0.0, max_tokens=999), num_ignore=2, **S1)
    trace = traced(Strategy(search, MajorityVote(), name="budget_forcing"), ScriptedBackend(script), BF_PROBLEM,
                   tmp_path, grader)
    assert [d["kind"] for d in trace["decisions"]] == ["forced", "forced", "stopped"]
    assert [d["extensions"] for d in by_kind(trace, "forced")] == [1, 2]
    assert by_kind(trace, "stopped")[0]["why"] == "end of thinking kept"
    samples = trace["samples"]
    assert [s["key"] for s in samples] == ["think/0/0", "think/0/1", "think/0/2", "answer/0"]
    # each round continues the one before: a chain below the root, the answer at its end
    assert [s["parent"] for s in samples] == [None, samples[0]["id"], samples[1]["id"], samples[2]["id"]]
    assert trace["candidates"][0]["from"] == samples[3]["id"]  # the candidate ends with the answer's text


def test_genselect_trace_keeps_the_judges_apart_from_the_samples(tmp_path, grader):
    strategy = Strategy(ParallelSampling(5, SamplingParams(temperature=0.8)), GenSelect(judgments=3), name="genselect")
    trace = traced(strategy, ScriptedBackend(picks("7")), GS_PROBLEM, tmp_path, grader)
    roles = [s["role"] for s in trace["samples"]]
    assert roles.count("sample") == 5 and roles.count("judge") == 3
    judged = by_kind(trace, "judged")
    assert len(judged) == 3 and all(trace["candidates"][d["winner"]]["answer"] == "7" for d in judged)
    assert all(sorted(d["shown"]) == [0, 1, 2, 3, 4] and d["parsed"] for d in judged)
    (selected,) = by_kind(trace, "selected")
    assert trace["candidates"][selected["candidate"]]["answer"] == "7" and trace["answer"] == "7"
    # replay: the majority over the same candidates says 5 (three of five), and is wrong
    again = reselect(trace, "majority")
    assert again["answer"] == "5" and again["correct"] is False and again["recorded_correct"] is True
    assert replayable(trace)["judged"].startswith("no:")


def test_resampling_replays_until_the_draw_differs(tmp_path, grader):
    trace = pf_trace(tmp_path, grader)
    own = replay_resampling(trace)  # the run's rule and random stream: every draw as recorded, exactly
    assert own["diverged_at"] is None and [r["drawn"] == r["recorded"] for r in own["rounds"]] == [True, True]
    assert own["scheme"] == "systematic" and own["rounds"][0]["weights"] == pytest.approx(by_kind(trace, "resampled")[0]["weights"])
    same = replay_resampling(trace, "multinomial")  # weight 0.9997 on <2>: the same draw; round 2 all finished
    assert same["diverged_at"] is None and [r["same"] for r in same["rounds"]] == [True, True]
    flat = replay_resampling(trace, "multinomial", temperature=1e6)  # even weights: other particles drawn
    assert flat["diverged_at"] == 1 and flat["rounds"][0]["drawn"] != ["0.2"] * 4
    annealed = replay_resampling(trace, annealing="ess")  # ePF's rule: round 1's collapse is tempered (T 3.33)
    assert annealed["rounds"][0]["anneal"] == pytest.approx(4 / 1.0006 * (1 - 1 / 6), rel=1e-3)
    assert "resampling" in replayable(trace)
    with pytest.raises(ValueError, match="choose one of"):
        replay_resampling(trace, "nope")


def test_the_trace_file_survives_a_kill_and_a_resume(tmp_path, grader):
    backend = ScriptedBackend(tree_script(final_depth=2))
    verifier = label_scores({}, default=0.5)
    strategy = Strategy(ParticleFiltering(verifier, n=2, generator=gen()), BestScore(), name="particle_filtering")
    problems = [Problem(id=f"p{i}", question="What is 1+1?", answer="2") for i in range(3)]
    out = tmp_path / "run"
    trace = out / "trace.jsonl.gz"
    run(strategy, problems[:2], backend, output=out / "results.jsonl", trace=trace, grader=grader, progress=False)
    first, second = [t["problem"] for t in read_traces(out)]
    data = trace.read_bytes()
    trace.write_bytes(data[: len(data) - 20])  # killed while writing its second problem's line
    run(strategy, problems, backend, output=out / "results.jsonl", trace=trace, grader=grader,
        progress=False)  # the resumed run solves p2 only (p0, p1 are in results.jsonl) and appends its line
    assert [t["problem"] for t in read_traces(out)] == [first, "p2"]  # the cut line skipped, the rest read
    data = trace.read_bytes()
    trace.write_bytes(data[: len(data) - 20])  # and killed again while writing p2's
    assert [t["problem"] for t in read_traces(out)] == [first]
    trace.write_bytes(b"not a gzip file at all")
    assert list(read_traces(out)) == []
    with pytest.raises(FileNotFoundError, match="trace=true"):
        list(read_traces(tmp_path / "nowhere"))


def test_trace_command_lines(tmp_path, grader):
    pf_trace(tmp_path, grader)
    cli = [sys.executable, "-m", "ttscale.cli", "trace", str(tmp_path)]
    page = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert page.returncode == 0 and (tmp_path / "trace.html").exists(), page.stderr
    html = (tmp_path / "trace.html").read_text()
    # self-contained: nothing loaded from elsewhere (the SVG namespace URI is a name, not a fetch)
    assert not any(ref in html for ref in ("<script src", "<link", "url(", "@import", "fetch(", "XMLHttpRequest"))
    assert html.count("http") == html.count("http://www.w3.org/2000/svg")
    replay = subprocess.run([*cli, "--reselect", "majority"], capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0 and "majority on the same candidates: 1/1 correct" in replay.stdout
    missing = subprocess.run([sys.executable, "-m", "ttscale.cli", "trace", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("ttscale trace: no trace at")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's package; scripts/install-cpu.sh --test installs it as root)")
def test_the_page_in_a_real_browser(tmp_path, grader):
    """Loads with no console error; the first problem's tree has its nodes; another problem opens on a
    click of its row; a click on a node shows its step's text."""
    pf_trace(tmp_path / "a", grader)
    beam_trace(tmp_path / "b", grader)
    with gzip.open(tmp_path / "trace.jsonl.gz", "wt") as handle:
        for line in [*read_traces(tmp_path / "a"), *read_traces(tmp_path / "b")]:
            handle.write(json.dumps({**line, "problem": line["method"]}) + "\n")
    page = write_page(tmp_path)

    async def look():
        async with Browser() as browser:
            await browser.open(page)
            first = await browser.wait_for("document.querySelectorAll('#tree circle.node').length")
            rows = await browser.evaluate("document.querySelectorAll('tr.problem').length")
            await browser.click('tr.problem[data-index="1"]')
            await browser.wait_for("document.body.dataset.opened === '1'")
            second = await browser.evaluate("document.querySelectorAll('#tree circle.node').length")
            chosen = await browser.evaluate("document.querySelectorAll('#tree circle.node.chosen').length")
            pruned = await browser.evaluate("document.querySelectorAll('#tree circle.node.pruned').length")
            await browser.click('#tree circle.node[data-id="0.3.0"]')
            text = await browser.wait_for("document.getElementById('node-step') && document.getElementById('node-step').textContent")
            await browser.screenshot(tmp_path / "page.png")
            return first, rows, second, chosen, pruned, text, list(browser.errors)

    first, rows, second, chosen, pruned, text, errors = asyncio.run(look())
    assert errors == []
    assert rows == 2 and first == 1 + 8 and second == 1 + 12  # the root and every node the search grew
    assert chosen == 4 and pruned == 4  # root -> 0.x -> 0.x.y -> leaf; two beams pruned in each of two rounds
    assert text == "<3.0> step\n\n"
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_a_trace_cancelled_at_consensus_is_aborted_not_an_error(tmp_path, grader):
    online = [conf_trace("x \\boxed{7}", [9, 9]), conf_trace(" ".join(["y"] * 4000), [9] * 4000)]
    strategy = Strategy(deepconf(tau=0.65, parallel=2), WeightedVote("lowest_group_confidence"), name="deepconf_online")
    problem = Problem(id="p", question="q", answer="7", messages=[{"role": "user", "content": "q"}])
    trace = traced(strategy, deepconf_backend(WARM, online, token_delay=0.002), problem, tmp_path, grader)
    (aborted,) = by_kind(trace, "aborted")
    assert aborted["why"] == "consensus" and aborted["traces"] == 1
    long = next(s for s in trace["samples"] if s["key"] == "trace/5")
    assert long["finish_reason"] == "aborted" and 0 < long["tokens"] < 4000
    assert not any("error" in c for c in trace["calls"])  # cancelled by the search: an abort, not a failure
