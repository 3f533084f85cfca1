"""ppo_jax on one GPU: training throughput, compile time and memory.

    bash benchmarks/gpu.sh            # the wrapper: installs, checks the GPU, runs this
    python benchmarks/gpu.py --budget 360 --out benchmarks/results

All on gymnax Pendulum-v1, float32 arrays (XLA's default matmul precision: TF32
in the matrix units of recent NVIDIA GPUs):

- the ``tutorial`` preset (N envs x 200 steps, 5 full-batch epochs) and the
  ``matched`` configuration of ``throughput.py`` (N envs x 32 steps, 4 epochs x
  32 minibatches, 64-64 tanh, GAE) at N = 1k, 4k, 16k and 64k environments;
- vmapped seeds: 1 to 256 independent runs in one program (tutorial at 11
  envs per seed, matched at 64 envs per seed);
- for every row: compile seconds of its chunk, environment steps per second
  (all seeds counted, compile excluded, median of --repeats timed calls after
  one warm-up, ``block_until_ready`` before the clock stops), the compiled
  program's memory (arguments + outputs + temporaries, from XLA's memory
  analysis) and the device's peak bytes in use so far (rows run smallest first);
- the cold compile of the default run (``PPOConfig()``, 1M steps, one scan) and
  the float32 matmul rate of the device (8192 x 8192).

Each row is guarded by the --budget (seconds): rows that would start after it
are listed as skipped, so the script ends on time on a slower device. The
table and a JSON file are rewritten after every row, so an interrupted run
keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402
from throughput import MATCHED, flops_per_step  # noqa: E402

from ppo_jax import PPOConfig, build_pipeline, make_train  # noqa: E402
from ppo_jax.algo.ppo import make_chunk  # noqa: E402
from ppo_jax.envs import preset_config  # noqa: E402

PRESETS = {"tutorial": PPOConfig(), "matched": MATCHED}
NUM_ENVS = (1024, 4096, 16384, 65536)
SEEDS = {"tutorial": (1, 4, 16, 64, 256), "matched": (1, 16, 256)}
STEPS_PER_CALL = 2_000_000  # chunk length aims at about this many steps per call
NAME = "gpu.md"  # the table's file name (gpu_ONLY.md with --only)


@dataclass
class Row:
    """One measurement: ``seeds`` runs of ``preset`` with ``num_envs`` each."""

    preset: str
    num_envs: int
    rollout_length: int
    seeds: int
    chunk_iterations: int = 0
    compile_s: float = math.nan
    sps: float = math.nan
    program_bytes: float = math.nan
    peak_bytes: float = math.nan
    note: str = ""


PLAYGROUND_TASK = "CartpoleBalance"
PLAYGROUND_ENVS = (128, 1024, 4096, 16384)


def playground_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mujoco_playground") is not None


def playground_config() -> PPOConfig:
    """The tuned DM Control preset of the Playground rows, physics in JAX
    (MJX): Warp's wheel is not always there (ppo_jax's env_backend default on
    a GPU is warp)."""
    return preset_config(
        "tuned", env_name=f"playground/{PLAYGROUND_TASK}", env_backend="jax"
    )


def preset_of(row: Row) -> PPOConfig:
    """The config a row measures (before its num_envs and rollout_length)."""
    if row.preset == "playground":
        return playground_config()
    return PRESETS[row.preset]


def plan(only: str | None = None) -> list[Row]:
    """Every row, in the order they run (smallest first within a section);
    ``only``: the rows of one preset (tutorial, matched or playground)."""
    rows = [
        Row(name, n, config.rollout_length, 1)
        for name, config in PRESETS.items()
        for n in NUM_ENVS
    ]
    rows += [
        Row(name, config.num_envs, config.rollout_length, s)
        for name, config in PRESETS.items()
        for s in SEEDS[name]
    ]
    if playground_available():
        rollout = playground_config().rollout_length
        rows += [Row("playground", n, rollout, 1) for n in PLAYGROUND_ENVS]
    return [r for r in rows if only is None or r.preset == only]


def peak_bytes() -> float:
    stats = jax.devices()[0].memory_stats() or {}
    return float(stats.get("peak_bytes_in_use", math.nan))


def measure(row: Row, repeats: int, steps_per_call: int) -> None:
    """Fill ``row`` in place: compile, warm up, time ``repeats`` calls."""
    config = preset_of(row).replace(
        num_envs=row.num_envs, rollout_length=row.rollout_length
    )
    steps_per_iteration = row.seeds * config.batch_size
    row.chunk_iterations = max(
        1, min(50, math.ceil(steps_per_call / steps_per_iteration))
    )
    pipeline = build_pipeline(config)
    hp = config.hyperparams()
    keys = jax.random.split(jax.random.key(0), row.seeds)
    init = jax.jit(jax.vmap(pipeline.init, in_axes=(0, None)))
    chunk = jax.vmap(make_chunk(pipeline, row.chunk_iterations), in_axes=(0, None))
    runner = jax.block_until_ready(init(keys, hp))
    t = time.perf_counter()
    compiled = jax.jit(chunk, donate_argnums=0).lower(runner, hp).compile()
    row.compile_s = time.perf_counter() - t
    memory = compiled.memory_analysis()
    if memory is not None:
        row.program_bytes = float(
            memory.argument_size_in_bytes
            + memory.output_size_in_bytes
            + memory.temp_size_in_bytes
        )
    runner, _ = jax.block_until_ready(compiled(runner, hp))  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        runner, _ = jax.block_until_ready(compiled(runner, hp))
        times.append(time.perf_counter() - t)
    row.sps = steps_per_iteration * row.chunk_iterations / statistics.median(times)
    row.peak_bytes = peak_bytes()


def cold_compile_s() -> float:
    """Lower and compile the default run (``PPOConfig()``) as one program."""
    t = time.perf_counter()
    jax.jit(make_train(PPOConfig())).lower(jax.random.key(0)).compile()
    return time.perf_counter() - t


def matmul_tflops(repeats: int) -> float:
    n = 8192
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x).lower(a).compile()
    jax.block_until_ready(f(a))
    times = []
    for _ in range(max(repeats, 5)):
        t = time.perf_counter()
        jax.block_until_ready(f(a))
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e12


def write(out_dir: Path, info: dict, rows: list[Row]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / NAME.replace(".md", ".json")).write_text(
        json.dumps({**info, "rows": [r.__dict__ for r in rows]}, indent=2) + "\n"
    )

    def num(x: float, fmt: str) -> str:
        return "—" if math.isnan(x) else format(x, fmt)

    gib = 2.0**30
    lines = [
        "# ppo_jax on a GPU",
        "",
        f"Written by `bash benchmarks/gpu.sh` on {info['machine']}, {info['date']}. "
        "Tutorial and matched rows: gymnax Pendulum-v1. Float32 arrays with XLA's "
        "default matmul precision "
        "(on NVIDIA GPUs since Ampere: TF32 in the matrix units). Steps/s "
        "count every seed's environment steps, compile excluded, median of "
        f"{info['repeats']} timed calls of a compiled chunk after one warm-up. "
        "Program memory: XLA's memory analysis of that chunk (arguments, outputs, "
        "temporaries); peak: the device's peak bytes in use so far in the process.",
        "",
        "- float32 matmul, 8192 x 8192, default precision: "
        f"{num(info.get('matmul_tflops', math.nan), '.1f')} TFLOP/s",
        f"- cold compile of the default run (`PPOConfig()`, 1M steps, one scan): "
        f"{num(info.get('default_compile_s', math.nan), '.1f')} s",
        "",
        "| preset | envs x steps | seeds | iterations per call | compile s | steps/s "
        "| GFLOP/s (network matmuls) | program GiB | peak GiB | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        obs_dim = 5 if r.preset == "playground" else 3  # CartpoleBalance: 5
        flops = flops_per_step(preset_of(r), obs_dim=obs_dim)
        lines.append(
            f"| {r.preset} | {r.num_envs} x {r.rollout_length} | {r.seeds} | "
            f"{r.chunk_iterations or '—'} | {num(r.compile_s, '.1f')} | "
            f"{num(r.sps, ',.0f')} | {num(r.sps * flops / 1e9, ',.0f')} | "
            f"{num(r.program_bytes / gib, '.2f')} | {num(r.peak_bytes / gib, '.2f')} "
            f"| {r.note} |"
        )
    if not any(r.preset == "playground" for r in rows):
        lines += [
            "",
            "No MuJoCo Playground rows: the playground extra was not installed "
            "where this ran (`bash benchmarks/gpu.sh 200 --only playground` "
            "measures them alone, into gpu_playground.md).",
            "",
        ]
    else:
        pg = playground_config()
        lines += [
            "",
            f"playground: {PLAYGROUND_TASK}, `tuned` preset ({pg.update_epochs} "
            f"epochs x {pg.num_minibatches} minibatches, "
            f"{'-'.join(map(str, pg.hidden_sizes))} {pg.activation}) at the "
            "envs x steps shown, physics in JAX (MJX).",
            "",
        ]
    (out_dir / NAME).write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=360.0, help="seconds for all rows")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, to check the script on a CPU before a GPU run",
    )
    p.add_argument(
        "--only",
        choices=["tutorial", "matched", "playground"],
        help="the rows of one configuration only, written to gpu_ONLY.md/.json",
    )
    p.add_argument(
        "--table-from",
        type=Path,
        metavar="JSON",
        help="rewrite gpu.md from a gpu.json of an earlier run, measuring nothing",
    )
    args = p.parse_args()
    global NAME
    NAME = "gpu.md" if args.only is None else f"gpu_{args.only}.md"
    if args.table_from is not None:
        saved = json.loads(args.table_from.read_text())
        rows = [Row(**r) for r in saved.pop("rows")]
        write(args.out, saved, rows)
        return
    start = time.perf_counter()
    info: dict = {
        "machine": machine(),
        "date": str(date.today()),
        "repeats": args.repeats,
    }
    print(info["machine"], flush=True)
    rows, steps_per_call = plan(args.only), STEPS_PER_CALL
    if args.smoke:
        rows = [Row("tutorial", 4, 200, 1), Row("matched", 8, 32, 1)]
        rows.append(Row("matched", 64, 32, 4))
        rows.append(Row("playground", 8, 32, 1))
        rows = [r for r in rows if args.only is None or r.preset == args.only]
        steps_per_call = 2000
    if args.only is None:
        info["default_compile_s"] = cold_compile_s()
        print(
            f"cold compile of the default run: {info['default_compile_s']:.1f} s",
            flush=True,
        )
    info["matmul_tflops"] = matmul_tflops(args.repeats)
    print(f"float32 matmul: {info['matmul_tflops']:.1f} TFLOP/s", flush=True)
    write(args.out, info, rows)
    for row in rows:
        if time.perf_counter() - start > args.budget:
            row.note = "skipped: over the time budget"
            continue
        try:
            measure(row, args.repeats, steps_per_call)
        except Exception as e:  # an OOM on one row must not lose the others
            row.note = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
            traceback.print_exc()
        print(
            f"{row.preset} {row.num_envs}x{row.rollout_length} seeds={row.seeds}: "
            f"{row.sps:,.0f} steps/s, compile {row.compile_s:.1f} s, "
            f"peak {row.peak_bytes / 2**30:.2f} GiB {row.note}",
            flush=True,
        )
        write(args.out, info, rows)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)
    print((args.out / NAME).read_text())


if __name__ == "__main__":
    main()
