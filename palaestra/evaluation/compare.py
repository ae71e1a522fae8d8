"""Compare evaluation results: a leaderboard with intervals and the significance of each gap.

Inputs are results JSON files (or folders holding `results.json`) written by `palaestra eval --suite`
(every agent of the file is an entry) or `palaestra eval --env ... --out` (one entry, one env).
Entries are ranked by the aggregate score over the envs they all share (the macro-averaged success
rate). Each entry's gap to the leader is tested with a stratified bootstrap (`stats.bootstrap_difference`),
paired by task when both evaluated the same seeds and samples.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from palaestra.evaluation.stats import BootstrapDifference, bootstrap_difference, macro_mean_ci

__all__ = ["Entry", "Leaderboard", "leaderboard", "leaderboard_table", "load_entries", "per_env_table"]

ALPHA = 0.05
"""Gaps with a bootstrap p-value below this are called significant."""


@dataclass
class Entry:
    """One agent's results from one file.

    Attributes:
        label: how the leaderboard names it (the agent spec, plus the file when specs repeat).
        source: the results file.
        envs: per env key, the per-episode columns (`seed`, `sample`, `success`, `reward`, ...) and `summary`.
    """

    label: str
    source: Path
    envs: dict[str, dict[str, Any]]

    def success(self, env: str) -> list[float]:
        return [float(x) for x in self.envs[env]["episodes"]["success"]]

    def task_keys(self, env: str) -> list[tuple[int, int]]:
        ep = self.envs[env]["episodes"]
        return list(zip(ep["seed"], ep["sample"], strict=True))


def _read(path: Path) -> dict[str, Any]:
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no results at {path}; pass a results.json or the folder holding one")
    try:
        data = json.loads(file.read_text())
    except ValueError as exc:  # invalid JSON, or not text at all
        raise ValueError(f"{file} is not valid JSON ({exc}); pass a results.json palaestra wrote") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ValueError(f"{file} is not a palaestra results file (no schema_version)")
    return data


def _found(path: Path, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(agent spec, per-env records) of every agent in one results file."""
    if data.get("kind") == "suite":
        found = [(spec, agent["envs"]) for spec, agent in data["agents"].items()]
    elif "env_id" in data:
        partial = " (partial)" if data.get("complete") is False else ""  # an evaluation still running
        found = [(data["agent"] + partial, {data["env_id"].split("/")[-1]: data})]
    else:
        raise ValueError(f"{path}: unknown results layout (keys: {sorted(data)})")
    for _, envs in found:
        for key, rec in envs.items():
            if "episodes" not in rec:
                raise ValueError(
                    f"{path}: env {key} has no per-episode results; re-run the evaluation with this "
                    "palaestra version to compare it"
                )
            if not rec["episodes"]["success"]:
                raise ValueError(f"{path}: env {key} has no finished episodes yet")
    return found


