"""Sokoban: push every box onto a goal.

Rules told to the player: the warehouse is a grid of # (wall), space (floor), . (goal), $ (box),
* (box on a goal), @ (you) and + (you on a goal). Each move ([up], [down], [left], [right]; also
[U]/[D]/[L]/[R]) walks one cell; walking into a box pushes it one cell if the cell behind it is free
floor or goal. Boxes cannot be pulled, and a push into a wall or another box does nothing (the move
still counts). The level is solved when every box is on a goal. A box pushed into a corner may never
move again; the episode then simply runs on until the move limit.

Levels are generated seeded and solvable by `sokoban_levels.generate_level` (reverse play from a
solved position, kept only if the solver solves it). A custom level can be passed as
`reset(options={"level": "#####\\n#@$.#\\n#####"})`.

Expert: the push-optimal solver `sokoban_levels.solve`; its plan is cached for every state along it
and replanned whenever the player leaves it. When no plan is known (a deadlock), the expert names a
move that changes the position.

Rewards: sparse (default) 1.0 when solved, else 0.0. `shaped=True`: progress = the fraction of the
boxes that started off a goal which are now on one; see `frozenlake.Progress` (0.5 * new best
progress, topped up to 1.0 on success; a failure returns < 0.5).
"""

from __future__ import annotations

import hashlib
from typing import Any

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.grid import DIRECTIONS, Progress, check_difficulty, parse_direction, render_grid
from palaestra.envs.games.parsing import MOVE_FORMAT
from palaestra.envs.games.sokoban_levels import (
    SOLVER_LIMIT,
    SPECS,
    Level,
    LevelSpec,
    generate_level,
    has_cell,
    make_level,
    parse_level,
    reach,
    render_level,
    solve,
    walk,
)

__all__ = [
    "SOLVER_LIMIT",
    "SPECS",
    "Level",
    "LevelSpec",
    "SokobanEnv",
    "generate_level",
    "parse_level",
    "solve",
]


