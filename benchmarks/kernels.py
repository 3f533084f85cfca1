"""The kernels the update phase is made of, timed alone on this device: what
sets the ceilings of the 256-wide and tutorial configurations, and the two
choices the update makes by shape (issue 13).

    python benchmarks/kernels.py        # about 2 minutes on 2 cores

Each case runs 100 times inside one compiled ``lax.scan`` (as in training),
median of 9 timed calls, compile excluded:

- dots at the shapes of the training configurations, ``[B, in] @ [in, out]``
  (GFLOP/s), against a 1024x1024 dot (the rate ``throughput.py`` calls the
  matmul rate; on 2 cores XLA runs it on both);
- two independent dots of the same shape in one step: twice the time of one
  means XLA ran them one after the other;
- the kernel gradient ``x^T @ dy`` as XLA computes it from autodiff against
  a transposed copy of ``x`` first (what ``ppo_jax.networks.cpu_kernels.matmul``
  does for small minibatches);
- a random permutation of 2,048 samples: ``argsort`` of random keys against
  one sort of packed uint32 keys (``ppo_jax.algo.batch.random_permutation``);
- whole gradient steps of two independent networks (actor and critic: an
  MLP ``in -> h -> h -> 1`` each with the configuration's activation,
  squared error, plain gradient descent), 100 steps in a scan: one
  network, both in one program, and both split over two CPU devices
  (``shard_map``; run in a child process started with
  ``--xla_force_host_platform_device_count=2``), without communication and
  with one scalar ``psum`` per step.
  On a CPU, XLA's runtime hands ready operations to a second thread only
  when more than 8 are ready at once (``ThunkExecutor``'s split threshold),
  so two chains of dots in one program run one after the other; the
  two-device time is what using both cores for actor and critic could give;
- the same step of both networks under what else this CPU and XLA's CPU
  backend offer, each in a child process of its own: the process pinned to
  one core (what the second core adds today), and the other matmul libraries
  XLA can call (oneDNN, XNNPACK, Eigen alone with YNNPACK's fusions off).

Writes benchmarks/results/kernels.md and .json.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, cpu_model, timed  # noqa: E402

from ppo_jax.algo.batch import random_permutation  # noqa: E402

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


# (label, B, in, hidden, activation): minibatch rows, widths and hidden
# activation of the gradient steps (the presets': tanh matched, relu tutorial).
NETWORK_STEPS = [
    ("matched 64-wide", 64, 3, 64, "tanh"),
    ("matched 256-wide", 64, 3, 256, "tanh"),
    ("tutorial", 2200, 3, 64, "relu"),
]
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
TWO_DEVICES_FLAG = "--xla_force_host_platform_device_count=2"
MODE_TWO_DEVICES = "--network-steps-on-two-devices"
MODE_BOTH_NETWORKS = "--both-networks-step"
ONE_CORE_FLAG = "--one-core"


def network_params(key: jax.Array, d_in: int, hidden: int) -> tuple[jax.Array, ...]:
    """``(W1 [in, h], W2 [h, h], w3 [h, 1])``, scaled like a fan-in init."""
    k1, k2, k3 = jax.random.split(key, 3)
    return tuple(
        jax.random.normal(k, shape) / shape[0] ** 0.5
        for k, shape in (
            (k1, (d_in, hidden)),
            (k2, (hidden, hidden)),
            (k3, (hidden, 1)),
        )
    )


def gradient_steps(
    params: tuple[jax.Array, ...],
    x: jax.Array,
    y: jax.Array,
    activation: str,
    norm_over: str | None = None,
) -> tuple[jax.Array, ...]:
    """``STEPS`` gradient-descent steps of one network on ``x [B, in]``,
    ``y [B, 1]`` in a scan: each step's dots wait for the last update.
    ``activation``: a key of ``ACTIVATIONS``.

    ``norm_over``: a ``shard_map`` axis name; each step then clips by the
    gradient norm summed over it (``psum``), as a joint optimizer's
    global-norm clipping would need with one network per device."""

    act = ACTIVATIONS[activation]

    def loss(params: tuple[jax.Array, ...]) -> jax.Array:
        w1, w2, w3 = params
        return jnp.mean(jnp.square(act(act(x @ w1) @ w2) @ w3 - y))

    def step(params: tuple[jax.Array, ...], _: None) -> tuple[tuple, None]:
        grads = jax.grad(loss)(params)
        scale = jnp.float32(1e-3)
        if norm_over is not None:
            norm = jnp.sqrt(jax.lax.psum(sum(jnp.sum(g * g) for g in grads), norm_over))
            scale = scale * jnp.minimum(1.0, 0.5 / norm)
        return tuple(p - scale * g for p, g in zip(params, grads, strict=True)), None

    return jax.lax.scan(step, params, None, length=STEPS)[0]


def network_step_inputs(rows: int, d_in: int, hidden: int) -> tuple:
    """Two networks' parameters and data, each stacked on a leading ``[2]``."""
    keys = jax.random.split(jax.random.key(2), 4)
    params = jax.vmap(lambda k: network_params(k, d_in, hidden))(keys[:2])
    x = jax.random.normal(keys[2], (2, rows, d_in))
    y = jax.random.normal(keys[3], (2, rows, 1))
    return params, x, y


