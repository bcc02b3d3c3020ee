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
import itertools
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException

from ttscale.config import CONFIG_NAME, conf_dir

RUNTIME_KEYS = ("concurrency", "progress", "grader", "logger", "retry_errors", "trace")  # may change when a run resumes
FULL_CHECK = 64  # sweeps of up to this many jobs are checked job by job before the first starts


def _variants(overrides: list[str]) -> list[list[str]]:
    """Override lists to check: every combination of a sweep's values (up to FULL_CHECK of them, so a
    bad pair, such as a key only one strategy reads, is found before the first job); past that, every
    sweep at its first value, then each other sweep value once."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = [o for o in OverridesParser.create().parse_overrides(overrides) if not o.is_hydra_override()]
    values: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override():
            try:
                options = [f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()]
            except Exception:  # range/interval sweeps: not checked here
                options = []
            values.append(options)
        else:
            values.append([override.input_line])
    present = [v for v in values if v]
    if math.prod(len(v) for v in present) <= FULL_CHECK:
        return [list(combo) for combo in itertools.product(*present)]
    base = [v[0] for v in values if v]
    variants = [base]
    for i, options in enumerate(values):
        for option in options[1:]:
            variant = list(base)
            variant[sum(1 for v in values[:i] if v)] = option
            variants.append(variant)
    return variants


def _explain(exc: Exception, overrides: list[str]) -> str:
    """One line from a Hydra/OmegaConf composition error: the key, and the valid keys or choices."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    text = str(exc)
    if "Could not find '" in text:
        missing = text.split("Could not find '", 1)[1].split("'", 1)[0]
        group, _, name = missing.rpartition("/")
        listing = text.split("Available options", 1)[1].split("Config search path", 1)[0] if "Available options" in text else ""
        options = [ln.strip() for ln in listing.splitlines()[1:] if ln.strip()]
        options = [o for o in options if not o.endswith("_schema") and not o.startswith("_")]
        return f"{group}={name} is not a known choice; choose one of: {', '.join(options) or '(none)'}"
    cause = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    if cause is not None:
        key = getattr(cause, "full_key", None) or ""
        reason = str(cause).strip().splitlines()[0]
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
            parent = key.rpartition(".")[0]
            keys = ", ".join(_keys_of(parent, overrides))
            return f"unknown config key '{key}'; {parent or 'the top level'} has keys: {keys}"
        return f"bad value for '{key}': {reason}"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _keys_of(parent: str, overrides: list[str]) -> list[str]:
    from hydra import compose
    from omegaconf import OmegaConf

    groups = [o for o in overrides if "=" in o and (conf_dir() / o.split("=", 1)[0]).is_dir()]
    try:
        cfg = compose(config_name=CONFIG_NAME, overrides=groups)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        keys = sorted(str(k) for k in node.keys())
    except Exception:
        return []
    if parent == "strategy":  # the chosen strategy's own keys, not every method's (~90)
        return _strategy_keys(cfg, keys) or keys
    return keys


STRATEGY_COMMON = ("name", "search", "select", "verifier", "n", "temperature", "top_p", "top_k", "max_tokens",
                   "stop", "logprobs", "stats_window", "options")


def _strategy_keys(cfg, schema_keys: list[str]) -> list[str]:
    """The keys the composed strategy reads: the shared ones, its yaml's, and its search's and
    selection's own (their dataclass fields' config names)."""
    from dataclasses import fields

    from ttscale.strategies import registry

    keys = set(STRATEGY_COMMON) | {str(k) for k in (cfg.strategy.get("options") or {})}
    try:
        own = conf_dir() / "strategy" / f"{cfg.strategy.name}.yaml"
        if own.is_file():
            import yaml

            keys |= {str(k) for k in (yaml.safe_load(own.read_text()) or {}) if k != "defaults"}
        for kind in ("search", "select"):
            if ":" in str(cfg.strategy[kind]):
                continue
            cls, _ = registry.resolve(kind, str(cfg.strategy[kind]))
            keys |= {f.metadata.get("config", f.name) for f in fields(cls) if f.init}
            if registry.is_step_wise(cls):
                keys |= {"step_delimiter", "max_step_tokens", "max_steps", "last_step", "answer_marker", "continuation"}
    except Exception:
        return []
    return sorted(keys & set(schema_keys))


def check_logger(name: str) -> None:
    import importlib.util

    from ttscale.build import ConfigError
    from ttscale.loggers import LOGGERS

    if name not in LOGGERS:
        raise ConfigError(f"logger.name={name!r} is not a known choice; choose one of: {', '.join(LOGGERS)}")
    if name == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ConfigError("logger=wandb needs the wandb package: pip install wandb (or the [launchers] extra)")


