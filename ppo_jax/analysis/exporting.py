"""Exporting a trained policy: ONNX for inference anywhere, ``.npz`` for numpy.

The command line is ``python -m ppo_jax.export RUN_DIR`` (:mod:`ppo_jax.export`);
in Python, :func:`export_onnx` and :func:`export_npz`. Both export the
deterministic policy of one run of a run directory (its latest checkpoint),
exactly as :func:`ppo_jax.load_policy` acts.

ONNX (needs the ``export`` extra: ``pip install -e '.[export]'``): the run's
:meth:`Policy.mode <ppo_jax.algo.policy.Policy.mode>` itself, converted by jax2onnx
(opset 17 by default), with the actor's parameters and the frozen observation
statistics baked in as constants. One input ``obs``: float32 raw
(unnormalized) observations ``[batch, *obs_shape]``, ``batch`` a dynamic axis
unless a fixed ``batch`` size is asked for (cast to the env's observation dtype
inside the graph); for dict observations read whole (``--network
structured``) one input per entry instead, ``obs.<key>`` float32 ``[batch,
*entry_shape]`` in the dict's key order. For an env with action masks a last input
``action_mask``: float32 ``[batch, action_dim]``, 1 where an action is legal
and 0 where not (float rather than bool so that the batch axis can stay
dynamic). One output ``action``: float32 ``[batch, action_dim]``, the Gaussian mean
(squashed into the action bounds if the run trained with ``bounded_mean``, clipped to
them with ``clip_actions``), or for discrete actions int32 ``[batch]``, the most likely
legal action (multi-discrete: int32 ``[batch, parts]``, per part). Model metadata
(``metadata_props``) records the env and run.

NPZ (numpy only; ``np.load(path)``, no pickles), format version 3 (version 1
had no ``action_parts`` and ``action_mask``, version 2 no ``bounded_mean``):

===================  ===========================  ==============================
key                  dtype, shape                 meaning
===================  ===========================  ==============================
``format_version``   int64 ``[]``                 3
``env_name``         str ``[]``                   ``config.env_name``
``network``          str ``[]``                   ``config.network`` (``mlp``)
``activation``       str ``[]``                   the MLP's hidden activation
``hidden_sizes``     int64 ``[k]``                the MLP's hidden layer widths
``obs_shape``        int64 ``[ndim]``             one observation's shape
``discrete``         bool ``[]``                  discrete (argmax) actions
``action_dim``       int64 ``[]``                 action size or number of actions
``action_parts``     int64 ``[P]``                a MultiDiscrete's nvec; ``[0]`` else
``action_mask``      bool ``[]``                  the policy takes a legal-action mask
``normalize_obs``    bool ``[]``                  normalize observations first
``obs_mean``         float32 ``[*obs_shape]``     running mean of observations
``obs_var``          float32 ``[*obs_shape]``     running (population) variance
``obs_count``        float32 ``[]``               observations counted
``obs_eps``          float32 ``[]``               1e-8
``obs_clip``         float32 ``[]``               10.0
``clip_actions``     bool ``[]``                  clip continuous actions
``action_low``       float32 ``[action_dim]``     only when ``clip_actions``
``action_high``      float32 ``[action_dim]``     only when ``clip_actions``
``bounded_mean``     bool ``[]``                  mean squashed into the bounds
``mean_middle``      float32 ``[action_dim]``     only when ``bounded_mean``
``mean_half_width``  float32 ``[action_dim]``     only when ``bounded_mean``
``actor/<path>``     float32                      every actor parameter
===================  ===========================  ==============================

``<path>`` is the parameter's path in the actor's parameter tree joined by
``/``. For ``--network mlp``: ``actor/params/Dense_<i>/kernel`` ``[in, out]``
and ``actor/params/Dense_<i>/bias`` ``[out]``, ``i = 0..k`` in order (``k``
hidden layers, then the output layer), and ``actor/params/log_std``
``[action_dim]`` with ``policy_std="learned"`` (unused by the deterministic
policy). The deterministic action of raw observations ``obs [B, *obs_shape]``::

    x = obs.astype(np.float32)
    if normalize_obs:
        x = np.clip((x - obs_mean) / np.sqrt(obs_var + obs_eps), -obs_clip, obs_clip)
    x = x.reshape(B, -1)
    for i in range(k + 1):
        x = x @ kernel[i] + bias[i]
        if i < k:
            x = activation(x)  # np.tanh, or relu: np.maximum(x, 0)
    if action_mask:  # mask: bool [B, action_dim], True where legal
        x = np.where(mask, x, -np.inf)
    if not discrete:
        action = x
        if bounded_mean:  # (action_high + action_low) / 2, (high - low) / 2
            action = mean_middle + mean_half_width * np.tanh(x)
    elif len(action_parts):  # one argmax per part of the logits
        ends = np.cumsum(action_parts)
        action = np.stack([x[:, e - n : e].argmax(-1)
                           for n, e in zip(action_parts, ends)], -1)
    else:
        action = x.argmax(-1)
    if clip_actions:
        action = np.clip(action, action_low, action_high)

For dict observations the npz has, instead of ``obs_mean``, ``obs_var`` and
``obs_count``: ``obs_keys`` (str ``[K]``), and per entry ``obs_shape/<key>``
(int64), ``obs_dtype/<key>`` (str), and for float entries (the only ones
normalized) ``obs_mean/<key>``, ``obs_var/<key>``, ``obs_count/<key>``; its
``actor/...`` parameters are the structured network's (embeddings, conv
and dense layers), whose forward pass is ``ppo_jax/networks/structured.py``.

Limits: a run whose env or network is ``module:Name`` exports where
:func:`~ppo_jax.analysis.evaluation.load_run` loads it from ``config.json`` (the module
importable again); a network jax2onnx cannot convert is refused (export it as
npz). Exported files are not run files: retraining the directory with
``--overwrite`` leaves them (stale) in place.
"""

