"""The whole pipeline: shapes, dtypes, metrics, determinism, purity (jit/vmap)."""

import jax
import jax.numpy as jnp
import numpy as np

from ppo_jax import build_pipeline, make_chunk


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def data_leaves(runner):
    return jax.tree.leaves(runner.replace(key=jax.random.key_data(runner.key)))


def test_metrics_shapes_dtypes_and_values(tiny_config, tiny_run):
    runner, m = tiny_run
    n = tiny_config.num_iterations
    assert n == 3
    for name in ("mean_return", "mean_length", "actor_loss", "critic_loss"):
        assert getattr(m, name).shape == (n,)
        assert getattr(m, name).dtype == jnp.float32
    for name in ("iteration", "timesteps", "num_episodes"):
        assert getattr(m, name).dtype == jnp.int32
    np.testing.assert_array_equal(m.iteration, [1, 2, 3])
    np.testing.assert_array_equal(m.timesteps, [128, 256, 384])
    # Episodes last 50 steps, iterations 32: only iteration 2 (steps 33..64)
    # ends episodes, one per env. The others report NaN, not 0.
    np.testing.assert_array_equal(m.num_episodes, [0, 4, 0])
    assert np.isnan(m.mean_return[0]) and np.isnan(m.mean_return[2])
    assert m.mean_length[1] == 50
    # Pendulum rewards are in [-16.3, 0]: a 50-step return lies in [-815, 0].
    assert -815 < m.mean_return[1] < 0
    assert np.all(np.isfinite(m.actor_loss)) and np.all(m.critic_loss > 0)
    assert int(runner.iteration) == 3


def test_everything_is_float32_or_int(tiny_run):
    runner, metrics = tiny_run
    for leaf in data_leaves(runner) + jax.tree.leaves(metrics):
        assert leaf.dtype in (jnp.float32, jnp.int32, jnp.uint32, jnp.bool_), leaf.dtype


def test_same_key_same_result_other_key_differs(tiny_config, tiny_train, tiny_run):
    hp = tiny_config.hyperparams()
    again = tiny_train(jax.random.key(0), hp)
    assert_trees_equal(data_leaves(again[0]), data_leaves(tiny_run[0]))
    assert_trees_equal(again[1], tiny_run[1])
    other = tiny_train(jax.random.key(1), hp)
    assert not np.allclose(other[1].actor_loss, tiny_run[1].actor_loss)


def test_vmap_over_seeds_and_learning_rates_equals_separate_runs(
    tiny_config, tiny_train
):
    keys = jax.random.split(jax.random.key(42), 3)
    lrs = jnp.array([1e-4, 3e-4, 1e-3], jnp.float32)
    base = tiny_config.hyperparams()
    hps = jax.vmap(lambda lr: base.replace(lr=lr))(lrs)
    batched_runner, batched = jax.jit(jax.vmap(tiny_train))(keys, hps)
    assert batched.actor_loss.shape == (3, tiny_config.num_iterations)
    for i in range(3):
        hp = tiny_config.replace(lr=float(lrs[i])).hyperparams()
        runner, metrics = tiny_train(keys[i], hp)
        assert_trees_close(metrics, jax.tree.map(lambda x, i=i: x[i], batched))
        assert_trees_close(
            runner.agent.actor_params,
            jax.tree.map(lambda x, i=i: x[i], batched_runner.agent.actor_params),
        )
    # Different learning rates really gave different agents.
    p = jax.tree.leaves(batched_runner.agent.actor_params)[0]
    assert not np.allclose(p[0], p[2])


def test_chunked_run_equals_whole_run_and_does_not_retrace(tiny_config, tiny_run):
    pipeline = build_pipeline(tiny_config)
    hp = tiny_config.hyperparams()
    traces = []
    chunk = make_chunk(pipeline, chunk_iterations=2)

    def counted(runner, hp):
        traces.append(1)
        return chunk(runner, hp)

    run_chunk = jax.jit(counted)
    runner = jax.jit(pipeline.init)(jax.random.key(0), hp)
    rows = []
    for _ in range(2):  # 4 iterations of a 3-iteration run: the last is masked
        runner, metrics = run_chunk(runner, hp)
        rows.append(metrics)
    assert len(traces) == 1  # the carry's dtypes and shapes are stable
    metrics = jax.tree.map(lambda *x: np.concatenate(x)[:3], *rows)
    want_runner, want_metrics = tiny_run
    assert int(runner.iteration) == 3
    assert_trees_close(metrics, want_metrics, rtol=1e-6, atol=1e-6)
    assert_trees_close(data_leaves(runner), data_leaves(want_runner), 1e-6, 1e-6)


def scan_body_primitives(jaxpr) -> set[str]:
    """The primitives at the top level of the first ``scan``'s body."""
    scan = next(e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan")
    return {e.primitive.name for e in scan.params["jaxpr"].jaxpr.eqns}


def test_vmapped_chunk_skips_iterations_past_the_end(tiny_config, tiny_run):
    pipeline = build_pipeline(tiny_config)
    hp = tiny_config.hyperparams()
    keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
    runners = jax.jit(jax.vmap(pipeline.init, in_axes=(0, None)))(keys, hp)

    chunk = make_chunk(pipeline, chunk_iterations=2, run_axis="runs")
    vmapped = jax.vmap(chunk, in_axes=(0, None), axis_name="runs")
    # Naming the run axis keeps the step a branch (taken while some run is
    # running), where a batched predicate made it a select of both sides
    # (with run_axis=None the scan body holds no cond).
    traced = jax.jit(vmapped).trace(runners, hp)
    assert "cond" in scan_body_primitives(traced.jaxpr)

    run_chunk = traced.lower().compile()
    rows = []
    for _ in range(2):  # 4 iterations of a 3-iteration run: the last is masked
        runners, metrics = run_chunk(runners, hp)
        rows.append(metrics)
    metrics = jax.tree.map(lambda *x: np.concatenate(x, axis=1)[0, :3], *rows)
    want_runner, want_metrics = tiny_run
    assert np.asarray(runners.iteration).tolist() == [3, 3]
    assert_trees_close(metrics, want_metrics, rtol=1e-6, atol=1e-6)
    first = jax.tree.map(lambda x: x[0], runners)
    assert_trees_close(data_leaves(first), data_leaves(want_runner), 1e-6, 1e-6)
