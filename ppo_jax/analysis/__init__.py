"""Tools that read finished (or running) runs: evaluation, rendering, export
and comparison.

- :mod:`~ppo_jax.analysis.evaluation`: ``load_run``, ``load_policy``,
  ``evaluate_policy``, gymnasium episodes and GIFs;
- :mod:`~ppo_jax.analysis.rendering`: MuJoCo scenes of Playground and brax
  runs as GIFs;
- :mod:`~ppo_jax.analysis.exporting`: ONNX and npz policies;
- :mod:`~ppo_jax.analysis.comparison`: runs side by side with confidence
  intervals.

Imports every layer below it; only the commands import it.
"""
