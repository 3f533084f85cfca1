"""Policy export (python -m ppo_jax.export): the ONNX model and a numpy forward
of the npz act exactly as load_policy does, clipping and normalization
included; bad input is one line, exit code 2, nothing written."""

import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import run_main, run_module
from test_hostile import one_line_refusal

from ppo_jax import MaskedObservation
from ppo_jax.analysis.evaluation import load_policy, load_run
from ppo_jax.analysis.exporting import export_npz, export_onnx
from ppo_jax.envs.contract import actor_part
from ppo_jax.export import main as export_main
from ppo_jax.run.rundir import CHECKPOINT_FILE, save_checkpoint

ort = pytest.importorskip("onnxruntime")

# The tuned preset (normalized observations; clipped actions on Pendulum),
# shrunk to train in seconds.
TUNED_TINY = [
    "--preset", "tuned", "--num-envs", "4", "--rollout-length", "32",
    "--num-minibatches", "2", "--update-epochs", "2", "--hidden-sizes", "16,16",
    "--total-timesteps", "256",
]  # fmt: skip
BOOST = 300.0  # output layer scale: tiny runs act near 0, far inside the bounds


def train(run_dir, *args):
    proc = run_main("ppo_jax.train", *TUNED_TINY, *args, "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    return run_dir


def boosted_pendulum(run_dir, *args):
    """A tuned Pendulum run whose actor's output layer is scaled up, so that
    its mean actions cross the bounds +-2 and clipping is exercised."""
    train(run_dir, "--env", "Pendulum-v1", *args)
    pipeline, runner = load_run(run_dir)
    assert pipeline.config.normalize_obs and pipeline.config.clip_actions
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x * BOOST if "Dense_2" in jax.tree_util.keystr(path) else x,
        runner.agent.actor_params,
    )
    agent = runner.agent.replace(actor_params=params)
    save_checkpoint(run_dir, pipeline.config, runner.replace(agent=agent))
    return run_dir


@pytest.fixture(scope="session")
def pendulum_run(tmp_path_factory):
    return boosted_pendulum(tmp_path_factory.mktemp("export") / "pendulum")


@pytest.fixture(scope="session")
def bounded_run(tmp_path_factory):
    """The boosted Pendulum run with its mean squashed into the bounds."""
    run_dir = tmp_path_factory.mktemp("export") / "bounded"
    return boosted_pendulum(run_dir, "--bounded-mean")


@pytest.fixture(scope="session")
def cartpole_run(tmp_path_factory):
    """A tuned CartPole run of two seeds (discrete actions, normalized obs)."""
    run_dir = tmp_path_factory.mktemp("export") / "cartpole"
    return train(run_dir, "--env", "CartPole-v1", "--num-seeds", "2")


@pytest.fixture(scope="session")
def pair_run(tmp_path_factory):
    """A run of a user's env with legal-action masks and MultiDiscrete (3, 4)
    actions (tests/user_components.py)."""
    run_dir = tmp_path_factory.mktemp("export") / "pair"
    return train(run_dir, "--env", "user_components:MaskedPairEnv")


@pytest.fixture(params=["pendulum", "bounded", "cartpole", "pair"])
def run_dir(request):
    return request.getfixturevalue(f"{request.param}_run")


RUNS = [("pendulum", 0), ("bounded", 0), ("cartpole", 0), ("cartpole", 1), ("pair", 0)]


def observations(run_dir, batch, seed=0):
    """Raw observations at every scale, up to far outside the training data."""
    pipeline, _ = load_run(run_dir)
    rng = np.random.default_rng(seed)
    shape = (batch, *pipeline.spec.obs_shape)
    scale = rng.choice([0.01, 1.0, 10.0, 1e4], size=shape)
    obs = (rng.normal(size=shape) * scale).astype(np.float32)
    if not pipeline.spec.action_mask:
        return obs
    # Random legal actions, at least one per part.
    parts = pipeline.spec.action_parts or (pipeline.spec.action_dim,)
    masks = []
    for n in parts:
        mask = rng.random((batch, n)) < 0.4
        mask[np.arange(batch), rng.integers(0, n, batch)] = True
        masks.append(mask)
    return MaskedObservation(obs, np.concatenate(masks, -1))


def onnx_policy(path):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def act(obs):
        if isinstance(obs, MaskedObservation):
            mask = obs.action_mask.astype(np.float32)  # 1 legal, 0 illegal
            return session.run(["action"], {"obs": obs.obs, "action_mask": mask})[0]
        return session.run(["action"], {"obs": obs})[0]

    return act


def assert_same_actions(got, want, discrete):
    assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
    if discrete:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# --------------------------------------------------------------------- onnx


