"""Env step latency: palaestra's games against the same games in GEM (`gem-llm`) and TextArena, one run.

For each game and library: scripted actions (random legal guesses / moves from a fixed generator,
chosen outside the timing), episodes reset when they end, until `--steps` steps; the table shows the
median (and 90th percentile) time of one `step` with the observation the model reads next, the median of one
`reset`, and palaestra's ratio of medians to each anchor (lower is better).

- palaestra as users get it: `palaestra.make(...)` (gymnasium's order-enforcing wrapper, the
  standard info keys, format checks, `expert_action` and `legal_actions` in every info).
  TicTacToe per move on the two-player game: `MultiAgentTextEnv.step` + `observe` of the seat to
  move (infos are built when read, none is read), and "+ info": `step` + `last()`, the observation
  and the info (with `legal_actions` and the minimax `expert_action`) of the seat to move.
- GEM: `env.step` (the observation is in its return).
- TextArena: `step` + `get_observation()`. As `ta.make` returns it (its LLM wrappers), with a fresh
  env per episode, made outside the timing: the wrapper keeps every message since the env was made
  and re-joins them all each step, so an env reused across episodes gets slower every episode (the
  issue's 51.7 µs reference, 200 steps on one env, was measured that way). "raw + obs text": the bare
  game, its new messages joined into one text as the wrapper formats them, without the history.

A library or game that is missing or fails offline is reported with the reason (GEM's and
TextArena's Wordle need NLTK's `words` corpus from the internet).

    pip install -e '.[bench-games]'          # gem-llm and textarena
    python benchmarks/env_step.py
    python benchmarks/env_step.py --steps 5000 --json runs/bench/env_step.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class Unavailable(Exception):
    """This library/game cannot run here; the message says why."""


def _quiet(fn: Callable, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def _reason(exc: Exception) -> str:
    """The first informative line of an exception (NLTK's errors start with a row of asterisks and
    colour the resource name with terminal escapes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "'", str(exc))
    lines = [line.strip() for line in text.splitlines() if any(ch.isalpha() for ch in line)]
    return f"{type(exc).__name__}: {(lines[0] if lines else '')[:90]}"


@dataclass
class Runner:
    """One library's game, driven by `_measure`.

    Attributes:
        reset: start an episode (timed).
        choose: the next scripted action (untimed).
        step: play the action and build the observation the player reads next (timed); True when
            the episode ended.
        prepare: untimed setup before every reset (e.g. a fresh env per episode).
    """

    reset: Callable[[], None]
    choose: Callable[[], str]
    step: Callable[[str], bool]
    prepare: Callable[[], None] = lambda: None


def _measure(runner: Runner, steps: int) -> dict[str, float]:
    """Median step / reset times in microseconds."""
    step_times, reset_times = [], []

    def timed_reset() -> None:
        runner.prepare()
        t = time.perf_counter()
        runner.reset()
        reset_times.append(time.perf_counter() - t)

    timed_reset()
    while len(step_times) < steps:
        action = runner.choose()
        t = time.perf_counter()
        done = runner.step(action)
        step_times.append(time.perf_counter() - t)
        if done:
            timed_reset()
    return {
        "step_us": statistics.median(step_times) * 1e6,
        "step_p90_us": statistics.quantiles(step_times, n=10)[-1] * 1e6,
        "reset_us": statistics.median(reset_times) * 1e6,
        "steps": len(step_times),
        "resets": len(reset_times),
    }


# -- palaestra -------------------------------------------------------------------------------------
def palaestra_single(env_id: str, kwargs: dict, action: Callable[[np.random.Generator, dict], str]) -> Runner:
    import palaestra

    env = palaestra.make(env_id, **kwargs)
    rng = np.random.default_rng(0)
    state = {"seed": 0, "info": {}}

    def reset() -> None:
        state["seed"] += 1
        state["info"] = env.reset(seed=state["seed"])[1]

    def step(move: str) -> bool:
        _, _, terminated, truncated, info = env.step(move)
        state["info"] = info
        return terminated or truncated

    return Runner(reset, lambda: action(rng, state["info"]), step)


