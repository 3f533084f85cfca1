"""Published PPO protocols, reproduced side by side: each protocol names its
tasks, budget, seeds, which return it compares (training or evaluation, as
the reference reports it), the published figure per task and its source.

    python benchmarks/protocols.py --list
    python benchmarks/protocols.py cleanrl-dmc-1m                # its CPU tasks
    python benchmarks/protocols.py cleanrl-dmc-1m --tasks reacher-easy --settings tuned
    python benchmarks/protocols.py playground-dmc-60m --device gpu   # benchmarks/gpu.sh
    python benchmarks/protocols.py --report                      # rebuild the tables

Every (protocol, task, settings) run trains its seeds vmapped in one compile
(``benchmarks/learning.py``'s ``run``) and is stored as JSON under
``benchmarks/results/protocols/<protocol>/``; ``benchmarks/results/protocols.md``
and one curve figure per protocol (``protocols_<protocol>.png``) are rebuilt
from every stored run, so tasks run on different days or machines accumulate
(each row says its machine).

Ours: the score per seed is its training return (episodes that ended in the
last 10 iterations, as the CLI's ``final:`` line) or its evaluation return
(the deterministic policy, ``--eval-episodes`` episodes at the end),
whichever the reference reports; shown as IQM [95% bootstrap CI] and mean ±
std over seeds. Ratio: our mean over the reference (for positive references).

Tasks marked ``gpu`` need more than this project's 2-core CPU affords in a
session (contact-rich MuJoCo physics, 10M-60M steps); ``--device cpu`` (the
default) runs only the others, ``--device all`` runs every task.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import CRAFTAX_TUNED  # noqa: E402
from learning import run  # noqa: E402

from ppo_jax.config.ppo_config import preset_env_overrides  # noqa: E402
from ppo_jax.config.presets import DM_CONTROL_CLEANRL, DM_CONTROL_TASKS  # noqa: E402
from ppo_jax.run.statistics import format_iqm, format_mean_std, summarize  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "protocols"


@dataclass(frozen=True)
class Task:
    """One task of a protocol: ppo_jax's env name, the reference's name for
    it, the reference's figure (None: no published number) and where it runs
    in reasonable time."""

    env: str
    label: str
    reference: float | None
    device: Literal["cpu", "gpu"] = "cpu"


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    source: str  # where the reference figures come from
    compared: Literal["training", "evaluation"]
    total_timesteps: int
    seeds: int
    tasks: tuple[Task, ...]
    # settings label -> config fields over the ``tuned`` preset (and its
    # per-env table) for every task of the protocol
    settings: dict[str, dict[str, Any]]
    notes: str = ""
    # (settings label, task env) -> fields over that label's for that task
    per_task: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # settings label -> the task envs it is run on (absent: every task)
    label_tasks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    eval_episodes: int = 20
    score_scale: float = 1.0  # our return x this = the reference's unit
    unit: str = "return"
    reference_settings: str = ""  # the settings the reference ran with
    digits: int = 1  # decimals of the scores in the tables (2 for rates)

    def fields(self, label: str, task: Task) -> dict[str, Any]:
        """The config fields the ``label`` settings train ``task`` with, over
        the ``tuned`` preset: the label's, then the task's own."""
        return {**self.settings[label], **self.per_task.get((label, task.env), {})}

    def applies(self, label: str, task: Task) -> bool:
        """Whether the ``label`` settings are run on ``task``."""
        return task.env in self.label_tasks.get(label, (task.env,))


# The DM Control `tuned` preset before commit 89e569e (2026-12-04), laid out
# for steps per second on 2 cores (Playground's settings scaled: 128 envs x
# 32 steps, 4 x 4 updates, discount 0.995, lr 1e-3 annealed, entropy 0.01,
# no value clipping), with its per-task changes (SPEED_LAYOUT_TASKS). Since then
# `tuned` is CleanRL's own settings (ppo_jax/config/presets.py), so the
# `tuned` rows are CleanRL's settings in ppo_jax, except on the cartpoles
# (lr 1e-4) and point_mass, pendulum, acrobot and reacher (entropy bonus
# 0.01, 0.05 on point_mass, acrobot and reacher; on reacher also 64 envs x 32
# steps and 20 epochs); `cleanrl` is CleanRL's own settings on those six.
SPEED_LAYOUT: dict[str, Any] = {
    "num_envs": 128,
    "rollout_length": 32,
    "num_minibatches": 4,
    "update_epochs": 4,
    "gamma": 0.995,
    "lr": 1e-3,
    "ent_coef": 0.01,
    "clip_value": False,
}
SPEED_LAYOUT_TASKS: dict[str, dict[str, Any]] = {
    "playground/CartpoleSwingup": {"gamma": 0.99, "lr": 3e-4, "ent_coef": 0.0},
    "playground/PendulumSwingup": {"update_epochs": 2},
    "playground/CartpoleBalance": {"anneal_lr": False},
}
# Playground's DM Control settings (mujoco_playground/config/
# dm_control_suite_params.py): 2048 envs x 30 steps, 32 minibatches x 16
# epochs, discount 0.995, lr 1e-3, entropy 0.01, observation normalization;
# Playground scales rewards by 10 where ppo_jax normalizes them.
PLAYGROUND_DMC: dict[str, Any] = {
    "num_envs": 2048,
    "rollout_length": 30,
    "num_minibatches": 32,
    "update_epochs": 16,
    "gamma": 0.995,
    "lr": 1e-3,
    "ent_coef": 0.01,
    "normalize_obs": True,
    "normalize_reward": True,
    "anneal_lr": False,
}

CONTACT_FREE = ("cartpole", "reacher", "point_mass", "pendulum", "acrobot")


def _cleanrl_where_tuned_differs() -> dict[str, dict[str, Any]]:
    """Per Playground DM Control env whose `tuned` preset departs from
    CleanRL's settings: CleanRL's values of the fields it changes."""
    differences = {}
    for task in DM_CONTROL_TASKS:
        env = f"playground/{task}"
        tuned = preset_env_overrides("tuned", env) or {}
        changed = {k: v for k, v in DM_CONTROL_CLEANRL.items() if tuned.get(k) != v}
        if changed:
            differences[env] = changed
    return differences


CLEANRL_WHERE_TUNED_DIFFERS = _cleanrl_where_tuned_differs()


def _dmc(label: str, env: str, reference: float | None) -> Task:
    device: Literal["cpu", "gpu"] = (
        "cpu" if label.split("-")[0] in CONTACT_FREE else "gpu"
    )
    return Task(f"playground/{env}", label, reference, device)


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="cleanrl-dmc-1m",
            title="CleanRL's PPO on the DM Control Suite, 1M steps",
            source=(
                "CleanRL docs, rl-algorithms/ppo.md, ppo_continuous_action.py on "
                "dm_control (3 seeds, training-episode returns at 1M steps)"
            ),
            compared="training",
            total_timesteps=1_000_000,
            seeds=3,
            tasks=tuple(
                _dmc(*row)
                for row in (
                    ("cartpole-balance", "CartpoleBalance", 855.0),
                    ("cartpole-swingup", "CartpoleSwingup", 641.0),
                    ("reacher-easy", "ReacherEasy", 626.0),
                    ("point_mass-easy", "PointMass", 274.0),
                    ("pendulum-swingup", "PendulumSwingup", 243.0),
                    ("acrobot-swingup", "AcrobotSwingup", 28.0),
                    ("ball_in_cup-catch", "BallInCup", 901.0),
                    ("finger-spin", "FingerSpin", 590.0),
                    ("cheetah-run", "CheetahRun", 433.0),
                    ("walker-walk", "WalkerWalk", 393.0),
                    ("walker-run", "WalkerRun", 126.0),
                    ("hopper-hop", "HopperHop", 0.5),
                )
            ),
            settings={"tuned": {}, "cleanrl": {}, "speed-layout": SPEED_LAYOUT},
            per_task={
                **{
                    ("speed-layout", env): fields
                    for env, fields in SPEED_LAYOUT_TASKS.items()
                },
                **{
                    ("cleanrl", env): fields
                    for env, fields in CLEANRL_WHERE_TUNED_DIFFERS.items()
                },
            },
            # `cleanrl` only where `tuned` is not CleanRL's settings already.
            label_tasks={"cleanrl": tuple(CLEANRL_WHERE_TUNED_DIFFERS)},
            reference_settings=(
                "CleanRL's defaults, which ppo_jax's `tuned` preset for these "
                "tasks has been since 2026-12-04 (1 env x 2048 steps, 10 epochs x "
                "32 minibatches, lr 3e-4 annealed, gamma 0.99, GAE 0.95, value "
                "clipping, no entropy bonus; ppo_jax bootstraps at the time "
                "limit, CleanRL does not), except on six tasks since "
                "2026-12-04 (benchmarks/results/robustness.md): `tuned` has lr "
                "1e-4 on the cartpoles (at 3e-4 some seeds collapse) and an "
                "entropy bonus of 0.01 on point_mass, pendulum, acrobot and "
                "reacher (without, about half the seeds of the first three never "
                "find the reward, and reacher's seeds stall lower), and 64 "
                "envs x 32 steps on reacher since 2026-12-05 (the same 2048 "
                "steps an update, from 64 target positions instead of two); "
                "point_mass's and acrobot's bonus is 0.05 since 2026-12-05 (at "
                "0.01 two or three seeds of 16 fall short), and reacher's, with "
                "20 epochs, since 2026-12-05 too (at 10 epochs and 0.01 three "
                "seeds of 16 stall short); "
                "`cleanrl` is "
                "CleanRL's own settings there; "
                "`speed-layout` is the preset before (Playground's settings "
                "scaled to 128 envs x 32 steps)"
            ),
            notes=(
                "MuJoCo Playground's versions of the tasks (MJX physics), not "
                "dm_control's own; PendulumSwingup repeats each action 4 times "
                "as Playground's settings do (250 agent steps an episode; 1M "
                "agent steps are 4M physics steps, where CleanRL's are 1M); "
                "contacts make the ball_in_cup, finger, cheetah, walker and hopper "
                "tasks too slow for a 2-core CPU (gpu; CheetahRun: 138 steps/s, "
                "benchmarks/results/playground.md)."
            ),
        ),
        Protocol(
            name="gymnax-minatar-10m",
            title="gymnax's PPO on MinAtar, 10M steps",
            source=(
                "gymnax README (gymnax-blines PPO checkpoints, MLP, evaluation "
                "return); pgx's MinAtar PPO at 20M steps for comparison: Breakout "
                "~50, Asterix ~22, Freeway ~63, SpaceInvaders ~145 (plots)"
            ),
            compared="evaluation",
            total_timesteps=10_000_000,
            seeds=3,
            tasks=(
                Task("Breakout-MinAtar", "Breakout-MinAtar", 28.0),
                Task("SpaceInvaders-MinAtar", "SpaceInvaders-MinAtar", 131.0),
                Task("Asterix-MinAtar", "Asterix-MinAtar", 15.0),
                Task("Freeway-MinAtar", "Freeway-MinAtar", 58.0),
            ),
            settings={
                "mlp": {"network": "mlp"},
                "cnn": {"network": "cnn"},
                # gymnax-blines' agents/<game>/ppo.yaml: the preset's layout
                # with a 256x256 MLP, lr 5e-4 held constant and gamma 0.999
                # (theirs warms the rate up over 5% of the run; ours cannot
                # with a constant rate).
                "gymnax-blines": {
                    "network": "mlp",
                    "hidden_sizes": (256, 256),
                    "lr": 5e-4,
                    "anneal_lr": False,
                    "gamma": 0.999,
                },
            },
            reference_settings="gymnax-blines' PPO with an MLP",
            notes=(
                "The tuned MinAtar preset (64 envs x 128 steps, 8 x 4 updates, "
                "lr 5e-3 annealed) at 10M steps. On 2 CPU cores, 3 vmapped seeds of "
                "the MLP trained Breakout at 67k and SpaceInvaders at 48k steps/s "
                "(8-11 minutes), Asterix at 62k (8 minutes); Freeway took 18 "
                "minutes (28k steps/s, with the CPU shared by another job); the "
                "CNN (the preset's network) trained Asterix at 5.0k steps/s "
                "(3 seeds in 101 minutes), Breakout at 5.2k (96 minutes, "
                "resumed across two sessions), SpaceInvaders at 4.6k (108 "
                "minutes) and Freeway at 5.3k (95 minutes, resumed across two "
                "sessions), the CPU shared with another run for much of each; "
                "runs are resumable (benchmarks/.partial/). "
                "`gymnax-blines`: the reference's own settings (agents/<game>/"
                "ppo.yaml: a 256x256 MLP, lr 5e-4, gamma 0.999; its 5% warm-up "
                "of the rate left out), run on Asterix, the game the preset is "
                "behind on: 41 minutes (12k steps/s, the CPU shared with another "
                "job)."
            ),
        ),
        Protocol(
            name="craftax-1m",
            title="Craftax-1M (Craftax-Symbolic-v1, 1M steps)",
            source=(
                "Craftax README and paper (Matthews et al., 2024), Craftax-1M table: "
                "PPO 2.2%, PPO-RNN 2.3% of the maximum score (226)"
            ),
            compared="training",
            total_timesteps=1_000_000,
            seeds=3,
            tasks=(Task("craftax/Craftax-Symbolic-v1", "Craftax-1M", 2.2, "gpu"),),
            settings={
                "paper-ppo": CRAFTAX_TUNED,
                "paper-ppo-gru": {**CRAFTAX_TUNED, "network": "gru"},
            },
            eval_episodes=0,  # episodes last up to 100,000 steps
            score_scale=100 / 226,
            unit="% of max score",
            reference_settings="Craftax_Baselines ppo.py (PPO-RNN: 2.3%)",
            notes=(
                "The paper's PPO settings scaled to 64 envs (benchmarks/"
                "craftax_speed.py); about 1,000 steps/s on 2 CPU cores with 3 x 512 "
                "networks, so an hour for 3 seeds (gpu)."
            ),
        ),
        Protocol(
            name="navix-1m",
            digits=2,
            title="NAVIX's MiniGrid tasks, rejax's 1M steps",
            source=(
                "NAVIX's rerun of its rejax PPO baselines (github epignatelli/"
                "navix, commit 250d46e9, baselines/rejax/results.bkp.2/"
                "navix_*_ppo_5_0_*.json, August 2025, NAVIX pinned at 5fc4975a "
                "= 0.7.0: rejax PPO tuned per task, 5 seeds, 1,048,576 steps, "
                "20 evaluation episodes a seed with sampled actions; the figure "
                "is the last evaluation's mean over seeds); navix rewards 1 at "
                "the goal, so a return is a success rate. Not the July 2024 "
                "baselines (commit 3857a3bc, DoorKey-8x8 0.997, FourRooms "
                "0.139): they ran 53 minutes before NAVIX's fix 7a56a08 "
                "('entities are now correctly flagged as non walkable', issue "
                "#82, released in 0.6.16), when walls placed as entities, "
                "DoorKey's dividing wall and FourRooms' inner walls, could be "
                "walked through; the rerun with the same settings on the fixed "
                "NAVIX scores DoorKey-8x8 0.01. None published for Empty-8x8 "
                "and DoorKey-5x5"
            ),
            compared="evaluation",
            total_timesteps=1_048_576,
            seeds=3,
            tasks=(
                Task("navix/Navix-Empty-6x6-v0", "Navix-Empty-6x6-v0", 1.0),
                Task(
                    "navix/Navix-Empty-Random-8x8-v0",
                    "Navix-Empty-Random-8x8-v0",
                    1.0,
                ),
                Task("navix/Navix-DoorKey-8x8-v0", "Navix-DoorKey-8x8-v0", 0.01),
                Task("navix/Navix-FourRooms-v0", "Navix-FourRooms-v0", 0.12),
                Task("navix/Navix-Empty-8x8-v0", "Navix-Empty-8x8-v0", None),
                Task("navix/Navix-DoorKey-5x5-v0", "Navix-DoorKey-5x5-v0", None),
            ),
            # Sampled evaluation actions, as the reference's: in a grid the
            # deterministic policy can walk into a loop that a sampled one
            # leaves.
            settings={
                "tuned": {"eval_actions": "sample"},
                "rejax": {"eval_actions": "sample"},
            },
            # rejax's settings are written here for two tasks only.
            label_tasks={
                "rejax": ("navix/Navix-DoorKey-8x8-v0", "navix/Navix-FourRooms-v0")
            },
            per_task={
                # The reference's own settings for the task (its json's config).
                ("rejax", "navix/Navix-DoorKey-8x8-v0"): {
                    "activation": "tanh",
                    "num_envs": 16,
                    "rollout_length": 128,
                    "update_epochs": 2,
                    "num_minibatches": 1,
                    "max_grad_norm": 1.0,
                    "gamma": 0.95,
                    "gae_lambda": 0.9,
                    "normalize_obs": False,
                },
                # rejax's swish activation is not one of ppo_jax's: relu here.
                ("rejax", "navix/Navix-FourRooms-v0"): {
                    "activation": "relu",
                    "num_envs": 128,
                    "rollout_length": 32,
                    "update_epochs": 2,
                    "num_minibatches": 8,
                    "max_grad_norm": 5.0,
                    "gamma": 0.99,
                    "gae_lambda": 0.99,
                    "normalize_obs": False,
                },
            },
            reference_settings=(
                "rejax's settings tuned per task (ours: one table for every task, "
                "the `tuned` preset's grid-world table, rejax's Empty-6x6 "
                "settings; both evaluate sampled actions)"
            ),
            unit="success rate",
            notes=(
                "`rejax`: the reference's own settings for a task where they are "
                "written here (DoorKey-8x8 and FourRooms, the two behind the July "
                "2024 figures). Both labels evaluate sampled actions since "
                "2026-12-04 (`eval_actions`), as the reference does; with the "
                "deterministic policy FourRooms had scored 0.02 with either "
                "settings, where the training episodes (sampled) reached 0.07-0.10."
            ),
        ),
        Protocol(
            name="xminigrid-1m",
            digits=2,
            title="XLand-MiniGrid's MiniGrid ports, 1M steps",
            source=(
                "no published per-task PPO figure at this budget; reward "
                "1 - 0.9 * steps / max_steps at the goal, 0 otherwise"
            ),
            compared="evaluation",
            total_timesteps=1_048_576,
            seeds=3,
            tasks=(
                Task("xminigrid/MiniGrid-Empty-8x8", "MiniGrid-Empty-8x8", None),
                Task("xminigrid/MiniGrid-DoorKey-5x5", "MiniGrid-DoorKey-5x5", None),
                Task("xminigrid/MiniGrid-FourRooms", "MiniGrid-FourRooms", None),
            ),
            settings={"tuned": {}},
            reference_settings="the `tuned` preset's grid-world table",
        ),
        Protocol(
            name="pgx-random-500k",
            digits=2,
            title="Pgx games against the uniformly random opponent, 500k steps",
            source=(
                "random play against the random opponent scores about 0 "
                "(tic_tac_toe: +0.28 moving first, -0.29 second); a perfect "
                "tic_tac_toe player never loses: its return is its win rate"
            ),
            compared="evaluation",
            total_timesteps=500_000,
            seeds=3,
            tasks=(
                Task("pgx/tic_tac_toe", "tic_tac_toe", None),
                Task("pgx/connect_four", "connect_four", None),
            ),
            settings={"tuned": {}},
            reference_settings="the `tuned` preset's board-game table",
            eval_episodes=200,
            unit="return (+1 win, 0 draw, -1 loss)",
        ),
        Protocol(
            name="jumanji-1m",
            title="Jumanji's tasks, 1M steps",
            source=(
                "Jumanji's own A2C baselines are curves (no table); on Game2048 "
                "random legal moves score about 1050 and always the first legal "
                "move of down, left, right, up about 2560 (adapter's docstring)"
            ),
            compared="evaluation",
            total_timesteps=1_000_000,
            seeds=3,
            tasks=(
                Task("jumanji/Game2048-v1", "Game2048-v1", None),
                Task("jumanji/Snake-v1", "Snake-v1", None, "gpu"),
            ),
            settings={"tuned": {}},
            reference_settings="the `tuned` preset's Jumanji table (`structured`)",
            eval_episodes=10,
        ),
        Protocol(
            name="playground-dmc-60m",
            title="MuJoCo Playground's DM Control protocol, 60M steps (GPU)",
            source=(
                "MuJoCo Playground paper's figures (brax PPO, 60M steps, settings "
                "in mujoco_playground/config/dm_control_suite_params.py); brax's own "
                "ppo.train does not run on jax 0.10, so it is not run beside"
            ),
            compared="evaluation",
            total_timesteps=60_000_000,
            seeds=3,
            tasks=tuple(
                Task(f"playground/{env}", env, None, "gpu")
                for env in (
                    "CartpoleBalance",
                    "CartpoleSwingup",
                    "ReacherEasy",
                    "PendulumSwingup",
                    "AcrobotSwingup",
                    "CheetahRun",
                )
            ),
            settings={"playground": PLAYGROUND_DMC},
            reference_settings="Playground's (the `playground` settings here)",
            eval_episodes=10,
            notes="No per-task number is published in a table; curves only.",
        ),
    )
}


def slug(text: str) -> str:
    return text.replace("/", "_").replace(" ", "")


def run_task(protocol: Protocol, task: Task, label: str, seeds: int) -> dict:
    """Train ``task`` with the protocol's ``label`` settings for ``seeds``
    seeds and store the record; returns it."""
    record = run(
        "tuned",
        task.env,
        seeds,
        protocol.total_timesteps,
        protocol.eval_episodes,
        **protocol.fields(label, task),
    )
    record |= {
        "protocol": protocol.name,
        "task": task.label,
        "settings": label,
        "reference": task.reference,
    }
    out = RUNS / protocol.name
    out.mkdir(parents=True, exist_ok=True)
    name = f"{slug(task.env)}_{label}_{record['steps']}_{seeds}seeds.json"
    (out / name).write_text(json.dumps(record) + "\n")
    return record


def scores(protocol: Protocol, record: dict) -> np.ndarray:
    """Per seed: the compared return in the reference's unit."""
    key = "train_return" if protocol.compared == "training" else "eval_return"
    return np.asarray(record[key], np.float64) * protocol.score_scale


