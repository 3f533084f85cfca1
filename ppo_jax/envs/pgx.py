"""The Pgx family: ``pgx/<name>``, board and card games in JAX (Koyamada et
al., NeurIPS 2023), each played by the learner against built-in opponents that
move uniformly at random among the legal moves.

Optional extra: ``pip install -e '.[pgx]'`` (``pgx>=2.6,<2.7``).

Games: the names of ``pgx.available_envs()`` (pgx 2.6.0) but MinAtar's:
``tic_tac_toe``, ``connect_four``, ``othello``, ``hex``, ``go_9x9``,
``go_19x19``, ``chess``, ``gardner_chess``, ``shogi``, ``animal_shogi``,
``backgammon``, ``kuhn_poker``, ``leduc_holdem`` (two players),
``sparrow_mahjong`` (three) and ``2048`` (one: no opponent). All build
offline: nothing is downloaded (pgx's baseline models, which are, are not
used). Refused: the ``minatar-*`` games (single-player Atari-like games, not
board games, that ppo_jax takes from gymnax: ``gymnax/Breakout-MinAtar``, ...)
and ``bridge_bidding``, whose deals and their scores are a table that must be
downloaded first (pgx's ``make`` refuses it too).

Players: the learner is pgx's player 0; every other player is a random
opponent. pgx's ``init`` draws the seating from the reset key: which player
moves first (sparrow_mahjong: who deals), so the learner moves first in half
the episodes (a third in sparrow_mahjong) and learns both sides. ``reset``
plays the opponents' moves until it is the learner's turn, ``step`` plays the
learner's move and then the opponents' replies until it is the learner's turn
again or the game is over; several moves in a row by one player (backgammon:
one action per checker moved) are played the same way. A game the opponents
end before the learner's first move (possible only in sparrow_mahjong: a
ron on an opponent's discard; no other game ends on its first move) is dealt
again.

Observations: ``MaskedObservation(obs, legal_action_mask)``: pgx's
observation from the learner's view, as pgx gives it (bool for most games,
e.g. ``[3, 3, 2]`` for tic_tac_toe: the learner's marks, the opponent's;
float32 for chess, gardner_chess and animal_shogi, int32 for backgammon;
ppo_jax's networks cast to float32 themselves), and pgx's legal moves, bool
``[num_actions]``:
the policy never samples an illegal one. An illegal action (from a policy
that ignores the mask) loses the game, as in pgx: terminated, reward -1. In
``info["final_observation"]`` the observation the game ended on, also from the
learner's view (pgx's own ``observation`` there is the player to move's), its
mask all True at a finished game (pgx's convention).

Actions: ``Discrete(num_actions)``, pgx's action ids (9 cells for tic_tac_toe,
7 columns for connect_four, 4672 for chess, ...). Rewards: float32, the
learner's entry of pgx's ``rewards`` summed over its move and the opponents'
replies: +1 win, -1 loss, 0 draw (and 0 before the end) in the board games;
backgammon: +-1, +-2 for a gammon, +-3 for a backgammon; kuhn_poker and
leduc_holdem: chips won or lost; sparrow_mahjong: pgx's points; 2048: the
values of the tiles merged by the move. In tic_tac_toe, random moves
against the random opponent score about 0 over both sides (20000 games: wins
43%, draws 13%, losses 44%): +0.28 moving first (57% won, 30% lost), -0.29
second; :func:`outcomes` counts wins, draws and losses of returns.

Episodes: one game; terminated when it is over (pgx's own limits included: go
ends after ``2 * size * size`` moves of both players, chess and shogi after
512, gardner_chess and animal_shogi after 256). Truncated by pgx's
truncation (which no game of pgx 2.6 sets) or by the time limit
``params.max_steps_in_episode``: the learner's moves per episode, which
``max_episode_steps`` overrides and evaluation runs to. Its default
(:data:`DEFAULT_LIMITS`) is, for the games whose length is bounded, the most
moves of *both* players a game can take (9 for tic_tac_toe, 42 connect_four,
122 hex, 162 go_9x9, 512 chess, 28 sparrow_mahjong, ...), which the
learner's share never reaches: the limit only ends a game early when set
lower. Two games have no bound: backgammon
(1000; 512 random games lasted at most 564 moves of both players, 201 on
average) and 2048 (10000 moves, all the learner's: the tiles of a game
that long sum to about 22000, one new 2 or 4 a move; random play lasts about
120 moves).

Keys: ``reset(key)``: ``init_key, reply_key = split(key)``: pgx's
``init(init_key)``, then the opponents' moves from ``reply_key``.
``step(key)``: ``move_key, reply_key, reset_key = split(key, 3)``: pgx's step
of the learner's move takes ``move_key`` (dice in backgammon, tiles in
2048), the replies ``reply_key``, a finished game is replaced by
``reset(reset_key)``'s. The opponents' ``i``-th move from a key ``k``:
``choice_key, step_key = split(fold_in(k, i))``, :func:`random_legal_action`
of ``choice_key`` and pgx's step with ``step_key``; in a reset, a game over
at that point is dealt again instead, from ``init(fold_in(init_key, i))``.

Costs: each step runs pgx's step for every move of the learner and the
opponents, pgx's ``init`` (every env computes a new game and keeps it only
where its game ended, as gymnax's resets do), and one more
observation (the learner's view of the game as the step left it). The
opponents' moves are a ``lax.while_loop``: under ``vmap`` it runs as many
times as the env that needs most (backgammon: a turn of up to 4 checker
moves), each time for all envs. 1024 envs vmapped, a jitted scan of 100
random legal learner moves ran at about 0.8M steps/s on tic_tac_toe and
0.36M on connect_four, against 4.4M and 1.4M for pgx's bare step (with its
``experimental.auto_reset``): a step here is two moves (the learner's and a
reply) and a reset (2 CPU cores shared with other work).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from ppo_jax.config.schema import ConfigError
from ppo_jax.envs.contract import MaskedObservation, PyTree, select_where
from ppo_jax.envs.refusals import did_you_mean, refuse_backend, require_extra

LEARNER = 0  # pgx's player id of the learner; all others are random opponents

# Learner moves per episode before truncation, by game: for games of bounded
# length the most moves (both players' together) a game can take, which the
# learner alone never reaches (see the module docstring).
DEFAULT_LIMITS: dict[str, int] = {
    "tic_tac_toe": 9,  # the cells
    "connect_four": 42,  # the cells
    "othello": 128,  # the 60 placements with a pass between each
    "hex": 122,  # 121 cells and the swap
    "go_9x9": 162,  # pgx ends the game after 2 * 9 * 9 moves
    "go_19x19": 722,  # 2 * 19 * 19
    "chess": 512,  # pgx's (AlphaZero's) limit
    "shogi": 512,
    "gardner_chess": 256,
    "animal_shogi": 256,
    "kuhn_poker": 3,  # check, bet, call
    "leduc_holdem": 8,  # two rounds of at most 4 actions (two raises each)
    "sparrow_mahjong": 28,  # the tiles left to draw after the deal
    "backgammon": 1000,  # unbounded; random games: at most 564
    "2048": 10_000,  # unbounded; all moves are the learner's
}
# The MinAtar games (pgx's names) as gymnax names them.
MINATAR = {
    "asterix": "Asterix-MinAtar",
    "breakout": "Breakout-MinAtar",
    "freeway": "Freeway-MinAtar",
    "seaquest": "Seaquest-MinAtar",
    "space_invaders": "SpaceInvaders-MinAtar",
}


@struct.dataclass
class PgxParams:
    max_steps_in_episode: int  # learner moves before an episode is truncated


@struct.dataclass
class PgxState:
    # pgx's State of the game, always at the learner's turn (a finished game
    # is reset in the step that finished it).
    game: Any
    steps: jax.Array  # int32: the learner's moves in this episode


def random_legal_action(key: jax.Array, legal_action_mask: jax.Array) -> jax.Array:
    """A uniformly random legal action (int32) of a bool ``[num_actions]`` mask
    with at least one legal action."""
    logits = jnp.where(legal_action_mask, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def outcomes(returns: Any) -> dict[str, float]:
    """Fractions of episodes won, drawn and lost, ``{"win", "draw", "loss"}``,
    from their returns (> 0, 0, < 0): for the games that score +1, 0 or -1."""
    returns = jnp.asarray(returns)
    return {
        "win": float(jnp.mean(returns > 0)),
        "draw": float(jnp.mean(returns == 0)),
        "loss": float(jnp.mean(returns < 0)),
    }


class PgxEnv:
    """A pgx game against random opponents under the gymnax 1.x contract (see
    the module docstring): observations ``MaskedObservation(obs, mask)`` from
    the learner's view, actions ``Discrete(num_actions)``, rewards float32
    scalars (the learner's), terminated (game over) and truncated (time limit)
    bool scalars."""

    def __init__(self, env: Any, name: str):
        self.env = env  # a pgx.Env
        self.name = name
        # Shapes from a traced init (pgx's own num_actions runs init eagerly).
        game = jax.eval_shape(env.init, jax.random.key(0))
        self.num_actions = int(game.legal_action_mask.shape[0])
        self.obs_shape = tuple(game.observation.shape)
        self.obs_dtype = game.observation.dtype

    @property
    def default_params(self) -> PgxParams:
        return PgxParams(max_steps_in_episode=DEFAULT_LIMITS[self.name])

    def action_space(self, params: PyTree = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: PyTree = None) -> spaces.Box:
        """The observation's array (its mask aside): bool in [0, 1], other
        dtypes unbounded."""
        bounded = self.obs_dtype == jnp.bool_
        low, high = (0.0, 1.0) if bounded else (-jnp.inf, jnp.inf)
        return spaces.Box(low, high, self.obs_shape, self.obs_dtype)

    def _observe(self, game: Any) -> MaskedObservation:
        """The learner's view of ``game`` and its legal moves."""
        # pgx's observe(state, player_id) warns that its player_id is
        # deprecated; _observe is what it calls.
        obs = self.env._observe(game, jnp.int32(LEARNER))
        return MaskedObservation(obs, game.legal_action_mask)

    def _opponents(
        self, key: jax.Array, game: Any, deal_key: jax.Array | None = None
    ) -> tuple[Any, jax.Array]:
        """Random opponents' moves until the learner's turn or the game's end;
        ``(game, the learner's reward over them)``. With ``deal_key`` a game
        that ends is dealt again, until the learner's turn.

        Iteration ``i`` of the loop: an opponent's move (``choice_key,
        step_key = split(fold_in(key, i))``), or a new deal from
        ``fold_in(deal_key, i)``."""

        def over(game: Any) -> jax.Array:
            return jnp.logical_or(game.terminated, game.truncated)

        def waiting(carry: tuple[jax.Array, Any, jax.Array]) -> jax.Array:
            _, game, _ = carry
            opponents = game.current_player != LEARNER
            if deal_key is None:
                return jnp.logical_and(~over(game), opponents)
            return jnp.logical_or(over(game), opponents)

        def move(
            carry: tuple[jax.Array, Any, jax.Array],
        ) -> tuple[jax.Array, Any, jax.Array]:
            i, game, total = carry

            def reply() -> tuple[Any, jax.Array]:
                choice_key, step_key = jax.random.split(jax.random.fold_in(key, i))
                action = random_legal_action(choice_key, game.legal_action_mask)
                moved = self.env.step(game, action, step_key)
                return moved, moved.rewards[LEARNER]

            if deal_key is None:
                game, reward = reply()
            else:
                game, reward = jax.lax.cond(
                    over(game),
                    lambda: (
                        self.env.init(jax.random.fold_in(deal_key, i)),
                        jnp.float32(0.0),
                    ),
                    reply,
                )
            return i + 1, game, total + reward

        start = (jnp.int32(0), game, jnp.float32(0.0))
        _, game, total = jax.lax.while_loop(waiting, move, start)
        return game, total

    def _deal(
        self, key: jax.Array, game: Any = None, done: jax.Array | None = None
    ) -> Any:
        """A new game at the learner's first turn, from ``key`` (see the module
        docstring); with ``game``: itself where not ``done`` (at the learner's
        turn), so that a step resets only finished games."""
        init_key, reply_key = jax.random.split(key)
        start = self.env.init(init_key)
        if game is not None and done is not None:
            start = select_where(done, start, game)
        dealt, _ = self._opponents(reply_key, start, deal_key=init_key)
        return dealt

    def reset(
        self, key: jax.Array, params: PyTree
    ) -> tuple[MaskedObservation, PgxState]:
        game = self._deal(key)
        obs = MaskedObservation(game.observation, game.legal_action_mask)
        return obs, PgxState(game=game, steps=jnp.int32(0))

    def step(
        self, key: jax.Array, state: PgxState, action: jax.Array, params: PyTree
    ) -> tuple[
        MaskedObservation, PgxState, jax.Array, jax.Array, jax.Array, dict[str, Any]
    ]:
        move_key, reply_key, reset_key = jax.random.split(key, 3)
        game = self.env.step(state.game, jnp.asarray(action, jnp.int32), move_key)
        reward = game.rewards[LEARNER]
        game, replies = self._opponents(reply_key, game)
        reward = jnp.asarray(reward + replies, jnp.float32)
        steps = state.steps + 1
        terminated = jnp.asarray(game.terminated, jnp.bool_)
        at_limit = jnp.logical_or(game.truncated, steps >= params.max_steps_in_episode)
        truncated = jnp.logical_and(at_limit, ~terminated)
        done = jnp.logical_or(terminated, truncated)
        ended = self._observe(game)
        # A finished game (over, or at the limit) is replaced by reset(reset_key)'s.
        game = self._deal(reset_key, game, done)
        obs = MaskedObservation(game.observation, game.legal_action_mask)
        state = PgxState(game=game, steps=jnp.where(done, 0, steps))
        info = {"final_observation": ended}
        return obs, state, reward, terminated, truncated, info


def make(task: str, label: str, backend: str | None) -> tuple[PgxEnv, PgxParams]:
    """``(PgxEnv, params)`` of pgx's game ``task``; one sentence on errors.

    Raises:
        ConfigError: pgx not installed, a MinAtar game (gymnax has them),
            ``bridge_bidding`` (its table must be downloaded), an unknown name
            (with the closest game names) or any ``env_backend``; refused
            before anything is built.
    """
    require_extra("pgx", "Pgx", "pgx", label)
    pgx = importlib.import_module("pgx")
    names = [n for n in pgx.available_envs() if n in DEFAULT_LIMITS]
    if task.startswith("minatar-"):
        game = MINATAR.get(task.removeprefix("minatar-"), "Breakout-MinAtar")
        raise ConfigError(
            "env_name",
            label,
            f"a Pgx board or card game: ppo_jax takes the MinAtar games from "
            f"gymnax (gymnax/{game})",
        )
    if task == "bridge_bidding":
        raise ConfigError(
            "env_name",
            label,
            "a game that builds offline: bridge_bidding reads a table of deals "
            "and their scores that pgx downloads (download_dds_results) and "
            "ppo_jax does not",
        )
    if task not in names:
        raise ConfigError(
            "env_name",
            label,
            f"a Pgx game, one of {', '.join(names)}{did_you_mean(task, names)}",
        )
    refuse_backend(backend, label, "Pgx")
    env = PgxEnv(pgx.make(task), task)
    return env, env.default_params
