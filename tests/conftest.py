"""Shared fixtures: tiny configs compiled once per session, and one
compilation cache for the whole session."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

# One persistent JAX compilation cache for this test session, shared by the
# pytest process and every command-line subprocess it starts (they inherit
# these variables; the CLI reads PPO_JAX_CACHE_DIR, jax JAX_*): the suite
# compiles the same tiny programs again and again, many in fresh processes
# (the CLI-heavy test files ran 12% faster with it: 110 s against 125 s, two
# runs each, 2-core Xeon). jax caches programs that took 1 s or more to
# compile (caching all of them measured the same). A new, empty directory
# per session, removed at exit: nothing carries over from an earlier run, so
# the suite takes on any machine what it takes on a fresh clone.
# pytest-xdist's workers inherit the directory from the process that made it.
_SESSION_CACHE = os.environ.get("PPO_JAX_TEST_SESSION_CACHE", "")
if not _SESSION_CACHE:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="ppo_jax_test_cache_")
    os.environ["PPO_JAX_TEST_SESSION_CACHE"] = _SESSION_CACHE
    atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)
os.environ["PPO_JAX_CACHE_DIR"] = _SESSION_CACHE
os.environ["JAX_COMPILATION_CACHE_DIR"] = _SESSION_CACHE

# XLA's quickest CPU code generation (LLVM -O0, no expensive passes) for every
# program the suite compiles itself and for its subprocesses: most of the
# suite's time is compiling tiny programs, not running them (3 test files
# with many in-process compiles: 78.6 s against 101.9 s, one process, AMD
# EPYC). The commands take these over their own per-program options
# (ppo_jax.run.experiment.compiler_options: CLI-heavy files 143 s against
# 160 s); results differ only in float rounding.
_QUICK_COMPILE = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)
_FLAGS = os.environ.get("XLA_FLAGS", "")
if _QUICK_COMPILE not in _FLAGS:
    os.environ["XLA_FLAGS"] = f"{_QUICK_COMPILE} {_FLAGS}".strip()

import jax  # noqa: E402 (after the cache variables, which jax reads on import)

# MuJoCo picks its OpenGL platform once, when first imported (test modules
# import Playground at collection): headless EGL, as ppo_jax's families set it.
os.environ.setdefault("MUJOCO_GL", "egl")

from ppo_jax import EnvSpec, PPOConfig, make_train  # noqa: E402

# For the learning runs, whose time goes to running rather than compiling:
# the commands' own chunk level (LLVM -O1) over the suite's -O0 (test_learning:
# 7.8 s against 12.3 s, compile included, AMD EPYC).
RUN_FAST = {"xla_backend_optimization_level": 1}


def run_fast(fn, *args):
    """``jax.jit(fn)(*args)``, compiled for a long run (:data:`RUN_FAST`)."""
    return jax.jit(fn).lower(*args).compile(RUN_FAST)(*args)


def make_spec(obs_shape=(3,), action_dim=2, discrete=False, obs_dtype=np.float32):
    """An EnvSpec without an env: for testing networks and policies alone."""
    bound = None if discrete else np.full((action_dim,), 2.0, np.float32)
    return EnvSpec(
        obs_shape, np.dtype(obs_dtype), discrete, action_dim,
        None if discrete else -bound, bound, None,
    )  # fmt: skip


# 4 envs x 32 steps, episodes of 50 steps: the first iteration ends no episode
# (metrics must be NaN), later ones end episodes mid-batch and cut others.
TINY = PPOConfig(
    num_envs=4,
    rollout_length=32,
    total_timesteps=4 * 32 * 3,
    max_episode_steps=50,
    update_epochs=2,
    num_minibatches=2,
    hidden_sizes=(16, 16),
    save_freq=2,
)


@pytest.fixture(scope="session")
def tiny_config():
    return TINY


@pytest.fixture(scope="session")
def tiny_train():
    """``jax.jit(train)(key, hparams)`` of TINY: one compile shared by the tests.

    Hyperparameters are always passed explicitly, so every test that changes
    only traceable values (lr, gamma, ...) reuses this compiled function.
    """
    return jax.jit(make_train(TINY))


@pytest.fixture(scope="session")
def tiny_run(tiny_train):
    """Output of the tiny run with key 0: ``(runner, metrics)``."""
    return jax.block_until_ready(tiny_train(jax.random.key(0), TINY.hyperparams()))


# 4 envs x 50 steps, 50-step episodes: 5 iterations in chunks of 2.
TINY_ARGS = [
    "--num-envs", "4", "--rollout-length", "50", "--max-episode-steps", "50",
    "--update-epochs", "2", "--hidden-sizes", "16,16", "--save-freq", "2",
]  # fmt: skip
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_module(module, *args, timeout=300, env=ENV):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def run_main(module, *args):
    """``python -m MODULE ARGS`` run in this process: ``MODULE.main(argv)`` with
    its stdout and stderr captured, as a ``CompletedProcess``. For tests of
    what a command does rather than of the process around it (signals, exit
    at import, ``-m`` itself): a subprocess costs each test 2-3 s of CPU for
    importing jax, flax and distrax again, and tracing what this process has
    already traced. ``--env user_components:...`` imports, as tests/ is on
    this process's path."""
    import contextlib
    import importlib
    import io

    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse's own exits (--help, bad flags)
            code = stop.code
    return subprocess.CompletedProcess(
        [module, *args], code or 0, out.getvalue(), err.getvalue()
    )


def run_cli(*args):
    """``python -m ppo_jax.train ARGS`` able to import user_components, run in
    this process (``run_main``)."""
    return run_main("ppo_jax.train", *args)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    proc = run_main(
        "ppo_jax.train",
        *TINY_ARGS,
        "--total-timesteps",
        "1000",
        "--run-dir",
        str(run_dir),
    )
    assert proc.returncode == 0, proc.stderr
    return run_dir, proc.stdout


def refused_before_building(monkeypatch, library, family, task, backend, match):
    """``family.make(task)`` (an env family's module of ppo_jax.envs) refuses
    ``task`` with ``backend`` in one sentence matching ``match``, without
    calling ``library.make`` (the family's own library)."""
    from ppo_jax.config.schema import ConfigError

    def never(*args, **kwargs):
        raise AssertionError("a refused task must not be built")

    monkeypatch.setattr(library, "make", never)
    prefix = family.__name__.rsplit(".", 1)[-1]
    with pytest.raises(ConfigError, match=match) as error:
        family.make(task, f"{prefix}/{task}", backend)
    assert str(error.value).count(". ") == 0 and str(error.value).endswith(".")
