"""The `ttscale` command: config errors in one line, and a real end-to-end run on the CPU engine."""

import json
import os
import subprocess
import sys

import pytest
from jobs import job_dir
from ttscale.tracing import read_traces


def ttscale(*args, timeout=600):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ttscale.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize(
    "args, message",
    [
        (["strategy.nn=3"], "ttscale: unknown config key 'strategy.nn'; strategy has keys: logprobs, max_tokens, n, name, "
                            "options, search, select, stats_window, stop, temperature, tie_break, top_k, top_p, verifier"),
        (["strategy=particle_filtering", "strategy.resmpling=x"], "ttscale: unknown config key 'strategy.resmpling'; "
         "strategy has keys: aggregation, anneal_early_phase, anneal_ess_threshold, anneal_value_max, annealing, "
         "answer_marker, continuation, ess_threshold, last_step, logprobs, max_step_tokens, "
         "max_steps, max_tokens, n, name, options, resample_finished, resampling, reward_clip,"),
        (["strategy=nope"], "ttscale: strategy=nope is not a known choice; choose one of: a_star, adaptive_sc, beam_search, best_of_n, "
                            "block_search, budget_forcing, codet, deepconf, deepconf_online, deer, dvts, eager, fractured_sampling, "
                            "genselect, greedy, inverse_entropy, mbr_exec, mcts, "
                            "particle_filtering, particle_gibbs, phi_decoding, power_sampling, rebase, rpc, rsa, s_star, self_certainty, "
                            "self_consistency, "
                            "self_debug, sequential, set_cover_pruning, tail_entropy, verifier_vote, weighted_vote"),
        (["strategy=particle_filtering", "strategy.verifier=null"],
         "ttscale: strategy.search='particle_filtering' needs scores; choose a verifier: verifier=mean_logprob,"),
        (["strategy=particle_filtering", "strategy.annealing=nope"],
         "ttscale: strategy.annealing='nope'; choose one of: none, ess, entropy, base"),
        (["strategy=particle_filtering", "strategy.resampling=nope"],
         "ttscale: strategy.resampling='nope' is not a known choice; choose one of: multinomial, stratified, systematic"),
        (["strategy.temperature=0"], "ttscale: strategy.temperature=0 is greedy: all 8 samples would be the same"),
        (["strategy=beam_search", "strategy.n=6"], "ttscale: strategy.n=6 must be a multiple of beam_width=4"),
        (["strategy.n=abc"], "ttscale: bad value for 'strategy.n': Value 'abc' of type 'str' could not be converted to Integer"),
        (["strategy.select=nope"], "ttscale: strategy.select='nope' is not a known choice; choose one of: best_score, codet, deepconf, genselect, inverse_entropy, majority, mbr_exec, rpc, s_star, self_certainty, tail_entropy, weighted_vote"),
        (["strategy.n=0"], "ttscale: strategy.n=0 must be > 0"),
        (["-m", "strategy.n=1,x"], "ttscale: bad value for 'strategy.n'"),
        (["dataset=nope"], "ttscale: dataset=nope is not a known choice; choose one of: aime24, aime25, gsm8k, gsm8k_fixture, humaneval, math500, mbpp"),
        (["strategy=best_of_n", "strategy.verifier=null"], "ttscale: strategy.select='best_score' needs scores; choose a verifier: verifier=mean_logprob, verifier=mean_token_prob, verifier=oracle, verifier=prm, verifier=self_eval, verifier=unit_tests"),
        (["verifier=nope"], "ttscale: verifier=nope is not a known choice; choose one of: mean_logprob, mean_token_prob, none, oracle, prm, qwen_math_prm, self_eval, unit_tests"),
        (["verifier=prm"], "ttscale: verifier.path is required for a PRM (a Hugging Face id or a local folder)"),
        (["verifier=prm", "verifier.path=x", "verifier.format=nope"],
         "ttscale: verifier.format='nope' is not a known choice; choose one of: math_shepherd, qwen_math_prm, rlhflow,"),
        (["verifier=prm", "verifier.path=x", "verifier.format=math_shepherd", "verifier.runner=vllm"],
         "ttscale: verifier.format='math_shepherd' cannot be pooled by vLLM; pooled formats: qwen_math_prm"),
        (["dataset=humaneval", "grader.isolation=docker"],
         "ttscale: grader.isolation='docker' is not a known choice; choose one of: auto, bwrap, none"),
        (["dataset=humaneval", "grader.code_grouping=nope"],
         "ttscale: grader.code_grouping='nope' is not a known choice; choose one of: outputs, program"),
        (["verifier=unit_tests"], "ttscale: verifier=unit_tests needs a code dataset (dataset=humaneval or dataset=mbpp)"),
        (["recipe=cpu_scaling", "hydra.run.dir=/tmp/x"],
         "ttscale: hydra.run.dir is not read by a sweep (-m, or a recipe that sweeps): its folder is hydra.sweep.dir=..."),
        (["hydra.sweep.dir=/tmp/x"], "ttscale: hydra.sweep.dir is not read by a single run: its folder is hydra.run.dir=..."),
        (["dataset.format=nope"], "ttscale: dataset.format='nope' is not a known choice; choose one of: humaneval, mbpp, qa"),
        (["verifier=self_eval", "verifier.aggregation=max"], "ttscale: verifier.aggregation='max'; choose one of: last, min, prod, mean, model"),
    ],
)
def test_config_errors_are_one_clear_line(args, message):
    proc = ttscale(*args, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_lists_every_choice_of_each_group_and_no_schema():
    proc = ttscale("--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "strategy: a_star, adaptive_sc, beam_search" in proc.stdout and "self_certainty" in proc.stdout
    assert "verifier: mean_logprob, mean_token_prob, none" in proc.stdout and "dataset/prompt: " in proc.stdout
    assert "_schema" not in proc.stdout and "--hydra-help" in proc.stdout


def test_every_shipped_config_composes():
    from ttscale.cli import check_overrides
    from ttscale.config import conf_dir

    for group in ("model", "strategy", "dataset", "backend", "verifier"):
        for path in sorted((conf_dir() / group).glob("*.yaml")):
            extra = {"hf": ["model.path=some/model"],
                     "prm": ["verifier.path=some/prm", "verifier.format=math_shepherd", "verifier.params=7e9"],
                     "unit_tests": ["dataset=humaneval"], "codet": ["dataset=humaneval"],
                     "mbr_exec": ["dataset=humaneval"], "self_debug": ["dataset=humaneval"], "s_star": ["dataset=humaneval"]}.get(path.stem, [])
            assert check_overrides([f"{group}={path.stem}", *extra]) is None, path


def test_every_readme_command_line_is_a_valid_config():
    """The `ttscale ...` lines of the README's and the docs' bash blocks compose and build (no model is
    started)."""
    import re
    import shlex
    from pathlib import Path

    from ttscale.cli import check_overrides

    root = Path(__file__).resolve().parents[1]
    readme = "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    lines = [ln.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", readme, re.S)
             for ln in block.splitlines()]
    from ttscale.config import expand_recipe

    lines = [ln.split(" ", 1)[1] if ln.startswith("PYTHONPATH=tests/plugins ") else ln for ln in lines]
    commands = [expand_recipe(shlex.split(ln)[1:]) for ln in lines
                if ln.startswith("ttscale ") and not ln.startswith("ttscale trace ")]
    assert len(commands) >= 8
    from ttscale.tracing.cli import parser as trace_parser

    traces = [shlex.split(ln)[2:] for ln in lines if ln.startswith("ttscale trace ")]
    assert len(traces) >= 3
    for args in traces:  # `ttscale trace` lines: their own arguments, parsed as the command does
        trace_parser().parse_args(args)
    sys.path.insert(0, str(Path(__file__).parent / "plugins"))  # the README's own-method example
    try:
        for args in commands:
            overrides = [a for a in args if not a.startswith("-") and "$" not in a]
            multirun = any(a in ("-m", "--multirun") or a.lstrip("+") == "hydra.mode=MULTIRUN" for a in args)
            assert check_overrides(overrides, multirun) is None, args
    finally:
        sys.path.pop(0)


