"""A method is one file: searches and selections are found by name in their own files (METHODS), built
from their dataclass fields, and a user's own search, selection or verifier plugs into the CLI by
import path with its own keys in `options`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ttscale.build import ConfigError, build_strategy
from ttscale.config import group_config
from ttscale.strategies import registry

PLUGINS = Path(__file__).parent / "plugins"


def test_every_built_in_method_is_found_in_its_own_file():
    assert set(registry.methods("search")) == {"parallel", "adaptive", "sequential", "deepconf_online", "set_cover_pruning", "eager",
                                               "power_sampling", "fractured_sampling", "phi_decoding", "particle_filtering",
                                               "particle_gibbs", "beam_search", "dvts", "a_star", "block_search",
                                               "rebase", "budget_forcing", "mcts", "self_debug", "rsa", "deer"}
    assert set(registry.methods("select")) == {"majority", "best_score", "weighted_vote", "inverse_entropy",
                                               "deepconf", "rpc", "genselect", "codet", "mbr_exec", "s_star", "self_certainty", "tail_entropy"}
    for name in registry.methods("search"):  # each name lives in the file of that name
        cls, _ = registry.resolve("search", name)
        assert cls.__module__.rsplit(".", 1)[-1] == name


def test_methods_are_built_from_their_fields_with_shared_keys_and_aliases():
    cfg = {**group_config("strategy", "rebase"), "weight_temperature": 0.3}
    strategy = build_strategy(cfg, {"name": "mean_token_prob"})
    assert strategy.search.temperature == 0.3 and strategy.search.n == cfg["n"]  # field <- weight_temperature
    preset = build_strategy(group_config("strategy", "inverse_entropy"))
    assert preset.select.weight == "inverse_entropy"  # a preset's fixed key wins over the shared default


def test_unknown_names_and_option_keys_are_one_line_errors():
    with pytest.raises(ConfigError, match="strategy.search='nope' is not a known choice; choose one of: a_star, "
                                          "adaptive, beam_search"):
        build_strategy({**group_config("strategy", "self_consistency"), "search": "nope"})
    with pytest.raises(ConfigError, match="cannot import it"):
        build_strategy({**group_config("strategy", "self_consistency"), "search": "no_such_module:X"})
    with pytest.raises(ConfigError, match="options.kep is not a key of FirstOfN; its keys: keep, n"):
        sys.path.insert(0, str(PLUGINS))
        try:
            build_strategy({**group_config("strategy", "self_consistency"), "search": "my_methods:FirstOfN",
                            "options": {"kep": 2}})
        finally:
            sys.path.remove(str(PLUGINS))
    sys.path.insert(0, str(PLUGINS))
    try:  # an option's value is checked against its field's type
        for bad, says in (("abc", "options.keep='abc': FirstOfN.keep is int"), (True, "FirstOfN.keep is int"),
                          (2.5, "FirstOfN.keep is int")):
            with pytest.raises(ConfigError, match=re.escape(says)):
                build_strategy({**group_config("strategy", "self_consistency"), "search": "my_methods:FirstOfN",
                                "options": {"keep": bad}})
        build_strategy({**group_config("strategy", "self_consistency"), "search": "my_methods:FirstOfN",
                        "options": {"keep": 2}})
    finally:
        sys.path.remove(str(PLUGINS))


def test_a_users_own_search_and_verifier_run_from_the_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "ttscale.cli", "backend=scripted", "strategy=best_of_n",
                           "strategy.search=my_methods:FirstOfN", "+strategy.options.keep=2",
                           "verifier.name=my_methods:Brevity", "+verifier.options.scale=5", "dataset.limit=2",
                           "progress=false", f"hydra.run.dir={run}"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert all(len(r["candidates"]) == 2 and r["usage"]["verifier_calls"] == 2 for r in results)
    assert all(c["score"] == pytest.approx(5 / (5 + c["num_tokens"])) for r in results for c in r["candidates"])
    bad = subprocess.run([sys.executable, "-m", "ttscale.cli", "backend=scripted", "strategy.search=my_methods:FirstOfN",
                          "+strategy.options.kep=2", f"hydra.run.dir={tmp_path / 'bad'}"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert bad.returncode != 0 and "options.kep is not a key of FirstOfN" in bad.stderr