from __future__ import annotations

import importlib.metadata
import io
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ppo_jax.algo.normalization import CLIP, EPS, RunningMeanStd
from ppo_jax.algo.ppo import Pipeline, RunnerState
from ppo_jax.analysis.evaluation import load_run
from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import MaskedObservation, actor_part
from ppo_jax.run import rundir
from ppo_jax.run.signals import check_stop

NPZ_FORMAT_VERSION = 3
# Older than jax2onnx's default (23), for older runtimes; the MLP's ops all are.
ONNX_OPSET = 17
EXTRA_HINT = "pip install -e '.[export]'"


def default_path(run_dir: str | Path, fmt: str, run: int = 0) -> Path:
    """``RUN_DIR/policy.FMT`` (run 0) or ``RUN_DIR/policy-runN.FMT``."""
    name = "policy" if run == 0 else f"policy-run{run}"
    return Path(run_dir) / f"{name}.{fmt}"


def check_onnx_installed() -> None:
    """Refuse, before any loading, a missing ``export`` extra."""
    try:
        import jax2onnx  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            "format",
            "onnx",
            f"npz unless jax2onnx and onnx are installed ({EXTRA_HINT})",
        ) from e


def check_out_path(path: Path, overwrite: bool) -> None:
    """Refuse a path that is a directory, lies in a missing directory, or
    exists (unless ``overwrite``)."""
    if path.is_dir():
        raise rundir.RunDirError(f"{str(path)!r} is a directory: name a file")
    if not path.parent.is_dir():
        raise rundir.RunDirError(
            f"cannot write {str(path)!r}: the directory {str(path.parent)!r} "
            "does not exist"
        )
    if path.exists() and not overwrite:
        raise rundir.RunDirError(
            f"{str(path)!r} exists; pass --overwrite to replace it"
        )


def export_onnx(
    run_dir: str | Path,
    path: str | Path | None = None,
    run: int = 0,
    *,
    batch: int | None = None,
    overwrite: bool = False,
    opset: int = ONNX_OPSET,
) -> Path:
    """Write the deterministic policy of ``run`` of ``run_dir`` as ONNX.

    ``path``: default ``RUN_DIR/policy.onnx`` (``policy-runN.onnx`` for
    ``run`` N > 0). ``batch``: ``None`` for a dynamic batch axis, or a fixed
    batch size. An existing file is refused unless ``overwrite``; the file is
    written atomically. Returns the path written. See the module docstring for
    the model's input and output.

    Raises:
        ConfigError: the ``export`` extra is missing, a bad ``run`` or
            ``batch``, or a policy jax2onnx cannot convert.
        RunDirError: not a run directory, damaged files, or a bad ``path``.
    """
    check_onnx_installed()
    fixed = isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1
    if batch is not None and not fixed:
        raise ConfigError("batch", batch, "None (a dynamic batch axis) or >= 1")
    out = Path(default_path(run_dir, "onnx", run) if path is None else path)
    pipeline, runner = load_run(run_dir, run)
    check_out_path(out, overwrite)
    model = onnx_model(pipeline, runner, batch, opset)
    model.metadata_props.add(key="ppo_jax.run", value=str(run))
    check_stop()  # a Ctrl-C of the command line: stop before writing
    rundir.atomic_write_bytes(out, model.SerializeToString())
    return out


