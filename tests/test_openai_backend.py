"""The OpenAI backend against loopback doubles: the wire format, routing, and every fault the issue
names (500, 429 with Retry-After, connections dropped mid-response and mid-stream, stalls, an endpoint
killed mid-run, every endpoint down), each run ending with every problem once and no sample counted
twice. The real `vllm serve` runs in tests/test_openai_serve_vllm.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from openai_servers import GEN_PROMPT, CharTokenizer, FakeOpenAIServer, FaultProxy, reply_for
from ttscale.backends.base import AFFINITY, BackendUnavailable
from ttscale.backends.openai import BackendRequestError, OpenAIBackend
from ttscale.build import ConfigError, build_strategy
from ttscale.config import group_config
from ttscale.runtime import arun, run
from ttscale.results import load_results
from ttscale.types import Problem, SamplingParams

FAST = {"backoff": 0.05, "backoff_max": 0.2, "cooldown": 0.5, "deadline": 30.0}
MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture
def server():
    s = FakeOpenAIServer().start()
    yield s
    s.close()


def backend_for(*urls, **kw) -> OpenAIBackend:
    kw.setdefault("tokenizer", CharTokenizer())
    kw.setdefault("retry", FAST)
    return OpenAIBackend([u + "/v1" for u in urls], **kw)


def expected(messages, seed) -> str:
    context = CharTokenizer().apply_chat_template(messages, tokenize=False)[: -len(GEN_PROMPT)]
    return reply_for(context, seed)


def test_generate_sends_token_ids_and_reads_ids_logprobs_and_usage(server):
    with backend_for(server.url) as backend:
        assert backend.model == "fake-model"  # the one model the server lists
        params = SamplingParams(n=3, seed=10, max_tokens=200, logprobs=5, keep_token_logprobs=True)
        out = asyncio.run(backend.generate(MESSAGES, params))
    assert [c.text for c in out.completions] == [expected(MESSAGES, 10 + i) for i in range(3)]
    bodies = server.requests
    assert len(bodies) == 3 and [b["seed"] for b in bodies] == [10, 11, 12]  # one request a sample
    assert all(isinstance(b["prompt"], list) and b["return_token_ids"] for b in bodies)
    first = out.completions[0]
    assert first.token_ids == tuple(ord(c) for c in first.text) and first.num_tokens == len(first.text)
    assert first.cumulative_logprob == pytest.approx(-0.1 * len(first.text))
    assert first.stats["tokens"] == len(first.text)
    # top-k by id, decoded by the local tokenizer (self-evaluation reads token strings)
    assert first.token_logprobs[0].token == first.text[0] and len(first.token_logprobs[0].top) == 5
    prompt_len = len(CharTokenizer().apply_chat_template(MESSAGES))
    assert out.prompt_tokens == 3 * prompt_len and out.cached_prompt_tokens == 3 * 3


def test_fast_top_p_sends_the_filter_to_the_servers_processor(server):
    # backend.fast_top_p=true: top_p travels as vllm_xargs for ttscale's TopP on the server, theirs at 1;
    # greedy calls and calls with top_k keep the server's own top-p
    with backend_for(server.url, fast_top_p=True) as backend:
        for params in (SamplingParams(temperature=0.8, top_p=0.9, seed=1), SamplingParams(temperature=0.0, top_p=0.9),
                       SamplingParams(temperature=0.8, top_p=0.9, top_k=20, seed=1),
                       SamplingParams(temperature=0.8, top_p=1.0, seed=1)):
            asyncio.run(backend.generate(MESSAGES, params))
    sent = [(b["top_p"], b.get("top_k"), b.get("vllm_xargs")) for b in server.requests[-4:]]
    assert sent == [(1.0, -1, {"ttscale_top_p": 0.9}), (0.9, None, None), (0.9, 20, None), (1.0, None, None)]
    # a server without the filter would sample with no top-p at all: refused at start, with the way out
    plain = FakeOpenAIServer(top_p_filter=False).start()
    try:
        with pytest.raises(ValueError, match="does not run ttscale's top-p filter.*--logits-processors"):
            backend_for(plain.url, fast_top_p=True)
    finally:
        plain.close()


def test_stop_strings_are_kept_and_named_and_length_finishes():
    s = FakeOpenAIServer().start()
    try:
        with backend_for(s.url) as backend:
            step = asyncio.run(backend.generate(MESSAGES, SamplingParams(stop=("\n\n",), include_stop=True, seed=1)))
            short = asyncio.run(backend.generate(MESSAGES, SamplingParams(max_tokens=4, seed=1)))
    finally:
        s.close()
    c = step.completions[0]
    assert c.text.endswith("\n\n") and c.finish_reason == "stop" and c.stop_reason == "\n\n"
    assert short.completions[0].finish_reason == "length" and short.completions[0].num_tokens == 4


def test_stream_deltas_fold_to_the_generated_sample_and_closing_it_disconnects():
    s = FakeOpenAIServer(token_delay=0.01).start()
    try:
        with backend_for(s.url) as backend:
            async def whole():
                deltas = [d async for d in backend.stream(MESSAGES, SamplingParams(seed=3, max_tokens=200, logprobs=2))]
                return deltas

            deltas = asyncio.run(whole())

            async def early():
                got = 0
                async with contextlib.aclosing(backend.stream(MESSAGES, SamplingParams(seed=3, max_tokens=200))) as it:
                    async for d in it:
                        got += len(d.token_ids)
                        if got >= 5:
                            break
                await asyncio.sleep(0.3)
                return got

            got = asyncio.run(early())
    finally:
        s.close()
    text = "".join(d.text for d in deltas)
    assert text == expected(MESSAGES, 3) and deltas[-1].finish_reason == "stop"
    assert sum(len(d.token_ids) for d in deltas) == len(text)
    assert all(len(d.top_logprobs) == len(d.token_ids) for d in deltas if d.token_ids)
    assert sum(d.prompt_tokens for d in deltas) == len(CharTokenizer().apply_chat_template(MESSAGES))
    assert sum(d.cached_prompt_tokens for d in deltas) == 3  # vLLM gives them only in the last usage chunk
    assert got == 5 and s.disconnects == 1  # the server saw the client leave


def test_score_reads_prompt_logprobs_of_the_completion_tokens(server):
    with backend_for(server.url) as backend:
        values = asyncio.run(backend.score([1, 2, 3], [4, 5]))
    assert values == pytest.approx([-0.03, -0.04])  # positions 3 and 4 of the fake's pattern
    assert server.requests[-1]["prompt_logprobs"] == 0


def test_a_4xx_is_not_retried_and_names_the_status(server):
    proxy = FaultProxy(server.url, [("status", 400, None)]).start()
    try:
        with backend_for(proxy.url, model="m") as backend:
            with pytest.raises(BackendRequestError, match="HTTP 400"):
                asyncio.run(backend.generate(MESSAGES, SamplingParams(seed=1)))
        assert proxy.seen == 1
    finally:
        proxy.close()


@pytest.mark.parametrize("fault", [("status", 500, None), ("status", 502, None), ("drop",), ("drop_mid", 20),
                                   ("stall", 1.5)])
def test_a_failed_try_is_retried_and_the_sample_counted_once(server, fault):
    proxy = FaultProxy(server.url, [fault, fault]).start()
    try:
        with backend_for(proxy.url, model="m", timeout=0.7) as backend:
            out = asyncio.run(backend.generate(MESSAGES, SamplingParams(seed=5, max_tokens=200)))
            assert backend.stats()[0]["failures"] == 2
    finally:
        proxy.close()
    assert [c.text for c in out.completions] == [expected(MESSAGES, 5)]
    assert out.prompt_tokens == len(CharTokenizer().apply_chat_template(MESSAGES))  # once, not three times
    assert len(proxy.applied) == 2 and proxy.seen == 3


def test_429_retry_after_is_honoured(server):
    proxy = FaultProxy(server.url, [("status", 429, 1)]).start()
    try:
        with backend_for(proxy.url, model="m") as backend:
            out = asyncio.run(backend.generate(MESSAGES, SamplingParams(seed=5, max_tokens=200)))
    finally:
        proxy.close()
    assert out.completions[0].text == expected(MESSAGES, 5)
    assert proxy.when[1] - proxy.when[0] >= 0.95  # the second try waited for the server's Retry-After


def test_a_stream_cut_mid_way_goes_on_from_the_ids_it_delivered(server):
    proxy = FaultProxy(server.url, [("drop_mid", 600), ("stall", 2.0)],
                       match=lambda body: body.get("stream", False)).start()
    try:
        with backend_for(proxy.url, model="m", stream_timeout=0.5) as backend:
            async def read():
                return [d async for d in backend.stream(MESSAGES, SamplingParams(seed=8, max_tokens=200))]

            deltas = asyncio.run(read())
    finally:
        proxy.close()
    text = "".join(d.text for d in deltas)
    assert text == expected(MESSAGES, 8)  # the continuation picks up exactly where the cut left it
    ids = [i for d in deltas for i in d.token_ids]
    assert ids == [ord(c) for c in text]  # no token delivered twice
    resumed = [b for b in proxy_bodies(server) if len(b["prompt"]) > len(CharTokenizer().apply_chat_template(MESSAGES))]
    assert resumed and resumed[-1]["max_tokens"] < 200


def proxy_bodies(server):
    return [b for b in server.requests if b.get("stream")]


def test_affinity_keeps_a_problems_calls_on_one_endpoint():
    servers = [FakeOpenAIServer().start() for _ in range(3)]
    try:
        with backend_for(*(s.url for s in servers), model="m") as backend:
            async def problem(i):
                AFFINITY.set(f"p{i}")
                for j in range(4):
                    await backend.generate([{"role": "user", "content": f"q{i}"}], SamplingParams(seed=j))

            async def main():
                await asyncio.gather(*(problem(i) for i in range(12)))

            asyncio.run(main())
    finally:
        for s in servers:
            s.close()
    homes = {}
    for index, s in enumerate(servers):
        for body in s.requests:
            homes.setdefault(CharTokenizer().decode(body["prompt"]), set()).add(index)
    assert len(homes) == 12 and all(len(v) == 1 for v in homes.values())
    assert len({next(iter(v)) for v in homes.values()}) > 1  # and the problems spread over the endpoints


def _problems(n):
    return [Problem(id=f"q{i}", question=f"Question {i}?", answer="1", messages=[{"role": "user", "content": f"Question {i}?"}])
            for i in range(n)]


def _sc(backend, n=4):
    cfg = dict(group_config("strategy", "self_consistency"), n=n, max_tokens=200)
    return build_strategy(cfg, None, backend)


def test_an_endpoint_killed_mid_run_fails_over_and_nothing_is_lost_or_counted_twice(tmp_path, grader):
    # the endpoint to kill answers slowly, so its requests are still in flight when it goes (a fast one
    # could finish all of them first); it is killed at its second request: routing hashes problem ids
    # with the endpoints' random ports, so it may get few of the 16 problems
    servers = [FakeOpenAIServer(token_delay=0.005).start(), FakeOpenAIServer(token_delay=0.0).start()]
    proxies = [FaultProxy(s.url).start() for s in servers]
    try:
        # a cooldown longer than the run: the killed endpoint is still out when the stats are read
        with backend_for(*(p.url for p in proxies), model="m", retry={**FAST, "cooldown": 60.0}) as backend:
            problems = _problems(16)

            async def kill_later():
                while proxies[0].seen < 2:
                    await asyncio.sleep(0.01)
                await asyncio.get_running_loop().run_in_executor(None, proxies[0].stop)

            async def main():
                killer = asyncio.create_task(kill_later())
                outcome = await arun(_sc(backend), problems, backend, output=tmp_path / "results.jsonl", grader=grader,
                                     progress=False, concurrency=8)
                killer.cancel()
                return outcome

            outcome = asyncio.run(main())
            stats = backend.stats()
            homed_on_0 = [p for p in problems if max(backend.endpoints, key=lambda e: e.weight(p.id)) is backend.endpoints[0]]
    finally:
        for x in proxies + servers:
            x.close()
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["problem_id"] for line in lines) == sorted(p.id for p in problems)
    assert all(r.error is None for r in outcome.results)
    # counted once: each problem's usage is the tokens of the samples it kept, whatever was retried
    asked = {p.id: len(CharTokenizer().apply_chat_template(p.messages)) for p in problems}
    for r in outcome.results:
        assert r.usage.completion_tokens == sum(c.num_tokens for c in r.candidates) > 0
        assert r.usage.prompt_tokens == 4 * asked[r.problem_id]
    assert stats[0]["failures"] >= 1 and stats[0]["out"]  # the killed endpoint failed and left the rotation
    on_1 = "".join(CharTokenizer().decode(b["prompt"]) for b in servers[1].requests)
    assert any(p.question in on_1 for p in homed_on_0)  # problems of the killed endpoint went on at the other


def test_every_endpoint_down_records_the_problems_and_a_rerun_solves_them(tmp_path, grader):
    server = FakeOpenAIServer().start()
    proxy = FaultProxy(server.url).start()
    url = proxy.url
    proxy.stop()  # nothing listens there
    problems = _problems(3)
    out = tmp_path / "results.jsonl"
    try:
        with pytest.warns(UserWarning, match="context length is unknown"), \
                backend_for(url, model="m", retry={**FAST, "max_attempts": 3}) as backend:
            first = run(_sc(backend, 2), problems, backend, output=out, grader=grader, progress=False)
        assert all(r.error and "BackendUnavailable" in r.error and "connection failed" in r.error for r in first.results)
        assert {r.error_type for r in first.results} == {"BackendUnavailable"}
        proxy.start()  # the server is back
        with backend_for(url, model="m") as backend:
            second = run(_sc(backend, 2), problems, backend, output=out, grader=grader, progress=False)
    finally:
        proxy.close()
        server.close()
    assert all(r.error is None and r.answer is not None for r in second.results)
    assert second.summary["resumed"] == 0 and set(load_results(out)) == {p.id for p in problems}


def test_a_stall_longer_than_the_timeout_and_a_call_deadline_never_hang(server):
    proxy = FaultProxy(server.url, [("stall", 5.0)] * 10).start()
    try:
        with backend_for(proxy.url, model="m", timeout=0.3, retry={**FAST, "max_attempts": 2}) as backend:
            t0 = time.monotonic()
            with pytest.raises(BackendUnavailable, match="no endpoint answered"):
                asyncio.run(backend.generate(MESSAGES, SamplingParams(seed=1)))
            assert time.monotonic() - t0 < 5.0  # bounded by the timeouts, not by the stall
    finally:
        proxy.close()


def test_chat_mode_without_a_tokenizer_uses_the_chat_endpoint_and_refuses_token_id_strategies(server):
    with backend_for(server.url, tokenizer=None) as backend:
        out = asyncio.run(backend.generate(MESSAGES, SamplingParams(seed=2, max_tokens=200, logprobs=3,
                                                                    keep_token_logprobs=True)))
        assert out.completions[0].text == expected(MESSAGES, 2)
        assert out.completions[0].num_tokens == len(out.completions[0].text)  # from the server's usage
        assert out.completions[0].token_logprobs[0].top  # the server's token strings
        assert "messages" in server.requests[-1]
        with pytest.raises(ValueError, match="backend.tokenizer"):
            backend.encode(MESSAGES)
        with pytest.raises(ValueError, match="backend.tokenizer"):
            asyncio.run(backend.stream(MESSAGES, SamplingParams()).__anext__())
        cfg = dict(group_config("strategy", "particle_filtering"), n=2)
        with pytest.raises(ConfigError, match="continues partial solutions, and the backend has no tokenizer"):
            build_strategy(cfg, dict(group_config("verifier", "self_eval")), backend)
        cfg = dict(group_config("strategy", "eager"))
        with pytest.raises(ConfigError, match="works on token ids"):
            build_strategy(cfg, None, backend)


def test_config_errors_name_the_key_and_the_choices(server):
    with pytest.raises(ValueError, match="unknown keys \\['retries'\\]; choose from: max_attempts"):
        OpenAIBackend([server.url + "/v1"], "m", retry={"retries": 3})
    with pytest.raises(ValueError, match="not an http"):
        OpenAIBackend(["localhost:8000"], "m")
    with pytest.raises(ValueError, match="TTSCALE_TEST_NO_SUCH_KEY"):
        OpenAIBackend([server.url + "/v1"], "m", api_key_env="TTSCALE_TEST_NO_SUCH_KEY")


def test_waiting_for_a_slot_is_not_part_of_the_deadline_nor_an_endpoints_fault():
    s = FakeOpenAIServer(delay=0.4).start()
    try:
        with backend_for(s.url, model="m", max_concurrency=1, retry={**FAST, "deadline": 1.0}) as backend:
            async def four():
                return await asyncio.gather(*(backend.generate(MESSAGES, SamplingParams(seed=i, max_tokens=200))
                                              for i in range(4)))

            outs = asyncio.run(four())  # 1.6 s in all, one at a time: each within its own 1 s
            stats = backend.stats()
    finally:
        s.close()
    assert [o.completions[0].text for o in outs] == [expected(MESSAGES, i) for i in range(4)]
    assert stats[0]["failures"] == 0 and not stats[0]["out"]


def test_a_stream_cut_after_its_last_token_loses_nothing_and_sends_nothing_more():
    s = FakeOpenAIServer(cut_after_finish=True).start()
    try:
        with backend_for(s.url, model="m") as backend:
            async def read():
                return [d async for d in backend.stream(MESSAGES, SamplingParams(seed=4, max_tokens=200))]

            deltas = asyncio.run(read())
    finally:
        s.close()
    assert "".join(d.text for d in deltas) == expected(MESSAGES, 4) and deltas[-1].finish_reason == "stop"
    assert len(s.requests) == 1  # no continuation of a sample that had finished


def test_the_context_length_caps_max_tokens_and_a_full_prompt_finishes_with_length_as_in_process():
    s = FakeOpenAIServer(context=100).start()
    try:
        with backend_for(s.url) as backend:
            assert backend.max_model_len == 100  # read from /v1/models
            out = asyncio.run(backend.generate(MESSAGES, SamplingParams(seed=1, max_tokens=4096)))
            full = asyncio.run(backend.generate([{"role": "user", "content": "x" * 200}], SamplingParams()))
    finally:
        s.close()
    prompt = len(CharTokenizer().apply_chat_template(MESSAGES))
    assert s.requests[0]["max_tokens"] == 100 - prompt and out.completions[0].text
    c = full.completions[0]
    assert (c.text, c.num_tokens, c.finish_reason) == ("", 0, "length") and len(s.requests) == 1
    assert full.prompt_tokens > 100


def test_when_one_sample_fails_its_siblings_are_cancelled():
    slow = FakeOpenAIServer(delay=3.0).start()
    proxy = FaultProxy(slow.url, [("status", 400, None)], match=lambda body: body.get("seed") == 2).start()
    try:
        with backend_for(proxy.url, model="m") as backend:
            with pytest.raises(BackendRequestError):
                asyncio.run(backend.generate(MESSAGES, SamplingParams(n=4, seed=0, max_tokens=200)))
            assert backend.endpoints[0].outstanding == 0  # the three slow siblings were not left running
    finally:
        proxy.close()
        slow.close()
