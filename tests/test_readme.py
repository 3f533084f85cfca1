"""README's two set-up commands: present, and the test one is what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e . "
    "&& python -m ppo_jax.train"
)
TEST_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -q uv "
    "&& uv pip install -q --compile-bytecode -e '.[test]' && python -m pytest -q"
)


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert TRAIN_COMMAND in readme
    assert TEST_COMMAND in readme
    ci_lines = [line for line in ci.splitlines() if not line.startswith("#")]
    assert TEST_COMMAND in ci_lines
