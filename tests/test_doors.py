"""Every door, tried as a demanding user would: for each flag of each of the
five commands (the config fields' flags included), and each environment
variable ppo_jax reads, a bad value ends in one sentence on stderr and exit
code 2, with no traceback, before anything is written and with nothing good
lost. A test checks that the tables below name every flag the parsers have,
so a new flag needs a case. (Config files' own problems: test_config_files;
run directories damaged on disk: test_hostile.)"""

import hashlib
from pathlib import Path

import pytest
from conftest import TINY_ARGS

from ppo_jax import compare, evaluate, export, train, tune
from ppo_jax.config.ppo_config import PPOConfig
from ppo_jax.config.schema import field_kinds

COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "export": export,
    "compare": compare,
    "tune": tune,
}
# Flags that are not doors for bad input: help, and --debug, which shows the
# traceback of any error on purpose.
NOT_DOORS = {"-h", "--help", "--debug"}


def config_flag_cases() -> dict[str, list[str]]:
    """One bad value per config field's flag, by the field's kind."""
    cases = {}
    for kind in field_kinds(PPOConfig):
        if kind.base is bool:  # --flag/--no-flag take no value
            bad = [f"{kind.flag}=maybe"]
        elif kind.choices:
            bad = [kind.flag, "bogus"]
        elif kind.base in (int, float):
            bad = [kind.flag, "4e3x"]
        elif kind.base is tuple:
            bad = [kind.flag, "64,wide"]
        else:  # names: of an env, a network, an observation key, a backend
            bad = [kind.flag, "no_such_thing"]
        cases[kind.flag] = bad
    cases["--env"] = ["--env", "NoSuchEnv-v9"]
    return cases


# RUN is replaced by a trained run directory, OUT by a path in tmp_path.
TRAIN_CASES = {
    **config_flag_cases(),
    "--preset": ["--preset", "best"],
    "--config": ["--config", "OUT/missing.yaml"],
    "--print-config": ["--print-config", "xml"],
    "--num-seeds": ["--num-seeds", "0"],
    "--sweep": ["--sweep", "lr="],
    "--resume": ["--resume", "OUT/no-such-run"],
    "--run-dir": ["--run-dir", ""],
    "--overwrite": ["--overwrite=yes"],
    "--quiet": ["--quiet=1"],
    "--gif-every": ["--env", "Breakout-MinAtar", "--gif-every", "2"],
    "--logger": ["--logger", "mlflow"],
    "--wandb-project": ["--logger", "wandb", "--wandb-project", " "],
    "--wandb-name": ["--logger", "wandb", "--wandb-name", " "],
    "--coordinator": ["--coordinator", "localhost"],
    "--num-processes": ["--num-processes", "0"],
    "--process-id": ["--coordinator", "127.0.0.1:1", "--num-processes", "2",
                     "--process-id", "2"],
}  # fmt: skip
EVALUATE_CASES = {
    "run_dir": ["OUT/no-such-run"],
    "--run": ["RUN", "--run", "99"],
    "--episodes": ["RUN", "--episodes", "0"],
    "--backend": ["RUN", "--backend", "mujoco"],
    "--gif": ["RUN", "--gif", "OUT/no-such-folder/episode.gif"],
    "--seed": ["RUN", "--seed", "lucky"],
    "--actions": ["RUN", "--actions", "greedy"],
}
EXPORT_CASES = {
    "run_dir": [""],
    "--run": ["RUN", "--format", "npz", "--run", "-1"],
    "--format": ["RUN", "--format", "tflite"],
    "--out": ["RUN", "--format", "npz", "--out", ""],
    "--overwrite": ["RUN", "--overwrite=1"],
}
COMPARE_CASES = {
    "run_dirs": ["OUT/no-such-run"],
    "--out": ["RUN", "--out", "OUT/curves.jpg"],
    "--label": ["RUN", "--label", "a", "b"],
}
# tune: each case also gets TUNE_ARGS (tiny trials, a field to search) and
# --run-dir OUT/run, unless it resumes.
TUNE_ARGS = [*TINY_ARGS, "--param", "lr=1e-4:1e-3:log", "--trials", "1"]
TUNE_CASES = {
    **config_flag_cases(),
    "--preset": ["--preset", "best"],
    "--config": ["--config", "OUT/missing.yaml"],
    "--param": ["--param", "num_envs=2:8"],
    "--space": ["--space", "OUT/missing.toml"],
    "--trials": ["--trials", "0"],
    "--batch": ["--batch", "0"],
    "--num-seeds": ["--num-seeds", "0"],
    "--statistic": ["--statistic", "median"],
    "--prune": ["--prune=yes"],
    "--run-dir": ["--run-dir", ""],
    "--resume": ["--resume", "OUT/no-such-search"],
    "--quiet": ["--quiet=1"],
}
CASES = {
    "train": TRAIN_CASES,
    "evaluate": EVALUATE_CASES,
    "export": EXPORT_CASES,
    "compare": COMPARE_CASES,
    "tune": TUNE_CASES,
}
# Environment variables ppo_jax reads, each with a bad value and a command.
ENV_CASES = {
    "PPO_JAX_CACHE_DIR": ("FILE", []),
    "PPO_JAX_COORDINATOR_TIMEOUT": (
        "soon",
        ["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "1"],
    ),
    "WANDB_MODE": ("sometimes", ["--logger", "wandb"]),
}


def test_every_flag_of_every_command_has_a_bad_input_case():
    for name, module in COMMANDS.items():
        flags = set()  # each option by its first name (--env, --anneal-lr)
        for action in module.build_parser()._actions:
            names = action.option_strings or [action.dest]
            if not set(names) & NOT_DOORS:
                flags.add(names[0])
        assert flags <= set(CASES[name]), sorted(flags - set(CASES[name]))
        # --env-name: the schema's name for --env, tried as well.
        extra = set(CASES[name]) - flags - {"--env-name"}
        assert not extra, sorted(extra)


def digest(run_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.iterdir())
        if p.is_file()
    }


