"""The package's shape: layers that import one way, no import cycles, entry
modules run once, one config schema from which Hyperparams, the CLI and the
options table derive."""

import ast
import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ppo_jax.config.ppo_config import PRESETS, TRACEABLE_FIELDS, Hyperparams, PPOConfig
from ppo_jax.config.schema import ConfigError, field_kinds, markdown_table, parse_text
from ppo_jax.train import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ppo_jax"
ENTRY_MODULES = {
    "ppo_jax.train",
    "ppo_jax.evaluate",
    "ppo_jax.compare",
    "ppo_jax.export",
    "ppo_jax.tune",
    "ppo_jax._cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """ppo_jax module -> the ppo_jax modules it imports (at any depth of code)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets.add(node.module)
                # ``from ppo_jax.run import rundir``: the module ppo_jax.run.rundir
                targets |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


# The layers, lowest first: a module may import its own layer and those below.
# envs and networks are one step apart because a network factory reads the
# env's spec (EnvSpec); the commands are the four ``python -m`` modules, what
# they share (_cli) and the package's lazy front door (ppo_jax).
LAYERS = (
    ("config", ("ppo_jax.config", "ppo_jax._compat", "ppo_jax._imports")),
    ("envs", ("ppo_jax.envs",)),
    ("networks", ("ppo_jax.networks",)),
    ("algo", ("ppo_jax.algo",)),
    ("run", ("ppo_jax.run",)),
    ("analysis", ("ppo_jax.analysis",)),
    ("commands", ("ppo_jax",)),
)


def layer_of(module: str) -> int:
    """Index in LAYERS of the most specific prefix that names ``module``."""
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if len(prefix) > best:
                    best, rank = len(prefix), i
    return rank


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``"a (run) imports b (analysis)"`` for every import against the layers."""
    found = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target) > layer_of(name):
                found.append(
                    f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]})"
                )
    return found


def test_every_module_belongs_to_a_layer():
    graph = import_graph()
    assert len(graph) > 40
    for name in graph:
        assert layer_of(name) >= 0, name
    assert LAYERS[layer_of("ppo_jax")][0] == "commands"
    assert LAYERS[layer_of("ppo_jax.train")][0] == "commands"
    assert LAYERS[layer_of("ppo_jax.config.schema")][0] == "config"


def test_imports_follow_the_layers():
    assert layer_violations(import_graph()) == []


def test_the_layer_check_refuses_an_import_against_the_layers():
    graph = import_graph()
    # An adapter importing analysis code (as envs/brax.py once imported
    # rendering), the algorithm importing the run's host side, and a library
    # module importing the package's front door: each one is refused.
    graph["ppo_jax.envs.brax"] = graph["ppo_jax.envs.brax"] | {
        "ppo_jax.analysis.rendering"
    }
    graph["ppo_jax.algo.update"] = graph["ppo_jax.algo.update"] | {"ppo_jax.run.rundir"}
    graph["ppo_jax.run.rundir"] = graph["ppo_jax.run.rundir"] | {"ppo_jax"}
    assert layer_violations(graph) == [
        "ppo_jax.algo.update (algo) imports ppo_jax.run.rundir (run)",
        "ppo_jax.envs.brax (envs) imports ppo_jax.analysis.rendering (analysis)",
        "ppo_jax.run.rundir (run) imports ppo_jax (commands)",
    ]
    # The same edges downwards are allowed.
    assert layer_violations({"ppo_jax.run.rundir": {"ppo_jax.algo.ppo"}}) == []


def test_library_modules_never_import_the_command_lines():
    graph = import_graph()
    for name, targets in graph.items():
        if name not in ENTRY_MODULES:
            assert not targets & ENTRY_MODULES, (name, targets & ENTRY_MODULES)
    assert "ppo_jax.train" not in graph["ppo_jax._cli"]
    assert "ppo_jax.evaluate" not in graph["ppo_jax._cli"]
    assert "ppo_jax.export" not in graph["ppo_jax._cli"]


def test_no_import_cycles():
    graph = import_graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for target in graph[name]:
            visit(target, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


@pytest.mark.parametrize(
    "module",
    ["ppo_jax.train", "ppo_jax.evaluate", "ppo_jax.compare", "ppo_jax.export",
     "ppo_jax.tune"],
)  # fmt: skip
def test_python_dash_m_runs_the_entry_module_once(module):
    # If anything imported the entry module by name while it runs as
    # __main__, its body would run a second time as ppo_jax.train.
    code = textwrap.dedent(
        f"""
        import runpy, sys
        sys.argv = ["{module}", "--help"]
        try:
            runpy.run_module("{module}", run_name="__main__", alter_sys=True)
        except SystemExit as e:
            assert e.code == 0, e.code
        print("imported twice" if "{module}" in sys.modules else "once")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("once"), proc.stdout[-500:]


def test_hyperparams_are_exactly_the_traceable_fields():
    assert tuple(f.name for f in dataclasses.fields(Hyperparams)) == TRACEABLE_FIELDS
    hp = PPOConfig(max_grad_norm=None, target_kl=0.1).hyperparams()
    assert float(hp.max_grad_norm) == float("inf")
    assert hp.target_kl.dtype == np.float32 and float(hp.target_kl) == np.float32(0.1)


def test_every_field_is_a_flag_with_the_schemas_help():
    parser = build_parser()
    flags = {a.dest: a for a in parser._actions}
    for kind in field_kinds(PPOConfig):
        assert kind.help, kind.name
        assert flags[kind.name].help.startswith(kind.help), kind.name
        assert kind.flag in flags[kind.name].option_strings


def test_options_table_is_the_schemas():
    # The options table of ppo_jax/config/README.md is the schema's. To
    # regenerate: print(markdown_table(PPOConfig, PRESETS["tutorial"]))
    readme = (ROOT / "ppo_jax" / "config" / "README.md").read_text()
    assert markdown_table(PPOConfig, PRESETS["tutorial"]) in readme


def test_values_parse_generically_from_text():
    kinds = {k.name: k for k in field_kinds(PPOConfig)}
    assert parse_text(kinds["hidden_sizes"], "128, 64,32") == (128, 64, 32)
    assert parse_text(kinds["max_grad_norm"], "none") is None
    assert parse_text(kinds["max_episode_steps"], "50") == 50
    with pytest.raises(ValueError):
        parse_text(kinds["num_envs"], "four")


def test_literal_choices_are_checked_from_the_annotation():
    with pytest.raises(ConfigError, match="activation='gelu'.*one of relu, tanh"):
        PPOConfig(activation="gelu").validate()
    with pytest.raises(ConfigError, match="policy_std='std'.*fixed, learned, None"):
        PPOConfig(policy_std="std").validate()