def onnx_model(
    pipeline: Pipeline,
    runner: RunnerState,
    batch: int | None = None,
    opset: int = ONNX_OPSET,
) -> Any:
    """The ``onnx.ModelProto`` of a loaded run's deterministic policy."""
    import onnx
    from jax2onnx import to_onnx

    spec = pipeline.spec
    params = runner.agent.actor_params
    stats = actor_part(runner.envs.obs_stats)
    if pipeline.policy.recurrent:
        raise ConfigError(
            "network",
            pipeline.config.network,
            "a feedforward network for ONNX (a recurrent policy's memory would "
            "be an input and an output of the model, which ppo_jax does not "
            "write yet); --format npz exports the parameters instead",
        )

    structure = spec.obs_structure
    entries = list(structure or ())

    def act(*arrays: jax.Array) -> jax.Array:
        # The one definition of the deterministic action, constants baked in.
        seen: Any
        if structure is None:
            seen = arrays[0].astype(spec.obs_dtype)
        else:  # one input per entry, in the dict's order
            seen = {
                k: x.astype(structure[k].dtype)
                for k, x in zip(entries, arrays, strict=False)
            }
        mask = arrays[max(1, len(entries)) :]
        if mask:  # float32 1/0 in, bool for the policy
            seen = MaskedObservation(seen, mask[0] > 0.5)
        return pipeline.policy.mode(params, stats, seen)

    # Shapes with a named axis: float32 inputs, the axis dynamic.
    axis = "batch" if batch is None else batch
    if structure is None:
        inputs = [(axis, *spec.obs_shape)]
        names = ["obs"]
    else:
        inputs = [(axis, *structure[k].shape) for k in entries]
        names = [f"obs.{k}" for k in entries]
    if spec.action_mask:
        inputs.append((axis, spec.action_dim))
        names.append("action_mask")
    try:
        model = to_onnx(
            act,
            inputs,
            model_name="ppo_jax_policy",
            opset=opset,
            input_names=names,
            output_names=["action"],
        )
        onnx.checker.check_model(model)
    except Exception as e:  # conversion errors of any kind
        summary = " ".join(str(e).split())[:200] or type(e).__name__
        raise ConfigError(
            "network",
            pipeline.config.network,
            "a network whose operations jax2onnx converts to ONNX (it failed: "
            f"{summary}); --format npz exports the parameters instead",
        ) from e
    config = pipeline.config
    legal = " over legal actions" if spec.action_mask else ""
    if spec.action_parts:
        action = f"int32 [batch, {len(spec.action_parts)}] (argmax per part{legal})"
    elif spec.discrete:
        action = f"int32 [batch] (argmax{legal})"
    else:
        policy = pipeline.policy
        how = ["squashed into the bounds"] if policy.mean_middle is not None else []
        how += ["clipped"] if policy.action_low is not None else []
        action = (
            f"float32 [batch, {spec.action_dim}] ("
            + ", ".join(["Gaussian mean", *how])
            + ")"
        )
    metadata = {
        "ppo_jax.version": importlib.metadata.version("ppo_jax"),
        "ppo_jax.env_name": config.env_name,
        "ppo_jax.action": action,
    }
    for name, shape in zip(names, inputs, strict=False):
        metadata[f"ppo_jax.{name}"] = (
            f"float32 [batch, {', '.join(map(str, shape[1:]))}]"
        )
    if spec.action_mask:
        metadata["ppo_jax.action_mask"] = (
            f"float32 [batch, {spec.action_dim}] (1 legal, 0 illegal)"
        )
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    return model


