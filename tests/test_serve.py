"""`ttscale serve` through the `openai` client: strategies answer chat requests, bad requests get a
400 with one line. The scripted backend here; the real CPU engine in test_openai_serve_vllm.py."""

from __future__ import annotations

import asyncio
import json
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
    ({"model": "self_consistency@0", "messages": QUESTION}, "budget after '@' must be an integer from 1 to 1024"),
    ({"model": "self_consistency@1000000", "messages": QUESTION}, "must be an integer from 1 to 1024"),
    ({"model": "greedy", "messages": []}, "'messages' must be a non-empty list"),
    ({"model": "greedy", "messages": [{"role": "user"}]}, "messages[0] must be {role"),
    ({"model": "greedy", "messages": QUESTION, "stream": True}, "stream=true is not supported"),
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
    assert bad.returncode == 2 and bad.stderr.strip() == "ttscale serve: backend=nope is not a known choice; choose one of: openai, scripted, vllm"
