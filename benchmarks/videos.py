"""What ``--gif-every`` costs: the same training command with and without it,
alternated, each in a fresh process.

    python benchmarks/videos.py                  # CartPole-v1 (gymnasium's renderer)
    python benchmarks/videos.py --env playground/CartpoleBalance \
        --total-timesteps 300000

Reports per case the median wall time of the whole command, the training
steps/s of its ``final:`` line, and the seconds the GIFs took (the sum of
their ``gif:`` lines); writes ``benchmarks/results/videos.md`` and ``.json``
(each env's row replaced when run again). Compilation is shared through
JAX's cache (a first run fills it and is not counted).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def run(args: list[str], run_dir: Path) -> tuple[float, float, float, int]:
    """``(wall s, steps/s, GIF seconds, GIFs)`` of one training command."""
    command = [sys.executable, "-m", "ppo_jax.train", *args, "--quiet"]
    command += ["--run-dir", str(run_dir), "--overwrite"]
    t = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    found = re.search(r"sps=(\d+)", proc.stdout)
    if found is None:
        raise SystemExit(
            f"no sps= in the output of {' '.join(command)}:\n{proc.stdout}"
        )
    sps = float(found.group(1))
    gifs = [float(s) for s in re.findall(r", ([\d.]+) s\)$", proc.stdout, re.M)]
    return wall, sps, sum(gifs), len(gifs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--preset", default="tuned")
    p.add_argument("--total-timesteps", type=int, default=None)
    p.add_argument("--gif-every", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    base = ["--env", args.env, "--preset", args.preset]
    if args.total_timesteps:
        base += ["--total-timesteps", str(args.total_timesteps)]
    with_gifs = [*base, "--gif-every", str(args.gif_every)]
    results: dict[str, list[tuple[float, float, float, int]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        run(with_gifs, Path(tmp) / "warm")  # fills the compilation cache
        for _ in range(args.repeats):
            for name, argv in (("off", base), ("on", with_gifs)):
                results[name].append(run(argv, Path(tmp) / name))
                print(name, results[name][-1], flush=True)
    off, on = results["off"], results["on"]
    wall_off = statistics.median(r[0] for r in off)
    wall_on = statistics.median(r[0] for r in on)
    record = {
        "env": args.env,
        "command": " ".join(["python -m ppo_jax.train", *with_gifs]),
        "repeats": args.repeats,
        "wall_s_off": wall_off,
        "wall_s_on": wall_on,
        "sps_off": statistics.median(r[1] for r in off),
        "sps_on": statistics.median(r[1] for r in on),
        "gif_s": statistics.median(r[2] for r in on),
        "gifs": on[0][3],
        "machine": machine(),
    }
    path = RESULTS / "videos.json"
    records = json.loads(path.read_text()) if path.exists() else []
    records = [r for r in records if r["env"] != args.env] + [record]
    path.write_text(json.dumps(records, indent=1))
    lines = [
        "# What `--gif-every` costs",
        "",
        "Written by `python benchmarks/videos.py` (see its docstring): medians "
        "of alternating runs of the same command without and with "
        "`--gif-every`, each a fresh process, compilation cached.",
        "",
        "| command (with GIFs) | runs each | GIFs | wall s without | wall s with "
        "| GIF s (sum of gif: lines) | train steps/s without | with | machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| `{r['command']}` | {r['repeats']} | {r['gifs']} | "
            f"{r['wall_s_off']:.1f} | {r['wall_s_on']:.1f} | {r['gif_s']:.1f} | "
            f"{r['sps_off']:,.0f} | {r['sps_on']:,.0f} | {r['machine']} |"
        )
    (RESULTS / "videos.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
