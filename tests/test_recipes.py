"""Every recipe composes into a valid config (no model is started), states its paper and reported
result, and `recipe=NAME` expands on the command line."""

import pytest

from ttscale.cli_checks import _variants, check_overrides
from ttscale.config import expand_recipe, load_recipe, recipes_dir

RECIPES = sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def test_there_are_gpu_and_cpu_recipes():
    where = {load_recipe(name)["where"] for name in RECIPES}
    assert where == {"gpu", "cpu"} and len(RECIPES) >= 8


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_composes_and_says_what_it_reproduces(name):
    recipe = load_recipe(name)
    assert recipe["description"] and recipe["paper"] and recipe["reported"]
    args = expand_recipe([f"recipe={name}"])
    overrides = [a for a in args if not a.startswith("-")]
    assert check_overrides(overrides) is None, name
    if recipe.get("sweep"):
        assert args[0] == "-m" and len(_variants(overrides)) > 1


def test_command_line_overrides_win_and_unknown_recipes_are_named():
    args = expand_recipe(["recipe=cpu_scaling", "dataset.limit=3", "progress=false"])
    assert "dataset.limit=10" not in args and args[-2:] == ["dataset.limit=3", "progress=false"]
    with pytest.raises(ValueError, match="recipe=nope is not a known choice; choose one of: cpu_fractured, cpu_humaneval, cpu_scaling"):
        expand_recipe(["recipe=nope"])