class SokobanEnv(TextEnv):
    """Sokoban on generated solvable levels (see the module docstring).

    Args:
        difficulty: "easy" (6x6 room, 1 box), "medium" (7x7, 2 boxes) or "hard" (8x8, 3 boxes); bigger
            rooms also get more inner walls, a longer scramble and more pushes.
        shaped: add progress rewards; False: 1.0 when solved else 0.0.
        max_steps: moves allowed (format errors count); default 40 / 80 / 120 by difficulty.
        render_mode: None or "ansi".

    Raises:
        ValueError: an unknown difficulty or max_steps < 1.
    """

    def __init__(
        self,
        *,
        difficulty: str = "medium",
        shaped: bool = False,
        max_steps: int | None = None,
        render_mode: str | None = None,
    ):
        self.difficulty = check_difficulty(difficulty)
        self.level_spec = SPECS[difficulty]
        steps = max_steps if max_steps is not None else self.level_spec.max_steps
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"max_steps={max_steps!r}; it must be an integer >= 1")
        super().__init__(max_turns=steps, render_mode=render_mode)
        self._left = steps
        self.shaped = bool(shaped)
        self.system_prompt = (
            "You are playing Sokoban: push every box onto a goal. Legend: # wall, space floor, . goal, "
            "$ box, * box on a goal, @ you, + you on a goal. Rows are numbered from 0 at the top, columns "
            "from 0 at the left. Each turn move one cell: [up], [down], [left] or [right] ([U], [D], [L], "
            "[R] work too). Walking into a box pushes it one cell if the cell behind it is floor or a "
            "goal; you cannot pull boxes, and you cannot push a box into a wall or another box (the move "
            "then does nothing but still counts). The puzzle is solved when every box is on a goal; a "
            f"box stuck in a corner off a goal can never be saved. You have {steps} moves. "
            + MOVE_FORMAT.format(example="left")
        )
        self.level = make_level(1, 1, 0, 0)
        self.boxes, self.player = 0, 0
        self._plans: dict[tuple[int, int], list[tuple[int, int]] | None] = {}
        self._progress, self._start_on_goal = Progress(), 0
        self._names: dict[int, str] = {}

    # -- solver cache -----------------------------------------------------------------------------
    def _remember(self, boxes: int, player: int, plan: list[tuple[int, int]] | None) -> None:
        """Cache `plan` for this position and every position along it."""
        self._plans[(boxes, reach(self.level, player, boxes))] = plan
        if plan is None:
            return
        for i, (b, d) in enumerate(plan):
            boxes, player = boxes ^ (1 << b) | (1 << (b + d)), b
            self._plans[(boxes, reach(self.level, player, boxes))] = plan[i + 1 :]

    def expert_action(self) -> str:
        """The next move of a push-optimal solution from here (replanned when needed)."""
        key = (self.boxes, reach(self.level, self.player, self.boxes))
        if key not in self._plans:
            self._remember(self.boxes, self.player, solve(self.level, self.boxes, self.player))
        plan = self._plans[key]
        if plan:
            b, d = plan[0]
            path = walk(self.level, self.player, self.boxes, b - d)
            if path is not None:
                return f"[{self._names[(path or [d])[0]]}]"
        for d, name in self._names.items():  # no plan: any move that changes the position
            if has_cell(self.level.floor & ~self.boxes, self.player + d) or (
                has_cell(self.boxes, self.player + d)
                and has_cell(self.level.floor & ~self.boxes, self.player + 2 * d)
            ):
                return f"[{name}]"
        return "[up]"

    # -- views ------------------------------------------------------------------------------------
    def on_goal(self) -> int:
        return (self.boxes & self.level.goals).bit_count()

    def _observation(self, message: str = "") -> str:
        grid = render_grid(render_level(self.level, self.boxes, self.player), sep="")
        status = f"Boxes on goals: {self.on_goal()}/{self.boxes.bit_count()}. Moves left: {self._left}."
        return "\n".join(part for part in (message, grid, status) if part)

    def _info(self) -> dict[str, Any]:
        return {"expert_action": self.expert_action(), "legal_actions": [f"[{name}]" for name in DIRECTIONS]}

    # -- TextEnv hooks ----------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self._left = self.max_turns  # moves left, as the observations report it
        options = dict(options or {})
        custom = options.pop("level", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; SokobanEnv accepts 'level'")
        self._plans = {}
        if custom is not None:
            self.level, self.boxes, self.player = parse_level(str(custom))
        else:
            self.level, self.boxes, self.player, plan = generate_level(self.np_random, self.level_spec)
            self._remember(self.boxes, self.player, plan)
        self._names = {d: name for name, d in self.level.deltas().items()}
        text = "\n".join(render_level(self.level, self.boxes, self.player))
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        task_id = f"sokoban-{'custom' if custom is not None else self.difficulty}-{digest}"
        self._progress, self._start_on_goal = Progress(), self.on_goal()
        observation = "Push every box onto a goal.\n" + self._observation()
        return observation, {"task_id": task_id, **self._info()}

    def _move(self, name: str) -> str:
        """Apply one move; returns what happened."""
        d = self.level.deltas()[name]
        target, free = self.player + d, self.level.floor & ~self.boxes
        if has_cell(self.boxes, target):
            beyond = target + d
            if not has_cell(free, beyond):
                what = "another box" if has_cell(self.boxes, beyond) else "a wall"
                r, c = self.level.coords(target)
                return (
                    f"The box at row {r}, column {c} cannot move {name}: {what} is behind it. Nothing moved."
                )
            self.boxes = self.boxes ^ (1 << target) | (1 << beyond)
            self.player = target
            return f"You pushed the box {name}."
        if not has_cell(free, target):
            return f"You walked into a wall moving {name}. Nothing moved."
        self.player = target
        return f"You moved {name}."

    def _step(self, action: str) -> StepOutcome:
        self._left = self.max_turns - self.turn - 1  # TextEnv counts this reply after _step
        name, error = parse_direction(action)
        if name is None:
            note = f"Invalid move: {error}. " + MOVE_FORMAT.format(example="left")
            return StepOutcome(self._observation(note), format_error=error, info=self._info())
        note = self._move(name)
        success = self.boxes & ~self.level.goals == 0
        if success:
            note += " Every box is on a goal. Solved!"
        if self.shaped:
            off = self.boxes.bit_count() - self._start_on_goal
            progress = (self.on_goal() - self._start_on_goal) / max(off, 1)
            reward = self._progress.reward(progress, success=success)
        else:
            reward = float(success)
        return StepOutcome(
            self._observation(note), reward=reward, terminated=success, success=success, info=self._info()
        )
