"""`ttscale serve` through the `openai` client: strategies answer chat requests, bad requests get a
400 with one line. The scripted backend here; the real CPU engine in test_openai_serve_vllm.py."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import openai
import pytest
import requests
from aiohttp import web

from ttscale.backends.launch import free_port
from ttscale.serve import Server

QUESTION = [{"role": "user", "content": "What is 3 + 4?"}]


class Running:
    """A ttscale serve app on a loopback port, on its own loop thread."""

    def __init__(self, server: Server):
        self.server = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

        async def up():
            self.runner = web.AppRunner(server.app(), handle_signals=False)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(up(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.server.close()


@pytest.fixture(scope="module")
def served():
    running = Running(Server(["backend=scripted"]))
    yield running
    running.close()


def test_a_strategy_answers_through_the_openai_client(served):
    client = openai.OpenAI(base_url=served.url, api_key="unused")
    reply = client.chat.completions.create(model="self_consistency@4", messages=QUESTION, max_tokens=64)
    extra = reply.model_extra["ttscale"]
    assert reply.model == "self_consistency@4" and extra["strategy"] == "self_consistency"
    assert extra["candidates"] == 4 and len(extra["answers"]) == 4
    assert extra["answer"] in reply.choices[0].message.content  # the chosen sample's text
    assert reply.usage.completion_tokens == extra["usage"]["completion_tokens"] == 4 * 10  # 4 samples, 10 tokens each
    again = client.chat.completions.create(model="self_consistency@4", messages=QUESTION, max_tokens=64)
    assert again.choices[0].message.content == reply.choices[0].message.content  # same seed, same answer
    seeded = client.chat.completions.create(model="self_consistency@4", messages=QUESTION, seed=5)
    assert seeded.model_extra["ttscale"]["answers"] != extra["answers"]


def test_the_header_picks_the_strategy_and_guided_search_runs(served):
    response = requests.post(served.url + "/chat/completions", json={"model": "anything", "messages": QUESTION},
                             headers={"X-TTScale-Strategy": "best_of_n@3"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["ttscale"]["strategy"] == "best_of_n" and response.json()["ttscale"]["candidates"] == 3
    models = requests.get(served.url + "/models", timeout=10).json()["data"]
    assert {"self_consistency", "particle_filtering", "greedy"} <= {m["id"] for m in models}


@pytest.mark.parametrize("body, says", [
    ({"model": "no_such_strategy@4", "messages": QUESTION}, "no strategy 'no_such_strategy'; choose one of: a_star"),
    ({"model": "self_consistency@x", "messages": QUESTION}, "budget after '@' must be an integer"),
    ({"model": "self_consistency@0", "messages": QUESTION}, "budget after '@' must be an integer from 1 to 64"),
    ({"model": "self_consistency@1000000", "messages": QUESTION}, "must be an integer from 1 to 64"),
    ({"model": "self_consistency@64", "messages": QUESTION, "max_tokens": 100000},
     "max_tokens=100000 is over this server's limit of 4096 per sample"),
    ({"model": "self_consistency@64", "messages": QUESTION, "max_tokens": 4096},
     "n x max_tokens = 64 x 4096 = 262144 generated tokens at most, over this server's limit of 131072"),
    ({"model": "greedy", "messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "'stop' must be a non-empty string"),
    ({"model": "greedy", "messages": QUESTION, "stop": [""]}, "'stop' must be a non-empty string"),
    ({"model": "greedy", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0] is a 'image_url' part; only text parts"),
    ({"model": "greedy", "messages": QUESTION, "presence_penalty": 0.5}, "'presence_penalty'=0.5 cannot be honoured"),
    ({"model": "greedy", "messages": QUESTION, "logprobs": True}, "'logprobs'=True cannot be honoured"),
    ({"model": "greedy", "messages": QUESTION, "stream": "yes"}, "'stream' must be true or false"),
    ({"model": "greedy", "messages": QUESTION, "max_tokens": 8, "max_completion_tokens": 9}, "differ; send one"),
    ({"model": "greedy", "messages": []}, "'messages' must be a non-empty list"),
    ({"model": "greedy", "messages": [{"role": "user"}]}, "messages[0] must be {role"),
    ({"model": "greedy", "messages": QUESTION, "n": 3}, "n must be 1"),
    ({"model": "greedy", "messages": QUESTION, "max_tokens": "many"}, "'max_tokens' must be a finite number"),
    ({"model": "greedy", "messages": QUESTION, "temperature": 10 ** 400}, "'temperature' must be a finite number"),
    ({"model": "self_consistency@4", "messages": QUESTION, "temperature": 0}, "strategy.temperature=0 is greedy"),
    ({"model": "greedy", "messages": QUESTION, "logit_bias": {}}, "unknown fields ['logit_bias']"),
    ({"messages": QUESTION}, "'model' must name a strategy"),
    ([1, 2], "the body must be a JSON object"),
])
def test_a_bad_request_gets_a_400_with_one_line(served, body, says):
    response = requests.post(served.url + "/chat/completions", data=json.dumps(body), timeout=30)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert says in message and "\n" not in message


@pytest.mark.parametrize("raw", [b"{not json", b'{"model": "greedy", "messages": [], "temperature": NaN}',
                                 b'{"model": "greedy", "max_tokens": Infinity}', b"[" * 100_000 + b"]" * 100_000])
def test_a_body_that_is_not_json_is_a_400(served, raw):
    response = requests.post(served.url + "/chat/completions", data=raw, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("the body is not JSON")


def test_the_openai_client_sees_the_400_as_a_bad_request(served):
    client = openai.OpenAI(base_url=served.url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="no strategy"):
        client.chat.completions.create(model="nope@2", messages=QUESTION)


def test_stop_content_parts_and_neutral_fields_as_the_openai_api_defines_them(served):
    client = openai.OpenAI(base_url=served.url, api_key="unused")
    parts = [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
             {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "3 + 4?"}]}]
    reply = client.chat.completions.create(model="self_consistency@2", messages=parts, stop=["step."],
                                           presence_penalty=0, frequency_penalty=0, logprobs=False)
    # the scripted samples are "Let me think step by step.\n\nThe answer is N.": cut at the stop string
    assert reply.choices[0].message.content == "Let me think step by "
    assert reply.model_extra["ttscale"]["usage"]["completion_tokens"] == 2 * 5
    assert reply.choices[0].finish_reason == "stop"


def test_a_streamed_answer_is_server_sent_events_of_the_chosen_sample(served):
    client = openai.OpenAI(base_url=served.url, api_key="unused")
    whole = client.chat.completions.create(model="self_consistency@4", messages=QUESTION)
    stream = client.chat.completions.create(model="self_consistency@4", messages=QUESTION, stream=True,
                                            stream_options={"include_usage": True})
    events = list(stream)
    text = "".join(e.choices[0].delta.content or "" for e in events if e.choices)
    assert text == whole.choices[0].message.content
    assert [e.choices[0].finish_reason for e in events if e.choices][-1] == "stop"
    assert events[-1].usage.completion_tokens == whole.usage.completion_tokens == 40 and not events[-1].choices


def test_an_api_key_guards_every_v1_route_and_requests_over_the_limit_wait_or_get_a_429():
    import concurrent.futures

    from ttscale.backends.scripted import ScriptedBackend
    from ttscale.serve import Limits

    backend = ScriptedBackend(lambda prompt, params, i: "The answer is 7.", delay=0.5)
    running = Running(Server(["backend=scripted"], backend=backend, api_key="sk-test",
                             limits=Limits(max_concurrent=1, max_waiting=1)))
    try:
        assert requests.get(running.url + "/models", timeout=10).status_code == 401
        wrong = openai.OpenAI(base_url=running.url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="missing or wrong API key"):
            wrong.chat.completions.create(model="greedy", messages=QUESTION)
        assert requests.get(running.url.removesuffix("/v1") + "/health", timeout=10).ok  # probes need no key
        client = openai.OpenAI(base_url=running.url, api_key="sk-test", max_retries=0)

        def ask(_):
            try:
                return client.chat.completions.create(model="greedy", messages=QUESTION).choices[0].message.content
            except openai.RateLimitError as exc:
                return exc.status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(ask, range(4)))
        # one runs, one waits, the other two are turned away (each greedy request takes 0.5 s)
        assert sorted(map(str, outcomes)) == ["429", "429", "The answer is 7.", "The answer is 7."], outcomes
    finally:
        running.close()


def test_the_serve_command_starts_answers_and_refuses_a_bad_override():
    import subprocess
    import sys
    import time

    port = free_port()
    command = [sys.executable, "-c", "from ttscale.cli import main; main()", "serve", "--port", str(port)]
    process = subprocess.Popen(command + ["backend=scripted"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.2)
        reply = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x").chat.completions.create(
            model="self_consistency@2", messages=QUESTION)
        assert reply.model_extra["ttscale"]["candidates"] == 2
    finally:
        process.terminate()
        process.wait(20)
    bad = subprocess.run(command + ["backend=nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == ("ttscale serve: backend=nope is not a known choice; choose one of: "
                                                          "demo, openai, scripted, vllm")


def lm_eval_generate(url: str, model: str, chats: list[list[dict]], gen_kwargs: dict, key: str | None = None,
                     concurrent: int = 2) -> list[str]:
    """lm-evaluation-harness's `local-chat-completions` model (its own client code, unchanged) asked
    as `lm_eval --model local-chat-completions --apply_chat_template` asks: one generate_until request
    per problem, the chat as JSON, the task's gen_kwargs."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.api_models import JsonChatStr
    from lm_eval.models.openai_completions import LocalChatCompletion

    lm = LocalChatCompletion(base_url=url + "/chat/completions", model=model, num_concurrent=concurrent,
                             max_retries=1, tokenized_requests=False,
                             header={"Authorization": f"Bearer {key}"} if key else None)
    requests_ = [Instance(request_type="generate_until", doc={}, idx=i,
                          arguments=(JsonChatStr(json.dumps(chat)), dict(gen_kwargs))) for i, chat in enumerate(chats)]
    return lm.generate_until(requests_, disable_tqdm=True)


