"""--logger tensorboard / wandb: the scalars and the config read back with each
tool's own reader (tensorboard's event accumulator; wandb's record protobuf),
one series per seed, missing extras refused before anything is written."""

import csv
import json
import math
import struct
from pathlib import Path

import pytest
from conftest import TINY_ARGS

from ppo_jax.config.schema import ConfigError
from ppo_jax.run.loggers import LoggerSpec, load_logger_spec
from ppo_jax.train import main as train_main

SEEDS = 2


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """Two seeds of a tiny run with both loggers (wandb offline), drawing a
    GIF and evaluating every 2 iterations while it trains."""
    run_dir = tmp_path_factory.mktemp("loggers") / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    try:
        code = train_main(
            [
                *TINY_ARGS,
                "--total-timesteps", "1000",
                "--num-seeds", str(SEEDS),
                "--seed", "5",
                "--lr", "0.002",
                "--logger", "tensorboard",
                "--logger", "wandb",
                "--wandb-project", "ppo-jax-tests",
                "--run-dir", str(run_dir),
                "--gif-every", "2",
                "--eval-every", "2",
                "--eval-episodes", "2",
                "--quiet",
            ]
        )  # fmt: skip
    finally:
        mp.undo()
    assert code == 0
    return run_dir


def csv_series(run_dir: Path, run: int, column: str) -> list[tuple[int, float]]:
    with open(run_dir / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if int(r["run"]) == run]
    return [(int(r["timesteps"]), float(r[column])) for r in rows]


def evaluations(run_dir: Path, run: int) -> list[tuple[int, float]]:
    """The run's evaluations: only the iterations that have one are logged."""
    series = csv_series(run_dir, run, "eval_return")
    evaluated = [(step, value) for step, value in series if not math.isnan(value)]
    assert 0 < len(evaluated) < len(series)
    return evaluated


def same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(
        s == t and (v == pytest.approx(w, rel=1e-6) or math.isnan(v) and math.isnan(w))
        for (s, v), (t, w) in zip(a, b, strict=True)
    )


def test_tensorboard_scalars_and_hparams_read_back(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )
    from tensorboard.plugins.hparams import plugin_data_pb2

    for run in range(SEEDS):
        events = EventAccumulator(str(logged_run / "tensorboard" / f"seed{5 + run}"))
        events.Reload()
        for column in ("mean_return", "actor_loss", "entropy"):
            logged = [(e.step, e.value) for e in events.Scalars(column)]
            assert same(logged, csv_series(logged_run, run, column)), column
        logged = [(e.step, e.value) for e in events.Scalars("eval_return")]
        assert same(logged, evaluations(logged_run, run))
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content)
        values = hparams.session_start_info.hparams
        assert values["seed"].number_value == 5 + run
        assert values["lr"].number_value == pytest.approx(0.002)
        assert values["env_name"].string_value == "Pendulum-v1"


def test_gifs_while_training_reach_tensorboard_and_wandb_as_videos(logged_run):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    # 5 iterations of 200 steps in chunks of 2: GIFs after iterations 2 and 4,
    # of the first run only, each a whole 50-step episode (51 frames drawn).
    videos = sorted(p.name for p in (logged_run / "videos").iterdir())
    assert videos == ["iteration_000002.gif", "iteration_000004.gif"]
    events = EventAccumulator(str(logged_run / "tensorboard" / "seed5"))
    events.Reload()
    images = events.Images("policy")
    assert [e.step for e in images] == [400, 800]
    for event, name in zip(images, videos, strict=True):
        assert event.encoded_image_string == (logged_run / "videos" / name).read_bytes()
        with Image.open(logged_run / "videos" / name) as gif:
            assert gif.format == "GIF" and gif.n_frames >= 40  # equal ones merge
            assert (event.width, event.height) == gif.size
    other = EventAccumulator(str(logged_run / "tensorboard" / "seed6"))
    other.Reload()
    assert "policy" not in other.Tags()["images"]
    # wandb keeps each logged video as a media file of the run.
    logged = sorted(logged_run.glob("wandb/*/files/media/videos/policy_*.gif"))
    assert len(logged) == 2


