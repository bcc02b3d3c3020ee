"""`ttscale-servers`: the layout of N servers over a machine, and (on the CPU build) two real one-core
vLLM servers started by one command, a submitit sweep through the line it prints, and a clean stop.
(Before the session's in-process engine starts: see test_cli_killed.py.)"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import httpx
import pytest

from ttscale.backends.launch import ServerSpec, plan_layout, server_command
from ttscale.config import group_config
from ttscale.preload import preload_env
from ttscale.servers import overrides_line


def test_cpu_layout_splits_the_cores_one_share_per_server():
    assert [s.devices for s in plan_layout("cpu", [0, 1], servers=2, port=9000)] == [(0,), (1,)]
    assert [s.port for s in plan_layout("cpu", [0, 1], servers=2, port=9000)] == [9000, 9001]
    assert [s.devices for s in plan_layout("cpu", [3, 1, 2, 0], servers=2)] == [(0, 1), (2, 3)]
    assert [s.devices for s in plan_layout("cpu", [0, 1])] == [(0, 1)]  # default: one server on every core
    with pytest.raises(ValueError, match="3 servers need at least 3 cores; this process may use 2"):
        plan_layout("cpu", [0, 1], servers=3)
    with pytest.raises(ValueError, match="--tensor-parallel applies to GPUs"):
        plan_layout("cpu", [0, 1], tensor_parallel=2)


def test_gpu_layout_is_one_server_per_tensor_parallel_group():
    assert [s.devices for s in plan_layout("gpu", range(8))] == [(i,) for i in range(8)]
    assert [s.devices for s in plan_layout("gpu", range(8), tensor_parallel=2)] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert [s.devices for s in plan_layout("gpu", range(8), servers=2, tensor_parallel=4)] == [(0, 1, 2, 3),
                                                                                               (4, 5, 6, 7)]
    with pytest.raises(ValueError, match="3 servers x tensor parallel 4 need 12 GPUs; 8 are visible"):
        plan_layout("gpu", range(8), servers=3, tensor_parallel=4)
    with pytest.raises(ValueError, match="no GPU is visible"):
        plan_layout("gpu", [])


def test_server_commands_bind_each_server_to_its_devices():
    command, env = server_command("/m", ServerSpec(8001, (2, 3), "gpu"), name="qwen", max_model_len=4096)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and command[command.index("--tensor-parallel-size") + 1] == "2"
    assert command[command.index("--port") + 1] == "8001" and "--enforce-eager" not in command
    assert command[command.index("--served-model-name") + 1] == "qwen"
    command, env = server_command("/m", ServerSpec(8000, (1,), "cpu"), kv_cache_gib=3, fast_top_p=True,
                                  extra_args=["--max-num-seqs", "64"])
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "1" and env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert "--enforce-eager" in command and command[-2:] == ["--max-num-seqs", "64"]
    assert "ttscale.backends.top_p:TopP" in command and "--tensor-parallel-size" not in command
    # tuned as the in-process CPU engine: its cpu_engine_args (conf/backend/vllm.yaml) and preload
    cpu = group_config("backend", "vllm")["cpu_engine_args"]
    assert command[command.index("--block-size") + 1] == str(cpu["block_size"]) == "32"
    assert command[command.index("--dtype") + 1] == "float32" and command[command.index("--max-model-len") + 1] == "2048"
    assert env.get("LD_PRELOAD") == (preload_env(dict(os.environ)) or os.environ).get("LD_PRELOAD")


def test_the_printed_line_is_ttscale_overrides():
    line = overrides_line("smollm2-135m", ["http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1"], "cpu", True)
    assert line == ("model=smollm2-135m backend=openai backend.endpoints=[http://127.0.0.1:8000/v1,"
                    "http://127.0.0.1:8001/v1] backend.send_seed=false backend.fast_top_p=true")
    assert overrides_line("hf", ["http://127.0.0.1:8000/v1"], "gpu", False, path="Qwen/Qwen2.5-Math-7B") == \
        "model=hf model.path=Qwen/Qwen2.5-Math-7B backend=openai backend.endpoints=[http://127.0.0.1:8000/v1]"


def servers_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ttscale.servers", *args], capture_output=True, text=True,
                          timeout=120, **kw)


def test_a_layout_that_cannot_fit_is_refused_in_one_line():
    proc = servers_cli("--servers", str(len(os.sched_getaffinity(0)) + 1), "--device", "cpu")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "servers need at least" in proc.stderr
    proc = servers_cli("--device", "gpu", env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2 and proc.stderr.strip() == "ttscale-servers: no GPU is visible to this process"


def _served(url: str) -> float:
    """Requests a vLLM server finished (its Prometheus counter)."""
    text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total"))


@pytest.mark.integration
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two one-core servers need two cores")
def test_two_one_core_servers_from_one_command_serve_a_run_and_stop_together(tmp_path):
    import psutil

    endpoints = tmp_path / "endpoints.txt"
    launcher = subprocess.Popen([sys.executable, "-m", "ttscale.servers", "--model", "smollm2-135m", "--servers", "2",
                                 "--port", "0", "--kv-cache-gib", "1", "--endpoints-file", str(endpoints),
                                 "--logs", str(tmp_path / "logs")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not endpoints.exists() and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        assert endpoints.exists(), launcher.communicate(timeout=60)[1][-3000:]
        line = endpoints.read_text().strip()
        urls = line.split("backend.endpoints=[", 1)[1].split("]", 1)[0].split(",")
        assert len(urls) == 2 and len(set(urls)) == 2 and "backend.send_seed=false" in line
        servers = [p for p in psutil.Process(launcher.pid).children(recursive=True)
                   if "vllm.entrypoints.openai.api_server" in " ".join(p.cmdline())]
        shares = [s.devices for s in plan_layout("cpu", os.sched_getaffinity(0), servers=2, port=0)]
        assert sorted(tuple(p.cpu_affinity()) for p in servers) == shares  # each server pinned to its share

        # the cluster pattern: a sweep whose jobs are submitit processes, all served by the shared servers
        sweep = tmp_path / "sweep"
        proc = subprocess.run([sys.executable, "-m", "ttscale.cli", "-m", *shlex.split(line),
                               "hydra/launcher=submitit_local", "strategy=self_consistency,best_of_n",
                               "dataset.limit=12", "strategy.n=2", "strategy.max_tokens=48", "progress=false",
                               f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
        assert sorted(s["strategy"] for s in summaries) == ["best_of_n", "self_consistency"]
        assert all(s["problems"] == 12 and s["errors"] == 0 for s in summaries)
        assert len(list((sweep / ".submitit").glob("*/*_log.out"))) == 2  # each job a process of its own
        served = [_served(url) for url in urls]
        # both servers took problems (routing hashes problem ids with the URLs: all 12 on one: p = 1/2048)
        assert all(s > 0 for s in served) and sum(served) >= 24, served

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(90) == 0
        for url in urls:
            with pytest.raises(httpx.HTTPError):
                httpx.get(url.removesuffix("/v1") + "/health", timeout=5)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in servers)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


def test_a_server_that_exits_ends_the_command():
    from ttscale.backends.launch import Fleet
    from ttscale.servers import _serve_until_stopped

    alive, dead = subprocess.Popen(["sleep", "30"]), subprocess.Popen(["true"])
    try:
        dead.wait(10)
        fleet = Fleet(["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"], [alive, dead])
        assert fleet.exited() == ["http://127.0.0.1:2/v1"]
        assert _serve_until_stopped(fleet) == 1  # main() then leaves vllm_servers, which stops the others
    finally:
        alive.kill()
        alive.wait()