def check_overrides(overrides: list[str]) -> str | None:
    """Compose the config with the overrides (first value of each sweep) and build what can be built
    without a model. Returns one line describing the first problem, or None when all is well."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ttscale.build import (ConfigError, build_strategy, check_grader, check_model, check_statistics,
                               check_strategy_overrides, declared_backend)
    from ttscale.config import register_schemas

    register_schemas()
    strategies = []
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        for variant in _variants(overrides):
            try:
                cfg = compose(config_name=CONFIG_NAME, overrides=variant)
                strategy_cfg = OmegaConf.to_container(cfg.strategy, resolve=True)
                build_strategy(strategy_cfg, OmegaConf.to_container(cfg.verifier, resolve=True))
                check_statistics(strategy_cfg, declared_backend(OmegaConf.to_container(cfg.backend, resolve=True)))
                strategies.append(strategy_cfg)
                check_logger(cfg.logger.name)
                check_model(OmegaConf.to_container(cfg.model, resolve=True), OmegaConf.to_container(cfg.backend, resolve=True))
                if not isinstance(cfg.concurrency, int) or cfg.concurrency < 1:
                    raise ConfigError(f"concurrency={cfg.concurrency!r}: the problems in flight at once, an integer >= 1")
                check_grader(OmegaConf.to_container(cfg.dataset, resolve=True),
                             OmegaConf.to_container(cfg.grader, resolve=True),
                             OmegaConf.to_container(cfg.verifier, resolve=True), strategy_cfg)
            except ConfigError as exc:
                return str(exc)
            except Exception as exc:
                return _explain(exc, variant)
    try:
        check_strategy_overrides(strategies, overrides)
    except ConfigError as exc:
        return str(exc)
    return None


def check_job_folders(overrides: list[str]) -> str | None:
    """A sweep whose jobs would share one folder (they differ only in runtime keys, or a value is
    repeated): one line, before the first job. Such jobs would resume each other's results, or write
    one file at once."""
    from ttscale.config import job_dir

    variants = _variants(overrides)
    if len(variants) > FULL_CHECK:
        return None
    seen: dict[str, list[str]] = {}
    for variant in variants:
        name = job_dir(variant)
        if name in seen:
            differ = sorted(set(variant) ^ set(seen[name]))
            why = (f"they differ only in {', '.join(differ)}, a runtime key that names no folder: sweep it in "
                   "separate sweeps" if differ else "a value is repeated in the sweep")
            return f"two jobs of this sweep would share the folder {name!r} ({why})"
        seen[name] = variant
    return None


def check_hydra(overrides: list[str], multirun: bool) -> str | None:
    """What Hydra itself would fail on after the first job is set up, in one line: a launcher (or
    other hydra/ group) choice that is not installed, an output folder that cannot be written."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import MissingConfigException

    from ttscale.config import register_schemas

    register_schemas()
    parsed = OverridesParser.create().parse_overrides(overrides)
    first = (_variants(overrides) or [[]])[0] + [o.input_line for o in parsed if o.is_hydra_override()]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        try:
            cfg = compose(config_name=CONFIG_NAME, overrides=first, return_hydra_config=True)
        except MissingConfigException as exc:
            for o in parsed:
                if o.is_hydra_override() and "/" in o.key_or_group and "=" in o.input_line:
                    options = GlobalHydra.instance().config_loader().get_group_options(o.key_or_group)
                    if o.value() not in options:
                        return (f"{o.key_or_group}={o.value()} is not a known choice; choose one of: {', '.join(options)}"
                                + (" (a launcher's plugin adds its choice once installed, e.g. pip install "
                                   f"hydra-{o.value()}-launcher; README)" if o.key_or_group == "hydra/launcher" else ""))
            return str(exc).splitlines()[0]
        folder = Path(str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir))
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    why = None if existing.is_dir() else "not a folder"
    if why is None:
        try:  # a real probe: permissions alone do not tell (root, read-only mounts, /proc)
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".ttscale-probe-"))
        except OSError as exc:
            why = exc.strerror.lower() if exc.strerror else "not writable"
    if why:
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        return f"{key}={folder}: cannot write there ({existing}: {why}); choose another output folder"
    return None


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

        from ttscale.build import build_grader, build_problems, build_strategy, model_stop
        from ttscale.runtime import run
        from ttscale.tracing.recorder import TRACE_FILE

        out_dir = Path(HydraConfig.get().runtime.output_dir)
        self.current = out_dir  # what a Ctrl-C or SIGTERM names: the folder whose rerun resumes
        self.resume_with = (f"hydra.sweep.dir={out_dir.parent}" if HydraConfig.get().mode.name == "MULTIRUN"
                            else f"hydra.run.dir={out_dir}")
        resolved = OmegaConf.to_container(cfg, resolve=True)
        _check_resume(out_dir, resolved)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))

        from ttscale.build import ConfigError
        from ttscale.data.loaders import DatasetError

        try:  # a data or config error in one line, no traceback; the run cannot be right, so it does not start
            problems = build_problems(resolved["dataset"], resolved["model"])
        except (ConfigError, DatasetError) as exc:
            print(f"ttscale: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        from ttscale.backends.base import BackendUnavailable

        if _finished(problems, out_dir, resolved):  # a finished run read again: its summary, no engine
            print(f"ttscale: every problem is in {out_dir / 'results.jsonl'} already: nothing to generate, "
                  f"no {cfg.backend.kind} backend started", file=sys.stderr)
            with build_grader(resolved["dataset"], resolved["grader"], resolved["model"]) as grader:
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
        try:
            grader_cm = build_grader(resolved["dataset"], resolved["grader"], resolved["model"])
        except ConfigError as exc:  # e.g. no bubblewrap as root: programs would run as root
            print(f"ttscale: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        with grader_cm as grader:
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
        from ttscale.runtime import format_summary
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


def _finished(problems, out_dir: Path, resolved: dict[str, Any]) -> bool:
    """Whether a rerun into `out_dir` has nothing to generate: every problem is in its results (none to
    retry), and the search has no second pass over the whole run (EAGer's reallocation) left to make."""
    from ttscale.runtime import pending
    from ttscale.strategies import registry

    search_cls, _ = registry.resolve("search", resolved["strategy"]["search"])
    if hasattr(search_cls, "allocate"):
        return False
    return not pending(problems, out_dir / "results.jsonl", resolved["retry_errors"])


def _check_resume(out_dir: Path, resolved: dict[str, Any]) -> None:
    """Refuse to resume into a folder whose earlier run had a different config (runtime keys aside).
    A key the earlier run did not have yet (added to ttscale since) counts as the same when it holds
    its schema default."""
    import yaml

    old_path = out_dir / "config.yaml"
    if not (old_path.exists() and (out_dir / "results.jsonl").exists()):
        return
    old = yaml.safe_load(old_path.read_text()) or {}
    if _same_file((old.get("dataset") or {}).get("source"), (resolved.get("dataset") or {}).get("source")):
        old["dataset"] = {**old["dataset"], "source": resolved["dataset"]["source"]}  # one file, spelled two ways
    diffs = [k for k in sorted(set(old) | set(resolved))
             if k not in RUNTIME_KEYS and not _same(old.get(k), resolved.get(k), _schema_defaults(k))]
    if diffs:
        raise SystemExit(f"ttscale: {out_dir} holds a run with a different config (differs in: "
                         f"{', '.join(diffs)}); choose another hydra.run.dir")


def _same_file(old: Any, new: Any) -> bool:
    """Whether two dataset sources name files of equal content (a relative and an absolute spelling,
    a copy): compared by sha256, not by how the path is written."""
    import hashlib

    if not (isinstance(old, str) and isinstance(new, str)) or old == new:
        return False
    paths = [Path(old).expanduser(), Path(new).expanduser()]
    if not all(p.is_file() for p in paths):
        return False
    digests = []
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests.append(digest.hexdigest())
    return digests[0] == digests[1]


def _schema_defaults(group: str) -> dict[str, Any]:
    from dataclasses import MISSING, fields

    from ttscale.config import group_schemas

    schema = group_schemas().get(group)
    if schema is None:
        return {}
    out = {}
    for f in fields(schema):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _same(old: Any, new: Any, defaults: dict[str, Any]) -> bool:
    if old is None and isinstance(new, dict):  # a whole group added since
        old = {}
    if isinstance(old, dict) and isinstance(new, dict):
        return all(old[k] == new.get(k) if k in old else (k in defaults and new[k] == defaults[k])
                   for k in set(old) | set(new)) and all(k in new for k in old)
    return old == new


def quiet_exit(app: App, why: str) -> None:
    """A run stopped by Ctrl-C or SIGTERM: one line saying what is kept and how to resume, exit 130.
    What the engine prints while it shuts down is not shown (its log in the run folder has it)."""
    where = app.current
    done = 0
    if where is not None and (where / "results.jsonl").exists():
        from ttscale.runtime import load_results

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
    verbose = any(a in ("-v", "--verbose") for a in args)
    args = [a for a in args if a not in ("-v", "--verbose")]
    sys.argv = [sys.argv[0], *args]  # Hydra reads the expanded command line
    passthrough = any(a.startswith("-") and a not in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if not a.startswith("-")]
    if not passthrough:
        multirun = any(a in ("-m", "--multirun") for a in args)
        problem = (check_overrides(overrides) or check_hydra(overrides, multirun)
                   or (check_job_folders(overrides) if multirun else None))
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