def stored(protocol: Protocol) -> list[dict]:
    order = {t.label: i for i, t in enumerate(protocol.tasks)}
    labels = list(protocol.settings)
    runs = [
        json.loads(p.read_text()) for p in sorted((RUNS / protocol.name).glob("*.json"))
    ]
    return sorted(
        runs,
        key=lambda r: (
            order.get(r["task"], 99),
            labels.index(r["settings"]) if r["settings"] in labels else 99,
            r["steps"],
        ),
    )


def ratio(ours: float, reference: float | None) -> str:
    if reference is None or reference <= 0:
        return "-"
    return f"{ours / reference:.2f}"


def report() -> str:
    lines = [
        "# Published protocols, side by side",
        "",
        "Written by `python benchmarks/protocols.py` (its docstring defines every",
        "column); the command of each protocol is in its heading. Ours: IQM [95%",
        "bootstrap CI] and mean ± std over seeds of the return the reference",
        "reports; ratio: our mean / the reference. `train s`: all seeds together",
        "(vmapped), compile excluded; `steps/s`: all seeds' steps.",
    ]
    for protocol in PROTOCOLS.values():
        runs = stored(protocol)
        lines += [
            "",
            f"## {protocol.title}",
            "",
            f"`python benchmarks/protocols.py {protocol.name} --device all` "
            f"(CPU tasks only without `--device all`). Reference: "
            f"{protocol.source}; run with {protocol.reference_settings}. "
            f"Compared: {protocol.compared} {protocol.unit}, "
            f"{protocol.seeds} seeds, {protocol.total_timesteps:,} steps. "
            f"{protocol.notes}",
            "",
            "Settings: "
            + "; ".join(
                f"`{label}` = tuned preset"
                + ("" if not fields else " + " + _fields_text(fields))
                + "".join(
                    f" (+ {_fields_text(more)} on {env})"
                    for (which, env), more in protocol.per_task.items()
                    if which == label
                )
                + (
                    f" (on {', '.join(protocol.label_tasks[label])} only)"
                    if label in protocol.label_tasks
                    else ""
                )
                for label, fields in protocol.settings.items()
            )
            + ".",
            "",
            "| task | reference | settings | seeds | steps/seed | ours IQM [95% CI] "
            "| ours mean ± std | ratio | train s | compile s | steps/s | machine "
            "| date |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [_row(protocol, r) for r in runs]
        done = {(r["task"], r["settings"]) for r in runs}
        for task in protocol.tasks:
            for label in protocol.settings:
                if (task.label, label) not in done and protocol.applies(label, task):
                    lines.append(
                        f"| {task.label} | {_reference(task.reference)} | {label}: "
                        f"not run ({task.device}) | | | | | | | | | | |"
                    )
        if runs:
            lines += ["", f"![curves](protocols_{protocol.name}.png)"]
    return "\n".join(lines) + "\n"


def _row(protocol: Protocol, record: dict) -> str:
    """One stored run as a row of the protocol's table."""
    s, d = scores(protocol, record), protocol.digits
    summary = summarize(s)
    machine = str(record["machine"]).split(", jax")[0]
    # The protocol's reference as written now (a run stores the one of its day).
    task = next((t for t in protocol.tasks if t.label == record["task"]), None)
    reference = record["reference"] if task is None else task.reference
    return (
        f"| {record['task']} | {_reference(reference)} "
        f"| {record['settings']} | {record['seeds']} | {record['steps']:,} "
        f"| {format_iqm(summary, d)} | {format_mean_std(summary, d)} "
        f"| {ratio(float(s.mean()), reference)} "
        f"| {record['train_s']:.0f} | {record['compile_s']:.0f} "
        f"| {record['sps']:,.0f} | {machine} | {record['date']} |"
    )


def _reference(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _fields_text(fields: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {'-'.join(map(str, v)) if isinstance(v, tuple) else v}"
        for k, v in fields.items()
    )


def plot(protocol: Protocol) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = stored(protocol)
    tasks = [t for t in protocol.tasks if any(r["task"] == t.label for r in runs)]
    if not tasks:
        return
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False
    )
    for ax, task in zip(axes.flat, tasks, strict=False):
        for r in (r for r in runs if r["task"] == task.label):
            x = np.asarray(r["timesteps"])
            mean = np.asarray(r["curve_mean"]) * protocol.score_scale
            std = np.asarray(r["curve_std"]) * protocol.score_scale
            (line,) = ax.plot(
                x, mean, lw=1.2, label=f"{r['settings']} ({r['seeds']} seeds)"
            )
            ax.fill_between(
                x, mean - std, mean + std, color=line.get_color(), alpha=0.2
            )
        if task.reference is not None:
            ax.axhline(task.reference, color="gray", ls="--", lw=0.8, label="theirs")
        ax.set_title(task.label, fontsize=10)
        ax.set_xlabel("environment steps (per seed)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{protocol.title}: training {protocol.unit} (mean ± std over seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(RESULTS / f"protocols_{protocol.name}.png", dpi=100)
    plt.close(fig)


def write_report() -> None:
    (RESULTS / "protocols.md").write_text(report())
    for protocol in PROTOCOLS.values():
        plot(protocol)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("protocol", nargs="?", choices=sorted(PROTOCOLS))
    p.add_argument("--tasks", nargs="+", help="task labels (default: all of --device)")
    p.add_argument("--settings", nargs="+", help="settings labels (default: all)")
    p.add_argument("--device", choices=("cpu", "gpu", "all"), default="cpu")
    p.add_argument("--seeds", type=int, help="default: the protocol's")
    p.add_argument("--list", action="store_true", help="list the protocols and exit")
    p.add_argument("--report", action="store_true", help="only rebuild the tables")
    args = p.parse_args()
    if args.list:
        for protocol in PROTOCOLS.values():
            listed = ", ".join(f"{t.label} ({t.device})" for t in protocol.tasks)
            print(
                f"{protocol.name}: {protocol.title}; settings "
                f"{', '.join(protocol.settings)}; tasks {listed}"
            )
        return
    if args.report or args.protocol is None:
        write_report()
        return
    protocol = PROTOCOLS[args.protocol]
    known = {t.label for t in protocol.tasks} | {t.env for t in protocol.tasks}
    for name in args.tasks or ():
        if name not in known:
            p.error(f"{name!r} is not a task of {protocol.name}: {sorted(known)}")
    for label in args.settings or ():
        if label not in protocol.settings:
            p.error(
                f"{label!r} is not a settings label of {protocol.name}: "
                f"{sorted(protocol.settings)}"
            )
    if args.tasks:  # named tasks run wherever they are marked to run
        tasks = [t for t in protocol.tasks if {t.label, t.env} & set(args.tasks)]
    else:
        tasks = [t for t in protocol.tasks if args.device in ("all", t.device)]
    for task in tasks:
        for label in args.settings or protocol.settings:
            if not protocol.applies(label, task):
                continue
            r = run_task(protocol, task, label, args.seeds or protocol.seeds)
            s, d = scores(protocol, r), protocol.digits
            summary = summarize(s)
            print(
                f"{protocol.name} {task.label} [{label}]: {r['seeds']} seeds x "
                f"{r['steps']:,} steps: {protocol.compared} {protocol.unit} "
                f"{format_mean_std(summary, d)} (IQM {format_iqm(summary, d)}), "
                f"reference {_reference(task.reference)}, ratio "
                f"{ratio(s.mean(), task.reference)}; {r['train_s']:.0f} s "
                f"({r['sps']:,.0f} steps/s), compile {r['compile_s']:.0f} s",
                flush=True,
            )
            write_report()


if __name__ == "__main__":
    main()