def export_npz(
    run_dir: str | Path,
    path: str | Path | None = None,
    run: int = 0,
    *,
    overwrite: bool = False,
) -> Path:
    """Write the actor's parameters and observation statistics of ``run`` of
    ``run_dir`` as a plain ``.npz`` (layout: the module docstring).

    ``path``: default ``RUN_DIR/policy.npz`` (``policy-runN.npz`` for ``run``
    N > 0). An existing file is refused unless ``overwrite``; the file is
    written atomically. Returns the path written.

    Raises:
        ConfigError: a bad ``run``.
        RunDirError: not a run directory, damaged files, or a bad ``path``.
    """
    out = Path(default_path(run_dir, "npz", run) if path is None else path)
    pipeline, runner = load_run(run_dir, run)
    check_out_path(out, overwrite)
    buffer = io.BytesIO()
    np.savez(buffer, **npz_arrays(pipeline, runner))  # type: ignore[arg-type]
    check_stop()  # a Ctrl-C of the command line: stop before writing
    rundir.atomic_write_bytes(out, buffer.getvalue())
    return out


def npz_arrays(pipeline: Pipeline, runner: RunnerState) -> dict[str, np.ndarray]:
    """The arrays of :func:`export_npz`, by key."""
    config, spec, policy = pipeline.config, pipeline.spec, pipeline.policy
    stats = actor_part(runner.envs.obs_stats)
    clip = policy.action_low is not None and policy.action_high is not None
    if spec.obs_structure is not None:  # per entry; statistics of floats only
        entry_arrays: dict[str, np.ndarray] = {
            "obs_keys": np.asarray(list(spec.obs_structure)),
        }
        for key, entry in spec.obs_structure.items():
            entry_arrays[f"obs_shape/{key}"] = np.asarray(entry.shape, np.int64)
            entry_arrays[f"obs_dtype/{key}"] = np.asarray(np.dtype(entry.dtype).name)
            part = stats[key]
            if isinstance(part, RunningMeanStd):
                entry_arrays[f"obs_mean/{key}"] = np.asarray(part.mean, np.float32)
                entry_arrays[f"obs_var/{key}"] = np.asarray(part.var, np.float32)
                entry_arrays[f"obs_count/{key}"] = np.asarray(part.count, np.float32)
        stats = None
    arrays: dict[str, np.ndarray] = {
        "format_version": np.asarray(NPZ_FORMAT_VERSION, np.int64),
        "env_name": np.asarray(config.env_name),
        "network": np.asarray(config.network),
        "activation": np.asarray(config.activation),
        "hidden_sizes": np.asarray(config.hidden_sizes, np.int64),
        "obs_shape": np.asarray(spec.obs_shape, np.int64),
        "discrete": np.asarray(spec.discrete),
        "action_dim": np.asarray(spec.action_dim, np.int64),
        "action_parts": np.asarray(spec.action_parts, np.int64).reshape(-1),
        "action_mask": np.asarray(spec.action_mask),
        "normalize_obs": np.asarray(policy.normalize_obs),
        "obs_eps": np.asarray(EPS, np.float32),
        "obs_clip": np.asarray(CLIP, np.float32),
        "clip_actions": np.asarray(clip),
        "bounded_mean": np.asarray(policy.mean_middle is not None),
    }
    if stats is None:
        arrays |= entry_arrays
    else:
        arrays["obs_mean"] = np.asarray(stats.mean, np.float32)
        arrays["obs_var"] = np.asarray(stats.var, np.float32)
        arrays["obs_count"] = np.asarray(stats.count, np.float32)
    if clip:
        arrays["action_low"] = np.asarray(policy.action_low, np.float32)
        arrays["action_high"] = np.asarray(policy.action_high, np.float32)
    if policy.mean_middle is not None and policy.mean_half_width is not None:
        arrays["mean_middle"] = np.asarray(policy.mean_middle, np.float32)
        arrays["mean_half_width"] = np.asarray(policy.mean_half_width, np.float32)
    leaves = jax.tree_util.tree_leaves_with_path(runner.agent.actor_params)
    for key_path, leaf in leaves:
        arrays["/".join(["actor", *map(_key_name, key_path)])] = np.asarray(leaf)
    return arrays


def _key_name(key: Any) -> str:
    """``DictKey('kernel')`` -> ``kernel``, ``SequenceKey(0)`` -> ``0``, ..."""
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)