def palaestra_tictactoe(*, read_info: bool = False) -> Runner:
    from palaestra.envs.games.tictactoe import TicTacToe

    game, rng = TicTacToe(), np.random.default_rng(0)
    seed = [0]

    def reset() -> None:
        seed[0] += 1
        game.reset(seed=seed[0])
        if read_info:
            game.last()
        else:
            game.observe(game.agent_selection)

    def choose() -> str:
        legal = [i + 1 for i, c in enumerate(game.board) if c == "."]
        return f"[{legal[int(rng.integers(len(legal)))]}]"

    def step(move: str) -> bool:
        game.step(move)
        if game.game_over:
            return True
        if read_info:
            game.last()
        else:
            game.observe(game.agent_selection)
        return False

    return Runner(reset, choose, step)


# -- GEM ---------------------------------------------------------------------------------------------
def gem_single(game_id: str, action: Callable[[np.random.Generator], str]) -> Runner:
    try:
        import gem
    except ImportError as exc:
        raise Unavailable("gem-llm is not installed (pip install gem-llm)") from exc
    try:
        env = _quiet(gem.make, game_id)
        _quiet(env.reset, seed=0)
    except Exception as exc:
        raise Unavailable(_reason(exc)) from exc
    rng, seed = np.random.default_rng(0), [0]

    def reset() -> None:
        seed[0] += 1
        env.reset(seed=seed[0])

    def step(move: str) -> bool:
        _, _, terminated, truncated, _ = env.step(move)
        return terminated or truncated

    return Runner(reset, lambda: action(rng), step)


# -- TextArena ---------------------------------------------------------------------------------------
def textarena_game(
    game_id: str, players: int, action: Callable[[np.random.Generator, str], str], *, raw: bool = False
) -> Runner:
    """TextArena's `step` + `get_observation()`, with an observation text for the model (see the
    module docstring): `ta.make`'s env, fresh per episode, or (raw=True) the bare game with its new
    messages joined into one text."""
    try:
        import textarena as ta
    except ImportError as exc:
        raise Unavailable("textarena is not installed (pip install textarena)") from exc

    def make():
        env = _quiet(ta.make, game_id)
        while raw and hasattr(env, "env"):  # ta.make wraps the game for LLMs; raw: the bare game
            env = env.env
        return env

    try:
        holder = [make()]
        _quiet(holder[0].reset, num_players=players, seed=0)
    except Exception as exc:
        raise Unavailable(_reason(exc)) from exc
    rng, seed, last = np.random.default_rng(0), [0], [""]

    def observation() -> str:
        _, obs = holder[0].get_observation()
        if not raw:
            return obs
        return "\n".join(
            f"[{'GAME' if sender == ta.GAME_ID else f'Player {sender}'}] {text}" for sender, text, _ in obs
        )

    def prepare() -> None:
        if not raw:
            holder[0] = _quiet(make)

    def reset() -> None:
        seed[0] += 1
        holder[0].reset(num_players=players, seed=seed[0])
        last[0] = observation()

    def step(move: str) -> bool:
        done, _ = holder[0].step(move)
        if done:
            holder[0].close()
            return True
        last[0] = observation()
        return False

    return Runner(reset, lambda: action(rng, last[0]), step, prepare)


def _ta_ttt_move(rng: np.random.Generator, observation: str) -> str:
    """A random legal move from the last "Available Moves:" list TextArena showed (as palaestra's row)."""
    tail = observation.rsplit("Available Moves:", 1)[-1]
    moves = [m for m in tail.replace("'", " ").replace(",", " ").split() if m.startswith("[")]
    return moves[int(rng.integers(len(moves)))] if moves else "[4]"


