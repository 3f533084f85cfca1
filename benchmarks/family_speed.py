"""Environment-only speed of the XLand-MiniGrid, NAVIX, Jumanji and Pgx
adapters against each library's own stepping, side by side in one process.

    python benchmarks/family_speed.py
    python benchmarks/family_speed.py --num-envs 256 --repeats 5 --families pgx

For each task: ``num_envs`` envs vmapped, a jitted ``lax.scan`` of ``steps``
steps with uniformly random legal actions (drawn from the action mask where
the env has one), from a fresh reset. "ppo_jax" is the adapter as
``make_env`` builds it (auto-reset in the step, final observation kept,
terminated and truncated apart; a Pgx step is the learner's move and the
random opponent's replies); "library" is the library's own step with its own
auto-reset wrapper (xminigrid's ``GymAutoResetWrapper``, navix's ``step``,
jumanji's ``AutoResetWrapper``, pgx's ``experimental.auto_reset``; one Pgx
step is one move of either player). The two are timed alternately,
``repeats`` times each, and the medians compared; compile time excluded.
Writes ``benchmarks/results/family_speed.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from ppo_jax import PPOConfig  # noqa: E402
from ppo_jax.envs import make_env  # noqa: E402
from ppo_jax.envs.contract import action_mask_of  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TASKS = {
    "xminigrid": ["MiniGrid-Empty-8x8", "MiniGrid-DoorKey-5x5"],
    "navix": ["Navix-Empty-8x8-v0", "Navix-DoorKey-5x5-v0"],
    "jumanji": ["Game2048-v1", "Snake-v1"],
    "pgx": ["tic_tac_toe", "connect_four"],
}


def legal_random(key: jax.Array, mask: jax.Array | None, n: int) -> jax.Array:
    """One uniformly random legal action, an int scalar (vmapped over envs):
    among ``mask``'s legal ones, or any of ``n`` without a mask."""
    if mask is None:
        return jax.random.randint(key, (), 0, n)
    return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf))


def ppo_jax_run(name: str, num_envs: int, steps: int) -> Callable[[jax.Array], Any]:
    """The adapter: ``run(key)`` resets ``num_envs`` envs and steps them."""
    setup = make_env(PPOConfig(env_name=name, policy_std=None))
    env, params, n = setup.env, setup.params, setup.spec.action_dim

    def run(key: jax.Array) -> jax.Array:
        reset_key, key = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(reset_key, num_envs), params
        )

        def body(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            obs, state = carry
            k_act, k_env = jax.random.split(k)
            mask = action_mask_of(obs)
            actions = jax.vmap(
                legal_random, in_axes=(0, 0 if mask is not None else None, None)
            )(jax.random.split(k_act, num_envs), mask, n)
            obs, state, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, num_envs), state, actions, params
            )
            return (obs, state), reward.sum()

        return jax.lax.scan(body, (obs, state), jax.random.split(key, steps))[1].sum()

    return run


