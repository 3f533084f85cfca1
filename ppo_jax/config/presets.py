"""The presets' settings: named field changes from PPOConfig's defaults, and
per-environment tables applied on top of them.

Plain dictionaries of field values (``PPOConfig`` builds its
:data:`~ppo_jax.config.ppo_config.PRESETS` from them), so that a preset reads
as a table and this module imports nothing.
"""

from __future__ import annotations

from typing import Any

# preset name -> its changes from PPOConfig's defaults.
PRESET_FIELDS: dict[str, dict[str, Any]] = {
    # The tutorial's Pendulum column (the tutorial's defaults;
    # ppo_jax/config/README.md, "The tutorial preset"), vectorized as 11 envs x 200
    # steps: every env runs exactly one whole episode per iteration.
    "tutorial": {},
    # Modern PPO for continuous control; see ppo_jax/config/README.md, "Presets", for
    # the why of each value and benchmarks/results/learning.md for what it reaches.
    "tuned": {
        "num_envs": 16,
        "rollout_length": 256,
        "total_timesteps": 1_000_000,
        "lr": 1e-3,
        "gamma": 0.95,
        "clip_eps": 0.2,
        "update_epochs": 10,
        "num_minibatches": 16,
        "advantage": "gae",
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "optimizer": "joint",
        "max_grad_norm": 0.5,
        "adam_eps": 1e-5,
        "anneal_lr": True,
        "policy_std": "learned",
        "init_log_std": 0.0,
        "clip_actions": True,
        "activation": "tanh",
        "ortho_init": True,
        "normalize_obs": True,
        "normalize_reward": True,
        "bootstrap_truncation": True,
    },
}

