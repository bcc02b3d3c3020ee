"""The `ttscale` command: a Hydra app over conf/ (groups model, backend, strategy, dataset).

    ttscale                                        # the default run (see conf/config.yaml)
    ttscale strategy=best_of_n strategy.n=16
    ttscale -m strategy.n=1,4,16                   # a sweep; one engine serves every job
    ttscale serve --port 8080 model=...            # an OpenAI chat endpoint answering with strategies (serve.py)

Each run's folder holds config.yaml (resolved), results.jsonl (one line per problem, appended as
problems finish) and summary.json. Rerunning into the same folder (hydra.run.dir=...) resumes.

The console shows ttscale's own lines, the progress bar and the summary. What the engine prints while
it starts (and its worker processes print afterwards) goes to engine.log in the run's folder (the
first job's, in a sweep); `-v` (or `--verbose`) shows it on the console instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException

from ttscale.cli_checks import check_job_folders, check_overrides
from ttscale.config import CONFIG_NAME, conf_dir
from ttscale.rerun import check_resume, finished

@contextlib.contextmanager
def engine_output(log_path: Path | None):
    """Standard output and error, at the file-descriptor level (so the engine's own processes,
    started inside, inherit it), go to `log_path` for the duration; None: left on the console."""
    if log_path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class JobFailed(CompactHydraException):
    """A sweep job that is no result (every problem errored, or a one-line refusal). Raised, not exited,
    so that every launcher records the job as failed and runs the others to the end: Hydra's basic
    launcher in this process, and launchers that run a job in a process of their own (submitit, joblib,
    Ray), which return its outcome to the sweep. The sweep then exits 1, and Hydra prints the failed
    job's overrides and this one-line message (a compact exception: no traceback)."""


