"""A hyperparameter search shown on one task: Optuna over traceable fields of
the ``tuned`` preset at a small budget (``ppo_jax.run.search.run_search``,
trials vmapped in one compile), then the best config and the ``tuned`` preset
trained at the same budget on fresh seeds, not used by the search.

    python benchmarks/search.py              # Acrobot-v1, 100k steps
    python benchmarks/search.py --env CartPole-v1 --total-timesteps 50000

The search runs twice, without and with pruning (``--no-pruning-run`` skips
the second), each in its own run directory under ``runs/``; the best config of
each and the preset are then trained for ``--fresh-seeds`` seeds (keys
1000, 1001, ...; the search's trials use keys 0, 1, ...), seeds vmapped in one
compile per config. Reported per config: the search's statistic on each fresh
seed (``final_return``: the mean training return over the last 10% of
iterations) and the deterministic return of each seed's final policy (mean
action or argmax, 20 episodes), as mean ± std, per seed, and IQM with its 95%
bootstrap interval. Writes ``benchmarks/results/search_<env>.md`` and
``.json`` (the space, every trial, the best params, times, the machine and the
command).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, machine  # noqa: E402
from learning import train_and_evaluate  # noqa: E402

from ppo_jax import PPOConfig  # noqa: E402
from ppo_jax.envs import preset_config  # noqa: E402
from ppo_jax.run import search  # noqa: E402
from ppo_jax.run.statistics import format_iqm, summarize  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# Around the tuned preset's discrete-action values (lr 2.5e-4, entropy 0.01,
# clip 0.2, gamma 0.99, GAE lambda 0.95, gradient clipping 0.5).
SPACE = {
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "ent_coef": {"low": 0.0, "high": 0.05},
    "clip_eps": {"low": 0.1, "high": 0.4},
    "gamma": {"low": 0.95, "high": 0.999},
    "gae_lambda": {"low": 0.8, "high": 0.99},
    "max_grad_norm": {"low": 0.3, "high": 2.0, "log": True},
}
FRESH_SEED_BASE = 1000


def fresh_seed_results(
    config: PPOConfig, seeds: int, episodes: int
) -> dict[str, object]:
    """Train ``config`` for ``seeds`` fresh seeds (vmapped, one compile) and
    evaluate each final policy deterministically."""
    keys = jax.numpy.stack([jax.random.key(FRESH_SEED_BASE + s) for s in range(seeds)])
    metrics, eval_returns, compile_s, train_s = train_and_evaluate(
        config, keys, episodes
    )
    returns = np.asarray(metrics.mean_return, np.float64)
    return {
        "seeds": [FRESH_SEED_BASE + s for s in range(seeds)],
        "final_return": [float(v) for v in search.seed_final_returns(returns)],
        "eval_return": [float(v) for v in np.asarray(eval_returns).mean(axis=1)],
        "train_s": train_s,
        "compile_s": compile_s,
    }


def summary_cells(values: list[float]) -> tuple[str, str]:
    s = summarize(values)
    return f"{s.mean:.1f} ± {s.std:.1f}", format_iqm(s, 1)


def run_one_search(
    config: PPOConfig, args: argparse.Namespace, prune: bool, stamp: str
) -> dict[str, Any]:
    label = "prune" if prune else "full"
    run_dir = ROOT / "runs" / f"bench-search-{args.env}-{stamp}-{label}"
    t = time.perf_counter()
    result = search.run_search(
        config,
        SPACE,
        trials=args.trials,
        batch=args.batch,
        num_seeds=args.seeds,
        statistic="final_return",
        run_dir=run_dir,
        prune=prune,
    )
    seconds = time.perf_counter() - t
    if result.exit_code != 0 or result.best is None or result.best_config is None:
        raise SystemExit(f"the search in {run_dir} ended with {result.exit_code}")
    return {
        "prune": prune,
        "run_dir": str(run_dir.relative_to(ROOT)),
        "seconds": seconds,
        "compile_s": result.compile_s,
        "best_number": result.best.number,
        "best_value": result.best.value,
        "best_params": result.best.params,
        "best_config": result.best_config,
        "counts": {
            state: sum(t.state == state for t in result.trials)
            for state in ("COMPLETE", "PRUNED", "FAIL")
        },
        "trials": [
            {
                "number": t.number,
                "state": t.state,
                "value": t.value,
                "params": t.params,
                "seed_values": list(t.seed_values),
                "note": t.note,
            }
            for t in result.trials
        ],
    }


def fmt_params(params: dict) -> str:
    return ", ".join(
        f"{k}={'none' if v is None else format(v, '.4g')}" for k, v in params.items()
    )


def report(record: dict) -> str:
    env, steps = record["env"], record["steps"]
    lines = [
        f"# Hyperparameter search on {env}",
        "",
        f"`{record['command']}` on {record['machine']}, {record['date']}; total "
        f"{record['total_s'] / 60:.1f} min.",
        "",
        f"Base config: the `tuned` preset for {env} at {steps:,} steps per run "
        f"({record['iterations']} iterations of {record['batch_size']} steps). "
        f"Search: {record['trials']} trials of {record['search_seeds']} seeds "
        f"(keys 0-{record['search_seeds'] - 1}), {record['batch']} trials at a "
        f"time vmapped in one compile, Optuna's TPE sampler; objective "
        f"{record['statistic']}. Space: "
        + "; ".join(p.describe() for p in search.space_from_dict(record["space"]))
        + ".",
        "",
        "## Searches",
        "",
        "| search | trials (complete / pruned / failed) | wall s | compile s "
        "| best trial | best final_return (search seeds) | best params |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in record["searches"]:
        c = s["counts"]
        lines.append(
            f"| {'with pruning' if s['prune'] else 'no pruning'} | "
            f"{c['COMPLETE']} / {c['PRUNED']} / {c['FAIL']} | {s['seconds']:.0f} | "
            f"{s['compile_s']:.1f} | #{s['best_number']} | {s['best_value']:.1f} | "
            f"{fmt_params(s['best_params'])} |"
        )
    seeds = record["fresh"][0]["results"]["seeds"]
    lines += [
        "",
        f"## Best configs against `tuned` on fresh seeds ({seeds[0]}-{seeds[-1]})",
        "",
        f"Each config trained for {len(seeds)} fresh seeds at {steps:,} steps; "
        "final training return (last 10% of iterations) and the deterministic "
        f"return of each final policy ({record['eval_episodes']} episodes): mean ± "
        "std over seeds and IQM [95% bootstrap CI].",
        "",
        "| config | final training return | IQM [95% CI] | eval return "
        "| IQM [95% CI] | train s |",
        "|---|---|---|---|---|---|",
    ]
    for f in record["fresh"]:
        r = f["results"]
        train_cells = summary_cells(r["final_return"])
        eval_cells = summary_cells(r["eval_return"])
        lines.append(
            f"| {f['name']} | {train_cells[0]} | {train_cells[1]} | {eval_cells[0]} "
            f"| {eval_cells[1]} | {r['train_s']:.1f} |"
        )
    lines += [
        "",
        "Per seed (final training return / eval return):",
        "",
        "| config | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for f in record["fresh"]:
        r = f["results"]
        cells = [
            f"{a:.1f} / {b:.1f}"
            for a, b in zip(r["final_return"], r["eval_return"], strict=True)
        ]
        lines.append(f"| {f['name']} | " + " | ".join(cells) + " |")
    for s in record["searches"]:
        lines += [
            "",
            f"## Trials ({'with pruning' if s['prune'] else 'no pruning'})",
            "",
            "| trial | state | final_return | "
            + " | ".join(record["space"])
            + " | note |",
            "|---|---|---|" + "---|" * len(record["space"]) + "---|",
        ]
        for t in s["trials"]:
            value = "" if t["value"] is None else f"{t['value']:.1f}"
            params = [
                "" if t["params"].get(k) is None else format(t["params"][k], ".4g")
                for k in record["space"]
            ]
            lines.append(
                f"| {t['number']} | {t['state']} | {value} | "
                + " | ".join(params)
                + f" | {t['note']} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Acrobot-v1")
    p.add_argument("--total-timesteps", type=int, default=100_000)
    p.add_argument("--trials", type=int, default=48)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seeds", type=int, default=2, help="seeds per trial")
    p.add_argument("--fresh-seeds", type=int, default=8)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument(
        "--no-pruning-run", action="store_true", help="skip the search with pruning"
    )
    args = p.parse_args()
    start = time.perf_counter()
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    config = preset_config(
        "tuned", env_name=args.env, total_timesteps=args.total_timesteps
    ).validate()
    searches = [run_one_search(config, args, False, stamp)]
    if not args.no_pruning_run:
        searches.append(run_one_search(config, args, True, stamp))
    candidates = [("tuned preset", config)]
    for s in searches:
        how = "with pruning" if s["prune"] else "no pruning"
        name = f"best, {how} (#{s['best_number']})"
        candidates.append((name, s["best_config"]))
    fresh = []
    for name, candidate in candidates:
        print(f"fresh seeds: {name}", flush=True)
        results = fresh_seed_results(candidate, args.fresh_seeds, args.eval_episodes)
        fresh.append({"name": name, "config": candidate.to_dict(), "results": results})
    record = {
        "env": args.env,
        "steps": config.num_iterations * config.batch_size,
        "iterations": config.num_iterations,
        "batch_size": config.batch_size,
        "trials": args.trials,
        "batch": args.batch,
        "search_seeds": args.seeds,
        "statistic": "final_return",
        "statistic_text": search.STATISTICS["final_return"].stated(
            config.num_iterations
        ),
        "space": SPACE,
        "searches": [
            {k: v for k, v in s.items() if k != "best_config"} for s in searches
        ],
        "fresh": fresh,
        "eval_episodes": args.eval_episodes,
        "total_s": time.perf_counter() - start,
        "machine": machine(),
        "date": f"{datetime.now():%Y-%m-%d}",
        "command": "python benchmarks/search.py " + " ".join(sys.argv[1:]),
    }
    record["command"] = record["command"].strip()
    name = args.env.replace("/", "_")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"search_{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    text = report(record)
    (RESULTS / f"search_{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