def _unavailable(why: str) -> Runner:
    raise Unavailable(why)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per row (>= 1000 for the table)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--games", nargs="+", help="only these games (e.g. TicTacToe Guess-the-number)")
    args = parser.parse_args()

    guess = lambda rng, info=None: f"[{int(rng.integers(1, 101))}]"  # noqa: E731
    ta_guess = lambda rng, _: f"[{int(rng.integers(1, 21))}]"  # noqa: E731
    rows: list[tuple[str, str, Callable[[], Runner]]] = [
        (
            "Guess-the-number",
            "palaestra",
            lambda: palaestra_single("palaestra/Game-GuessTheNumber-v0", {"difficulty": "medium"}, guess),
        ),
        (
            "Guess-the-number",
            "GEM",
            lambda: gem_single(
                "game:GuessTheNumber-v0-hard", lambda rng: f"\\boxed{{{int(rng.integers(1, 51))}}}"
            ),
        ),
        ("Guess-the-number", "TextArena", lambda: textarena_game("GuessTheNumber-v0", 1, ta_guess)),
        (
            "Guess-the-number",
            "TextArena raw + obs text",
            lambda: textarena_game("GuessTheNumber-v0", 1, ta_guess, raw=True),
        ),
        (
            "Wordle",
            "palaestra",
            lambda: palaestra_single(
                "palaestra/Game-Wordle-v0", {}, lambda rng, info: info.get("expert_action", "[crane]")
            ),
        ),
        ("Wordle", "GEM", lambda: gem_single("game:Wordle-v0-easy", lambda rng: "\\boxed{crane}")),
        ("Wordle", "TextArena", lambda: textarena_game("Wordle-v0", 1, lambda rng, _: "[crane]")),
        ("TicTacToe", "palaestra", palaestra_tictactoe),
        ("TicTacToe", "palaestra + info", lambda: palaestra_tictactoe(read_info=True)),
        ("TicTacToe", "GEM", lambda: _unavailable("GEM has no TicTacToe")),
        ("TicTacToe", "TextArena", lambda: textarena_game("TicTacToe-v0", 2, _ta_ttt_move)),
        (
            "TicTacToe",
            "TextArena raw + obs text",
            lambda: textarena_game("TicTacToe-v0", 2, _ta_ttt_move, raw=True),
        ),
    ]
    if args.games:
        rows = [row for row in rows if row[0] in args.games]
    results: dict[tuple[str, str], dict] = {}
    for game, library, build in rows:
        try:
            results[(game, library)] = _measure(build(), args.steps)
        except Unavailable as exc:
            results[(game, library)] = {"unavailable": str(exc)}
        print(f"measured {game} / {library}", file=sys.stderr, flush=True)

    print(
        f"\nEnv step latency, median over {args.steps} scripted steps, {platform.python_version()}, {platform.node()}\n"
    )
    print(
        "| game | library | step µs | step p90 µs | reset µs | palaestra step / this | palaestra + info / this |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")

    def ratio(ours: dict, row: dict) -> str:
        return f"{ours['step_us'] / row['step_us']:.2f}x" if "step_us" in ours else ""

    for game, library, _ in rows:
        row = results[(game, library)]
        if "unavailable" in row:
            print(f"| {game} | {library} | - | - | - | n/a: {row['unavailable']} | |")
            continue
        ours, with_info = (
            ({}, {})
            if library.startswith("palaestra")
            else (results.get((game, "palaestra"), {}), results.get((game, "palaestra + info"), {}))
        )
        print(
            f"| {game} | {library} | {row['step_us']:.1f} | {row['step_p90_us']:.1f} | {row['reset_us']:.1f} "
            f"| {ratio(ours, row)} "
            f"| {ratio(with_info, row)} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({f"{g}/{lib}": r for (g, lib), r in results.items()}, indent=2))


if __name__ == "__main__":
    main()