def library_run(
    family: str, task: str, num_envs: int, steps: int
) -> Callable[[jax.Array], Any]:
    """The library's own step with its own auto-reset: ``run(key)``."""
    keys = lambda k: jax.random.split(k, num_envs)  # noqa: E731
    # Each family's env, batched reset and step have the family's own types.
    env: Any
    reset: Callable[..., Any]
    step: Callable[..., Any]
    if family == "xminigrid":
        import xminigrid
        from xminigrid.wrappers import GymAutoResetWrapper

        env, params = xminigrid.make(task)
        env = GymAutoResetWrapper(env)
        n = env.num_actions(params)
        reset = jax.vmap(lambda k: env.reset(params, k))
        step = jax.vmap(lambda ts, a: env.step(params, ts, a))

        def init(k: jax.Array) -> Any:
            return reset(keys(k))

        def advance(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            ts = step(carry, jax.random.randint(k, (num_envs,), 0, n))
            return ts, ts.reward.sum()

    elif family == "navix":
        import navix

        env = navix.make(task)
        n = len(env.action_set)
        reset, step = jax.vmap(env.reset), jax.vmap(env.step)

        def init(k: jax.Array) -> Any:
            return reset(keys(k))

        def advance(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            ts = step(carry, jax.random.randint(k, (num_envs,), 0, n))
            return ts, ts.reward.sum()

    elif family == "jumanji":
        import jumanji
        from jumanji.wrappers import AutoResetWrapper

        env = AutoResetWrapper(jumanji.make(task))
        reset, step = jax.vmap(env.reset), jax.vmap(env.step)

        def init(k: jax.Array) -> Any:
            return reset(keys(k))

        def advance(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            state, ts = carry
            mask = ts.observation.action_mask
            a = jax.vmap(legal_random, in_axes=(0, 0, None))(keys(k), mask, 0)
            state, ts = step(state, a)
            return (state, ts), ts.reward.sum()

    elif family == "pgx":
        import pgx
        from pgx.experimental import auto_reset

        env = pgx.make(task)
        init_batch = jax.vmap(env.init)
        step = jax.vmap(auto_reset(env.step, env.init))

        def init(k: jax.Array) -> Any:
            return init_batch(keys(k))

        def advance(carry: Any, k: jax.Array) -> tuple[Any, jax.Array]:
            k_act, k_env = jax.random.split(k)
            a = jax.vmap(legal_random, in_axes=(0, 0, None))(
                keys(k_act), carry.legal_action_mask, 0
            )
            state = step(carry, a, keys(k_env))
            return state, state.rewards.sum()

    else:
        raise ValueError(family)

    def run(key: jax.Array) -> jax.Array:
        init_key, key = jax.random.split(key)
        return jax.lax.scan(advance, init(init_key), jax.random.split(key, steps))[
            1
        ].sum()

    return run


def median_seconds(fns: dict[str, Callable], repeats: int) -> dict[str, float]:
    """Compile each ``fn(key)``; time them alternately; median seconds each."""
    key = jax.random.key(0)
    compiled = {name: jax.jit(fn).lower(key).compile() for name, fn in fns.items()}
    for fn in compiled.values():
        jax.block_until_ready(fn(key))
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for i in range(repeats):
        for name, fn in compiled.items():
            k = jax.random.key(i + 1)
            t = time.perf_counter()
            jax.block_until_ready(fn(k))
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    rows = []
    for family in args.families:
        for task in TASKS[family]:
            seconds = median_seconds(
                {
                    "ppo_jax": ppo_jax_run(
                        f"{family}/{task}", args.num_envs, args.steps
                    ),
                    "library": library_run(family, task, args.num_envs, args.steps),
                },
                args.repeats,
            )
            sps = {k: args.num_envs * args.steps / v for k, v in seconds.items()}
            ratio = sps["ppo_jax"] / sps["library"]
            rows.append((family, task, sps["ppo_jax"], sps["library"], ratio))
            print(
                f"{family}/{task}: ppo_jax {sps['ppo_jax']:,.0f} steps/s, library "
                f"{sps['library']:,.0f} steps/s, ratio {ratio:.2f}",
                flush=True,
            )
    table = [
        "# Environment-only speed of the new families",
        "",
        "Written by `python benchmarks/family_speed.py` (its docstring defines "
        f"the columns): {args.num_envs} envs x {args.steps} steps, random legal "
        f"actions, median of {args.repeats} alternating runs each, compile "
        "excluded. Ratio: ppo_jax's adapter / the library's own auto-resetting "
        "step (a Pgx adapter step is the learner's move and the opponent's "
        "replies, a library step one move).",
        "",
        f"Machine: {machine()}; {date.today()}.",
        "",
        "| family | task | ppo_jax steps/s | library steps/s | ratio |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {f} | {t} | {a:,.0f} | {b:,.0f} | {r:.2f} |" for f, t, a, b, r in rows
    ]
    (RESULTS / "family_speed.md").write_text("\n".join(table) + "\n")
    print(f"wrote {RESULTS / 'family_speed.md'}")


if __name__ == "__main__":
    main()
