"""benchmarks/protocols.py's GPU tasks are runnable as written: each, with
each of its settings, makes a valid config (the one benchmarks/learning.run
trains, from ``run_config``). They run only where a GPU is lent, rarely and
with minutes to spare (benchmarks/gpu.sh), so a settings mistake must show
up here first; the CPU tasks have run here (benchmarks/results/protocols.md).
The environments' own checks (``build_pipeline``) are left out: tracing a
contact-rich MJX step takes 3-6 s a task on 2 cores, over a minute for
these 21 runs."""

from __future__ import annotations

from typing import Any

import pytest
from benchmark_scripts import load_benchmark_script

from ppo_jax.config.ppo_config import PPOConfig

PROTOCOLS = load_benchmark_script("protocols")
LEARNING = load_benchmark_script("learning")
RUNS = [
    pytest.param(protocol, task, label, id=f"{name}-{task.label}-{label}")
    for name, protocol in PROTOCOLS.PROTOCOLS.items()
    for task in protocol.tasks
    for label in protocol.settings
    if task.device == "gpu" and protocol.applies(label, task)
]


def test_every_protocol_has_tasks_and_settings() -> None:
    assert len(RUNS) >= 20  # the GPU tasks of four protocols
    for protocol in PROTOCOLS.PROTOCOLS.values():
        assert protocol.tasks and protocol.settings, protocol.name
        # a label restricted to some tasks names tasks of the protocol
        envs = {task.env for task in protocol.tasks}
        for label, only in protocol.label_tasks.items():
            assert label in protocol.settings and set(only) <= envs, protocol.name


@pytest.mark.parametrize(("protocol", "task", "label"), RUNS)
def test_each_gpu_task_and_settings_makes_a_valid_config(
    protocol: Any, task: Any, label: str
) -> None:
    fields = protocol.fields(label, task)
    # the config run_task trains (through benchmarks/learning.run)
    config = LEARNING.run_config("tuned", task.env, protocol.total_timesteps, **fields)
    assert isinstance(config, PPOConfig) and config.env_name == task.env
    # the protocol's settings win over the preset's table for this env
    assert {k: getattr(config, k) for k in fields} == fields
    assert config.num_iterations >= 1, "the budget is smaller than one batch"