def one_network(params: tuple, x: jax.Array, y: jax.Array, activation: str) -> tuple:
    """Gradient steps of the first of two stacked networks."""
    return gradient_steps(tuple(a[0] for a in params), x[0], y[0], activation)


def two_networks(
    params: tuple, x: jax.Array, y: jax.Array, activation: str
) -> tuple[tuple, tuple]:
    """Gradient steps of both stacked networks, in one program."""
    second = gradient_steps(tuple(a[1] for a in params), x[1], y[1], activation)
    return one_network(params, x, y, activation), second


def local_network(
    params: tuple, x: jax.Array, y: jax.Array, activation: str, norm_over: str | None
) -> tuple:
    """Inside ``shard_map``: this device's network (a ``[1]`` slice of the
    stacked two), stepped and stacked back."""
    mine = tuple(a[0] for a in params)
    return tuple(
        a[None] for a in gradient_steps(mine, x[0], y[0], activation, norm_over)
    )


def step_us(steps: Callable[..., tuple], *inputs: object) -> float:
    """Microseconds per step of ``steps(*inputs)`` (``STEPS`` gradient steps
    in one scan), median of 9 calls after one warm-up."""
    return timed(steps, *inputs, repeats=9, warmup=True)[1] / STEPS * 1e6


def time_network_steps(devices: int) -> dict[str, dict[str, float]]:
    """Microseconds per gradient step for every ``NETWORK_STEPS`` shape: one
    network, two in one program and (``devices == 2``) two on two devices."""

    results: dict[str, dict[str, float]] = {}
    for label, rows, d_in, hidden, activation in NETWORK_STEPS:
        first = functools.partial(one_network, activation=activation)
        both = functools.partial(two_networks, activation=activation)
        inputs = network_step_inputs(rows, d_in, hidden)
        row = {
            "one_us": step_us(first, *inputs),
            "both_one_program_us": step_us(both, *inputs),
        }
        if devices == 2:
            from jax.sharding import Mesh, NamedSharding
            from jax.sharding import PartitionSpec as P

            mesh = Mesh(jax.devices()[:2], ("net",))
            placed = jax.device_put(inputs, NamedSharding(mesh, P("net")))
            for name, norm_over in (("", None), ("_norm_psum", "net")):
                split = jax.shard_map(
                    functools.partial(
                        local_network, activation=activation, norm_over=norm_over
                    ),
                    mesh=mesh,
                    in_specs=P("net"),
                    out_specs=P("net"),
                )
                row[f"both_two_devices{name}_us"] = step_us(split, *placed)
        results[label] = row
    return results


def time_both_networks_step() -> dict[str, float]:
    """Microseconds per gradient step of both networks in one program, for
    every ``NETWORK_STEPS`` shape (label -> us), under this process's
    settings."""
    results = {}
    for label, rows, d_in, hidden, activation in NETWORK_STEPS:
        both = functools.partial(two_networks, activation=activation)
        inputs = network_step_inputs(rows, d_in, hidden)
        results[label] = step_us(both, *inputs)
    return results


