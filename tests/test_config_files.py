"""Config files (--config YAML/TOML/JSON, --print-config): round trips, the
order of precedence, and one sentence for every bad file."""

import json
import os
from pathlib import Path

import pytest

from ppo_jax.config.files import MAX_CONFIG_BYTES, dump_config, read_config_file
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs import preset_config
from ppo_jax.train import main as train_main


@pytest.mark.parametrize("fmt", ["yaml", "toml", "json"])
@pytest.mark.parametrize(
    "config",
    [
        preset_config("tutorial"),
        # None fields (target_kl), a float written as an int, a tuple.
        preset_config(
            "tuned", env_name="CartPole-v1", hidden_sizes=(32, 16, 8), lr=1.0
        ),
    ],
    ids=["tutorial", "tuned-cartpole"],
)
def test_a_dumped_config_reads_back_to_itself(config, fmt, tmp_path):
    path = tmp_path / f"c.{fmt}"
    path.write_text(dump_config(config, fmt))
    preset, fields = read_config_file(path)
    assert preset is None
    assert preset_config("tutorial", **fields).validate() == config


def test_yaml_values_as_command_line_text(tmp_path):
    # YAML 1.1 reads 3e-4 (no dot) as text; "none" unsets an optional field.
    path = tmp_path / "c.yaml"
    path.write_text("preset: tuned\nlr: 3e-4\nmax_grad_norm: none\nhidden_sizes: 8,8\n")
    preset, fields = read_config_file(path)
    assert preset == "tuned"
    assert fields == {"lr": 3e-4, "max_grad_norm": None, "hidden_sizes": (8, 8)}


def _printed(capsys, *argv):
    assert train_main(list(argv)) == 0
    return capsys.readouterr().out


def test_flags_override_the_file_which_overrides_the_preset(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text('preset = "tuned"\nnum_envs = 7\nlr = 0.002\n')
    out = json.loads(
        _printed(
            capsys, "--config", str(path), "--lr", "0.005", "--print-config", "json"
        )
    )
    tuned = preset_config("tuned").to_dict()
    assert out == {**tuned, "num_envs": 7, "lr": 0.005}
    # --preset beats the file's preset; the file's fields still apply.
    out = json.loads(
        _printed(
            capsys,
            "--config",
            str(path),
            "--preset",
            "tutorial",
            "--print-config",
            "json",
        )
    )
    assert out == {**preset_config("tutorial").to_dict(), "num_envs": 7, "lr": 0.002}


def test_print_config_uses_the_files_format_and_prints_yaml_by_default(
    tmp_path, capsys
):
    import tomllib

    import yaml

    path = tmp_path / "c.toml"
    path.write_text("num_envs = 3\n")
    text = _printed(capsys, "--config", str(path), "--print-config")
    assert tomllib.loads(text)["num_envs"] == 3
    assert yaml.safe_load(_printed(capsys, "--print-config")) == (
        preset_config("tutorial").to_dict()
    )


def test_a_runs_config_json_repeats_the_run(trained_run, capsys):
    run_dir, _ = trained_run
    saved = json.loads((Path(run_dir) / "config.json").read_text())
    out = _printed(
        capsys, "--config", str(run_dir / "config.json"), "--print-config", "json"
    )
    assert json.loads(out) == saved
    # and --resume --print-config shows the run's own config.
    out = _printed(capsys, "--resume", str(run_dir), "--print-config", "json")
    assert json.loads(out) == saved


BAD_FILES = {
    "missing": ("c.yaml", None),
    "suffix": ("c.ini", "lr = 1\n"),
    "yaml syntax": ("c.yaml", "lr: [1, 2\n"),
    "toml syntax": ("c.toml", "lr = = 1\n"),
    "json syntax": ("c.json", '{"lr": 1,}'),
    "not a mapping": ("c.yaml", "- 1\n- 2\n"),
    "unknown field": ("c.yaml", "learning_rate: 0.1\n"),
    "dashed field": ("c.yaml", "num-envs: 4\n"),
    "bad number": ("c.toml", 'lr = "fast"\n'),
    "out of range": ("c.json", '{"gamma": 1.5}'),
    "wrong type": ("c.json", '{"num_envs": 2.5}'),
    "unknown preset": ("c.yaml", "preset: best\n"),
    "preset type": ("c.yaml", "preset: 3\n"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_config_file_is_one_sentence_and_exit_2(case, tmp_path, capsys):
    name, text = BAD_FILES[case]
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    code = train_main(["--config", str(path), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_library_errors_name_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1\n")
    with pytest.raises(ConfigError, match="'learning_rate' is not one"):
        read_config_file(path)


def _link_to_dev_zero(path):
    path.symlink_to("/dev/zero")  # a device that never ends, behind a .yaml name


def _fifo(path):
    os.mkfifo(path)  # opening it would block until a writer came


SPECIAL_FILES = {
    "not utf-8": ("c.yaml", b"lr: 0.001\n\xff\xfe\n", "a UTF-8 text file (byte 0xff"),
    "device": ("c.yaml", _link_to_dev_zero, "a regular file, not a device"),
    "fifo": ("c.yaml", _fifo, "a regular file, not a device"),
    "directory": ("c.yaml", lambda p: p.mkdir(), "a readable file (Is a directory)"),
    "too large": ("c.json", b" " * (MAX_CONFIG_BYTES + 1), "at most 1 MiB"),
    "bool as text": ("c.yaml", b'normalize_obs: "maybe"\n', "true or false"),
    "int as 4e3 text": (
        "c.yaml",
        b"num_envs: 4e3\n",
        "an integer (write 4000, not 4e3)",
    ),
    "int as a float": ("c.json", b'{"num_envs": 4e3}', "an integer (write 4000)"),
    "sizes as floats": ("c.yaml", b'hidden_sizes: "6.4e1"\n', "(write 64, not 6.4e1)"),
}


@pytest.mark.parametrize("case", sorted(SPECIAL_FILES))
def test_files_that_are_not_config_text_are_one_sentence(case, tmp_path, capsys):
    name, content, says = SPECIAL_FILES[case]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)
    code = train_main(["--config", str(path), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text, value",
    [('"yes"', True), ('"off"', False), ('"True"', True), ("false", False)],
)
def test_booleans_written_as_text_are_read(text, value, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"normalize_obs: {text}\n")
    assert read_config_file(path) == (None, {"normalize_obs": value})