class App:
    """The Hydra task. Keeps one backend per (model, backend config, seed) across multirun jobs."""

    def __init__(self, verbose: bool = False) -> None:
        self._backends: dict[str, Any] = {}
        self.verbose = verbose
        self.failed: list[str] = []  # jobs whose every problem errored: the command then exits 1
        self.current: Path | None = None  # the run folder in progress
        self.resume_with = ""  # the override whose rerun resumes it

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A launcher that runs a job in a process of its own unpickles the task there: the config's
        resolvers (the job folder's name) must exist in that process before Hydra names the folder."""
        from ttscale.config import register_resolvers

        register_resolvers()
        self.__dict__.update(state)

    def backend(self, cfg, out_dir: Path | None = None) -> Any:
        from omegaconf import OmegaConf

        from ttscale.build import ConfigError, build_backend, build_model_path, logprobs_mode, needs_model_weights
        from ttscale.models.source import ModelSourceError

        mode = logprobs_mode(OmegaConf.to_container(cfg.strategy, resolve=True))  # power sampling: processed
        key = json.dumps([OmegaConf.to_container(cfg.model), OmegaConf.to_container(cfg.backend), cfg.seed, mode],
                         sort_keys=True, default=str)
        if key not in self._backends:
            for old in self._backends.values():
                old.close()
            self._backends.clear()
            local = needs_model_weights(cfg.backend)  # not a stand-in model, nor a server's (unless its tokenizer)
            try:
                model_path = build_model_path(OmegaConf.to_container(cfg.model, resolve=True)) if local else None
            except ModelSourceError as exc:
                raise ConfigError(str(exc)) from None
            quiet = not self.verbose and cfg.backend.kind == "vllm" and out_dir is not None
            log_path = out_dir / "engine.log" if quiet else None
            if cfg.backend.kind == "openai":
                print(f"ttscale: {cfg.model.name} served at {', '.join(map(str, cfg.backend.endpoints))}", file=sys.stderr)
                logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line per request in the job's log
            elif cfg.backend.kind == "scripted":
                print(f"ttscale: a scripted stand-in model (backend.script={cfg.backend.script}), not {cfg.model.name}: "
                      "no engine, and its numbers are no result", file=sys.stderr)
            else:
                print(f"ttscale: starting the {cfg.backend.kind} engine for {cfg.model.name}"
                      + (f" (its log: {log_path}; -v shows it here)" if log_path else ""), file=sys.stderr)
            with engine_output(log_path):
                self._backends[key] = build_backend(OmegaConf.to_container(cfg.backend, resolve=True), model_path,
                                                    cfg.seed, logprobs_mode=mode)
            if quiet:  # the engine's own warnings in this process (e.g. per request) only at -v
                logging.getLogger("vllm").setLevel(logging.ERROR)
        return self._backends[key]

    def __call__(self, cfg) -> dict[str, Any]:
        from hydra.core.hydra_config import HydraConfig

        from ttscale.reaper import guard

        guard()  # a job a launcher runs in a process of its own watches over what it starts
        if HydraConfig.get().mode.name != "MULTIRUN":
            return self.run(cfg)
        failed = len(self.failed)
        try:
            summary = self.run(cfg)
        except SystemExit as exc:  # a job's one-line refusal: this job failed, the sweep's others go on
            if exc.code in (0, None):
                raise
            if not isinstance(exc.code, int):  # the message SystemExit would print at exit (else printed already)
                print(exc.code, file=sys.stderr)
            raise JobFailed(f"ttscale: job failed: {HydraConfig.get().runtime.output_dir} (the reason above)") from None
        if len(self.failed) > failed:
            raise JobFailed(f"ttscale: job failed: {self.failed[-1]}")
        return summary

    def run(self, cfg) -> dict[str, Any]:
        """One run (a job of a sweep): its results.jsonl and summary.json in the output folder."""
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import OmegaConf

        from ttscale.build import build_problems, build_strategy, model_stop
        from ttscale.runtime import run
        from ttscale.tracing.recorder import TRACE_FILE

        out_dir = Path(HydraConfig.get().runtime.output_dir)
        self.current = out_dir  # what a Ctrl-C or SIGTERM names: the folder whose rerun resumes
        self.resume_with = (f"hydra.sweep.dir={out_dir.parent}" if HydraConfig.get().mode.name == "MULTIRUN"
                            else f"hydra.run.dir={out_dir}")
        resolved = OmegaConf.to_container(cfg, resolve=True)
        check_resume(out_dir, resolved)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))

        from ttscale.build import ConfigError
        from ttscale.data.loaders import DatasetError

        try:  # a data or config error in one line, no traceback; the run cannot be right, so it does not start
            problems = build_problems(resolved["dataset"], resolved["model"])
        except (ConfigError, DatasetError) as exc:
            print(f"ttscale: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        from ttscale.backends.base import BackendUnavailable

        if finished(problems, out_dir, resolved):  # a finished run read again: its summary, no engine
            print(f"ttscale: every problem is in {out_dir / 'results.jsonl'} already: nothing to generate, "
                  f"no {cfg.backend.kind} backend started", file=sys.stderr)
            with _grader(resolved) as grader:
                outcome = run(None, problems, None, seed=cfg.seed, output=out_dir / "results.jsonl", grader=grader,
                              progress=False, retry_errors=cfg.retry_errors)
            return self._finish(cfg, resolved, problems, out_dir, outcome)
        try:
            backend = self.backend(cfg, out_dir)
        except ConfigError as exc:  # a backend setting that cannot work: one line
            print(f"ttscale: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except BackendUnavailable as exc:  # no server to run on: before the first problem, one line
            print(f"ttscale: backend={cfg.backend.kind}: {exc} (is a server running at backend.endpoints?)",
                  file=sys.stderr)
            raise SystemExit(2) from None
        from ttscale.backends.demo import DemoBackend

        if isinstance(backend, DemoBackend):  # the stand-in that knows the answers (backend=demo)
            backend.learn(problems)
        with _grader(resolved) as grader:
            try:  # checks that need the backend itself (what it returns): one line, before the first problem
                strategy = build_strategy(resolved["strategy"], resolved["verifier"], backend, grader,
                                          extra_stop=model_stop(resolved["model"]),
                                          step_delimiter=resolved["model"]["step_delimiter"])
            except ConfigError as exc:
                print(f"ttscale: {exc}", file=sys.stderr)
                raise SystemExit(2) from None
            outcome = run(strategy, problems, backend, seed=cfg.seed, concurrency=cfg.concurrency,
                          output=out_dir / "results.jsonl", grader=grader, progress=cfg.progress,
                          retry_errors=cfg.retry_errors, trace=out_dir / TRACE_FILE if cfg.trace else None)
        return self._finish(cfg, resolved, problems, out_dir, outcome)

    def _finish(self, cfg, resolved: dict[str, Any], problems, out_dir: Path, outcome) -> dict[str, Any]:
        """The run's summary.json, its logger, the table on the console; a run whose every problem
        errored is a failed job."""
        from hydra.core.hydra_config import HydraConfig

        from ttscale.analysis.compute import Prices, compute_summary
        from ttscale.loggers import log_run
        from ttscale.provenance import identity, provenance
        from ttscale.results import format_summary
        from ttscale.strategies.budget import budget_knob

        who = identity(resolved)
        summary = {"model": who["model_label"], "backend": who["backend"], "stand_in": who["stand_in"],
                   "strategy": cfg.strategy.name, "n": cfg.strategy.n,
                   "n_counts": budget_knob(resolved["strategy"]),
                   "verifier": cfg.verifier.name or cfg.strategy.verifier, "dataset": cfg.dataset.name,
                   **outcome.summary,
                   **compute_summary(outcome.results, resolved["model"].get("params"),
                                     resolved["verifier"].get("params"), Prices.from_config(resolved["model"].get("prices"))),
                   "provenance": provenance(resolved, problems)}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        tracked = log_run(resolved["logger"], resolved, summary, outcome.results, out_dir,
                          group=str(out_dir.parent) if HydraConfig.get().mode.name == "MULTIRUN" else None)
        print(format_summary(summary))
        print(f"results: {out_dir}")
        if tracked:
            print(f"logged: {tracked}")
        if summary["problems"] and summary["errors"] == summary["problems"]:
            first = next((r.error for r in outcome.results if r.error), "")
            line = (f"every problem of this run errored ({summary['errors']} of {summary['problems']}; the first: "
                    f"{str(first).splitlines()[-1][:300] if first else '?'})")
            print(f"ttscale: {line}", file=sys.stderr)
            self.failed.append(f"{out_dir}: {line}")
        return summary

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()


def quiet_exit(app: App, why: str) -> None:
    """A run stopped by Ctrl-C or SIGTERM: one line saying what is kept and how to resume, exit 130.
    What the engine prints while it shuts down is not shown (its log in the run folder has it)."""
    where = app.current
    done = 0
    if where is not None and (where / "results.jsonl").exists():
        from ttscale.results import load_results

        try:  # problems, not lines (a retried problem has two)
            done = len(load_results(where / "results.jsonl"))
        except ValueError:
            done = 0
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                app.close()
            except BaseException:  # noqa: BLE001  (stopping anyway)
                pass
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    if where is None:
        print(f"ttscale: stopped ({why})", file=sys.stderr)
    else:
        print(f"ttscale: stopped ({why}); {done} problems finished are kept in {where}; the same command with "
              f"{app.resume_with} resumes", file=sys.stderr)
    raise SystemExit(130)


def _grader(resolved: dict[str, Any]):
    """The run's grader (a context manager); a config that cannot work (e.g. no bubblewrap as root:
    programs would run as root) stops the job in one line."""
    from ttscale.build import ConfigError, build_grader

    try:
        return build_grader(resolved["dataset"], resolved["grader"], resolved["model"])
    except ConfigError as exc:
        print(f"ttscale: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def command_help() -> str:
    """`ttscale --help`: the command's usage and every choice of each config group (conf/), the
    schemas the configs are checked against left out; Hydra's own options: --hydra-help."""
    lines = [(__doc__ or "").strip(), "", "Config groups (GROUP=CHOICE; KEY=VALUE sets one key, e.g. strategy.n=16):"]
    for group in sorted(p for p in conf_dir().rglob("*") if p.is_dir() and not p.name.startswith((".", "hydra"))):
        choices = sorted(f.stem for f in group.glob("*.yaml") if not f.stem.endswith("_schema"))
        if choices:
            lines.append(f"  {group.relative_to(conf_dir()).as_posix()}: {', '.join(choices)}")
    lines += ["", "Recipes (recipe=NAME, a sweep): see recipes/README.md. Hydra's own options: ttscale --hydra-help"]
    return "\n".join(lines)


def main() -> None:
    from ttscale.preload import restart_preloaded

    restart_preloaded()  # tcmalloc and Intel OpenMP for vLLM's CPU engine (ttscale/preload.py)
    from ttscale.reaper import guard, install_signal_handlers

    guard()  # every process this run starts ends with it, SIGKILL included (ttscale/reaper.py)
    install_signal_handlers()  # SIGTERM stops the run as Ctrl-C does: results kept, engine shut down
    import hydra

    from ttscale.config import expand_recipe, register_schemas

    if sys.argv[1:2] == ["trace"]:  # a run's trace page, or a replay on it (ttscale/tracing/cli.py)
        from ttscale.tracing.cli import main as trace

        raise SystemExit(trace(sys.argv[2:]))
    if sys.argv[1:2] == ["serve"]:  # an OpenAI-compatible endpoint answering with strategies (ttscale/serve.py)
        from ttscale.serve import main as serve

        problem = check_overrides([a for a in sys.argv[2:] if "=" in a and not a.startswith("-")])
        if problem:
            print(f"ttscale serve: {problem}", file=sys.stderr)
            raise SystemExit(2)
        return serve(sys.argv[2:])
    try:
        args = expand_recipe(sys.argv[1:])
    except ValueError as exc:
        print(f"ttscale: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if any(a in ("-h", "--help") for a in args):  # the config groups a user may choose from (no schemas)
        print(command_help())
        return
    verbose = any(a in ("-v", "--verbose") for a in args)
    args = [a for a in args if a not in ("-v", "--verbose")]
    sys.argv = [sys.argv[0], *args]  # Hydra reads the expanded command line
    passthrough = any(a.startswith("-") and a not in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if not a.startswith("-")]
    if not passthrough:
        multirun = any(a in ("-m", "--multirun") or a.lstrip("+") == "hydra.mode=MULTIRUN" for a in args)
        problem = check_overrides(overrides, multirun) or (check_job_folders(overrides) if multirun else None)
        if problem:
            print(f"ttscale: {problem}", file=sys.stderr)
            raise SystemExit(2)
    register_schemas()
    app = App(verbose=verbose)
    try:
        hydra.main(config_path=str(conf_dir()), config_name=CONFIG_NAME, version_base=None)(app)()
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (reaper.install_signal_handlers): one line
        quiet_exit(app, str(exc) or "Ctrl-C")
    finally:
        app.close()
    if app.failed:  # a run that is no result must not exit 0
        raise SystemExit(1)


if __name__ == "__main__":
    main()
