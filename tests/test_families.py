"""What every optional environment family does alike: without its extra
installed, a name of the family is refused in one sentence that says which
``pip install`` adds it, before anything is imported or built."""

import importlib

import pytest

from ppo_jax.config.schema import ConfigError


@pytest.mark.parametrize(
    "module, extra, task",
    [
        ("craftax", "craftax", "Craftax-Symbolic-v1"),
        ("jumanji", "jumanji", "Game2048-v1"),
        ("navix", "navix", "Navix-Empty-5x5-v0"),
        ("pgx", "pgx", "tic_tac_toe"),
        ("xminigrid", "xminigrid", "MiniGrid-Empty-5x5"),
    ],
)
def test_a_family_without_its_extra_is_one_sentence(monkeypatch, module, extra, task):
    family = importlib.import_module(f"ppo_jax.envs.{module}")
    monkeypatch.setattr(family.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=rf"pip install -e '\.\[{extra}\]'") as error:
        family.make(task, f"{module}/{task}", None)
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")
