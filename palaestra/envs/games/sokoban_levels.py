"""Sokoban's levels: bit-mask boards, the push-optimal solver, and seeded generation of solvable levels.

A level's fixed part (floor, goals, dead squares) is a `Level`; the moving part is two ints, the box
mask and the player's cell.

Levels are generated in reverse (seeded): boxes start on random goals in a walled room with a few
random inner walls, and the player repeatedly walks to a random side of a random box and pulls it a
few cells (`SCRAMBLES` such scrambles per room; the one leaving the boxes farthest from the goals is
kept). The position is accepted only if the solver below solves it, with at least a difficulty's
number of pushes (`SPECS`) and within 3/4 of the move limit, so every generated level is solvable.
Generation takes ~1 / 6 / 22 ms (median, easy / medium / hard).

Solver: `solve` is A* over box positions and the player's reachable area, pruning dead squares and
2x2 freeze deadlocks, `SOLVER_LIMIT` expansions at most; `walk` and `plan_moves` turn its pushes
into moves.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from palaestra.envs.games.grid import DIRECTIONS

__all__ = [
    "SCRAMBLES",
    "SOLVER_LIMIT",
    "SPECS",
    "Level",
    "LevelSpec",
    "generate_level",
    "has_cell",
    "make_level",
    "parse_level",
    "plan_moves",
    "reach",
    "render_level",
    "solve",
    "walk",
]

SCRAMBLES = 6
"""Level generation: random reverse walks tried per room (the one leaving boxes farthest wins)."""
SOLVER_LIMIT = 20_000
"""Most states the solver expands before it gives up (returns None)."""


@dataclass(frozen=True)
class LevelSpec:
    """How a difficulty's levels are generated."""

    size: int  # the room is size x size cells, outer walls included
    boxes: int
    inner_walls: int
    scramble: int  # rounds of random pulls (see `_scramble`)
    min_pushes: int  # fewest pushes an accepted level needs
    max_steps: int  # moves allowed per episode


SPECS: dict[str, LevelSpec] = {
    "easy": LevelSpec(size=6, boxes=1, inner_walls=1, scramble=6, min_pushes=3, max_steps=40),
    "medium": LevelSpec(size=7, boxes=2, inner_walls=2, scramble=12, min_pushes=6, max_steps=80),
    "hard": LevelSpec(size=8, boxes=3, inner_walls=3, scramble=20, min_pushes=9, max_steps=120),
}


@dataclass(frozen=True)
class Level:
    """The fixed part of a level as bit masks over cells `r * stride + c`.

    `stride` is the width plus one: the extra column is never floor, so shifting a mask by one cell
    cannot wrap from one row to the next.
    """

    height: int
    width: int
    floor: int  # every non-wall cell
    goals: int
    dead: int  # floor cells from which no push sequence brings a box to a goal
    distance: tuple[int, ...]  # per cell: fewest pushes to a goal with no other box around (-1: dead)

    @property
    def stride(self) -> int:
        return self.width + 1

    def deltas(self) -> dict[str, int]:
        return {name: dr * self.stride + dc for name, (dr, dc) in DIRECTIONS.items()}

    def cell(self, r: int, c: int) -> int:
        return r * self.stride + c

    def coords(self, cell: int) -> tuple[int, int]:
        return divmod(cell, self.stride)


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def has_cell(mask: int, cell: int) -> bool:
    """Whether `cell` is set in `mask`."""
    return cell >= 0 and (mask >> cell) & 1 == 1


def reach(level: Level, player: int, boxes: int) -> int:
    """Mask of the cells the player can walk to without pushing."""
    free, s = level.floor & ~boxes, level.stride
    r = 1 << player
    while True:
        n = r | (((r << 1) | (r >> 1) | (r << s) | (r >> s)) & free)
        if n == r:
            return r
        r = n


def make_level(height: int, width: int, floor: int, goals: int) -> Level:
    """A `Level` with its dead squares and push distances computed."""
    stride = width + 1
    distance = [-1] * (height * stride + 1)
    queue = deque(_bits(goals))
    for g in queue:
        distance[g] = 0
    while queue:  # a box at y can be pushed onto x = y + d if the player fits at y - d
        x = queue.popleft()
        for d in (-stride, stride, -1, 1):
            y, stand = x - d, x - 2 * d
            if has_cell(floor, y) and has_cell(floor, stand) and distance[y] < 0:
                distance[y] = distance[x] + 1
                queue.append(y)
    live = sum(1 << cell for cell, n in enumerate(distance) if n >= 0)
    return Level(height, width, floor, goals, floor & ~live, tuple(distance))


