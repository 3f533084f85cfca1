"""The best expected return against pgx/tic_tac_toe's random opponent, by
exhaustive search: the ceiling for ``pgx-random-500k``'s tic_tac_toe row.

    python benchmarks/tic_tac_toe_optimum.py

The learner maximizes, the opponent moves uniformly at random among the legal
moves (as ppo_jax's pgx adapter plays it); return +1 win, -1 loss, 0 draw.
pgx seats the learner first in half the games, so the ceiling is the mean of
the two openings' values.
"""

from __future__ import annotations

from functools import cache

LINES = [
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
]


def winner(board: tuple[int, ...]) -> int:
    """+1 (the learner's three in a row), -1 (the opponent's) or 0."""
    for a, b, c in LINES:
        if board[a] != 0 and board[a] == board[b] == board[c]:
            return board[a]
    return 0


@cache
def value(board: tuple[int, ...], learner_to_move: bool) -> float:
    """Expected return from ``board`` (1 learner, -1 opponent, 0 empty)."""
    won = winner(board)
    if won or 0 not in board:
        return float(won)
    player = 1 if learner_to_move else -1
    children = [
        value(board[:i] + (player,) + board[i + 1 :], not learner_to_move)
        for i, cell in enumerate(board)
        if cell == 0
    ]
    return max(children) if learner_to_move else sum(children) / len(children)


def main() -> None:
    empty = (0,) * 9
    first, second = value(empty, True), value(empty, False)
    print(
        f"learner first: {first:.4f}, second: {second:.4f}, "
        f"half each (pgx's seating): {(first + second) / 2:.4f}"
    )


if __name__ == "__main__":
    main()
