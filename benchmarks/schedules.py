"""Learning-rate schedules side by side: a preset on a task with its
learning-rate schedule replaced, the same seeds and budget for each.

    python benchmarks/schedules.py
    python benchmarks/schedules.py --envs Pendulum-v1 --seeds 8

Variants: ``constant`` (lr fixed), ``linear`` (annealed to 0, the ``tuned``
preset's own), ``adaptive_kl`` moving the rate after every gradient step
(``minibatch``) or every epoch (``epoch``), with the schedule's defaults
(target KL 0.01, margin 2, factor 1.5, rate within [1e-5, 1e-2], starting at
the preset's lr), and per minibatch with a tighter target KL of 0.002.
Every variant trains the same seeds, vmapped in one compile, through
``benchmarks/learning.py``'s ``run`` (training return: the last 10 iterations;
evaluation: the deterministic policy, 20 episodes per seed).

Writes ``benchmarks/results/schedules.json`` and ``schedules.md`` (each
(env, variant) replaced when run again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from learning import run  # noqa: E402

from ppo_jax.run.statistics import format_iqm, summarize  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "constant": {"anneal_lr": False, "lr_schedule": "constant"},
    "linear": {"anneal_lr": False, "lr_schedule": "linear"},
    "adaptive_kl (minibatch)": {
        "anneal_lr": False,
        "lr_schedule": "adaptive_kl",
        "lr_adapt_every": "minibatch",
    },
    "adaptive_kl (epoch)": {
        "anneal_lr": False,
        "lr_schedule": "adaptive_kl",
        "lr_adapt_every": "epoch",
    },
    # A tighter target: the default 0.01 lets CartpoleSwingup's rate climb
    # from its tuned 3e-4 to ~2e-3.
    "adaptive_kl (minibatch, target 0.002)": {
        "anneal_lr": False,
        "lr_schedule": "adaptive_kl",
        "lr_adapt_every": "minibatch",
        "lr_kl_target": 0.002,
    },
}
DEFAULT_ENVS = ["Pendulum-v1", "playground/CartpoleSwingup"]


def fmt(values: list[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}"


def table(records: list[dict]) -> str:
    lines = [
        "# Learning-rate schedules side by side",
        "",
        "Written by `python benchmarks/schedules.py` (see its docstring). Each "
        "row: one variant of the `tuned` preset, the same seeds and budget; "
        "returns are mean ± std over seeds and the IQM of the seeds' "
        "evaluation returns with its 95% bootstrap CI. `train s` is the wall "
        "time of the seeds together, not a speed figure (other work may share "
        "the CPU; speed: `benchmarks/throughput.py`).",
        "",
        "| env | schedule | seeds | steps/seed | train return | eval return "
        "| eval IQM [95% CI] | final rate (mean) | train s | machine | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = list(VARIANTS)
    for r in sorted(records, key=lambda r: (r["env"], order.index(r["variant"]))):
        iqm = format_iqm(summarize(np.asarray(r["eval_return"])))
        lines.append(
            f"| {r['env']} | {r['variant']} | {r['seeds']} | {r['steps']:,} | "
            f"{fmt(r['train_return'])} | {fmt(r['eval_return'])} | {iqm} | "
            f"{r['final_rate']:.2g} | {r['train_s']:.0f} | {r['machine']} | "
            f"{r['date']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tuned")
    p.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--total-timesteps", type=int, default=None)
    args = p.parse_args()
    path = RESULTS / "schedules.json"
    records = json.loads(path.read_text()) if path.exists() else []
    for env in args.envs:
        for name in args.variants:
            r = run(
                args.preset, env, args.seeds, args.total_timesteps, 20,
                keep_metrics=True, **VARIANTS[name],
            )  # fmt: skip
            rates = np.asarray(r.pop("metrics").learning_rate)
            r["variant"] = name
            r["final_rate"] = float(rates[:, -1].mean())
            r["rate_curve_mean"] = rates.mean(axis=0).tolist()
            records = [
                x for x in records if (x["env"], x["variant"]) != (env, name)
            ] + [r]
            print(
                f"{env} {name}: train {fmt(r['train_return'])}, eval "
                f"{fmt(r['eval_return'])}, {r['train_s']:.0f} s",
                flush=True,
            )
            path.write_text(json.dumps(records, indent=1))
            (RESULTS / "schedules.md").write_text(table(records))


if __name__ == "__main__":
    main()