def run_child(mode: str, xla_flags: str = "", one_core: bool = False) -> dict:
    """This script with ``mode`` in a child process, whose JSON answer (its
    last line) is returned: XLA flags and the CPUs a process may use are
    fixed when jax starts. ``one_core``: the child pins itself to one CPU
    (``ONE_CORE_FLAG``, Linux) before jax starts its threads."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}".strip()
    env = {**os.environ, "XLA_FLAGS": flags}
    child = subprocess.run(
        [sys.executable, __file__, mode, *([ONE_CORE_FLAG] if one_core else [])],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if child.returncode != 0:
        sys.exit(f"{mode} with XLA_FLAGS={flags!r} failed:\n{child.stderr[-2000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


# (label, XLA flags, one core): what else this CPU and XLA's CPU backend offer
# for the same program; each is timed in a child process of its own.
CPU_SETTINGS = [
    ("default (2 cores)", "", False),
    ("one core", "", True),
    ("oneDNN", "--xla_cpu_use_onednn=true", False),
    ("XNNPACK dots", "--xla_cpu_experimental_xnn_fusion_type=dot", False),
    ("no YNNPACK fusions", "--xla_cpu_experimental_ynn_fusion_type=", False),
]
if not hasattr(os, "sched_setaffinity"):  # pinning is Linux-only
    CPU_SETTINGS = [s for s in CPU_SETTINGS if not s[2]]
SETTING_ROUNDS = 3


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

    network_steps = run_child(MODE_TWO_DEVICES, TWO_DEVICES_FLAG)
    out["network_steps"] = network_steps
    step_lines = []
    for label, rows, d_in, hidden, activation in NETWORK_STEPS:
        t = network_steps[label]
        print(
            f"{label} gradient step: one network {t['one_us']:.1f} us, both in one "
            f"program {t['both_one_program_us']:.1f} us, on two devices "
            f"{t['both_two_devices_us']:.1f} us (with a norm psum per step "
            f"{t['both_two_devices_norm_psum_us']:.1f} us)",
            flush=True,
        )
        step_lines.append(
            f"| {label} | {rows} x ({d_in} -> {hidden} -> {hidden} -> 1), "
            f"{activation} | "
            f"{t['one_us']:.1f} | {t['both_one_program_us']:.1f} | "
            f"{t['both_one_program_us'] / t['one_us']:.2f} | "
            f"{t['both_two_devices_us']:.1f} | "
            f"{t['both_two_devices_us'] / t['one_us']:.2f} | "
            f"{t['both_two_devices_norm_psum_us']:.1f} |"
        )

    # Rounds alternate the settings so that a slow spell of this shared
    # machine does not land on one setting; each cell is the median over
    # the rounds.
    rounds = [
        {
            name: run_child(MODE_BOTH_NETWORKS, flags, one_core)
            for name, flags, one_core in CPU_SETTINGS
        }
        for _ in range(SETTING_ROUNDS)
    ]
    settings = {
        name: {
            label: statistics.median(r[name][label] for r in rounds)
            for label, *_ in NETWORK_STEPS
        }
        for name, *_ in CPU_SETTINGS
    }
    out["both_networks_step_by_setting"] = settings
    default = settings[CPU_SETTINGS[0][0]]
    setting_lines = []
    for label, *_ in NETWORK_STEPS:
        times = [settings[name][label] for name, *_ in CPU_SETTINGS]
        cells = " | ".join(f"{t:.1f} ({t / default[label]:.2f})" for t in times)
        setting_lines.append(f"| {label} | {cells} |")
        print(f"{label}, both networks' step by setting: {cells}", flush=True)
    flag_notes = "; ".join(
        f"{name}: `{flags}`" for name, flags, _ in CPU_SETTINGS if flags
    )

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
        "\n## Two networks' gradient steps: one program or two devices\n\n"
        f"Microseconds per step of {STEPS} gradient-descent steps in a scan "
        "(MLPs with the configuration's activation; squared error), median of "
        "9 calls. *ratio*: over one "
        "network (2.0: the two ran one after the other; 1.0: side by side). "
        "Two devices: `shard_map` over two CPU devices, one network each, no "
        "communication; the last column adds one scalar `psum` per step (the "
        "summed gradient norm that a joint optimizer's global-norm clipping "
        "needs).\n\n"
        "| shapes | rows x layers | one network us | both, one program us | "
        "ratio | both, two devices us | ratio | two devices + norm psum us |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(step_lines) + "\n"
        "\n## Both networks' gradient step under other CPU settings\n\n"
        "The same step (both networks, one program), microseconds, each "
        f"setting in a fresh process, median of {SETTING_ROUNDS} alternating "
        "rounds; in brackets the time over the default's "
        "(below 1 is faster). One core: the process may run on one CPU only "
        f"(`sched_setaffinity`). XLA flags: {flag_notes}.\n\n"
        "| shapes | " + " | ".join(name for name, *_ in CPU_SETTINGS) + " |\n"
        "|---|" + "---|" * len(CPU_SETTINGS) + "\n" + "\n".join(setting_lines) + "\n"
    )


if __name__ == "__main__":
    if sys.argv[2:] == [ONE_CORE_FLAG]:
        # Before jax's first use starts its thread pools, which inherit it.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        del sys.argv[2]
    if sys.argv[1:] == [MODE_TWO_DEVICES]:
        print(json.dumps(time_network_steps(len(jax.devices()))))
    elif sys.argv[1:] == [MODE_BOTH_NETWORKS]:
        print(json.dumps(time_both_networks_step()))
    else:
        main()