@pytest.mark.parametrize("env,run", RUNS, ids=[f"{e}-run{r}" for e, r in RUNS])
def test_onnx_acts_as_load_policy(env, run, request, tmp_path):
    run_dir = request.getfixturevalue(f"{env}_run")
    pipeline, _ = load_run(run_dir)
    path = export_onnx(run_dir, tmp_path / "policy.onnx", run)
    act, want = onnx_policy(path), load_policy(run_dir, run)
    for batch in (1, 7, 64):  # one model: the batch axis is dynamic
        obs = observations(run_dir, batch, seed=batch)
        assert_same_actions(act(obs), want(obs), pipeline.spec.discrete)
    actions = want(observations(run_dir, 64, seed=64))
    if pipeline.config.bounded_mean:  # squashed, near the bounds somewhere
        assert (np.abs(actions) <= 2.0).all() and (np.abs(actions) > 1.9).any()
    elif not pipeline.spec.discrete:  # clipping happened, and not everywhere
        assert (np.abs(actions) == 2.0).any() and (np.abs(actions) < 2.0).any()


def test_onnx_with_a_fixed_batch(pendulum_run, tmp_path):
    path = export_onnx(pendulum_run, tmp_path / "fixed.onnx", batch=5)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [5, 3]
    obs = observations(pendulum_run, 5)
    got = session.run(["action"], {"obs": obs})[0]
    assert_same_actions(got, load_policy(pendulum_run)(obs), discrete=False)


def test_onnx_is_self_contained(pendulum_run, tmp_path):
    """Parameters and statistics are constants: the file alone suffices, even
    with the run directory gone."""
    run_dir = tmp_path / "run"
    shutil.copytree(pendulum_run, run_dir)
    path = export_onnx(run_dir, tmp_path / "policy.onnx")
    obs = observations(run_dir, 7)
    want = load_policy(run_dir)(obs)
    shutil.rmtree(run_dir)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["obs"]
    assert_same_actions(session.run(["action"], {"obs": obs})[0], want, False)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["ppo_jax.env_name"] == "Pendulum-v1"


# ---------------------------------------------------------------------- npz


def npz_policy(path):
    """The deterministic policy rebuilt from the npz alone, with numpy, from
    the layout ppo_jax.analysis.exporting documents (MLP networks)."""
    z = dict(np.load(path, allow_pickle=False))
    assert int(z["format_version"]) == 3 and str(z["network"]) == "mlp"
    activation = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0)}[
        str(z["activation"])
    ]
    k = len(z["hidden_sizes"])
    layers = [
        (z[f"actor/params/Dense_{i}/kernel"], z[f"actor/params/Dense_{i}/bias"])
        for i in range(k + 1)
    ]

    def policy(obs):
        mask = None
        if isinstance(obs, MaskedObservation):
            obs, mask = obs
        assert (mask is not None) == bool(z["action_mask"])
        x = obs.astype(np.float32)
        if z["normalize_obs"]:
            x = (x - z["obs_mean"]) / np.sqrt(z["obs_var"] + z["obs_eps"])
            x = np.clip(x, -z["obs_clip"], z["obs_clip"])
        x = x.reshape(len(obs), -1)
        for i, (kernel, bias) in enumerate(layers):
            x = x @ kernel + bias
            if i < k:
                x = activation(x)
        if mask is not None:
            x = np.where(mask, x, -np.inf)
        if not z["discrete"]:
            action = x
            if z["bounded_mean"]:
                action = z["mean_middle"] + z["mean_half_width"] * np.tanh(x)
        elif len(z["action_parts"]):  # one argmax per part
            ends = np.cumsum(z["action_parts"])
            action = np.stack(
                [
                    x[:, e - n : e].argmax(-1)
                    for n, e in zip(z["action_parts"], ends, strict=True)
                ],
                -1,
            ).astype(np.int32)
        else:
            action = x.argmax(-1).astype(np.int32)
        if z["clip_actions"]:
            action = np.clip(action, z["action_low"], z["action_high"])
        return action

    return policy, z


def test_npz_layout_rebuilds_the_policy(run_dir, tmp_path):
    path = export_npz(run_dir, tmp_path / "policy.npz")
    policy, z = npz_policy(path)
    pipeline, runner = load_run(run_dir)
    assert bool(z["discrete"]) == pipeline.spec.discrete
    assert bool(z["clip_actions"]) == (not pipeline.spec.discrete)
    assert ("action_low" in z) == bool(z["clip_actions"])
    assert bool(z["bounded_mean"]) == pipeline.config.bounded_mean
    assert ("mean_middle" in z) == pipeline.config.bounded_mean
    assert tuple(z["obs_shape"]) == pipeline.spec.obs_shape
    stats = actor_part(runner.envs.obs_stats)  # without a mask's ()
    np.testing.assert_array_equal(z["obs_mean"], stats.mean)
    obs = observations(run_dir, 64)
    want = load_policy(run_dir)(obs)
    got = policy(obs)
    if pipeline.spec.discrete:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    if not pipeline.spec.discrete:
        assert z["actor/params/log_std"].shape == (1,)  # learned std: kept


# ---------------------------------------------------------------------- cli


