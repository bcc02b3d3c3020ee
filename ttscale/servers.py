"""`ttscale-servers`: start N vLLM OpenAI servers of one model over this machine, wait until each
answers, print the overrides that point ttscale at them, and keep them up until Ctrl-C or SIGTERM.

    ttscale-servers --model smollm2-135m --servers 2            # CPU: two servers, one core each here
    ttscale-servers --model qwen2.5-coder-0.5b                  # GPU node: one server per GPU
    ttscale-servers --model hf --path Qwen/Qwen2.5-Math-7B-Instruct --tensor-parallel 2   # 8 GPUs: 4 servers
    ttscale $(cat endpoints.txt) strategy=particle_filtering    # with --endpoints-file endpoints.txt

Why N servers and not vLLM's own data parallelism (`--data-parallel-size`, one API server over N
engines): ttscale's openai backend routes every call of one problem to the same server (rendezvous
hashing on the problem id), so a step-wise search's prompt prefix stays in that server's cache, while
vLLM's internal balancer places each request by load alone; and separate servers fail apart, which
the backend's failover handles (a server that dies takes only its share of the calls, retried
elsewhere). Extra vLLM arguments follow `--` (for example `-- --gpu-memory-utilization 0.85`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _devices(device: str) -> list[int]:
    if device == "cpu":
        return sorted(os.sched_getaffinity(0))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # indices or UUIDs (GPU-..., MIG-...): passed on as named
        return [int(d) if d.strip().isdigit() else d.strip() for d in visible.split(",") if d.strip()]
    import torch

    return list(range(torch.cuda.device_count()))


def _device(choice: str) -> str:
    if choice != "auto":
        return choice
    from ttscale.backends.vllm import is_cpu_platform

    return "cpu" if is_cpu_platform() else "gpu"


def overrides_line(model_name: str, urls: list[str], device: str, fast_top_p: bool, path: str | None = None) -> str:
    """The ttscale overrides that run against these servers (one line, as a shell would split it)."""
    parts = [f"model={model_name}", *([f"model.path={path}"] if path else []), "backend=openai",
             f"backend.endpoints=[{','.join(urls)}]"]
    if device == "cpu":  # per-request seeds crash the CPU build's server; its top-p filter is ttscale's
        parts.append("backend.send_seed=false")
        if fast_top_p:
            parts.append("backend.fast_top_p=true")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="ttscale-servers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="a model config (conf/model/), as model=NAME")
    parser.add_argument("--path", default=None, help="with --model hf: the HF id or folder")
    parser.add_argument("--servers", type=int, default=None,
                        help="servers to start (GPU default: one per tensor-parallel group; CPU default: 1)")
    parser.add_argument("--tensor-parallel", type=int, default=1, help="GPUs per server")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: what the installed vLLM build runs on")
    parser.add_argument("--port", type=int, default=8000, help="the first server's port, the next ones follow (0: free ports)")
    parser.add_argument("--kv-cache-gib", type=int, default=2, help="CPU: KV cache per server")
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--no-fast-top-p", action="store_true", help="CPU: leave top-p to vLLM's own sampler")
    parser.add_argument("--api-key-env", default=None, help="the NAME of an environment variable with an API key")
    parser.add_argument("--logs", default=None, help="folder for the servers' logs (default: a new temporary one)")
    parser.add_argument("--endpoints-file", default=None, help="write the overrides line here once every server answers")
    parser.add_argument("--start-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    from ttscale.backends.launch import plan_layout, vllm_servers
    from ttscale.build import ConfigError, build_model_path
    from ttscale.config import group_config
    from ttscale.reaper import install_signal_handlers

    try:
        model_cfg = group_config("model", args.model)
        if args.path:
            model_cfg = {**model_cfg, "path": args.path}
        device = _device(args.device)
        layout = plan_layout(device, _devices(device), args.servers, args.tensor_parallel, args.port)
        model_path = build_model_path(model_cfg)
    except (ConfigError, ValueError) as exc:
        print(f"ttscale-servers: {exc}", file=sys.stderr)
        return 2
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"ttscale-servers: --api-key-env {args.api_key_env}: that variable is not set", file=sys.stderr)
            return 2
    logs = Path(args.logs or tempfile.mkdtemp(prefix="ttscale-servers-"))
    endpoints = Path(args.endpoints_file) if args.endpoints_file else None
    if endpoints:
        endpoints.unlink(missing_ok=True)  # a stale line from an earlier start is never read as this one
    fast_top_p = device == "cpu" and not args.no_fast_top_p
    where = "cores" if device == "cpu" else "GPUs"
    print(f"ttscale-servers: starting {len(layout)} server(s) of {args.model} on {where} "
          + " | ".join(",".join(map(str, s.devices)) for s in layout) + f" (logs: {logs})", file=sys.stderr)
    install_signal_handlers()  # SIGTERM stops the servers as Ctrl-C does
    start = time.monotonic()
    try:
        with vllm_servers(model_path, layout, logs=logs, name=args.model, api_key=api_key,
                          kv_cache_gib=args.kv_cache_gib, max_model_len=args.max_model_len, fast_top_p=fast_top_p,
                          extra_args=extra, start_timeout=args.start_timeout) as fleet:
            urls = fleet.urls
            time.sleep(2)
            if fleet.exited():  # one died after answering (its port taken, say): no line for a script to use
                print(f"ttscale-servers: the server at {fleet.exited()[0]} exited after it answered", file=sys.stderr)
                return 1
            line = overrides_line(args.model, urls, device, fast_top_p, args.path)
            if args.api_key_env:
                line += f" backend.api_key_env={args.api_key_env}"
            print(f"ttscale-servers: {len(urls)} server(s) ready in {time.monotonic() - start:.0f} s; "
                  "run ttscale with:", file=sys.stderr)
            print(line, flush=True)
            if endpoints:
                partial = endpoints.with_name(endpoints.name + ".partial")
                partial.write_text(line + "\n")
                os.replace(partial, endpoints)  # whole or absent, for a script waiting for it
            return _serve_until_stopped(fleet)
    except KeyboardInterrupt:
        print("ttscale-servers: stopped", file=sys.stderr)
        return 0
    except RuntimeError as exc:  # a server that did not start: its log's tail
        print(f"ttscale-servers: {exc}", file=sys.stderr)
        return 1
    finally:
        if endpoints:
            endpoints.unlink(missing_ok=True)  # the servers are gone


def _serve_until_stopped(fleet) -> int:
    """Block until a signal; a server that exits ends the command (the others are stopped) with exit 1."""
    while True:
        time.sleep(2)
        exited = fleet.exited()
        if exited:
            print(f"ttscale-servers: the server at {exited[0]} exited; stopping the others", file=sys.stderr)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