def load_entries(paths: Sequence[str | os.PathLike[str]]) -> list[Entry]:
    """Read results files into leaderboard entries.

    Raises:
        FileNotFoundError: a path holds no results.
        ValueError: a file is not palaestra results, or lacks per-episode data (written before it existed).
    """
    entries: list[Entry] = []
    for raw in paths:
        path = Path(raw)
        data = _read(path)
        try:
            found = _found(path, data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: malformed results file ({type(exc).__name__}: {exc})") from None
        entries.extend(Entry(spec, path, envs) for spec, envs in found)
    labels = [e.label for e in entries]
    for e in entries:
        if labels.count(e.label) > 1:
            e.label = f"{e.label} ({e.source})"
    return entries


@dataclass
class Row:
    """One leaderboard row."""

    entry: Entry
    score: float
    ci95: tuple[float, float]
    vs_leader: BootstrapDifference | None
    per_env: dict[str, BootstrapDifference | None] = field(default_factory=dict)


@dataclass
class Leaderboard:
    """Entries ranked by aggregate score over the shared envs."""

    envs: list[str]
    rows: list[Row]
    dropped_envs: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The board as JSON-ready data: the envs, and per rank the agent, its source, score with 95% CI,
        success per env, and the gap to the leader (overall and per env; None for the leader)."""

        def gap(d: BootstrapDifference | None) -> dict[str, Any] | None:
            return None if d is None else dataclasses.asdict(d)

        return {
            "envs": self.envs,
            "dropped_envs": self.dropped_envs,
            "rows": [
                {
                    "rank": i,
                    "agent": row.entry.label,
                    "source": str(row.entry.source),
                    "score": row.score,
                    "ci95": list(row.ci95),
                    "success": {k: sum(v) / len(v) for k in self.envs if (v := row.entry.success(k))},
                    "vs_leader": gap(row.vs_leader),
                    "vs_leader_per_env": {k: gap(d) for k, d in row.per_env.items()},
                }
                for i, row in enumerate(self.rows, 1)
            ],
        }


def _paired(a: Entry, b: Entry, envs: Sequence[str]) -> bool:
    return all(a.task_keys(k) == b.task_keys(k) for k in envs)


def leaderboard(entries: Sequence[Entry], *, seed: int = 0) -> Leaderboard:
    """Rank entries by the macro-averaged success rate over the envs all of them evaluated.

    Raises:
        ValueError: fewer than one entry, or no env shared by all entries.
    """
    if not entries:
        raise ValueError("nothing to compare: pass at least one results file")
    every = [k for k in entries[0].envs if all(k in e.envs for e in entries)]
    dropped = sorted({k for e in entries for k in e.envs} - set(every))
    if not every:
        raise ValueError(
            "the results share no env: " + "; ".join(f"{e.label}: {', '.join(e.envs)}" for e in entries)
        )
    scored = []
    for e in entries:
        samples = [e.success(k) for k in every]
        score = sum(sum(x) / len(x) for x in samples) / len(samples)
        scored.append((score, e, macro_mean_ci(samples, seed=seed)))
    scored.sort(key=lambda t: -t[0])
    leader = scored[0][1]
    rows = []
    for i, (score, e, ci) in enumerate(scored):
        if i == 0:
            rows.append(Row(e, score, ci, None, {k: None for k in every}))
            continue
        diff = bootstrap_difference(
            [e.success(k) for k in every],
            [leader.success(k) for k in every],
            paired=_paired(e, leader, every),
            seed=seed,
        )
        per_env: dict[str, BootstrapDifference | None] = {
            k: bootstrap_difference(
                [e.success(k)], [leader.success(k)], paired=_paired(e, leader, [k]), seed=seed
            )
            for k in every
        }
        rows.append(Row(e, score, ci, diff, per_env))
    return Leaderboard(every, rows, dropped)


def _gap(d: BootstrapDifference | None) -> str:
    if d is None:
        return "leader"
    mark = " *" if d.p_value < ALPHA else ""
    return f"{d.diff:+.1%} (p={d.p_value:.3f}){mark}"


def _caption(board: Leaderboard) -> str:
    paired = any(r.vs_leader and r.vs_leader.paired for r in board.rows)
    text = f"* gap to the leader significant at p < {ALPHA} (bootstrap{', paired by task' if paired else ''})"
    if board.dropped_envs:
        text += f"; not shared by all, left out: {', '.join(board.dropped_envs)}"
    return text


def leaderboard_table(board: Leaderboard) -> Table:
    """A rich table: rank, agent, score [95% CI], gap to the leader with its p-value."""
    table = Table(title="leaderboard (score = mean success over envs)", caption=_caption(board))
    for col in ("#", "agent", "score [95% CI]", "gap to leader"):
        table.add_column(col, justify="left" if col == "agent" else "right", overflow="fold")
    for i, row in enumerate(board.rows, 1):
        table.add_row(
            str(i),
            row.entry.label,
            f"{row.score:.1%} [{row.ci95[0]:.1%}, {row.ci95[1]:.1%}]",
            _gap(row.vs_leader),
        )
    return table


def per_env_table(board: Leaderboard) -> Table:
    """Success per env (rows) and entry (columns, in rank order); * marks a significant gap to the leader."""
    table = Table(title="success by env", caption=_caption(board))
    table.add_column("env", overflow="fold")
    for i, row in enumerate(board.rows, 1):
        table.add_column(f"{i}. {row.entry.label}", justify="right", overflow="fold")
    for k in board.envs:
        cells = []
        for row in board.rows:
            values = row.entry.success(k)
            d = row.per_env.get(k)
            cells.append(
                f"{sum(values) / len(values):.1%}" + (" *" if d is not None and d.p_value < ALPHA else "")
            )
        table.add_row(k, *cells)
    return table
