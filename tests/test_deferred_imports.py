"""A deferred module loads on its first attribute, not on ``import``; gymnax
then starts without seaborn (and its pandas and scipy.stats)."""

import subprocess
import sys

import pytest
from conftest import ENV

from ppo_jax.envs.deferred_imports import DeferredModule, defer_import


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A module ``deferred_probe`` that records each time its code runs."""
    marker = tmp_path / "loads.txt"
    (tmp_path / "deferred_probe.py").write_text(
        f"with open({str(marker)!r}, 'a') as f:\n    f.write('x')\nVALUE = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "deferred_probe", raising=False)
    yield marker
    sys.modules.pop("deferred_probe", None)


def test_the_module_runs_once_on_its_first_attribute(probe):
    defer_import("deferred_probe")
    assert isinstance(sys.modules["deferred_probe"], DeferredModule)
    import deferred_probe as placeholder  # the import system's checks: no load

    assert not probe.exists()
    assert placeholder.VALUE == 42  # loads here
    from deferred_probe import VALUE as from_import

    assert from_import == 42 and probe.read_text() == "x"
    real = sys.modules["deferred_probe"]
    assert not isinstance(real, DeferredModule)
    assert placeholder.__file__ == real.__file__ and placeholder.VALUE is real.VALUE


def test_imported_or_missing_modules_are_left_alone(probe):
    import deferred_probe

    defer_import("deferred_probe")
    assert sys.modules["deferred_probe"] is deferred_probe
    defer_import("no_such_module_anywhere")
    assert "no_such_module_anywhere" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        import no_such_module_anywhere  # noqa: F401


def test_gymnax_starts_without_seaborn_and_seaborn_still_works():
    code = (
        "import sys, ppo_jax.envs.gymnax as g; "
        "print(sorted(m for m in ('seaborn.palettes', 'pandas', 'scipy.stats') "
        "if m in sys.modules)); "
        "env, _ = g.make('Pong-misc', 'Pong-misc', None); "
        "import seaborn; print(len(seaborn.color_palette('husl', 3)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["[]", "3"]