@pytest.mark.integration
def test_cli_end_to_end_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    args = ["strategy=best_of_n", "verifier=self_eval", "dataset.limit=2", "strategy.n=2", "strategy.max_tokens=64",
            "progress=false",
            "backend.env.VLLM_CPU_KVCACHE_SPACE=1", f"hydra.run.dir={run_dir}"]
    proc = ttscale(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accuracy" in proc.stdout and "completion_tokens_per_problem" in proc.stdout
    # the console has ttscale's lines only: the engine's start-up output is in the run's engine.log
    console = proc.stdout + proc.stderr
    assert "WARNING" not in console and "Triton" not in console and "safetensors" not in console, console[-3000:]
    assert "engine.log" in proc.stderr and "WARNING" in (run_dir / "engine.log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["errors"] == 0 and summary["model"] == "smollm2-135m"
    assert summary["verifier"] == "self_eval" and summary["backend"] == "vllm" and summary["stand_in"] is False
    prov = summary["provenance"]  # a real engine's run names the engine and the weights' hash
    assert prov["engine"].startswith("vllm") and len(prov["model"]["sha256"]) == 64 and not prov["stand_in"]
    assert summary["verifier_calls_per_problem"] == 2 and summary["verifier_tokens_per_problem"] > 0
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert all(0 <= c["score"] <= 1 for r in results for c in r["candidates"])
    assert all(r["usage"]["verifier_calls"] == 2 for r in results)
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 2
    assert "strategy:" in (run_dir / "config.yaml").read_text()
    # the same folder again with more problems: the first two are resumed, not regenerated
    proc = ttscale(*[a if not a.startswith("dataset.limit") else "dataset.limit=3" for a in args])
    assert proc.returncode != 0 and "different config" in proc.stderr  # dataset changed: refused
    proc = ttscale(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every problem is done: the summary again, and no engine started for nothing
    assert "nothing to generate, no vllm backend started" in proc.stderr and "starting the" not in proc.stderr
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["resumed"] == 2 and resumed["accuracy"] == summary["accuracy"]
    assert resumed["wall_seconds"] >= summary["wall_seconds"]  # the parts add up: the resume adds its moment


SWEPT = ["self_consistency", "inverse_entropy", "deepconf", "rpc", "weighted_vote", "adaptive_sc", "sequential",
         "deepconf_online", "set_cover_pruning", "eager", "self_certainty", "tail_entropy"]


SWEEP_SHARED = ["dataset.limit=1", "strategy.n=2", "strategy.max_tokens=24", "strategy.batch=1", "strategy.min_samples=1",
                "strategy.chains=1", "strategy.warmup=1", "strategy.stats_window=4", "strategy.prune_step=4",
                "strategy.tau=null", "strategy.entropy_threshold=0.5"]
STEP_SHARED = ["dataset.limit=1", "strategy.n=2", "strategy.beam_width=2", "strategy.k=2", "strategy.max_steps=2",
               "strategy.max_step_tokens=24", "strategy.block_tokens=24", "strategy.max_tokens=64", "strategy.sweeps=1"]


def test_the_engine_tests_overrides_are_what_the_cli_accepts_for_their_sweeps():
    """The engine tests below run each method with the sweep's overrides cut to its own keys; the CLI takes
    the whole sweep with the shared list (a key some method of the sweep reads is fine)."""
    from ttscale.cli_checks import check_overrides

    assert check_overrides(["strategy=" + ",".join(SWEPT), *SWEEP_SHARED]) is None
    assert check_overrides(["strategy=" + ",".join(STEP_SWEPT), *STEP_SHARED]) is None


@pytest.mark.integration
def test_every_sampling_method_on_the_engine(vllm_backend, tmp_path):
    """Each job as the CLI composes it (the sweep's shared overrides, cut to what the method reads), on
    the session's engine: real top-k logprobs, streams and aborts."""
    from engine_jobs import own_overrides, run_job

    for name in SWEPT:
        summary, (result,) = run_job(vllm_backend, own_overrides(name, SWEEP_SHARED), tmp_path / name)
        assert result["info"]["strategy"] == name and summary["errors"] == 0, result.get("error")
        if name in ("inverse_entropy", "deepconf", "rpc", "weighted_vote", "sequential", "deepconf_online",
                    "self_certainty", "tail_entropy"):
            # top-k logprobs were really requested from vLLM and summarised per candidate
            assert all(c["stats"]["tokens"] == c["num_tokens"] and c["stats"]["mean_entropy"] >= 0
                       for c in result["candidates"]), result["candidates"]
        if name == "deepconf_online":  # one warm-up trace sets s (it then votes); one streamed trace: stopped,
            # below s, or voting
            info = result["info"]
            assert info["traces_launched"] == 2 and len(result["candidates"]) + info["traces_stopped"] \
                + info["traces_below_threshold"] == 2, info
        if name == "set_cover_pruning":  # the two hypotheses were compared every 4 tokens; streamed tokens counted
            assert result["info"]["pruning_rounds"] >= 1 and result["usage"]["backend_calls"] == 2, result["info"]
            assert result["usage"]["completion_tokens"] >= sum(c["num_tokens"] for c in result["candidates"])
        if name == "eager":  # one sequence from the prompt, a branch at most (n=2), continued by token ids
            assert 1 <= result["info"]["sequences"] <= 2 and len(result["candidates"]) == result["info"]["sequences"]
            assert result["usage"]["backend_calls"] == 1 + len(result["info"]["branch_points"]) \
                + result["info"]["replaced"], result["info"]
        if name == "adaptive_sc":
            assert result["info"]["samples_drawn"] + result["info"]["samples_saved"] == 2
        if name == "sequential":
            # chains x rounds = 2 calls; every round's answer votes (the paper's)
            assert result["usage"]["backend_calls"] == 2 and len(result["candidates"]) == 2


@pytest.mark.integration
def test_fractured_sampling_on_the_engine(vllm_backend, tmp_path):
    from engine_jobs import run_job

    summary, (frac,) = run_job(vllm_backend, ["strategy=fractured_sampling", "dataset.limit=1", "strategy.max_tokens=48",
                                              "strategy.n=2", "strategy.depths=2", "strategy.answers_per_depth=2"],
                               tmp_path)
    assert summary["errors"] == 0, frac.get("error")
    assert len(frac["candidates"]) == 2 * 2 * 2 and frac["info"]["answers"] == 8
    assert {c["stats"]["depth"] for c in frac["candidates"]} == {1, 2}
    assert frac["usage"]["completion_tokens"] >= frac["info"]["trajectory_tokens"]


@pytest.mark.integration
def test_the_methods_that_need_processed_logprobs_on_such_an_engine(vllm_processed_backend, tmp_path):
    """Power sampling and phi-decoding as the CLI composes them, on an engine in processed-logprobs mode
    (the CLI starts one for them: test_a_sweep_switches_the_backend_to_the_mode_a_method_needs)."""
    from engine_jobs import own_overrides, run_job

    shared = ["dataset.limit=1", "strategy.max_tokens=48", "strategy.n=2", "strategy.blocks=2", "strategy.mcmc_steps=2",
              "strategy.rollouts=2", "strategy.foresight_steps=2", "strategy.min_steps=1", "strategy.max_step_tokens=16"]
    results = {}
    for name in ("power_sampling", "phi_decoding"):
        summary, (results[name],) = run_job(vllm_processed_backend, own_overrides(name, shared), tmp_path / name)
        assert summary["errors"] == 0, results[name].get("error")
    power = results["power_sampling"]
    info = power["info"]
    assert len(power["candidates"]) == 2 and 1 <= info["mcmc_proposals"] <= 2 * 2 * 2
    assert 0 <= info["mcmc_accepted"] <= info["mcmc_proposals"]
    # the proposal's logprobs are the processed ones (temperature 1/4 sharpens), the target's raw
    assert info["tokens"] > 0 and info["log_q"] > info["log_p"], info
    # each generate (2 blocks at most + proposals, per chain) is followed by one scoring call
    assert power["usage"]["backend_calls"] % 2 == 0
    phi = results["phi_decoding"]
    assert len(phi["candidates"]) == 1 and 1 <= phi["info"]["foresight_steps"] <= 2
    assert phi["usage"]["backend_calls"] >= 2 + 2  # a step's expansions and rollouts, the completions


def test_a_sweep_switches_the_backend_to_the_mode_a_method_needs(tmp_path):
    """Power sampling reads processed logprobs, and refuses a backend in raw mode: after a
    self-consistency job it runs (a backend was built anew, in its mode)."""
    sweep_dir = tmp_path / "modes"
    proc = ttscale("-m", "backend=scripted", "backend.synthetic_logprobs=5", "strategy=self_consistency,power_sampling",
                   "dataset.limit=1", "strategy.max_tokens=16", "strategy.n=2", "strategy.blocks=2",
                   "strategy.mcmc_steps=1", "progress=false", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in range(2):
        assert json.loads((job_dir(sweep_dir, job) / "summary.json").read_text())["errors"] == 0
    assert proc.stderr.count("ttscale: a scripted stand-in model") == 2  # one backend per mode


STEP_SWEPT = ["particle_filtering", "particle_gibbs", "beam_search", "dvts", "a_star", "block_search", "rebase",
              "mcts", "verifier_vote"]


@pytest.mark.integration
def test_every_step_search_and_the_verifier_vote_with_self_evaluation_on_the_engine(vllm_backend, tmp_path):
    """Each job as the CLI composes it, on the session's engine, with its trace recorded (trace=true)."""
    from engine_jobs import own_overrides, run_job

    for name in STEP_SWEPT:
        out = tmp_path / name
        summary, (result,) = run_job(vllm_backend, own_overrides(name, STEP_SHARED), out, trace=True)
        assert result["info"]["strategy"] == name and summary["errors"] == 0, result.get("error")
        usage = result["usage"]
        assert usage["verifier_calls"] > 0 and usage["verifier_tokens"] > 0 and usage["completion_tokens"] > 0
        if name == "mcts":  # 2 iterations, depth 2, 64 tokens: a path cut by the budget is no solution (the reference's)
            assert result["candidates"] or result["info"]["no_finished_solution"]
            assert result["info"]["iterations"] == 2 and 1 <= result["info"]["expansions"] <= 2 * 2
            assert result["info"]["tree_nodes"] >= 3
        else:
            assert result["candidates"], name
        for c in result["candidates"]:  # every returned solution is finished (DVTS: its siblings may not be, as
            # in search-and-learn) and scored per step (MCTS: the sum of its path's step rewards)
            assert (c["finish_reason"] in ("stop", "length") or name == "dvts")
            assert 0 <= c["score"] <= (len(c["step_scores"]) if name == "mcts" else 1)
            assert 1 <= len(c["step_scores"]) <= 2 and c["num_tokens"] <= 64
        if name == "verifier_vote":  # parallel samples judged whole, votes weighted by the judgement
            assert len(result["candidates"]) == 2 and result["info"]["weight"] == "score"
        if name == "particle_filtering":
            assert usage["cached_prompt_tokens"] > 0  # continuations re-send the prompt: the cache serves it
        # the search as recorded on the real engine; its candidates come from its nodes
        (trace,) = read_traces(out)
        assert trace["method"] == name and trace["usage"]["completion_tokens"] == usage["completion_tokens"]
        ids = {n["id"] for n in trace["nodes"]} | {s["id"] for s in trace["samples"]}
        assert ids and all(n["parent"] in ids | {"0"} for n in trace["nodes"]), name
        assert all(c["from"] in ids for c in trace["candidates"]), name
        assert sum(c["completion_tokens"] for c in trace["calls"]) == usage["completion_tokens"], name
        if name == "particle_filtering":
            assert [d["kind"] for d in trace["decisions"]][:2] == ["setup", "resampled"]
            assert any(c["kind"] == "verify" and c["scores"] for c in trace["calls"])  # self-evaluation's calls


@pytest.mark.integration
def test_humaneval_end_to_end_in_the_sandbox_on_the_engine(vllm_backend, tmp_path):
    """HumanEval on the real engine: code extracted, run against every test in the sandbox, pass@k;
    best-of-n selecting with the visible tests, and execution-based voting. SmolLM2 solves next to
    nothing, so this checks the pipeline, not accuracy."""
    from engine_jobs import run_job

    for verifier in ("none", "unit_tests"):
        summary, results = run_job(vllm_backend, ["dataset=humaneval", "dataset.limit=2", "strategy=best_of_n",
                                                  f"verifier={verifier}", "grader.code_grouping=outputs", "strategy.n=2",
                                                  "strategy.max_tokens=160"], tmp_path / verifier)
        assert summary["errors"] == 0 and summary["problems"] == 2 and set(summary["pass_at_k"]) == {1, 2}
        # results.jsonl is written as problems finish, in any order
        assert sorted(r["problem_id"] for r in results) == ["HumanEval/0", "HumanEval/1"]
        for r in results:
            assert r["correct"] in (True, False)
            for c in r["candidates"]:
                assert c["verdict"]["status"] in ("pass", "fail", "timeout", "error")
                assert c["correct"] == (c["verdict"]["status"] == "pass")
                if c["answer"] is not None:  # a program: the prompt, then the model's code
                    assert c["answer"].startswith("from typing import List")
                    assert len(c["verdict"]["tests"]) >= 3
            if verifier == "unit_tests":
                assert all(0 <= c["score"] <= 1 for c in r["candidates"])