# Per-environment changes to a preset, applied before the user's overrides.
_DISCRETE_TUNED: dict[str, Any] = {
    "policy_std": None,
    "clip_actions": False,
    "num_envs": 8,
    "rollout_length": 128,
    "num_minibatches": 4,
    "update_epochs": 4,
    "lr": 2.5e-4,
    "gamma": 0.99,
    "ent_coef": 0.01,
    "normalize_reward": False,
    "total_timesteps": 500_000,
}
# What a preset changes for an env with discrete actions that ENV_OVERRIDES
# does not list (applied by ppo_jax.envs.preset_config, which can look at the
# action space): its Gaussian options do not apply there.
DISCRETE_OVERRIDES: dict[str, dict[str, Any]] = {
    "tuned": {"policy_std": None, "clip_actions": False},
}
# MuJoCo Playground's DM Control Suite tasks (playground/<Task>).
DM_CONTROL_TASKS = (
    "AcrobotSwingup", "AcrobotSwingupSparse", "BallInCup", "CartpoleBalance",
    "CartpoleBalanceSparse", "CartpoleSwingup", "CartpoleSwingupSparse",
    "CheetahRun", "FingerSpin", "FingerTurnEasy", "FingerTurnHard", "FishSwim",
    "HopperHop", "HopperStand", "HumanoidStand", "HumanoidWalk", "HumanoidRun",
    "PendulumSwingup", "PointMass", "ReacherEasy", "ReacherHard",
    "SwimmerSwimmer6", "WalkerRun", "WalkerStand", "WalkerWalk",
)  # fmt: skip
# CleanRL's PPO settings for continuous control (ppo_continuous_action.py,
# the settings of its DM Control table): 1 env x 2048 steps, 10 epochs x 32
# minibatches of 64, lr 3e-4 annealed, gamma 0.99, GAE 0.95, value clipping,
# no entropy bonus, 1M steps. Laid out for samples, not steps per second:
# at 1M steps on 3 seeds (benchmarks/results/protocols.md) it reached
# CleanRL's means on 4 of the 6 contact-free tasks and 0.96x on the other two,
# where the earlier layout for speed (Playground's settings
# scaled to 128 envs x 32 steps, 4 x 4 updates; 100k+ steps/s) was far
# behind (CartpoleSwingup 866 against 152; CartpoleBalance 990 against 316),
# and it beat that layout's 3M-5M results. 8 envs x 256 steps (the same
# batch, 4x the steps/s) did worse on CartpoleSwingup (738 against 866).
DM_CONTROL_CLEANRL: dict[str, Any] = {
    "num_envs": 1,
    "rollout_length": 2048,
    "num_minibatches": 32,
    "update_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "lr": 3e-4,
    "clip_value": True,
    "ent_coef": 0.0,
    "total_timesteps": 1_000_000,
}
# The cartpoles: CleanRL's settings at lr 1e-4, a third of CleanRL's 3e-4.
# At 3e-4, on 16 seeds (benchmarks/results/robustness.md), one seed each
# ended below the cartpoles' targets (900, 700) vmapped and two each as
# separate processes: every short seed had learned the task and then
# collapsed, some late in the run, where the annealed rate is already small.
# A constant rate, 2M steps, init_log_std -0.5, target_kl 0.01, an entropy
# bonus of 0.01, a floor of 0.1 under the learned sigma (min_std) and 4
# epochs each still lost a seed on one task or the other; a fixed sigma of
# 0.1 held CartpoleBalance but slowed CartpoleSwingup (10/16). At 1e-4 both
# learn by 300k-500k steps and no seed collapsed (robustness.md: vmapped
# seeds 0-15 and 16-31, and 16 processes).
_DM_CONTROL_CARTPOLE_TUNED: dict[str, Any] = {**DM_CONTROL_CLEANRL, "lr": 1e-4}
# PointMass, PendulumSwingup, AcrobotSwingup and ReacherEasy: CleanRL's
# settings with Playground's entropy bonus of 0.01. Without it, about half the
# seeds of the first three never find the reward (16 vmapped seeds,
# robustness.md, against CleanRL's 3-seed means: PointMass 9/16 at 274 or
# above, mean 498.2; PendulumSwingup 7/16 at 243, mean 382.7; AcrobotSwingup
# 9/16 at 28, mean 32.2); with it 13/16 (724.4), 14/16 (713.3) and 13/16
# (36.3), the short seeds still near 0. ReacherEasy's seeds all learn and
# stall early; with the bonus they stall higher (626: 9/16, mean 610.3,
# against 4/16, 559.1; seeds 16-31: 3/16, 575.1, against 1/16, 521.8), and
# higher still with more envs (below). PointMass, AcrobotSwingup and
# ReacherEasy have a larger bonus (below).
# PendulumSwingup's short seeds never learn to swing up (a seed at 185.5
# holds the pole up in the three of the 16 evaluation episodes that start
# near the top, and scores 0 in the rest: benchmarks/README.md). Tried on
# its 16 seeds without reaching 16/16 (robustness.md): lr 1e-3 15/16 (mean
# 751.7), 2e-3 13/16, 1e-4 2/16, init_log_std 1.0 13/16, entropy 0.03
# 12/16, bounded_mean 0/16, lr 1e-3 with 64 envs x 32 steps 12/16, discount
# 0.995 16/16 but 11/16 on seeds 16-31 (with lr 1e-3 13/16; with gae_lambda
# 0.99 14/16, and 11/16 on seeds 0-15) and 13/16 as processes, 20 epochs
# 13/16. The preset itself had all of seeds 16-31 at target (16/16).
_DM_CONTROL_EXPLORING_TUNED: dict[str, Any] = {**DM_CONTROL_CLEANRL, "ent_coef": 0.01}
# PointMass and AcrobotSwingup: an entropy bonus of 0.05. On PointMass, at
# 0.01 two or three seeds of 16 never found the target (13/16 at 274 vmapped,
# 14/16 as processes); at 0.03 and 0.1 one seed each (15/16); at 0.05 all of
# seeds 0-31 vmapped and all 16 as processes (robustness.md). The price there:
# late in the run the wider policy's mean settles at the action bounds, where
# the task's control term pays nothing, and the deterministic returns end near
# 725 where seeds that found the target at 0.01 reached 900 (the mean over 16
# seeds is the same, 724.8 against 724.4; squashing the mean with bounded_mean
# lost seeds again: 13/16). On AcrobotSwingup 0.05 lifted every seed (16/16 at
# 28, worst 38.4, mean 51.2, against 13/16, 6.3, 36.3 at 0.01; seeds 16-31 and
# 16 processes 16/16 too, worst 40.9 and 39.8), though its sampled actions
# score less while it trains (3 seeds' training return 11.2 against 25.8, the
# figure CleanRL reports; deterministic 51.9 against 38.3). It did not
# carry over: PendulumSwingup lost seeds at 0.03 (12/16) and ReacherEasy's
# seeds collapsed at 0.1 (0/16; 15/16 at 0.05, which ReacherEasy has with 20
# epochs, below).
_DM_CONTROL_WIDE_EXPLORING_TUNED: dict[str, Any] = {
    **DM_CONTROL_CLEANRL,
    "ent_coef": 0.05,
}
# ReacherEasy, besides: 64 envs x 32 steps where CleanRL has 1 x 2048 (the
# same 2048 steps an update). A rollout of one env holds two 1000-step
# episodes, two target positions: each update fits the policy to those and
# the seeds' deterministic returns swung by 200-300 from one evaluation to
# the next. 64 envs put 64 targets in each update (16 seeds, robustness.md:
# 13/16 at 626, mean 742.8, against 9/16, 610.3; seeds 16-31 13/16, 726.8,
# against 3/16, 575.1); 16 x 128 and 128 x 16 did less (10/16, 673.5;
# 11/16, 688.4), as did lr 1e-3 with 64 x 32 (11/16, 696.8); lr 5e-4 the
# same (13/16, 740.9; its lowest seed 492.6 against 312.4); on PointMass
# 64 x 32 did worse (10/16, 465.2, against 13/16).
# With that layout, an entropy bonus of 0.05 and 20 epochs where CleanRL has
# 10. The bonus alone gained seeds up to 0.05 (0.03: 14/16; 0.05: 15/16,
# worst 539.7, mean 754.3) and collapsed at 0.1 (0/16); fewer gradient steps
# did far worse (8 minibatches, 80 steps an update where 32 make 320: 3/16,
# 519.0), so the task was short of updates, and at 20 epochs every seed
# reached 626 on seeds 0-15 (16/16, worst 703.8, mean 867.1); seeds 16-31
# and 16 processes left one seed short each (15/16: 580.4 and 602.9; means
# 842.9 and 851.2), where 10 epochs at 0.01 left three and five.
# Also tried: with the bonus, a 256x256 network (13/16, 740.5); without it,
# the discount 0.995 (12/16); 30 epochs on seeds 16-31 (15/16, 609.8).
_REACHER_TUNED: dict[str, Any] = {
    **_DM_CONTROL_WIDE_EXPLORING_TUNED,
    "num_envs": 64,
    "rollout_length": 32,
    "update_epochs": 20,
}
# gymnax's MinAtar games: 10x10 grids of boolean channels, with the CNN (the
# MinAtar paper's network: 16 3x3 filters, then a dense layer). 64 envs x 128
# steps and 8 minibatches x 4 epochs as PureJaxRL trains MinAtar; lr 5e-3 from
# measurement (Breakout, 2 seeds x 330k steps: return 17.7 at 5e-3, 6.6 at
# 1e-3); 1M steps, which the CNN runs in about 2.5 minutes a seed on 2 cores.
MINATAR_GAMES = (
    "Breakout-MinAtar", "Asterix-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar",
)  # fmt: skip
_MINATAR_TUNED: dict[str, Any] = {
    **_DISCRETE_TUNED,
    "num_envs": 64,
    "num_minibatches": 8,
    "total_timesteps": 1_000_000,
    "lr": 5e-3,
    "activation": "relu",
    "normalize_obs": False,  # binary grids: already in [0, 1]
    "network": "cnn",
}
# CartPole-v1: rl-baselines3-zoo's PPO settings for it (8 envs x 32 steps in
# one minibatch, gamma 0.98, GAE 0.8, no entropy bonus, lr 1e-3 annealed;
# 10 epochs where the zoo has 20, as robust here and twice as fast): all 16
# seeds at 500 (deterministic evaluation at 500k steps, vmapped and as
# separate processes: benchmarks/results/robustness.md), where CleanRL's
# settings (_DISCRETE_TUNED) left 2 to 4 of the 16 below 475.
_CARTPOLE_TUNED: dict[str, Any] = {
    **_DISCRETE_TUNED,
    "rollout_length": 32,
    "num_minibatches": 1,
    "update_epochs": 10,
    "gamma": 0.98,
    "gae_lambda": 0.8,
    "ent_coef": 0.0,
    "lr": 1e-3,
}
# The grid worlds of XLand-MiniGrid and NAVIX (uint8 id grids, 6-7 actions,
# sparse reward at the goal): rejax's PPO settings for NAVIX's Empty-6x6
# (rejax configs/navix/empty_6x6.yaml: 16 envs x 256 steps, 4 epochs x 16
# minibatches, lr 3e-4, gamma 0.99, GAE 0.9, entropy 0.01, gradient norm 1,
# observation normalization, relu) at rejax's 1,048,576 steps.
_GRID_WORLD_TUNED: dict[str, Any] = {
    **_DISCRETE_TUNED,
    "num_envs": 16,
    "rollout_length": 256,
    "update_epochs": 4,
    "num_minibatches": 16,
    "lr": 3e-4,
    "gae_lambda": 0.9,
    "max_grad_norm": 1.0,
    "activation": "relu",
    "normalize_obs": True,
    "total_timesteps": 1_048_576,
}
# Pgx's games against random opponents (masked moves, reward at the end):
# CleanRL's discrete settings without observation normalization (boolean
# boards), with more envs, shorter rollouts and a higher rate (a search on
# tic_tac_toe and connect_four, 3 seeds: training return 0.93 and 0.95 against
# 0.7 and 0.8 with CleanRL's 8 x 128 at 2.5e-4; results in benchmarks/README).
_BOARD_GAME_TUNED: dict[str, Any] = {
    **_DISCRETE_TUNED,
    "normalize_obs": False,
    "num_envs": 64,
    "rollout_length": 32,
    "num_minibatches": 8,
    "lr": 3e-3,
}
# Jumanji's tasks (dict observations, masked or multi-part actions): the
# structured network over the whole observation, CleanRL's discrete settings
# with reward normalization (Game2048's rewards are merged tile values, up to
# thousands), 64 envs x 16 steps and a rate of 1e-3 (Game2048, 3 seeds).
_JUMANJI_TUNED: dict[str, Any] = {
    **_DISCRETE_TUNED,
    "network": "structured",
    "activation": "relu",
    "normalize_reward": True,
    "num_envs": 64,
    "rollout_length": 16,
    "lr": 1e-3,
    "total_timesteps": 1_000_000,
}
# Per-family changes to a preset, for an env of the family (``FAMILY/NAME``)
# that ENV_OVERRIDES does not list by name.
FAMILY_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("tuned", "xminigrid"): _GRID_WORLD_TUNED,
    ("tuned", "navix"): _GRID_WORLD_TUNED,
    ("tuned", "pgx"): _BOARD_GAME_TUNED,
    ("tuned", "jumanji"): _JUMANJI_TUNED,
}
ENV_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    **{
        ("tuned", f"playground/{task}"): DM_CONTROL_CLEANRL for task in DM_CONTROL_TASKS
    },
    ("tuned", "playground/CartpoleBalance"): _DM_CONTROL_CARTPOLE_TUNED,
    ("tuned", "playground/CartpoleSwingup"): _DM_CONTROL_CARTPOLE_TUNED,
    ("tuned", "playground/PointMass"): _DM_CONTROL_WIDE_EXPLORING_TUNED,
    ("tuned", "playground/PendulumSwingup"): _DM_CONTROL_EXPLORING_TUNED,
    ("tuned", "playground/AcrobotSwingup"): _DM_CONTROL_WIDE_EXPLORING_TUNED,
    ("tuned", "playground/ReacherEasy"): _REACHER_TUNED,
    ("tuned", "CartPole-v1"): _CARTPOLE_TUNED,
    # Acrobot's reset observations are nearly constant: early running statistics
    # blow its inputs up, and 3 of 8 seeds never learned with normalization.
    ("tuned", "Acrobot-v1"): {**_DISCRETE_TUNED, "normalize_obs": False},
    **{("tuned", game): _MINATAR_TUNED for game in MINATAR_GAMES},
    ("tuned", "MountainCarContinuous-v0"): dict(
        gamma=0.99, init_log_std=0.5, total_timesteps=1_000_000
    ),
}