def refused(command, argv, tmp_path, capsys, run_dir):
    argv = [a.replace("RUN", str(run_dir)).replace("OUT", str(tmp_path)) for a in argv]
    before = digest(run_dir)
    try:
        code = COMMANDS[command].main(argv)
    except SystemExit as e:  # argparse's own exit, should one escape
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert "Traceback" not in err
    assert digest(run_dir) == before  # nothing good lost
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
    return lines[0]


@pytest.mark.parametrize(
    "command, flag",
    [(command, flag) for command, cases in CASES.items() for flag in sorted(cases)],
)
def test_a_bad_value_at_each_door_is_one_sentence(
    command, flag, tmp_path, capsys, trained_run, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    argv = list(CASES[command][flag])
    if command == "train":
        argv = [*TINY_ARGS, *argv]
        if "--run-dir" not in argv and "--resume" not in argv:
            argv += ["--run-dir", "OUT/run"]
    if command == "tune" and "--resume" not in argv:
        argv = [*TUNE_ARGS, *argv]
        if "--run-dir" not in argv:
            argv += ["--run-dir", "OUT/run"]
    refused(command, argv, tmp_path, capsys, trained_run[0])


@pytest.mark.parametrize("variable", sorted(ENV_CASES))
def test_a_bad_environment_variable_is_one_sentence(
    variable, tmp_path, capsys, trained_run, monkeypatch
):
    value, argv = ENV_CASES[variable]
    if value == "FILE":
        value = str(trained_run[0] / "config.json")  # a file, not a folder
    monkeypatch.setenv(variable, value)
    line = refused(
        "train", [*TINY_ARGS, *argv, "--run-dir", "OUT/run"], tmp_path, capsys,
        trained_run[0],
    )  # fmt: skip
    assert variable in line


# Files of a run directory the commands read that test_hostile does not damage
# (it damages config.json, run.json, the checkpoint and metrics.csv).
def _loggers_garbage(run_dir: Path) -> None:
    (run_dir / "loggers.json").write_text('{"loggers": ["tensorboard"')


def _lock_a_folder(run_dir: Path) -> None:
    (run_dir / ".lock").unlink(missing_ok=True)
    (run_dir / ".lock").mkdir()


def _device(name: str):
    def damage(run_dir: Path) -> None:
        (run_dir / name).unlink()
        (run_dir / name).symlink_to("/dev/zero")  # would never end if read

    return damage


RUN_FILE_CASES = {
    "loggers.json": (_loggers_garbage, "not a valid loggers file"),
    "loggers.json a device": (_device("loggers.json"), "not a regular file"),
    "run.json a device": (_device("run.json"), "not a regular file"),
    ".lock": (_lock_a_folder, "is not writable"),
}


@pytest.mark.parametrize("name", sorted(RUN_FILE_CASES))
def test_a_damaged_run_file_is_one_sentence_on_resume(
    name, tmp_path, capsys, trained_run
):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run[0], run_dir)
    damage, says = RUN_FILE_CASES[name]
    damage(run_dir)
    checkpoint = (run_dir / "checkpoint.msgpack").read_bytes()
    code = train.main(["--resume", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert says in err and "Traceback" not in err
    assert (run_dir / "checkpoint.msgpack").read_bytes() == checkpoint
