"""benchmarks/robustness.py's ``--relabel``: after a preset takes a tried
change, its stored results are renamed and relabelled so that each row still
says which settings it ran, and nothing is lost on a refusal. Also its
one-sentence refusal of a malformed ``--set``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark_script

ENV = "playground/PointMass"
OLD = "tuned at commit abc1234 (entropy 0.01)"


@pytest.fixture(scope="module")
def robustness() -> ModuleType:
    return load_benchmark_script("robustness")


def store_result(
    robustness: ModuleType,
    store: Path,
    changes: dict[str, str],
    env: str = ENV,
    preset: str = "tuned",
) -> Path:
    """A stored result as robustness.py writes it; its finals name its changes."""
    record = {
        "env": env,
        "preset": preset,
        "changes": changes,
        "total_timesteps": 1000,
        "target": 1.0,
        "seeds": 2,
        "eval_episodes": 2,
        "machine": "m",
        "date": "2026-01-01",
        "command": "c",
        "ways": {
            "vmapped": {"wall_s": 1.0, "final": {"0": 2.0, "1": 3.0}, "curves": {}},
            "processes": {"wall_s": 2.0, "final": {"0": 2.5, "1": 0.5}, "curves": {}},
        },
    }
    path = store / robustness.result_name(preset, env, 1000, changes)
    path.write_text(json.dumps(record))
    return path


def test_relabel_moves_each_result_to_the_settings_it_ran(
    robustness: ModuleType, tmp_path: Path
) -> None:
    base = store_result(robustness, tmp_path, {})
    seed16 = store_result(robustness, tmp_path, {"seed": "16"})
    adopted = store_result(robustness, tmp_path, {"ent_coef": "5e-2"})
    adopted16 = store_result(robustness, tmp_path, {"ent_coef": "0.05", "seed": "16"})
    other_ent = store_result(robustness, tmp_path, {"ent_coef": "0.03"})
    other_field = store_result(robustness, tmp_path, {"lr": "1e-3"})
    other_env = store_result(robustness, tmp_path, {}, env="playground/ReacherEasy")
    before = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}

    moves = robustness.relabel(
        tmp_path, ENV, "tuned", {"ent_coef": "0.05"}, "ent0.01", OLD
    )

    after = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert not list(tmp_path.glob("*.tmp"))
    assert len(after) == len(before)  # nothing lost, nothing doubled
    name = "tuned-ent0.01_playground_PointMass_1000"
    assert moves[base].name == f"{name}.json"
    assert moves[seed16].name == f"{name}_seed=16.json"
    assert moves[other_field].name == f"{name}_lr=1e-3.json"
    for path in (base, seed16, other_field):
        moved = after[moves[path].name]
        assert moved["preset"] == OLD
        assert moved["changes"] == before[path.name]["changes"]
        assert moved["ways"] == before[path.name]["ways"]
    # the runs made with the adopted value are now the preset's own, with a note
    assert moves[adopted] == base and moves[adopted16] == seed16
    for path, changes in ((adopted, {}), (adopted16, {"seed": "16"})):
        now = after[moves[path].name]
        assert now["preset"] == "tuned" and now["changes"] == changes
        for way, record in now["ways"].items():
            assert "--set ent_coef=" in record.pop("note")
            assert record == before[path.name]["ways"][way]
    # another entropy under the new preset is the same settings: untouched
    assert other_ent not in moves and after[other_ent.name] == before[other_ent.name]
    assert other_env not in moves and after[other_env.name] == before[other_env.name]


def test_relabel_refuses_to_overwrite_and_touches_nothing(
    robustness: ModuleType, tmp_path: Path
) -> None:
    store_result(robustness, tmp_path, {})
    store_result(robustness, tmp_path, {}, preset="tuned-ent0.01")  # an older relabel
    before = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    with pytest.raises(SystemExit, match="would be overwritten"):
        robustness.relabel(tmp_path, ENV, "tuned", {"ent_coef": "0.05"}, "ent0.01", OLD)
    assert {p.name: p.read_text() for p in tmp_path.glob("*")} == before


@pytest.mark.parametrize("item", ["lr", "lr=", "=5e-4"])
def test_a_set_without_field_and_value_is_refused_in_one_sentence(item: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "robustness.py"), "--env",
         ENV, "--target", "1", "--set", item],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"--set takes FIELD=VALUE, as in --set lr=5e-4, not {item!r}" in proc.stderr
