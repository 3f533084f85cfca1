"""Learning results: train a preset on environments for several seeds (seeds
vmapped, one compile per env), evaluate every final policy deterministically,
and write the results table and one learning-curve plot per env.

    python benchmarks/learning.py --preset tuned --seeds 8
    python benchmarks/learning.py --preset tutorial --envs Pendulum-v1 --seeds 3
    python benchmarks/learning.py --envs Pendulum-v1 --network gru --hide-obs 2

Each (preset, env, steps) run is stored as JSON under
``benchmarks/results/learning/``; ``benchmarks/results/learning.md`` and the
``learning_<env>.png`` plots are rebuilt from all stored runs, so runs of
different presets or envs accumulate. Expected run time on a 2-core CPU: about
1-3 minutes per env for 8 seeds of the default budgets (MinAtar longer).

Training return: mean over episodes that ended in the last 10 iterations.
Evaluation return: the deterministic policy (mean action or argmax), 20
episodes per seed; shown as mean ± std over seeds and as their IQM with a 95%
bootstrap confidence interval (``ppo_jax.run.statistics``). Threshold: the first
step at which the seed-mean training return, averaged over a 10-iteration
window, reaches the env's threshold; its seconds are that fraction of the
measured training time.

Each run prints a progress line per twentieth of its iterations and keeps a
checkpoint in ``benchmarks/.partial/`` meanwhile: a run stopped (Ctrl-C, a
lost session) continues from its last checkpoint when the same command is
run again.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
import warnings
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from ppo_jax import PPOConfig, build_pipeline  # noqa: E402
from ppo_jax.algo.ppo import Metrics, RunnerState, make_chunk  # noqa: E402
from ppo_jax.analysis.evaluation import evaluate_policy  # noqa: E402
from ppo_jax.config.schema import field_kinds, parse_text  # noqa: E402
from ppo_jax.envs import preset_config  # noqa: E402
from ppo_jax.run.rundir import (  # noqa: E402
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
)
from ppo_jax.run.statistics import format_iqm, summarize  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "learning"
THRESHOLDS = {
    "Pendulum-v1": -200.0,
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCarContinuous-v0": 0.0,
    "Breakout-MinAtar": 10.0,
}
DEFAULT_ENVS = list(THRESHOLDS)
# MuJoCo Playground (pip install -e '.[playground]'): not in the default list.
THRESHOLDS |= {"playground/CartpoleBalance": 900.0, "playground/CartpoleSwingup": 700.0}
WINDOW = 10  # iterations


def seed_returns(metrics) -> np.ndarray:
    """``[seeds, iterations]`` mean return, carried forward over iterations in
    which no episode ended (NaN before the first one)."""
    ret = np.asarray(metrics.mean_return, np.float64)
    out = np.full_like(ret, np.nan)
    for s in range(ret.shape[0]):
        last = np.nan
        for i, r in enumerate(ret[s]):
            last = r if np.isfinite(r) else last
            out[s, i] = last
    return out


def last_iterations_return(metrics, last: int = WINDOW) -> np.ndarray:
    """Per seed: mean return of the episodes ended in its last ``last``
    iterations in which episodes ended (as the CLI's ``final:`` line)."""
    out = []
    for ret, count in zip(
        np.asarray(metrics.mean_return), np.asarray(metrics.num_episodes), strict=True
    ):
        ended = np.nonzero(count > 0)[0][-last:]
        out.append((ret[ended] * count[ended]).sum() / max(count[ended].sum(), 1))
    return np.asarray(out)


def steps_to_threshold(timesteps, curve, threshold):
    """First timestep where the windowed seed-mean curve reaches threshold."""
    if threshold is None or len(curve) < WINDOW:
        return None
    windowed = np.convolve(curve, np.ones(WINDOW) / WINDOW, mode="valid")
    hits = np.nonzero(windowed >= threshold)[0]
    return int(timesteps[hits[0] + WINDOW - 1]) if len(hits) else None


PARTIAL = Path(__file__).parent / ".partial"  # resumable runs (git-ignored)
PROGRESS_LINES = 20  # chunks a run is cut into: a progress line each


def partial_dir(config: PPOConfig, keys: jax.Array) -> Path:
    """Where an unfinished run of ``config`` on ``keys`` keeps its checkpoint:
    named by a hash of both, so only the same run resumes from it."""
    text = json.dumps(
        [config.to_dict(), np.asarray(jax.random.key_data(keys)).tolist()],
        sort_keys=True,
    )
    return PARTIAL / hashlib.sha256(text.encode()).hexdigest()[:16]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@contextlib.contextmanager
def claimed(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock (``<folder>.lock``, this process's pid) while a
    run writes there, so that a second process started with the very same
    config and keys stops with one sentence instead of overwriting the first's
    checkpoints. A lock left by a process that is gone (killed) is taken over.
    """
    lock = folder.with_name(folder.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder: int | None = int(lock.read_text())
            except (OSError, ValueError):
                holder = None  # being written, or damaged: not ours to take
            # A dead holder, or this very pid (a restarted machine reuses
            # pids), left the lock behind: take it over.
            if holder is not None and (holder == os.getpid() or not _alive(holder)):
                lock.unlink(missing_ok=True)
                continue
            print(
                f"{lock} shows that another process "
                f"({'pid ' + str(holder) if holder else 'pid unreadable'}) is "
                "running this very run; wait for it to end, or stop it and "
                "remove the lock to take the run over.",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
        with os.fdopen(fd, "w") as file:
            file.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _resume(
    folder: Path, template: RunnerState, config: PPOConfig
) -> tuple[RunnerState, Metrics, float] | None:
    """The runner, metrics chunks and training seconds an interrupted run left
    in ``folder``; None when there is nothing usable to resume."""
    try:
        runner = load_checkpoint(folder, template, config)
        with np.load(folder / "metrics.npz") as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (CheckpointError, OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a half-written or older folder: start afresh
    done = int(np.max(runner.iteration))
    # The metrics are written before the checkpoint: they may run ahead.
    finished = [int(n) for n in arrays.pop("done")]
    if done not in finished:
        return None
    at = finished.index(done)
    seconds = float(arrays.pop("train_s")[at])
    metrics = Metrics(**{k: v[:, :done] for k, v in arrays.items()})
    return runner, metrics, seconds


def train_and_evaluate(
    config: PPOConfig, keys: jax.Array, episodes: int, progress: str | None = None
):
    """Train ``config`` once per key of ``keys`` (vmapped, one compile) and
    evaluate each final policy for ``episodes`` episodes (its mode, or sampled
    actions with ``eval_actions="sample"``).

    The run goes in ``PROGRESS_LINES`` compiled chunks. After each, its
    checkpoint goes to ``benchmarks/.partial/``, so an interrupted run resumes
    where it stopped when started again with the same config and keys (and the
    folder is removed when it ends); ``progress``: a label for a line per chunk
    (steps done, steps/s, minutes left), None for none.

    Returns ``(metrics, eval_returns, compile_s, train_s)``: the seeds' host
    ``Metrics`` (``[seeds, iterations]`` leaves), the ``[seeds, episodes]``
    evaluation returns (none when ``episodes`` is 0) and the seconds to compile
    and to train (compilation excluded; a resumed run's earlier seconds
    included).
    """
    seeds = len(keys)
    total = config.num_iterations
    pipeline = build_pipeline(config)
    hp = config.hyperparams()
    chunk_iterations = max(1, math.ceil(total / PROGRESS_LINES))
    chunk = jax.vmap(
        make_chunk(pipeline, chunk_iterations, run_axis="runs"),
        in_axes=(0, None),
        axis_name="runs",
    )
    init = jax.jit(jax.vmap(pipeline.init, in_axes=(0, None)))
    folder = partial_dir(config, keys)
    with claimed(folder):  # before compiling: a refusal comes at once
        t = time.perf_counter()
        template = jax.eval_shape(init, keys, hp)
        run_chunk = jax.jit(chunk, donate_argnums=0).lower(template, hp).compile()
        compile_s = time.perf_counter() - t

        resumed = _resume(folder, template, config) if folder.is_dir() else None
        history: Metrics | None  # [seeds, iterations done] leaves
        if resumed is None:
            runner, history, train_s = init(keys, hp), None, 0.0
        else:
            runner, history, train_s = resumed
            runner = jax.device_put(runner)
        done = int(np.max(runner.iteration))
        if progress and done:
            print(
                f"  {progress}: resuming after iteration {done} of {total}", flush=True
            )
        done_log, seconds_log = [done], [train_s]
        while done < total:
            t = time.perf_counter()
            runner, metrics = jax.block_until_ready(run_chunk(runner, hp))
            train_s += time.perf_counter() - t
            new = jax.device_get(metrics)
            if history is not None:
                new = jax.tree.map(lambda *x: np.concatenate(x, axis=1), history, new)
            done = min(done + chunk_iterations, total)
            history = jax.tree.map(lambda x, n=done: x[:, :n], new)
            done_log.append(done)
            seconds_log.append(train_s)
            folder.mkdir(parents=True, exist_ok=True)
            saved = io.BytesIO()
            np.savez(
                saved,
                done=np.asarray(done_log),
                train_s=np.asarray(seconds_log),
                **history._asdict(),
            )
            # First the metrics, then the checkpoint that they must reach.
            atomic_write_bytes(folder / "metrics.npz", saved.getvalue())
            save_checkpoint(folder, config, runner)
            if progress:
                per_iteration = config.batch_size * seeds  # env steps, all seeds
                # steps/s since this process started (a resumed run's own pace)
                ran_s = max(train_s - seconds_log[0], 1e-9)
                sps = (done - done_log[0]) * per_iteration / ran_s
                left = (total - done) * per_iteration / sps / 60
                print(
                    f"  {progress}: {done * per_iteration:,} of "
                    f"{total * per_iteration:,} steps (all seeds), {sps:,.0f} "
                    f"steps/s, {left:.1f} min left",
                    flush=True,
                )
        assert history is not None  # at least one chunk ran, or was resumed
        metrics = history
        if folder.is_dir():
            shutil.rmtree(folder)

    if episodes == 0:  # no evaluation (e.g. 100,000-step Craftax episodes)
        return metrics, np.full((seeds, 0), np.nan), compile_s, train_s

    def evaluate(params, obs_stats, key):
        return evaluate_policy(pipeline, params, obs_stats, key, episodes)

    eval_returns, _ = jax.jit(jax.vmap(evaluate))(
        runner.agent.actor_params,
        runner.envs.obs_stats,
        jax.random.split(jax.random.key(10_000), seeds),
    )
    return metrics, eval_returns, compile_s, train_s


def run_config(
    preset: str, env: str, total_timesteps: int | None, **fields: Any
) -> PPOConfig:
    """The validated config :func:`run` trains: ``preset`` on ``env`` with
    ``fields`` (and ``total_timesteps``, when given) over it."""
    overrides = {"env_name": env, **fields}
    if total_timesteps:
        overrides["total_timesteps"] = total_timesteps
    return preset_config(preset, **overrides).validate()


def run(
    preset: str,
    env: str,
    seeds: int,
    total_timesteps: int | None,
    episodes: int,
    keep_metrics: bool = False,
    **fields,
):
    """Train and evaluate ``preset`` on ``env`` (with the config ``fields``
    given, e.g. ``network``) for ``seeds`` seeds; returns the stored record
    (with the seeds' host ``Metrics`` under ``"metrics"`` if ``keep_metrics``)."""
    config = run_config(preset, env, total_timesteps, **fields)
    keys = jax.random.split(jax.random.key(config.seed), seeds)
    metrics, eval_returns, compile_s, train_s = train_and_evaluate(
        config, keys, episodes, progress=env
    )
    curves = seed_returns(metrics)
    with warnings.catch_warnings():  # iterations before any episode ended: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        curve_mean, curve_std = np.nanmean(curves, 0), np.nanstd(curves, 0)
    timesteps = np.asarray(metrics.timesteps[0])
    steps = int(timesteps[-1])
    threshold = THRESHOLDS.get(env)
    hit = steps_to_threshold(timesteps, curve_mean, threshold)
    record = {
        "preset": preset,
        "env": env,
        "seeds": seeds,
        "steps": steps,
        "config": config.to_dict(),
        "set": {k: v for k, v in fields.items() if k not in ("network", "hide_obs")},
        "train_return": last_iterations_return(metrics).tolist(),
        "eval_return": (
            np.asarray(eval_returns).mean(axis=1).tolist()
            if episodes
            else [float("nan")] * seeds
        ),
        "eval_episodes": episodes,
        "threshold": threshold,
        "steps_to_threshold": hit,
        "seconds_to_threshold": None if hit is None else train_s * hit / steps,
        "train_s": train_s,
        "compile_s": compile_s,
        "sps": steps * seeds / train_s,
        "timesteps": timesteps.tolist(),
        "curve_mean": curve_mean.tolist(),
        "curve_std": curve_std.tolist(),
        "machine": machine(),
        "date": str(date.today()),
    }
    if keep_metrics:
        record["metrics"] = jax.device_get(metrics)
    return record


def fmt(values) -> str:
    v = np.asarray(values)
    return f"{v.mean():.1f} ± {v.std():.1f}"


def write_report() -> None:
    runs = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    order = {env: i for i, env in enumerate(DEFAULT_ENVS)}
    runs.sort(
        key=lambda r: (
            order.get(r["env"], 99),
            r["env"],
            r["preset"],
            variant(r),
            r["steps"],
        )
    )
    (RESULTS / "learning.md").write_text(report(runs))
    plot(runs)


def variant(run: dict) -> str:
    """The network of a stored run, the observation entries it hid and the
    fields given with ``--set``."""
    config = run["config"]
    hidden = config.get("hide_obs")
    masked = "" if hidden is None else f", hide_obs {','.join(map(str, hidden))}"
    changed = "".join(f", {k} {v}" for k, v in run.get("set", {}).items())
    return config.get("network", "mlp") + masked + changed


def report(runs: list[dict]) -> str:
    """The results table (markdown) of stored runs, in the given order."""
    lines = [
        "# Learning results",
        "",
        "Written by `python benchmarks/learning.py` (see its docstring for the",
        "definitions). Returns are mean ± std over seeds; seeds are vmapped in one",
        "compile, so `train s` is the wall-clock time of all seeds together and",
        "`steps/s` counts the steps of all seeds. `eval return IQM [95% CI]` is",
        "the interquartile mean of the seeds' evaluation returns with its 95%",
        "bootstrap confidence interval (`ppo_jax.run.statistics`, 2000 resamples,",
        "seed 0).",
        "",
        "| env | preset | network | seeds | steps/seed | train return | eval return | "
        "eval return IQM [95% CI] | threshold | steps to threshold | "
        "s to threshold | train s | compile s | steps/s | machine | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        hit, secs = r["steps_to_threshold"], r["seconds_to_threshold"]
        lines.append(
            f"| {r['env']} | {r['preset']} | {variant(r)} | {r['seeds']} | "
            f"{r['steps']:,} | "
            f"{fmt(r['train_return'])} | {fmt(r['eval_return'])} | "
            f"{format_iqm(summarize(r['eval_return']))} | "
            f"{'-' if r['threshold'] is None else format(r['threshold'], 'g')} | "
            f"{'not reached' if hit is None else f'{hit:,}'} | "
            f"{'-' if hit is None else f'{secs:.1f}'} | "
            f"{r['train_s']:.1f} | {r['compile_s']:.1f} | {r['sps']:,.0f} | "
            f"{r['machine']} | {r['date']} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for env in sorted({r["env"] for r in runs}):
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in (r for r in runs if r["env"] == env):
            x = np.asarray(r["timesteps"])
            mean, std = np.asarray(r["curve_mean"]), np.asarray(r["curve_std"])
            label = (
                f"{r['preset']}, {variant(r)} ({r['seeds']} seeds, "
                f"{r['steps']:,} steps)"
            )
            (line,) = ax.plot(x, mean, lw=1.2, label=label)
            ax.fill_between(
                x, mean - std, mean + std, color=line.get_color(), alpha=0.2
            )
        if env in THRESHOLDS:
            ax.axhline(
                THRESHOLDS[env], color="gray", ls="--", lw=0.8, label="threshold"
            )
        ax.set_xlabel("environment steps (per seed)")
        ax.set_ylabel("training episodic return (mean ± std over seeds)")
        ax.set_title(f"ppo_jax on {env}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RESULTS / f"learning_{env.replace('/', '_')}.png", dpi=110)
        plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tuned")
    p.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument(
        "--total-timesteps", type=int, default=None, help="default: the preset's"
    )
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--network", default=None, help="default: the preset's")
    p.add_argument(
        "--hide-obs",
        default=None,
        help="observation entries to hide, comma-separated (a memory task)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="another config field, as on the command line (repeatable)",
    )
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    kinds = {kind.name: kind for kind in field_kinds(PPOConfig)}
    fields: dict = {}
    for assignment in args.set:
        name, _, text = assignment.partition("=")
        fields[name] = parse_text(kinds[name], text)
    if args.network is not None:
        fields["network"] = args.network
    if args.hide_obs is not None:
        fields["hide_obs"] = tuple(int(i) for i in args.hide_obs.split(","))

    RUNS.mkdir(parents=True, exist_ok=True)
    for env in args.envs:
        r = run(
            args.preset,
            env,
            args.seeds,
            args.total_timesteps,
            args.eval_episodes,
            **fields,
        )
        hit = r["steps_to_threshold"]
        print(
            f"{r['preset']} ({variant(r)}) on {env}: {r['seeds']} seeds x "
            f"{r['steps']:,} steps: "
            f"train return {fmt(r['train_return'])}, eval return "
            f"{fmt(r['eval_return'])}, threshold {r['threshold']} "
            f"{'not reached' if hit is None else f'at {hit:,} steps'}; "
            f"{r['train_s']:.1f} s ({r['sps']:,.0f} steps/s), "
            f"compile {r['compile_s']:.1f} s",
            flush=True,
        )
        if not args.no_write:
            slug = env.replace("/", "_")
            tag = (
                ""
                if not fields
                else "_"
                + variant(r).replace(", ", "_").replace(" ", "").replace(",", "-")
            )
            name = f"{r['preset']}_{slug}{tag}_{r['steps']}_{r['seeds']}seeds.json"
            (RUNS / name).write_text(json.dumps(r) + "\n")
            write_report()


if __name__ == "__main__":
    main()
