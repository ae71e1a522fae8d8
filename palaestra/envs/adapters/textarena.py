"""TextArena games as palaestra envs: `palaestra.make("textarena/<TextArena id>")` (extra `textarena`).

Every game in TextArena's registry gets the id `textarena/<TextArena id>` (characters gymnasium does
not allow, such as "/", become "_"), family "TextArena". TextArena's "-raw" and "-train" variants are
not registered: they differ only in TextArena's observation wrappers, and the adapter formats
observations itself.

* Single-player games are `TextArenaEnv`s (a `TextEnv`).
* Multi-player games are `TextArenaGame`s (palaestra's multi-player protocol, for self-play with
  `palaestra.rollout.matches`); the registered id is a `VersusEnv` view of seat "random" against the
  scripted "random" opponent, so `make` and `game_of` both work.

Observations: what TextArena sends the player, in the format of TextArena's `LLMObservationWrapper`
(`[GAME] ...`, `[Player 1] ...`), but only the messages since the player's last move (the chat history
keeps the earlier ones); the first one holds the game's own rules and move format. The player's own
move is not echoed back. Actions: the reply is passed to TextArena unchanged; TextArena reads moves in
square brackets (`[4]`, `[e2e4]`). A move TextArena rejects is a `format_error` (TextArena's reason);
TextArena usually allows one such move in a row and ends the game on the next one.

Rewards: single-player: TextArena's own final reward (mostly in [-1, 1]: 1 for a win, partial credit
for progress, -1 for repeated invalid moves; a few games, e.g. Klondike, use other scales); success
means a final reward >= 1. Multi-player: TextArena's final reward r in [-1, 1] becomes (r + 1) / 2,
i.e. win 1, draw 0.5, loss 0; the winner is the seat with the highest reward when it is unique.

Seeding: TextArena draws from Python's global `random`, which it seeds on reset; the adapter passes
a seed drawn from the env's own generator, so same reset seed -> same game. Envs that step
concurrently in one process share that global generator.

Games that cannot run here are registered but unavailable (`palaestra envs list --all` shows them
with the reason and the fix; `make` raises `TextArenaUnavailableError`, an `EnvUnavailableError`):
`textarena_checks` finds them from TextArena's sources. With TextArena 0.7.4 on Python 3.11: games
that need NLTK data TextArena downloads on first use (Wordle, Hangman, WordLadder, SpellingBee,
Codenames, ...), games that call LLMs through OpenRouter (Debate, TwentyQuestions, ...; they need
OPENROUTER_API_KEY), modules that need Python >= 3.12 (Chess, Checkers, ...), and games whose module,
package or data files are missing (UsedCar, BabyAiText, ScorableGames, UsedCarNegotiation).

Modules: `textarena_registry` (the ids, from TextArena's registry file), `textarena_session` (building
a game and playing it), `textarena_checks` (why a game cannot run here), `textarena_opponent` (the
random player's candidate moves); this one holds the envs and their entry point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from palaestra.envs.adapters.textarena_checks import MissingNLTKDataError, TextArenaUnavailableError
from palaestra.envs.adapters.textarena_opponent import candidate_moves
from palaestra.envs.adapters.textarena_registry import (
    NAMESPACE,
    default_max_turns,
    register_envs,
    scan_registry,
)
from palaestra.envs.adapters.textarena_session import TextArenaSession, build, players_of
from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.multiplayer import MoveOutcome, MultiAgentTextEnv
from palaestra.envs.games.versus import Opponent, VersusEnv

__all__ = [
    "NAMESPACE",
    "OPPONENTS",
    "MissingNLTKDataError",
    "TextArenaEnv",
    "TextArenaGame",
    "TextArenaUnavailableError",
    "make_textarena_env",
    "random_opponent",
    "register_envs",
    "scan_registry",
]


def _system_prompt(game_id: str, role: str) -> str:
    return (
        f"You are {role} in the text game {game_id} (from TextArena). The game's own rules, your role "
        "and the move format come in the first message; later messages report the moves and the game's "
        "state. Reply with your move in the format the game asks for, usually in square brackets, e.g. "
        "[4]. A move the game rejects is reported to you; a second rejected move in a row usually loses the game."
    )


# -- single-player games ----------------------------------------------------------------------------
class TextArenaEnv(TextEnv):
    """A single-player TextArena game (see the module docstring).

    Args:
        game_id: TextArena's id, e.g. "GuessTheNumber-v0".
        max_turns: replies per episode (default: twice TextArena's `max_turns` + 2, else 200).
        game_kwargs: override TextArena's registered kwargs of the game.
        render_mode: None or "ansi".

    Raises:
        TextArenaUnavailableError: the game cannot run here (missing NLTK data, a TextArena bug).
        ValueError: the game is not single-player.
    """

    def __init__(
        self,
        *,
        game_id: str,
        max_turns: int | None = None,
        game_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ):
        players = players_of(game_id)
        if players not in (None, 1):
            raise ValueError(
                f"{game_id} is a {players}-player game; use TextArenaGame or make('textarena/...')"
            )
        env, ta_turns = build(game_id, game_kwargs)
        super().__init__(max_turns=max_turns or default_max_turns(ta_turns), render_mode=render_mode)
        self.game_id = game_id
        self.session = TextArenaSession(game_id, env, 1)
        self.system_prompt = _system_prompt(game_id, "the player")

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; TextArena games take none")
        seed = int(self.np_random.integers(2**31))
        self.session.start(seed)
        info: dict[str, Any] = {"task_id": f"{self.game_id}-{seed}"}
        if (legal := self.session.legal_actions(0)) is not None:
            info["legal_actions"] = legal
        return self.session.view(0), info

    def _step(self, action: str) -> StepOutcome:
        done, invalid = self.session.play(action)
        observation = self.session.view(0)
        info: dict[str, Any] = {"role": "user"}
        if not done:
            if (legal := self.session.legal_actions(0)) is not None:
                info["legal_actions"] = legal
            return StepOutcome(observation or "[GAME] (no message)", format_error=invalid, info=info)
        reward = self.session.rewards().get(0, 0.0)
        reason = self.session.reason(0)
        info.update(textarena_reward=reward, reason=reason)
        ending = f"Game over: {reason}" if reason else "Game over."
        observation = f"{observation}\n{ending}" if observation else ending
        return StepOutcome(
            observation,
            reward=reward,
            terminated=True,
            success=reward >= 1.0,
            format_error=invalid,
            info=info,
        )


# -- multi-player games -----------------------------------------------------------------------------
class TextArenaGame(MultiAgentTextEnv):
    """A multi-player TextArena game in palaestra's multi-player protocol (seats player_0, ...).

    Args:
        game_id: TextArena's id, e.g. "TicTacToe-v0".
        num_players: seats (default: what the game needs when it is fixed, else 2).
        max_turns: moves in all before the game is truncated as a draw (default: twice TextArena's
            `max_turns` + 2, else 200).
        game_kwargs: override TextArena's registered kwargs of the game.
    """

    def __init__(
        self,
        game_id: str,
        *,
        num_players: int | None = None,
        max_turns: int | None = None,
        game_kwargs: dict[str, Any] | None = None,
    ):
        players = players_of(game_id)
        if players == 1 or num_players == 1:
            raise ValueError(f"{game_id} is a single-player game; use TextArenaEnv or make('textarena/...')")
        if num_players is not None and players is not None and num_players != players:
            raise ValueError(f"num_players={num_players}, but {game_id} is a {players}-player game")
        n = num_players or players or 2
        env, ta_turns = build(game_id, game_kwargs)
        super().__init__(num_players=n, max_turns=max_turns or default_max_turns(ta_turns))
        self.game_id = game_id
        self.session = TextArenaSession(game_id, env, n)
        self.metadata = {"name": f"TextArena {game_id}"}
        self._rejected: dict[str, set[str]] = {}  # each seat's moves rejected since its last accepted one

    def _pid(self, agent: str) -> int:
        return self.possible_agents.index(agent)

    def system_prompt_for(self, agent: str) -> str:
        return _system_prompt(self.game_id, f"Player {self._pid(agent)}")

    def _reset(self, options: dict[str, Any] | None) -> str:
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; TextArena games take none")
        seed = int(self.np_random.integers(2**31))
        self.session.start(seed)
        self._rejected = {}
        self.agent_selection = self.possible_agents[self.session.current]
        return f"{self.game_id}-{seed}"

    def _observe(self, agent: str) -> str:
        view = self.session.view(self._pid(agent))
        if not self.game_over:
            return view or "[GAME] (no new message)"
        outcome = "a draw" if self.winner is None else "you win" if self.winner == agent else "you lose"
        reason = self.session.reason(self._pid(agent))
        ending = f"Game over ({outcome}): {reason}" if reason else f"Game over ({outcome})."
        return f"{view}\n{ending}" if view else ending

    def legal_actions(self, agent: str) -> list[str] | None:
        return self.session.legal_actions(self._pid(agent))

    def example_moves(self, agent: str) -> list[str]:
        """The bracketed tokens and move lines the game has shown `agent` (rules' examples, listed
        moves), less the ones it just rejected from `agent`."""
        rejected = self._rejected.get(agent, set())
        return [m for m in self.session.examples.get(self._pid(agent), {}) if m not in rejected]

    def _step(self, agent: str, action: str) -> MoveOutcome:
        done, invalid = self.session.play(action)
        self._rejected[agent] = (self._rejected.get(agent, set()) | {action.strip()}) if invalid else set()
        if not done:
            return MoveOutcome(format_error=invalid, next_seat=self.possible_agents[self.session.current])
        raw = self.session.rewards()
        rewards = {
            a: min(1.0, max(0.0, (raw.get(i, 0.0) + 1.0) / 2.0)) for i, a in enumerate(self.possible_agents)
        }
        best = max(raw.values(), default=0.0)
        leaders = [i for i, r in raw.items() if r == best]
        winner = (
            self.possible_agents[leaders[0]] if len(leaders) == 1 and len(set(raw.values())) > 1 else None
        )
        info = {"textarena_rewards": raw, "reason": self.session.reason(self._pid(agent))}
        return MoveOutcome(rewards=rewards, game_over=True, winner=winner, format_error=invalid, info=info)

    def step(self, action: str) -> None:
        super().step(action)
        if self.game_over or self.agent_selection == self.possible_agents[self.session.current]:
            return
        # TextArena moved on after a rejected move (e.g. it eliminated the player): follow it. The
        # step's infos are built when read, so they already name the right seat to move.
        self.agent_selection = self.possible_agents[self.session.current]


def random_opponent(game: MultiAgentTextEnv, seat: str, rng: np.random.Generator) -> str:
    """A random move TextArena accepts: a listed legal move ("Available moves: ..."), else a move the
    game showed the seat or one made from its format ("[play X]" -> "[play 2]"; see
    `textarena_opponent.candidate_moves`), each tried on a copy of the game first. When none of
    them is accepted, the first is played (and rejected)."""
    if not isinstance(game, TextArenaGame):
        moves = game.legal_actions(seat) or ["[0]"]
        return str(moves[int(rng.integers(len(moves)))])
    tried = []
    for move in candidate_moves(game.legal_actions(seat), game.example_moves(seat), game.observe(seat), rng):
        if game.session.accepts(move):
            return move
        tried.append(move)
    return tried[0] if tried else "[0]"


OPPONENTS: dict[str, Opponent] = {"random": random_opponent}
"""Scripted players of TextArena's multi-player games."""


def make_textarena_env(
    *,
    game_id: str,
    num_players: int | None = None,
    opponent: str | None = None,
    seat: str | int | None = None,
    max_turns: int | None = None,
    game_kwargs: dict[str, Any] | None = None,
    render_mode: str | None = None,
) -> TextEnv:
    """The entry point of `textarena/<id>`: a `TextArenaEnv`, or a `VersusEnv` for multi-player games.

    Args:
        game_id: TextArena's id.
        num_players: multi-player games only: seats (default: the game's fixed count, else 2).
        opponent: multi-player games only: the scripted opponent ("random").
        seat: multi-player games only: the learner's seat ("random", "first", an index, ...).
        max_turns: turn cap (see `TextArenaEnv`, `TextArenaGame`).
        game_kwargs: override TextArena's registered kwargs of the game.
        render_mode: None or "ansi".
    """
    if players_of(game_id) == 1:
        given = {"num_players": num_players, "opponent": opponent, "seat": seat}
        if any(v is not None for v in given.values()):
            names = ", ".join(k for k, v in given.items() if v is not None)
            raise TypeError(f"{game_id} is a single-player game; {names} only apply to multi-player games")
        return TextArenaEnv(
            game_id=game_id, max_turns=max_turns, game_kwargs=game_kwargs, render_mode=render_mode
        )
    game = TextArenaGame(game_id, num_players=num_players, max_turns=max_turns, game_kwargs=game_kwargs)
    return VersusEnv(
        game=game,
        opponents=OPPONENTS,
        opponent=opponent or "random",
        seat="random" if seat is None else seat,
        render_mode=render_mode,
    )