# GSM8K's chat tasks stop at these (lm-eval's gsm8k yaml: until); sampling must be asked for (--gen_kwargs)
GSM8K_GEN_KWARGS = {"until": ["Question:", "</s>", "<|im_end|>"], "do_sample": True, "temperature": 0.8,
                    "max_gen_toks": 256}


def test_lm_evaluation_harness_chat_client_runs_gsm8k_problems_through_a_strategy():
    pytest.importorskip("lm_eval", reason="installed by scripts/install-cpu.sh --test")
    import ttscale
    from ttscale.backends.demo import DemoBackend
    from ttscale.graders import MathGrader

    problems = ttscale.load_problems(ttscale.DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k"))[:6]
    running = Running(Server(["backend=scripted"], backend=DemoBackend(problems), api_key="sk-lm-eval"))
    try:
        chats = [[{"role": "user", "content": p.question}] for p in problems]
        replies = lm_eval_generate(running.url, "self_consistency@8", chats, GSM8K_GEN_KWARGS, key="sk-lm-eval")
        assert len(replies) == 6 and all(r.startswith("Let me think step by step.") for r in replies), replies
        with MathGrader() as grader:
            votes = [bool(grader.equivalent(p.answer, grader.extract(r))) for r, p in zip(replies, problems)]
            single = lm_eval_generate(running.url, "self_consistency@1", chats, GSM8K_GEN_KWARGS, key="sk-lm-eval")
            ones = [bool(grader.equivalent(p.answer, grader.extract(r))) for r, p in zip(single, problems)]
        assert sum(votes) > sum(ones)  # voting over 8 beats one sample on the demo model
        # lm-eval's default gen_kwargs are greedy: a strategy of 8 samples refuses them in one line
        from lm_eval.models.openai_completions import LocalChatCompletion

        payload = LocalChatCompletion(base_url=running.url, model="self_consistency@8", tokenized_requests=False
                                      )._create_payload(chats[0], gen_kwargs={"until": ["Question:"], "do_sample": False})
        refused = requests.post(running.url + "/chat/completions", json=payload, timeout=30,
                                headers={"Authorization": "Bearer sk-lm-eval"})
        assert refused.status_code == 400 and "strategy.temperature=0 is greedy" in refused.json()["error"]["message"]
    finally:
        running.close()


def test_a_prompt_longer_than_the_context_is_a_400_as_vllm_answers():
    from ttscale.backends.scripted import ScriptedBackend

    backend = ScriptedBackend(lambda prompt, params, i: "The answer is \\boxed{7}")
    backend.max_model_len = 40  # a model whose context is 40 tokens
    running = Running(Server(["backend=scripted"], backend=backend))
    try:
        long = [{"role": "user", "content": "word " * 200}]
        response = requests.post(running.url + "/chat/completions", json={"model": "greedy", "messages": long}, timeout=30)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert "maximum context length is 40 tokens" in error["message"] and error["type"] == "invalid_request_error"
        assert backend.calls == []  # refused before any sample
        short = requests.post(running.url + "/chat/completions", json={"model": "greedy", "messages": QUESTION}, timeout=30)
        assert short.status_code == 200
    finally:
        running.close()


def test_a_body_over_the_limit_is_a_413_openai_error(served):
    from ttscale.serve import MAX_BODY

    response = requests.post(served.url + "/chat/completions", data=b"{" + b" " * (MAX_BODY + 10) + b"}",
                             headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 413
    error = response.json()["error"]  # JSON, as every other error of this server
    assert error["code"] == 413 and "larger than this server takes" in error["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_stops_its_strategy(stream):
    """A client gives up after 1 s on a request whose strategy would make calls for 5 s: the strategy
    is cancelled (its calls aborted) once the hang-up is seen, and no call follows."""
    import time

    from ttscale.backends.scripted import ScriptedBackend

    # answers that never agree, so adaptive self-consistency samples batch after batch (1 s each) to n = 20
    backend = ScriptedBackend(lambda prompt, params, i: f"\\boxed{{{params.seed % 997 + i}}}", delay=1.0)
    running = Running(Server(["backend=scripted"], backend=backend))
    try:
        body = {"model": "adaptive_sc@20", "messages": QUESTION, "stream": stream}
        with pytest.raises((requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)):
            requests.post(running.url + "/chat/completions", json=body, timeout=1.0)
        time.sleep(5.0)  # without the cancel: all five batches by now
        # (a call may start while the hang-up is being noticed: the event loop is busy grading at times)
        assert len(backend.calls) <= 3 and backend.in_flight == 0, "calls went on after the client left"
    finally:
        running.close()


def test_the_readmes_lm_eval_command_runs_offline_against_serve(tmp_path):
    """docs/BACKENDS.md's `lm_eval ... --include_path evals/lm_eval_tasks --tasks gsm8k_ttscale` command,
    as written (its port changed, 3 problems), against `ttscale serve` on the scripted stand-in: no hub."""
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "docs" / "BACKENDS.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, re.S) if b.startswith("lm_eval "))
    running = Running(Server(["backend=scripted"]))
    try:
        command = shlex.split(block.replace("\\\n", " ").replace("127.0.0.1:8080", f"127.0.0.1:{running.port}"))
        lm_eval = Path(sys.executable).parent / "lm_eval"
        proc = subprocess.run([str(lm_eval), *command[1:], "--limit", "3", "--output_path", str(tmp_path / "out")],
                              cwd=repo, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        (found,) = list((tmp_path / "out").rglob("results_*.json"))
        results = json.loads(found.read_text())["results"]["gsm8k_ttscale"]
        assert "exact_match,strict-match" in results and results["exact_match,flexible-extract"] >= 0
    finally:
        running.close()