def wandb_records(path: Path) -> list:
    """The records of a ``.wandb`` file: a 7-byte header (":W&B", magic,
    version), then a LevelDB-style log of 32 KiB blocks whose chunks each have
    a header crc32 (4 bytes), length (2, little-endian), type (1: whole,
    2/3/4: first/middle/last piece). Each record is a wandb ``Record`` protobuf."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pieces, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        pieces += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pieces))
            pieces = b""
    return records


def test_wandb_offline_runs_hold_the_config_and_the_scalars(logged_run):
    spec = load_logger_spec(logged_run)
    assert spec.loggers == ("tensorboard", "wandb") and len(spec.wandb_ids) == SEEDS
    for run, run_id in enumerate(spec.wandb_ids):
        (path,) = (logged_run / "wandb").glob(
            f"offline-run-*-{run_id}/run-{run_id}.wandb"
        )
        records = wandb_records(path)
        config, history = {}, []
        for record in records:
            kind = record.WhichOneof("record_type")
            if kind == "run":
                assert record.run.project == "ppo-jax-tests"
                assert record.run.run_group == "run"
                updates = record.run.config.update
            elif kind == "config":
                updates = record.config.update
            else:
                updates = []
                if kind == "history":
                    history.append(
                        {
                            i.key or "/".join(i.nested_key): json.loads(i.value_json)
                            for i in record.history.item
                        }
                    )
            for item in updates:
                config[item.key] = json.loads(item.value_json)
        assert config["seed"] == 5 + run and config["lr"] == pytest.approx(0.002)
        assert config["num_envs"] == 4 and config["env_name"] == "Pendulum-v1"
        logged = [
            (
                h["_step"],
                math.nan if h["mean_return"] in ("NaN", None) else h["mean_return"],
            )
            for h in history
        ]
        assert same(logged, csv_series(logged_run, run, "mean_return"))
        logged = [(h["_step"], h["eval_return"]) for h in history if "eval_return" in h]
        assert same(logged, evaluations(logged_run, run))


def test_overwrite_removes_the_loggers_files(logged_run, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        *TINY_ARGS,
        "--total-timesteps",
        "200",
        "--run-dir",
        str(run_dir),
        "--quiet",
    ]
    assert train_main([*args, "--logger", "tensorboard"]) == 0
    assert (run_dir / "tensorboard" / "seed0").is_dir()
    assert train_main([*args, "--overwrite"]) == 0
    assert not (run_dir / "tensorboard").exists()
    assert load_logger_spec(run_dir) == LoggerSpec()


@pytest.mark.parametrize(
    "logger, module", [("tensorboard", "tensorboardX"), ("wandb", "wandb")]
)
def test_a_missing_extra_is_one_sentence_before_anything(
    logger, module, tmp_path, capsys, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == module else real(name, *a),
    )
    with pytest.raises(ConfigError, match=rf"pip install -e '\.\[{logger}\]'"):
        LoggerSpec((logger,)).validate()
    code = train_main(["--logger", logger, "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and module in err
    assert not (tmp_path / "run").exists()


def test_a_bad_wandb_mode_is_refused_before_compiling(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    code = train_main(["--logger", "wandb", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "WANDB_MODE" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_an_empty_wandb_project_is_refused_before_compiling(tmp_path, capsys):
    code = train_main(
        ["--logger", "wandb", "--wandb-project", " ", "--run-dir", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "wandb_project" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_a_file_where_a_loggers_folder_goes_is_one_sentence(logger, tmp_path, capsys):
    # A run directory holding a file named like the logger's folder: refused
    # before compiling, with nothing written (before, tensorboardX's makedirs
    # ended the run in a NotADirectoryError traceback after the first chunk).
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / logger).write_text("my notes\n")
    code = train_main(
        [*TINY_ARGS, "--logger", logger, "--run-dir", str(run_dir)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "is not a folder" in err and "Traceback" not in err
    assert sorted(p.name for p in run_dir.iterdir()) == [logger]  # nothing written
    assert (run_dir / logger).read_text() == "my notes\n"  # nothing lost


def test_an_online_wandb_without_a_server_is_one_sentence_within_its_timeout(
    tmp_path, capsys, monkeypatch
):
    # An API key in the environment (wandb then goes online) and no server
    # answering: before, wandb retried, then ended in a CommError traceback.
    import socket
    import time

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    t = time.monotonic()
    code = train_main(["--logger", "wandb", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"127.0.0.1:{port} did not answer" in err and "WANDB_MODE=offline" in err
    assert time.monotonic() - t < 30
    assert not (tmp_path / "run").exists()


def test_a_logger_that_fails_to_start_is_dropped_with_a_note(
    tmp_path, capsys, monkeypatch
):
    import ppo_jax.run.loggers as loggers_module

    class Broken:
        def __init__(self, *args):
            raise OSError("the event file system is read-only")

    monkeypatch.setattr(loggers_module, "TensorBoardLogger", Broken)
    run_dir = tmp_path / "run"
    code = train_main(
        [*TINY_ARGS, "--total-timesteps", "400", "--logger", "tensorboard",
         "--run-dir", str(run_dir), "--quiet"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note: the tensorboard logger could not start (OSError: the event " in (
        captured.err
    )
    assert "Traceback" not in captured.err and "final:" in captured.out
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 2
