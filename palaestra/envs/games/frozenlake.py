"""FrozenLake: walk from S to G across a frozen lake without falling into a hole.

Rules told to the player: the map is a grid of S (start), F (frozen, safe), H (hole), G (goal) with
P marking the player. Each move ([up], [down], [left], [right]; also [U]/[D]/[L]/[R]) goes one cell;
a move off the edge leaves the player in place. Reaching G wins; stepping into a hole loses at once.
With `slippery=True` the ice is slippery: a move goes to one of the two sideways directions with
probability `SLIP_PROBABILITY` (half each side), drawn from the env's seeded generator.

Maps are random (seeded): S and G far apart, each other cell a hole with a difficulty's probability;
a map is kept only if a BFS finds a path from S to G. Difficulty: "easy" 4x4, "medium" 6x6, "hard" 8x8
(more holes as the map grows). A custom map can be passed as `reset(options={"map": [...rows]})`.

Expert: without slip, the BFS shortest path to G; with slip, the policy of value iteration (the move
that maximises the discounted chance of reaching G), recomputed for the map at reset and read at
each step, i.e. replanned from wherever the ice took the player. It always wins without slip; with
slip it won 0.94 / 0.81 / 0.74 of seeds 0-99 (easy / medium / hard).

Rewards: sparse (default) 1.0 on reaching G, else 0.0. `shaped=True` adds progress rewards, see
`Progress`: 0.5 * the new best fraction of the initial BFS distance covered, topped up to exactly 1.0
on success; a failed episode returns less than 0.5, so returns lie in [0, 1] either way.

This module also holds the helpers the grid games share: `parse_direction`, `render_grid`, `Progress`.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.grid import (
    DIRECTIONS,
    Progress,
    check_difficulty,
    parse_direction,
    render_grid,
)
from palaestra.envs.games.parsing import MOVE_FORMAT

__all__ = ["SLIP_PROBABILITY", "FrozenLakeEnv"]

_SIDEWAYS = {
    "up": ("left", "right"),
    "down": ("left", "right"),
    "left": ("up", "down"),
    "right": ("up", "down"),
}
SLIP_PROBABILITY = 0.2
"""With `slippery=True`: the chance that a move goes sideways instead (half to each side)."""
_SIZES = {"easy": 4, "medium": 6, "hard": 8}
_HOLE_PROBABILITY = {"easy": 0.15, "medium": 0.2, "hard": 0.25}
_MAX_STEPS = {"easy": 12, "medium": 24, "hard": 40}
_DISCOUNT = 0.97


def _bfs_distances(rows: Sequence[str], target: tuple[int, int]) -> dict[tuple[int, int], int]:
    """Moves from every non-hole cell to `target` (unreachable cells are absent)."""
    dist, queue = {target: 0}, deque([target])
    while queue:
        r, c = queue.popleft()
        for dr, dc in DIRECTIONS.values():
            nr, nc = r + dr, c + dc
            if (
                0 <= nr < len(rows)
                and 0 <= nc < len(rows[0])
                and rows[nr][nc] != "H"
                and (nr, nc) not in dist
            ):
                dist[(nr, nc)] = dist[(r, c)] + 1
                queue.append((nr, nc))
    return dist


def _find(rows: Sequence[str], char: str) -> tuple[int, int]:
    return next((r, row.index(char)) for r, row in enumerate(rows) if char in row)


class FrozenLakeEnv(TextEnv):
    """FrozenLake on a random map with a guaranteed path (see the module docstring).

    Args:
        difficulty: "easy" (4x4), "medium" (6x6) or "hard" (8x8).
        slippery: moves slip sideways with probability `SLIP_PROBABILITY`.
        shaped: add progress rewards (see `Progress`); False: 1.0 on success else 0.0.
        max_steps: moves allowed (format errors count); default 12 / 24 / 40 by difficulty, doubled
            when slippery.
        render_mode: None or "ansi".

    Raises:
        ValueError: an unknown difficulty or max_steps < 1.
    """

    def __init__(
        self,
        *,
        difficulty: str = "medium",
        slippery: bool = False,
        shaped: bool = False,
        max_steps: int | None = None,
        render_mode: str | None = None,
    ):
        self.difficulty = check_difficulty(difficulty)
        steps = max_steps if max_steps is not None else _MAX_STEPS[difficulty] * (2 if slippery else 1)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"max_steps={max_steps!r}; it must be an integer >= 1")
        super().__init__(max_turns=steps, render_mode=render_mode)
        self._left = steps
        self.slippery, self.shaped = bool(slippery), bool(shaped)
        slip = (
            f" The ice is slippery: each move goes sideways instead (to the left or right of the direction "
            f"you chose, half each) with probability {SLIP_PROBABILITY:g}."
            if self.slippery
            else ""
        )
        self.system_prompt = (
            "You are crossing a frozen lake on a grid. Legend: S start, F frozen ice (safe), H hole, "
            "G goal, P you. Rows are numbered from 0 at the top, columns from 0 at the left. "
            "Each turn move one cell: [up] (row - 1), [down] (row + 1), [left] (column - 1) or [right] "
            "(column + 1); [U], [D], [L], [R] work too. A move off the edge leaves you where you are. "
            "Reach G to win; stepping into a hole ends the game with a loss. "
            f"You have {steps} moves.{slip} " + MOVE_FORMAT.format(example="down")
        )
        self.rows: list[str] = []
        self.position = (0, 0)
        self._goal = (0, 0)
        self._start_distance = 0
        self._distance: dict[tuple[int, int], int] = {}
        self._policy: dict[tuple[int, int], str] = {}
        self._progress = Progress()

    # -- map --------------------------------------------------------------------------------------
    def _generate(self) -> list[str]:
        size, p = _SIZES[self.difficulty], _HOLE_PROBABILITY[self.difficulty]
        rng = self.np_random
        while True:  # a valid map comes within a few draws
            start = (int(rng.integers(size)), int(rng.integers(size)))
            goal = (int(rng.integers(size)), int(rng.integers(size)))
            if abs(start[0] - goal[0]) + abs(start[1] - goal[1]) < size:
                continue
            holes = rng.random((size, size)) < p
            rows = [
                "".join(
                    "S" if (r, c) == start else "G" if (r, c) == goal else "H" if holes[r, c] else "F"
                    for c in range(size)
                )
                for r in range(size)
            ]
            reach = _bfs_distances(rows, goal).get(start)
            if reach is not None and reach <= self.max_turns - 2:
                return rows

    def _set_map(self, rows: list[str]) -> None:
        self.rows = rows
        self.position, self._goal = _find(rows, "S"), _find(rows, "G")
        self._distance = _bfs_distances(rows, self._goal)
        if self.position not in self._distance:
            raise ValueError(f"map={rows!r} has no path from S to G")
        self._start_distance = self._distance[self.position]
        self._policy = self._slippery_policy() if self.slippery else {}

    def _slippery_policy(self) -> dict[tuple[int, int], str]:
        """Value iteration: the move maximising the discounted probability of reaching G."""
        cells = [(r, c) for r in range(len(self.rows)) for c in range(len(self.rows[0]))]
        value = {cell: 0.0 for cell in cells}
        value[self._goal] = 1.0
        safe = [cell for cell in cells if self.rows[cell[0]][cell[1]] not in "HG"]
        policy: dict[tuple[int, int], str] = {}
        for _ in range(200):
            delta = 0.0
            for cell in safe:
                scores = {name: self._expected(cell, name, value) for name in DIRECTIONS}
                best = max(scores, key=lambda name: (scores[name], -list(DIRECTIONS).index(name)))
                new = _DISCOUNT * scores[best]
                delta, value[cell], policy[cell] = max(delta, abs(new - value[cell])), new, best
            if delta < 1e-9:
                break
        return policy

    def _expected(self, cell: tuple[int, int], name: str, value: dict[tuple[int, int], float]) -> float:
        side = SLIP_PROBABILITY / 2
        left, right = _SIDEWAYS[name]
        return (
            (1 - SLIP_PROBABILITY) * value[self._moved(cell, name)]
            + side * value[self._moved(cell, left)]
            + side * value[self._moved(cell, right)]
        )

    def _moved(self, cell: tuple[int, int], name: str) -> tuple[int, int]:
        dr, dc = DIRECTIONS[name]
        r, c = cell[0] + dr, cell[1] + dc
        return (r, c) if 0 <= r < len(self.rows) and 0 <= c < len(self.rows[0]) else cell

    # -- views ------------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """A strong reply now: the BFS shortest-path move, or the value-iteration move when slippery."""
        if self.slippery and self.position in self._policy:
            return f"[{self._policy[self.position]}]"
        here = self._distance.get(self.position)
        for name in DIRECTIONS:
            nxt = self._moved(self.position, name)
            if here is not None and self._distance.get(nxt, here) < here:
                return f"[{name}]"
        return "[up]"

    def board(self) -> str:
        rows = [list(row) for row in self.rows]
        rows[self.position[0]][self.position[1]] = "P"
        return render_grid(["".join(row) for row in rows])

    def _observation(self, message: str = "") -> str:
        left = self._left
        r, c = self.position
        status = f"You are at row {r}, column {c}. Moves left: {left}."
        return "\n".join(part for part in (message, self.board(), status) if part)

    def _info(self) -> dict[str, Any]:
        return {
            "expert_action": self.expert_action(),
            "legal_actions": [f"[{name}]" for name in DIRECTIONS],
            "position": self.position,
        }

    # -- TextEnv hooks ----------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self._left = self.max_turns  # moves left, as the observations report it
        options = dict(options or {})
        custom = options.pop("map", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; FrozenLakeEnv accepts 'map'")
        if custom is not None:
            rows = [str(row) for row in custom]
            if not rows or len({len(row) for row in rows}) != 1 or set("".join(rows)) - set("SFHG"):
                raise ValueError(f"map={custom!r}; expected equal-length rows of S, F, H, G")
            if "".join(rows).count("S") != 1 or "".join(rows).count("G") != 1:
                raise ValueError(f"map={custom!r}; it needs exactly one S and one G")
        else:
            rows = self._generate()
        self._set_map(rows)
        digest = hashlib.sha1("\n".join(rows).encode()).hexdigest()[:12]
        kind = "custom" if custom is not None else self.difficulty
        task_id = f"frozenlake-{kind}{'-slippery' if self.slippery else ''}-{digest}"
        self._progress = Progress()
        observation = "Find your way to G.\n" + self._observation()
        return observation, {"task_id": task_id, **self._info()}

    def _step(self, action: str) -> StepOutcome:
        self._left = self.max_turns - self.turn - 1  # TextEnv counts this reply after _step
        direction, error = parse_direction(action)
        if direction is None:
            note = f"Invalid move: {error}. " + MOVE_FORMAT.format(example="down")
            return StepOutcome(self._observation(note), format_error=error, info=self._info())
        actual = direction
        if self.slippery and self.np_random.random() < SLIP_PROBABILITY:
            actual = _SIDEWAYS[direction][int(self.np_random.integers(2))]
        before = self.position
        self.position = self._moved(before, actual)
        tile = self.rows[self.position[0]][self.position[1]]
        note = f"You slipped and went {actual} instead." if actual != direction else f"You moved {actual}."
        if self.position == before:
            note = f"You tried to move {actual} but the edge stops you."
        success, terminated = tile == "G", tile in "HG"
        if tile == "H":
            note += " You fell into a hole. Game over."
        elif success:
            note += " You reached the goal. You win!"
        start = self._start_distance
        progress = 1.0 - self._distance.get(self.position, start) / max(start, 1)
        reward = self._progress.reward(progress, success=success) if self.shaped else float(success)
        if tile == "H":
            reward = 0.0
        return StepOutcome(
            self._observation(note),
            reward=reward,
            terminated=terminated,
            success=success,
            info=self._info(),
        )