def test_cli_writes_default_paths(cartpole_run, capsys):
    run_dir = Path(cartpole_run)
    try:
        assert export_main([str(run_dir), "--format", "onnx"]) == 0
        assert export_main([str(run_dir), "--format", "npz", "--run", "1"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out == [
            f"wrote {run_dir / 'policy.onnx'} (onnx, run 0)",
            f"wrote {run_dir / 'policy-run1.npz'} (npz, run 1)",
        ]
        policy, _ = npz_policy(run_dir / "policy-run1.npz")
        obs = observations(run_dir, 7)
        np.testing.assert_array_equal(policy(obs), load_policy(run_dir, 1)(obs))
        assert not list(run_dir.glob(".*.tmp"))
    finally:
        for name in ("policy.onnx", "policy-run1.npz"):
            (run_dir / name).unlink(missing_ok=True)


def test_cli_overwrite_replaces(pendulum_run, tmp_path):
    out = tmp_path / "p.npz"
    out.write_bytes(b"old")
    args = [str(pendulum_run), "--format", "npz", "--out", str(out)]
    assert export_main([*args, "--overwrite"]) == 0
    assert npz_policy(out)[1]["format_version"] == 3


def test_python_dash_m_export(pendulum_run, tmp_path):
    out = tmp_path / "policy.onnx"
    proc = run_module("ppo_jax.export", str(pendulum_run), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out} (onnx, run 0)"
    assert proc.stderr.strip() == ""


def _not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    return [str(tmp_path / "empty")]


def _a_file(tmp_path):
    (tmp_path / "file").write_text("")
    return [str(tmp_path / "file")]


def _damaged_checkpoint(tmp_path, run_dir):
    copy = tmp_path / "damaged"
    shutil.copytree(run_dir, copy)
    (copy / CHECKPOINT_FILE).write_bytes(b"junk")
    return [str(copy)]


def _existing(tmp_path, run_dir):
    (tmp_path / "policy.onnx").write_bytes(b"keep me")
    return [str(run_dir), "--out", str(tmp_path / "policy.onnx")]


def _existing_default(tmp_path, run_dir):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "policy.npz").write_bytes(b"keep me")
    return [str(copy), "--format", "npz"]


HOSTILE = {
    "existing file": (_existing, "exists; pass --overwrite"),
    "existing default file": (_existing_default, "exists; pass --overwrite"),
    "out in a missing dir": (
        lambda t, r: [str(r), "--out", str(t / "nope" / "p.onnx")],
        "the directory",
    ),
    "out is a dir": (lambda t, r: [str(r), "--out", str(t)], "is a directory"),
    "out empty": (lambda t, r: [str(r), "--out", ""], "empty path"),
    "run out of range": (lambda t, r: [str(r), "--run", "1"], "run=1 is not allowed"),
    "negative run": (lambda t, r: [str(r), "--run", "-1"], "from 0 to 0"),
    "run not an int": (lambda t, r: [str(r), "--run", "x"], "invalid int value"),
    "bad format": (lambda t, r: [str(r), "--format", "pt"], "invalid choice"),
    "empty run dir": (lambda t, r: [""], "empty path"),
    "missing run dir": (lambda t, r: [str(t / "gone")], "does not exist"),
    "not a run": (lambda t, r: _not_a_run(t), "not a ppo_jax run directory"),
    "run dir is a file": (lambda t, r: _a_file(t), "is not a directory"),
    "damaged checkpoint": (_damaged_checkpoint, "unreadable"),
}


def listing(root):
    return {p: p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", ["onnx", "npz"])
@pytest.mark.parametrize("case", HOSTILE)
def test_cli_refusals(case, fmt, pendulum_run, tmp_path, capsys):
    make_args, message = HOSTILE[case]
    args = ["--format", fmt, *make_args(tmp_path, pendulum_run)]  # a case's wins
    before, run_before = listing(tmp_path), listing(pendulum_run)
    line = one_line_refusal(capsys, export_main, args)
    assert message in line, line
    assert listing(tmp_path) == before  # nothing written, nothing replaced
    assert listing(pendulum_run) == run_before


def test_missing_extra_is_one_line(pendulum_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # import fails
    out = tmp_path / "p.onnx"
    line = one_line_refusal(capsys, export_main, [str(pendulum_run), "--out", str(out)])
    assert "pip install -e '.[export]'" in line and "npz" in line, line
    assert not out.exists()
    # npz needs no extra.
    assert export_main([str(pendulum_run), "--format", "npz", "--out", str(out)]) == 0


def test_a_policy_jax2onnx_cannot_convert_is_one_line(
    pendulum_run, tmp_path, capsys, monkeypatch
):
    import jax2onnx

    def fail(*args, **kwargs):
        raise NotImplementedError("No ONNX handler for primitive 'weird_op'")

    monkeypatch.setattr(jax2onnx, "to_onnx", fail)
    out = tmp_path / "p.onnx"
    line = one_line_refusal(capsys, export_main, [str(pendulum_run), "--out", str(out)])
    assert "weird_op" in line and "--format npz" in line, line
    assert not out.exists()


def test_library_refuses_a_bad_batch(pendulum_run, tmp_path):
    from ppo_jax.config.schema import ConfigError

    for batch in (0, -3, True, 2.5):
        with pytest.raises(ConfigError, match="batch="):
            export_onnx(pendulum_run, tmp_path / "p.onnx", batch=batch)
    assert not (tmp_path / "p.onnx").exists()
