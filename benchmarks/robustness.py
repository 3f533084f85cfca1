"""Does a preset reach its target on every seed? Many seeds, both ways a user
runs them: vmapped in one process and as separate ``--seed N`` processes.

    python benchmarks/robustness.py --env CartPole-v1 --target 475 --seeds 16
    python benchmarks/robustness.py --env Pendulum-v1 --target -200 --seeds 16
    python benchmarks/robustness.py --env Acrobot-v1 --target -100 --seeds 16 \
        --total-timesteps 500000

Each way is the training command itself (``python -m ppo_jax.train``) with
``--eval-every`` on: the figure compared with the target is each seed's last
evaluation, the deterministic policy on ``--eval-episodes`` fresh episodes
after the last iteration (what ``python -m ppo_jax.evaluate RUN_DIR --episodes
E`` prints on the final checkpoint). The separate processes share JAX's
compilation cache (they run the same program), so they compile once.

Writes ``benchmarks/results/robustness/<preset>_<env>_<steps>.json`` and
rebuilds ``benchmarks/results/robustness.md`` from every stored result
(``--report``: only that).

When a preset takes a tried change, its stored results are relabelled so that
a ``preset + change`` row keeps meaning today's preset plus that change::

    python benchmarks/robustness.py --env playground/PointMass --set ent_coef=0.05 \
        --relabel ent0.01 "tuned at commit 3476ec4 (CleanRL's settings, entropy 0.01)"

Results run with ``--set ent_coef=0.05`` become the preset's own (a note per
way says how they were run); results that set ``ent_coef`` otherwise keep
their label (the same settings under the new preset); the rest become
``tuned-ent0.01_*.json`` labelled with the text given. Nothing is rerun.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, machine  # noqa: E402

from ppo_jax.run.statistics import format_iqm, summarize  # noqa: E402

RESULTS = Path(__file__).parent / "results"
STORE = RESULTS / "robustness"


def train(args: list[str], run_dir: Path, env: dict[str, str]) -> float:
    """Run one training command; returns its wall time in seconds."""
    command = [sys.executable, "-m", "ppo_jax.train", *args, "--quiet"]
    command += ["--run-dir", str(run_dir), "--overwrite"]
    t = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr}")
    return time.perf_counter() - t


def evaluations(run_dir: Path) -> dict[int, list[list[float]]]:
    """Per seed: its ``[timesteps, eval_return]`` pairs from ``metrics.csv``,
    in order (the last is the seed's final figure)."""
    result: dict[int, list[list[float]]] = {}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            value = float(row["eval_return"])
            if math.isfinite(value):
                pair = [float(row["timesteps"]), round(value, 2)]
                result.setdefault(int(row["seed"]), []).append(pair)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env")
    p.add_argument("--target", type=float)
    p.add_argument("--preset", default="tuned")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--total-timesteps", type=int, default=None)
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--evaluations", type=int, default=10, help="per run, evenly")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="another train flag, e.g. --set lr=5e-4 or --set anneal_lr=false "
        "(a preset change to try)",
    )
    p.add_argument("--ways", nargs="+", default=["vmapped", "processes"])
    p.add_argument("--report", action="store_true", help="only rebuild robustness.md")
    p.add_argument(
        "--relabel",
        nargs=2,
        metavar=("SLUG", "LABEL"),
        help="the preset on --env now has the --set values: its stored results "
        "run without them become LABEL (file names PRESET-SLUG_...); nothing is run",
    )
    args = p.parse_args()
    changes: dict[str, str] = {}
    for item in args.set:
        field, equals, value = item.partition("=")
        if not (field and equals and value):
            p.error(f"--set takes FIELD=VALUE, as in --set lr=5e-4, not {item!r}")
        changes[field] = value
    if args.report:
        write_table()
        return
    if args.relabel:
        if args.env is None or not changes:
            p.error("--relabel needs --env and the preset's new --set values")
        slug, label = args.relabel
        moves = relabel(STORE, args.env, args.preset, changes, slug, label)
        for old, new in moves.items():
            print(f"{old.name} -> {new.name}")
        write_table()
        return
    if args.env is None or args.target is None:
        p.error("--env and --target are needed to run (or --report)")

    from ppo_jax import PPOConfig

    config = PPOConfig.from_preset(args.preset, env_name=args.env)
    steps = args.total_timesteps or config.total_timesteps
    iterations = math.ceil(steps / config.batch_size)
    base = ["--env", args.env, "--preset", args.preset, "--total-timesteps", str(steps)]
    base += ["--eval-every", str(max(1, iterations // args.evaluations))]
    base += ["--eval-episodes", str(args.eval_episodes)]
    for field, value in changes.items():
        flag = field.replace("_", "-")
        if value in ("true", "false"):  # a switch: --flag / --no-flag
            base.append(f"--{flag}" if value == "true" else f"--no-{flag}")
        else:
            base += [f"--{flag}", value]

    env = dict(os.environ)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env.setdefault("PPO_JAX_CACHE_DIR", str(Path(tmp) / "cache"))
        if "vmapped" in args.ways:
            run_dir = Path(tmp) / "vmapped"
            wall = train([*base, "--num-seeds", str(args.seeds)], run_dir, env)
            results["vmapped"] = {"wall_s": wall, "curves": evaluations(run_dir)}
            finals = {
                seed: c[-1][1] for seed, c in results["vmapped"]["curves"].items()
            }
            print(f"vmapped, final evaluation per seed: {finals}", flush=True)
        if "processes" in args.ways:
            curves, wall = {}, 0.0
            first = int(changes.get("seed", 0))  # --set seed=16: seeds 16, 17, ...
            for seed in range(first, first + args.seeds):
                run_dir = Path(tmp) / f"seed{seed}"
                wall += train([*base, "--seed", str(seed)], run_dir, env)
                curves.update(evaluations(run_dir))
                print(f"seed {seed}: {curves[seed][-1][1]:.1f}", flush=True)
            results["processes"] = {"wall_s": wall, "curves": curves}

    STORE.mkdir(parents=True, exist_ok=True)
    path = STORE / result_name(args.preset, args.env, steps, changes)
    command = " ".join(["python benchmarks/robustness.py", *sys.argv[1:]])
    ways = {
        way: {
            "wall_s": r["wall_s"],
            "final": {str(seed): c[-1][1] for seed, c in r["curves"].items()},
            # each seed's evaluations: [timesteps, return] pairs
            "curves": {str(seed): c for seed, c in r["curves"].items()},
            "command": command,
            "machine": machine(),
            "date": date.today().isoformat(),
        }
        for way, r in results.items()
    }
    if path.exists():  # the same runs' other way, measured before, is kept
        before = json.loads(path.read_text())
        now = {
            "target": args.target,
            "seeds": args.seeds,
            "eval_episodes": args.eval_episodes,
        }
        if all(before[k] == v for k, v in now.items()):
            kept = {
                way: {
                    "command": before["command"],
                    "machine": before["machine"],
                    "date": before["date"],
                    # a way's note (how it was run) stays with that way
                    **({"note": before["note"]} if "note" in before else {}),
                    **w,
                }
                for way, w in before["ways"].items()
            }
            ways = {**kept, **ways}
    out = {
        "env": args.env,
        "preset": args.preset,
        "changes": changes,
        "total_timesteps": steps,
        "target": args.target,
        "seeds": args.seeds,
        "eval_episodes": args.eval_episodes,
        "machine": machine(),
        "date": date.today().isoformat(),
        "command": command,
        "ways": ways,
    }
    path.write_text(json.dumps(out, indent=1) + "\n")
    write_table()


def result_name(preset: str, env: str, steps: int, changes: dict[str, str]) -> str:
    """The file name of a stored result: ``<preset>_<env>_<steps>[_k=v...].json``."""
    name = f"{preset}_{env.replace('/', '_')}_{steps}"
    if changes:
        name += "_" + "_".join(f"{k}={v}" for k, v in sorted(changes.items()))
    return re.sub(r"[^\w.=-]", "_", name) + ".json"


def same_value(a: str, b: str) -> bool:
    """Two ``--set`` values alike as written or as numbers (``1e-3``, ``0.001``)."""
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def relabel(
    store: Path, env: str, preset: str, adopted: dict[str, str], slug: str, label: str
) -> dict[Path, Path]:
    """Relabel the stored results of ``preset`` on ``env`` after the preset
    took the ``adopted`` field values; returns ``{old path: new path}``.

    A result whose changes set every adopted field is a run of the new preset
    plus its changes: the fields set to the adopted values are dropped from its
    changes (with a note per way) and the rest stays. Any other result ran the
    old preset: its ``preset`` becomes ``label`` and its file
    ``<preset>-<slug>_...``. Refuses (SystemExit), touching nothing, where two
    results would share a file or one would overwrite a result not moved.
    """
    planned: dict[Path, tuple[Path, dict[str, Any]]] = {}
    for path in sorted(store.glob("*.json")):
        original = json.loads(path.read_text())
        if original["env"] != env or original["preset"] != preset:
            continue
        record = copy.deepcopy(original)  # to change, beside the original
        changes: dict[str, str] = record["changes"]
        if all(field in changes for field in adopted):
            kept = {
                k: v
                for k, v in changes.items()
                if not (k in adopted and same_value(v, adopted[k]))
            }
            if kept != changes:
                dropped = " ".join(
                    f"--set {k}={changes[k]}" for k in adopted if k not in kept
                )
                note = (
                    f"run with {dropped} before the preset had it "
                    f"({date.today().isoformat()}; the same settings)"
                )
                for way in record["ways"].values():
                    way["note"] = f"{way['note']}; {note}" if "note" in way else note
            record = {**record, "changes": kept}
            name = result_name(preset, env, record["total_timesteps"], kept)
        else:
            record = {**record, "preset": label}
            name = result_name(
                f"{preset}-{slug}", env, record["total_timesteps"], changes
            )
        if store / name != path or record != original:
            planned[path] = (store / name, record)
    targets = [new for new, _ in planned.values()]
    for new in targets:
        if targets.count(new) > 1:
            raise SystemExit(f"two results would be {new.name}; nothing was moved.")
        if new.exists() and new not in planned:
            raise SystemExit(
                f"{new.name} exists and would be overwritten; nothing was moved."
            )
    # Every new file is in place before an old one goes: an interruption
    # leaves results twice, never lost.
    for new, record in planned.values():
        new.with_suffix(".json.tmp").write_text(json.dumps(record, indent=1) + "\n")
    for new, _ in planned.values():
        new.with_suffix(".json.tmp").replace(new)
    for old in planned:
        if old not in targets:
            old.unlink()
    return {old: new for old, (new, _) in planned.items()}


def write_table() -> None:
    """robustness.md from every stored result, one row per (result, way)."""
    lines = [
        "# Presets on many seeds",
        "",
        "Written by `benchmarks/robustness.py` from `results/robustness/*.json`. Final "
        "figure per seed: its last deterministic evaluation (the policy's mode on "
        "`eval_episodes` fresh episodes after the last iteration). `vmapped`: "
        "`--num-seeds N` in one process; `processes`: N `--seed s` commands.",
        "",
        "| env | preset + changes | steps | way | seeds at target | target | worst "
        "| IQM [95% CI] | mean ± std | wall s | machine, date |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(STORE.glob("*.json")):
        r = json.loads(path.read_text())
        changes = ", ".join(f"{k}={v}" for k, v in r["changes"].items())
        # "+", not parentheses: a relabelled preset's name has its own.
        preset = f"{r['preset']} + {changes}" if changes else r["preset"]
        for way, w in r["ways"].items():
            finals = list(w["final"].values())
            way_machine = w.get("machine", r["machine"])
            s = summarize(finals)
            met = sum(v >= r["target"] for v in finals)
            lines.append(
                f"| {r['env']} | {preset} | {r['total_timesteps']:,} | {way} | "
                f"{met}/{len(finals)} | {r['target']:g} | {min(finals):.1f} | "
                f"{format_iqm(s, 1)} | {s.mean:.1f} ± {s.std:.1f} | "
                f"{w['wall_s']:.0f} | {way_machine.split(', jax')[0]}, "
                f"{w.get('date', r['date'])} |"
            )
    (RESULTS / "robustness.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