def _frozen(level: Level, boxes: int, cell: int) -> bool:
    """A 2x2 block around `cell` with no free floor and a box off its goal: no box in it can move."""
    s, free = level.stride, level.floor & ~boxes
    for corner in (cell, cell - 1, cell - s, cell - s - 1):
        if corner < 0:
            continue
        block = (1 << corner) | (1 << (corner + 1)) | (1 << (corner + s)) | (1 << (corner + s + 1))
        if block & free == 0 and block & boxes & ~level.goals:
            return True
    return False


def solve(level: Level, boxes: int, player: int, limit: int = SOLVER_LIMIT) -> list[tuple[int, int]] | None:
    """Fewest pushes that solve the position, as (box cell, delta) pairs; None if unsolvable or if
    more than `limit` states would have to be expanded.

    A* over (boxes, the player's reachable area); the heuristic, the sum of each box's push distance
    to its nearest goal, is consistent, so the first solved state popped is push-optimal.
    """
    goals, distance = level.goals, level.distance
    if boxes & ~goals == 0:
        return []
    if boxes & level.dead:
        return None
    start = (boxes, reach(level, player, boxes))
    parents: dict[tuple[int, int], tuple[tuple[int, int], tuple[int, int]] | None] = {start: None}
    cost = {start: 0}
    heap = [(sum(distance[b] for b in _bits(boxes)), 0, 0, start)]  # (f, -g, order, state)
    deltas, order, expanded = tuple(level.deltas().values()), 0, 0
    while heap and expanded < limit:
        _, minus_g, _, key = heapq.heappop(heap)
        g = -minus_g
        if g > cost[key]:
            continue
        here, area = key
        if here & ~goals == 0:
            plan, node = [], key
            while (link := parents[node]) is not None:
                node, push = link
                plan.append(push)
            return plan[::-1]
        expanded += 1
        free = level.floor & ~here & ~level.dead
        h = sum(distance[b] for b in _bits(here))
        for b in _bits(here):
            for d in deltas:
                dst = b + d
                if not (has_cell(area, b - d) and has_cell(free, dst)):
                    continue
                moved = here ^ (1 << b) | (1 << dst)
                if _frozen(level, moved, dst):
                    continue
                child = (moved, reach(level, b, moved))
                if cost.get(child, g + 2) <= g + 1:
                    continue
                cost[child], parents[child] = g + 1, (key, (b, d))
                order += 1
                f = g + 1 + h - distance[b] + distance[dst]
                heapq.heappush(heap, (f, -g - 1, order, child))
    return None


def walk(level: Level, player: int, boxes: int, target: int) -> list[int] | None:
    """Shortest list of deltas walking from `player` to `target` without pushing, or None."""
    if player == target:
        return []
    free, back = level.floor & ~boxes, {player: 0}
    queue = deque([player])
    while queue:
        cell = queue.popleft()
        for d in level.deltas().values():
            nxt = cell + d
            if has_cell(free, nxt) and nxt not in back:
                back[nxt] = d
                if nxt == target:
                    path = []
                    while nxt != player:
                        path.append(back[nxt])
                        nxt -= back[nxt]
                    return path[::-1]
                queue.append(nxt)
    return None


def plan_moves(level: Level, boxes: int, player: int, pushes: list[tuple[int, int]]) -> list[int]:
    """The single moves (deltas) that carry out `pushes` from the given position."""
    moves: list[int] = []
    for b, d in pushes:
        path = walk(level, player, boxes, b - d)
        assert path is not None, f"push {(b, d)} is not reachable"
        moves += [*path, d]
        boxes, player = boxes ^ (1 << b) | (1 << (b + d)), b
    return moves


def parse_level(text: str) -> tuple[Level, int, int]:
    """(level, boxes mask, player cell) from the usual text format (rows separated by newlines).

    Raises:
        ValueError: unknown characters, not exactly one player, no boxes, or boxes != goals.
    """
    rows = [row for row in text.split("\n") if row.strip()]
    if not rows or set("".join(rows)) - set("# .$*@+"):
        raise ValueError(f"level={text!r}; rows may only hold # . $ * @ + and spaces")
    height, width = len(rows), max(len(row) for row in rows)
    stride = width + 1
    floor = goals = boxes = 0
    players = []
    for r, row in enumerate(rows):
        for c, ch in enumerate(row.ljust(width)):
            bit = 1 << (r * stride + c)
            floor |= bit if ch != "#" else 0
            goals |= bit if ch in ".*+" else 0
            boxes |= bit if ch in "$*" else 0
            if ch in "@+":
                players.append(r * stride + c)
    if len(players) != 1 or boxes == 0 or boxes.bit_count() != goals.bit_count():
        raise ValueError(f"level={text!r}; it needs one player (@ or +) and as many boxes as goals (>= 1)")
    return make_level(height, width, floor, goals), boxes, players[0]


