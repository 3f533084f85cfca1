"""The kernels the update phase is made of, timed alone on this device: what
sets the ceilings of the 256-wide and tutorial configurations, and the two
choices the update makes by shape (issue 13).

    python benchmarks/kernels.py        # about 1 minute on 2 cores

Each case runs 100 times inside one compiled ``lax.scan`` (as in training),
median of 9 timed calls, compile excluded:

- dots at the shapes of the training configurations, ``[B, in] @ [in, out]``
  (GFLOP/s), against a 1024x1024 dot (the rate ``throughput.py`` calls the
  matmul rate; on 2 cores XLA runs it on both);
- two independent dots of the same shape in one step: twice the time of one
  means XLA ran them one after the other;
- the kernel gradient ``x^T @ dy`` as XLA computes it from autodiff against
  a transposed copy of ``x`` first (what ``ppo_jax.networks.mlp.matmul``
  does for small minibatches);
- a random permutation of 2,048 samples: ``argsort`` of random keys against
  one sort of packed uint32 keys (``ppo_jax.update.random_permutation``).

Writes benchmarks/results/kernels.md and .json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, cpu_model, timed  # noqa: E402

from ppo_jax.update import random_permutation  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
STEPS = 100
# (label, B, in, out): the matched configurations' minibatch (64 rows), the
# tutorial's full batch (2200 rows), and the 1024x1024 reference.
DOTS = [
    ("matched 64-wide hidden layer", 64, 64, 64),
    ("matched 256-wide hidden layer", 64, 256, 256),
    ("tutorial hidden layer", 2200, 64, 64),
    ("1024 x 1024 (reference)", 1024, 1024, 1024),
]


def per_step_us(
    step: Callable[..., jax.Array], *inputs: jax.Array, steps: int = STEPS
) -> float:
    """Microseconds of one ``step(*inputs)`` inside a scan of ``steps`` steps.

    Every input has a leading ``[steps]`` axis, one slice per step; the
    outputs are summed into the carry so that nothing is dead code.
    """

    def run(*args: jax.Array) -> jax.Array:
        def body(total: jax.Array, sliced: tuple) -> tuple[jax.Array, None]:
            return total + step(*sliced).sum(), None

        return jax.lax.scan(body, jnp.float32(0), args)[0]

    _, run_s = timed(run, *inputs, repeats=9, warmup=True)
    return run_s / steps * 1e6


def main() -> None:
    normal = jax.random.normal
    keys = iter(jax.random.split(jax.random.key(0), 16))
    out: dict = {"machine": cpu_model(), "jax": jax.__version__, "dots": []}
    lines = []
    for label, rows, d_in, d_out in DOTS:
        steps = STEPS if rows < 1024 else 3
        x = normal(next(keys), (steps, rows, d_in))
        dy = normal(next(keys), (steps, rows, d_out))
        w = normal(next(keys), (steps, 2, d_in, d_out))
        one = per_step_us(lambda x, w: x @ w[0], x, w, steps=steps)
        two = per_step_us(
            lambda x, w: (x @ w[0]).sum() + (x @ w[1]).sum(), x, w, steps=steps
        )
        autodiff = per_step_us(lambda x, dy: x.T @ dy, x, dy, steps=steps)
        copied = per_step_us(
            lambda x, dy: jax.lax.optimization_barrier(x.T) @ dy, x, dy, steps=steps
        )
        gflops = 2 * rows * d_in * d_out / one / 1e3
        row = dict(label=label, rows=rows, d_in=d_in, d_out=d_out, one_us=one,
                   two_us=two, gflops=gflops, grad_autodiff_us=autodiff,
                   grad_copied_us=copied)  # fmt: skip
        out["dots"].append(row)
        print(
            f"{label}: {one:.1f} us ({gflops:.0f} GFLOP/s), two {two:.1f} us, "
            f"x^T dy {autodiff:.1f} us vs copied {copied:.1f} us",
            flush=True,
        )
        lines.append(
            f"| {label} | {rows}x{d_in} @ {d_in}x{d_out} | {one:.1f} | "
            f"{gflops:.0f} | {two / one:.2f} | {autodiff:.1f} | {copied:.1f} |"
        )
    n = 2048
    bits = jax.random.split(jax.random.key(1), STEPS)
    argsort = per_step_us(
        lambda k: jnp.argsort(jax.random.bits(k, (n,), jnp.uint32)), bits
    )
    packed = per_step_us(lambda k: random_permutation(k, n), bits)
    out["permutation_2048"] = {"argsort_us": argsort, "packed_sort_us": packed}
    print(f"permutation of {n}: argsort {argsort:.0f} us, packed {packed:.0f} us")

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kernels.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "kernels.md").write_text(
        "# Kernels of the update phase\n\n"
        f"Written by `python benchmarks/kernels.py` on {out['machine']}, jax "
        f"{jax.__version__}, {date.today()}. Microseconds per step of a "
        f"{STEPS}-step `lax.scan` (the 1024 reference: 3 steps), median of 9 "
        "calls. *two/one*: time of two independent dots in one step over one "
        "(2.0: run one after the other). *x^T dy*: the kernel gradient as "
        "autodiff writes it, against a transposed copy of x first.\n\n"
        "| dot | shape | us | GFLOP/s | two/one | x^T dy (autodiff) us | "
        "x^T dy (copied) us |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(lines)
        + f"\n\nRandom permutation of {n} samples: argsort of random keys "
        f"{argsort:.0f} us, one sort of packed uint32 keys {packed:.0f} us.\n"
    )


if __name__ == "__main__":
    main()
