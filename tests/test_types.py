"""The type checker passes on the package and benchmarks/ (mypy; settings in
pyproject.toml), and sees the public names with their real types."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes_on_the_package_and_benchmarks():
    proc = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "Success: no issues found" in proc.stdout


def test_mypy_sees_the_public_names_with_their_real_types(tmp_path):
    # ppo_jax's names are imported lazily (module __getattr__); its
    # TYPE_CHECKING block must give mypy and editors the real objects, not
    # ``object``.
    user = tmp_path / "user_code.py"
    user.write_text(
        "from ppo_jax import PPOConfig, load_policy, make_train, run_training\n"
        "reveal_type(make_train)\n"
        "reveal_type(run_training)\n"
        "reveal_type(load_policy)\n"
        "reveal_type(PPOConfig.from_preset)\n"
        "make_train(config=3)\n"  # a wrong argument type must be an error
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(user)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    revealed = [line for line in proc.stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == 4, proc.stdout + proc.stderr
    assert "def (config: ppo_jax.config.ppo_config.PPOConfig" in revealed[0]
    assert "def (spec: ppo_jax.config.runspec.RunSpec" in revealed[1]
    assert "run_dir:" in revealed[2]
    assert "-> ppo_jax.config.ppo_config.PPOConfig" in revealed[3]
    assert not any("builtins.object" in line for line in revealed), revealed
    assert 'Argument "config" to "make_train" has incompatible type "int"' in (
        proc.stdout
    ), proc.stdout


def test_every_lazy_name_is_in_all_and_the_type_checking_block():
    import ast

    import ppo_jax

    tree = ast.parse((ROOT / "ppo_jax" / "__init__.py").read_text())
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for stmt in node.body
        if isinstance(stmt, ast.ImportFrom)
        for alias in stmt.names
    }
    assert set(ppo_jax.__all__) == set(ppo_jax._EXPORTS) == typed
    for name in ppo_jax.__all__:  # and each resolves, from the module it names
        obj = getattr(ppo_jax, name)
        assert obj is getattr(__import__(ppo_jax._EXPORTS[name], fromlist=["_"]), name)