def render_level(level: Level, boxes: int, player: int) -> list[str]:
    """The level as text rows (# wall, space floor, . goal, $ box, * box on goal, @ / + player)."""
    rows = []
    for r in range(level.height):
        row = ""
        for c in range(level.width):
            cell = level.cell(r, c)
            goal = has_cell(level.goals, cell)
            if not has_cell(level.floor, cell):
                row += "#"
            elif has_cell(boxes, cell):
                row += "*" if goal else "$"
            elif cell == player:
                row += "+" if goal else "@"
            else:
                row += "." if goal else " "
        rows.append(row)
    return rows


def _room(rng: np.random.Generator, spec: LevelSpec) -> int:
    """Floor mask of a walled room with `spec.inner_walls` random inner walls, floor connected."""
    n, stride = spec.size, spec.size + 1
    inner = [r * stride + c for r in range(1, n - 1) for c in range(1, n - 1)]
    while True:
        floor = sum(1 << cell for cell in inner)
        for i in rng.choice(len(inner), size=spec.inner_walls, replace=False):
            floor &= ~(1 << inner[int(i)])
        level = make_level(n, n, floor, 0)
        if reach(level, _bits(floor)[0], 0) == floor:
            return floor


def _scramble(
    rng: np.random.Generator, level: Level, boxes: int, player: int, rounds: int
) -> tuple[int, int]:
    """Random reverse play: `rounds` times, walk to a random side of a random box and pull it 1-3
    cells away from that side (as far as the floor allows). Walking and pulling are the reverse of
    walking and pushing, so the start position (boxes on goals) stays reachable."""
    deltas = tuple(level.deltas().values())
    picks, sides, lengths = rng.random(rounds), rng.integers(4, size=rounds), rng.integers(1, 4, size=rounds)
    for i in range(rounds):
        cells = _bits(boxes)
        b, d = cells[int(picks[i] * len(cells))], deltas[int(sides[i])]
        free = level.floor & ~boxes
        if not (has_cell(reach(level, player, boxes), b + d) and has_cell(free, b + 2 * d)):
            continue
        for _ in range(int(lengths[i])):
            if not has_cell(free, b + 2 * d):
                break
            boxes, free = boxes ^ (1 << b) | (1 << (b + d)), (free | (1 << b)) & ~(1 << (b + d))
            b, player = b + d, b + 2 * d
    return boxes, player


def _spread(level: Level, boxes: int) -> int:
    """Sum over boxes of the Manhattan distance to the nearest goal (a cheap lower bound on pushes)."""
    goals = [level.coords(g) for g in _bits(level.goals)]
    return sum(min(abs(r - gr) + abs(c - gc) for gr, gc in goals) for r, c in map(level.coords, _bits(boxes)))


def generate_level(
    rng: np.random.Generator, spec: LevelSpec
) -> tuple[Level, int, int, list[tuple[int, int]]]:
    """A solvable level: (level, boxes, player, push plan); at least `spec.min_pushes` pushes when a
    few hundred tries find one, else the hardest level found.

    Each try scrambles one room `SCRAMBLES` times and solves only the scramble whose boxes ended
    farthest from the goals."""
    best: tuple[Level, int, int, list[tuple[int, int]]] | None = None
    for _ in range(300):
        floor = _room(rng, spec)
        cells = _bits(floor)
        picked = rng.choice(len(cells), size=spec.boxes + 1, replace=False)
        goals = sum(1 << cells[int(i)] for i in picked[:-1])
        level = make_level(spec.size, spec.size, floor, goals)
        scrambles = [
            _scramble(rng, level, goals, cells[int(picked[-1])], spec.scramble) for _ in range(SCRAMBLES)
        ]
        boxes, player = max(scrambles, key=lambda s: _spread(level, s[0]))
        if best is not None and _spread(level, boxes) < spec.min_pushes:
            continue
        plan = solve(level, boxes, player)
        if plan is None or len(plan_moves(level, boxes, player, plan)) > spec.max_steps * 3 // 4:
            continue
        if best is None or len(plan) > len(best[3]):
            best = (level, boxes, player, plan)
        if len(plan) >= spec.min_pushes:
            break
    assert best is not None, "no solvable level in 300 tries"
    return best
