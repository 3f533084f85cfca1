"""A faithful PyTorch port of the "PPO for beginners" tutorial (its algorithm
as ppo_jax/config/README.md, "The tutorial preset", describes it), written for this
project's speed comparison. Single gymnasium env, Python rollout loop, whole episodes
until the batch is full, fixed covariance diag(0.5), rewards-to-go, normalized
advantages, full-batch actor and critic updates with two Adams.

    python benchmarks/tutorial_torch.py --total-timesteps 20000

Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import MultivariateNormal


class FeedForwardNN(nn.Module):
    """Linear(in, 64) -> ReLU -> Linear(64, 64) -> ReLU -> Linear(64, out)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.layer1 = nn.Linear(in_dim, 64)
        self.layer2 = nn.Linear(64, 64)
        self.layer3 = nn.Linear(64, out_dim)

    def forward(self, obs):
        if isinstance(obs, np.ndarray):
            obs = torch.tensor(obs, dtype=torch.float)
        x = torch.relu(self.layer1(obs))
        x = torch.relu(self.layer2(x))
        return self.layer3(x)


class TutorialPPO:
    """The tutorial's algorithm with its Pendulum hyperparameters."""

    def __init__(self, env, seed: int = 0):
        torch.manual_seed(seed)
        self.env = env
        self.seed = seed
        self.obs_dim = env.observation_space.shape[0]
        self.act_dim = env.action_space.shape[0]
        self.timesteps_per_batch = 2048
        self.max_timesteps_per_episode = 200
        self.n_updates_per_iteration = 10
        self.lr = 3e-4
        self.gamma = 0.99
        self.clip = 0.2
        self.actor = FeedForwardNN(self.obs_dim, self.act_dim)
        self.critic = FeedForwardNN(self.obs_dim, 1)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=self.lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=self.lr)
        self.cov_mat = torch.diag(torch.full((self.act_dim,), 0.5))
        self.episodes = 0
        self.returns: list[float] = []

    def get_action(self, obs):
        mean = self.actor(obs)
        dist = MultivariateNormal(mean, self.cov_mat)
        action = dist.sample()
        return action.detach().numpy(), dist.log_prob(action).detach()

    def rollout(self):
        """Whole episodes until at least timesteps_per_batch steps."""
        obs_batch, act_batch, logp_batch, rews_batch = [], [], [], []
        t = 0
        while t < self.timesteps_per_batch:
            ep_rews = []
            obs, _ = self.env.reset(seed=self.seed + self.episodes)
            self.episodes += 1
            for _ in range(self.max_timesteps_per_episode):
                t += 1
                obs_batch.append(obs)
                action, log_prob = self.get_action(obs)
                obs, reward, terminated, truncated, _ = self.env.step(action)
                ep_rews.append(reward)
                act_batch.append(action)
                logp_batch.append(log_prob)
                if terminated or truncated:
                    break
            rews_batch.append(ep_rews)
            self.returns.append(float(np.sum(ep_rews)))
        rtgs: list[float] = []
        for ep_rews in reversed(rews_batch):
            discounted = 0.0
            for rew in reversed(ep_rews):
                discounted = rew + discounted * self.gamma
                rtgs.insert(0, discounted)
        return (
            torch.tensor(np.array(obs_batch), dtype=torch.float),
            torch.tensor(np.array(act_batch), dtype=torch.float),
            torch.stack(logp_batch),
            torch.tensor(rtgs, dtype=torch.float),
            t,
        )

    def evaluate(self, obs, acts):
        values = self.critic(obs).squeeze()
        dist = MultivariateNormal(self.actor(obs), self.cov_mat)
        return values, dist.log_prob(acts)

    def learn(self, total_timesteps: int) -> dict:
        t_so_far, rollout_s, update_s = 0, 0.0, 0.0
        while t_so_far < total_timesteps:
            t0 = time.perf_counter()
            obs, acts, old_logp, rtgs, steps = self.rollout()
            t1 = time.perf_counter()
            t_so_far += steps
            values, _ = self.evaluate(obs, acts)
            advantages = rtgs - values.detach()
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-10)
            for _ in range(self.n_updates_per_iteration):
                values, logp = self.evaluate(obs, acts)
                ratios = torch.exp(logp - old_logp)
                surr1 = ratios * advantages
                surr2 = torch.clamp(ratios, 1 - self.clip, 1 + self.clip) * advantages
                actor_loss = (-torch.min(surr1, surr2)).mean()
                critic_loss = nn.MSELoss()(values, rtgs)
                self.actor_optim.zero_grad()
                actor_loss.backward(retain_graph=True)
                self.actor_optim.step()
                self.critic_optim.zero_grad()
                critic_loss.backward()
                self.critic_optim.step()
            rollout_s += t1 - t0
            update_s += time.perf_counter() - t1
        return {"steps": t_so_far, "rollout_s": rollout_s, "update_s": update_s}


def run(total_timesteps: int, seed: int = 0) -> dict:
    """Train; returns steps, seconds, steps/second and the time split."""
    env = gym.make("Pendulum-v1")
    ppo = TutorialPPO(env, seed)
    t = time.perf_counter()
    result = ppo.learn(total_timesteps)
    seconds = time.perf_counter() - t
    env.close()
    return {
        **result,
        "seconds": seconds,
        "sps": result["steps"] / seconds,
        "last_returns": float(np.mean(ppo.returns[-11:])),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--total-timesteps", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    r = run(args.total_timesteps, args.seed)
    print(
        f"tutorial (PyTorch): {r['steps']:,} steps in {r['seconds']:.1f} s = "
        f"{r['sps']:,.0f} steps/s (rollout {r['rollout_s'] / r['seconds']:.0%} "
        f"of the time)"
    )
