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
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import importlib.util
import inspect
import io
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from palaestra.envs.adapters.textarena_checks import (
    MissingNLTKDataError,
    TextArenaUnavailableError,
    translated_errors,
    unavailable_reason,
)
from palaestra.envs.adapters.textarena_opponent import candidate_moves, example_lines
from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.multiplayer import MoveOutcome, MultiAgentTextEnv
from palaestra.envs.games.versus import Opponent, VersusEnv
from palaestra.envs.registration import register_env

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

NAMESPACE = "textarena"
DEFAULT_MAX_TURNS = 200
"""Turn cap of a game whose TextArena registration sets no `max_turns` (games end on their own)."""
_INSTALL_HINT = "pip install 'palaestra[textarena]'"
_GAME_ID = -1  # TextArena's sender id of the game itself (textarena.GAME_ID)
_CALL_RE = re.compile(r'^(?:register|register_with_versions)\(\s*id\s*=\s*"([^"]+)"(.*)$', re.M)
_COMMENTED_CALL_RE = re.compile(r"^#[#\s]*register")
_PLAYERS_RE = re.compile(r"[\[(]\s*(\d+)(?:\s*-\s*\d+)?\s+players?\b|\bsingle-player\b|\btwo-player\b", re.I)
_WORD_PLAYERS = {"single-player": 1, "two-player": 2}
_VARIANT_RE = re.compile(r"-(raw|train)(-|$)")
_MAX_TURNS_RE = re.compile(r"\bmax_turns\s*=\s*(\d[\d_]*)")
_ENTRY_RE = re.compile(r'\bentry_point\s*=\s*"([\w.]+):')
_MIN_PLAYERS_RE = re.compile(r"\bassert\s*(\d+)\s*<=?\s*num_players\b|\bnum_players\s*(?:>=|==)\s*(\d+)")
_INVALID_RE = re.compile(r"attempted an invalid move\. Reason: (.*?)\s*(?:Please resubmit|$)", re.S)
_LEGAL_RE = re.compile(r"(?:available|valid|legal|possible)\s+(?:moves|actions)\s*:?(.*)", re.I)
_UNSAFE_RE = re.compile(r"[^\w:.-]")  # characters gymnasium ids cannot hold
_BRACKETED_RE = re.compile(r"\[[^\[\]\n]{1,40}\]")


# -- registration (reads TextArena's registry file; never imports textarena) ---------------------------
@dataclass(frozen=True)
class _Listing:
    """A game as TextArena's registry file lists it."""

    game_id: str
    players: int | None  # from the "# Game [N Players]" comment above it, when there is one
    max_turns: int | None  # TextArena's own `max_turns` kwarg, when registered
    module: str = ""  # the entry point's module, e.g. "textarena.envs.Wordle.env"


def _least_players(root: Path, module: str, players: int) -> int:
    """`players`, raised to what the module's own checks demand (TextArena's comment says SecretMafia
    takes 5-15 players; its reset asserts 6 <= num_players)."""
    try:
        source = root.parent.joinpath(*module.split(".")).with_suffix(".py").read_text(encoding="utf-8")
    except OSError:
        return players
    found = [int(a or b) for a, b in _MIN_PLAYERS_RE.findall(source)]
    return max([players, *found])


def scan_registry(path: str | Path | None = None) -> list[_Listing]:
    """The games of TextArena's registry file (`textarena/envs/__init__.py`), without importing it.

    Importing textarena takes seconds; reading its registry file takes a millisecond. Only
    `register(...)`/`register_with_versions(...)` calls at the start of a line count (commented-out
    ones do not); "-raw"/"-train" variants are skipped.

    Args:
        path: the registry file; default: the installed textarena's. Missing package -> [].
    """
    if path is None:
        spec = importlib.util.find_spec("textarena")
        if spec is None or spec.origin is None:
            return []
        path = Path(spec.origin).parent / "envs" / "__init__.py"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    listings, seen, players, in_comment = [], set(), None, False
    for line in text.splitlines():
        if line.startswith("#") and not _COMMENTED_CALL_RE.match(line):
            if not in_comment:  # a new comment block: a new game's header, or a sub-heading
                players = None
            in_comment = True
            if found := _PLAYERS_RE.search(line):
                players = _WORD_PLAYERS.get(found.group(0).lower()) or int(found.group(1) or 0) or None
            continue
        in_comment = False
        call = _CALL_RE.match(line)
        if call is None or call.group(1) in seen or _VARIANT_RE.search(call.group(1)):
            continue
        seen.add(call.group(1))
        turns = _MAX_TURNS_RE.search(call.group(2))
        module = entry.group(1) if (entry := _ENTRY_RE.search(call.group(2))) else ""
        n = _least_players(Path(path).parents[1], module, players) if players and players > 2 else players
        listings.append(
            _Listing(call.group(1), n, int(turns.group(1).replace("_", "")) if turns else None, module)
        )
    return listings


def env_id_of(game_id: str) -> str:
    """The palaestra id of a TextArena game id ("Wordle-v0" -> "textarena/Wordle-v0")."""
    return f"{NAMESPACE}/{_UNSAFE_RE.sub('_', game_id)}"


def _default_max_turns(ta_max_turns: int | None) -> int:
    # Each TextArena turn may be preceded by one rejected move, which also counts as a palaestra turn.
    return DEFAULT_MAX_TURNS if ta_max_turns is None else 2 * ta_max_turns + 2


def register_envs() -> int:
    """Register `textarena/<id>` for every game of the installed TextArena; returns how many.

    Cheap and silent without textarena (registers nothing); ids already registered are skipped.
    """
    count = 0
    for listing in scan_registry():
        env_id = env_id_of(listing.game_id)
        if env_id in gym.registry:
            continue
        n = listing.players
        who = (
            "1 player"
            if n == 1
            else "players: see the game"
            if n is None
            else f"{n} players, vs a random opponent"
        )
        register_env(
            env_id,
            "palaestra.envs.adapters.textarena:make_textarena_env",
            description=f"TextArena's {listing.game_id} ({who})",
            family="TextArena",
            max_turns=_default_max_turns(listing.max_turns),
            reward_range=(0.0, 1.0) if n is not None and n > 1 else (-1.0, 1.0),
            # games that need 3+ players say so in TextArena's comments only; 2 is the default
            kwargs={"game_id": listing.game_id, **({"num_players": n} if n is not None and n > 2 else {})},
            availability=functools.partial(unavailable_reason, listing.game_id, listing.module),
        )
        count += 1
    return count


# -- building TextArena envs ------------------------------------------------------------------------
def _spec_of(game_id: str) -> Any:
    try:
        from textarena.envs.registration import ENV_REGISTRY
    except ImportError as exc:
        raise ImportError(f"textarena/{game_id} needs the textarena package: {_INSTALL_HINT}") from exc
    if game_id not in ENV_REGISTRY:
        raise ValueError(f"{game_id!r} is not in TextArena's registry; see `palaestra envs list`")
    return ENV_REGISTRY[game_id]


def _entry_point(game_id: str) -> tuple[Any, dict[str, Any]]:
    """(the game's class or factory, TextArena's registered kwargs); imports the game's module."""
    spec = _spec_of(game_id)
    entry = spec.entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        if (reason := unavailable_reason(game_id, module)) is not None:
            raise TextArenaUnavailableError(f"{env_id_of(game_id)} cannot run here: {reason}")
        with translated_errors(game_id):
            entry = getattr(importlib.import_module(module), name)
    return entry, dict(spec.kwargs)


def _players_of(game_id: str) -> int | None:
    """1 or 2 when the game's module uses TextArena's single- or two-player state, else None."""
    entry, _ = _entry_point(game_id)
    try:
        source = inspect.getsource(sys.modules[entry.__module__])
    except (OSError, TypeError, KeyError, AttributeError):
        return None
    if "SinglePlayerState" in source:
        return 1
    return 2 if "TwoPlayerState" in source else None


def _build(game_id: str, game_kwargs: dict[str, Any] | None) -> tuple[Any, int | None]:
    """(the unwrapped TextArena env, TextArena's `max_turns` kwarg of the game if it has one)."""
    entry, registered = _entry_point(game_id)
    kwargs = {**registered, **(game_kwargs or {})}
    with translated_errors(game_id):
        try:
            env = entry(**kwargs)
        except TypeError as exc:
            raise TypeError(f"TextArena's {game_id} rejected game_kwargs={game_kwargs}: {exc}") from exc
    max_turns = kwargs.get("max_turns")
    return env, max_turns if isinstance(max_turns, int) else None


class _Session:
    """One TextArena env: reset, moves, and each player's messages since that player's last move."""

    def __init__(self, game_id: str, env: Any, num_players: int):
        self.game_id, self.env, self.num_players = game_id, env, num_players
        self._pristine = env  # some games keep state across resets (KuhnPoker's deck): copy a fresh one
        self.unread: dict[int, list[tuple[int, str, Any]]] = {}
        self.examples: dict[int, dict[str, None]] = {}  # bracketed tokens and move lines each player saw

    @property
    def state(self) -> Any:
        return self.env.state

    @property
    def current(self) -> int:
        return int(self.state.current_player_id)

    def start(self, seed: int) -> None:
        try:
            self.env = copy.deepcopy(self._pristine)
        except Exception:  # an env that cannot be copied is reused as it is
            self.env = self._pristine
        random.seed(seed)  # games that draw before creating TextArena's state (which seeds it too)
        with translated_errors(self.game_id):
            self.env.reset(num_players=self.num_players, seed=seed)
        _accept_old_add_observation(self.env.state)
        self.unread = {pid: [] for pid in range(self.num_players)}
        self.examples = {pid: {} for pid in range(self.num_players)}
        self._collect(mover=None)

    def play(self, action: str) -> tuple[bool, str | None]:
        """Play the current player's move; (game over, TextArena's reason if it rejected the move)."""
        mover = self.current
        self.unread[mover] = []
        try:
            done, _ = self.env.step(action)
        except Exception as exc:
            raise RuntimeError(
                f"TextArena's {self.game_id} crashed on the move {action[:80]!r}: {exc}"
            ) from exc
        new = self._collect(mover)
        reasons = [m.group(1) for _, text, _ in new for m in [_INVALID_RE.search(text)] if m]
        reason = reasons[-1].strip() if reasons else None
        info = (getattr(self.state, "game_info", None) or {}).get(mover, {})
        if done and reason is None and info.get("invalid_move"):
            reason = str(info.get("reason") or "invalid move")
        return bool(done), reason

    def accepts(self, action: str) -> bool:
        """Whether TextArena accepts `action` as the current player's move, tried on a copy of the game
        (Python's global `random`, which TextArena draws from, is left as it was)."""
        mover, saved = self.current, random.getstate()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # a few games print what they parse
                trial = copy.deepcopy(self.env)
                trial.step(action)
        except Exception:
            return False
        finally:
            random.setstate(saved)
        if any(_INVALID_RE.search(str(text)) for _, text, _ in trial.state.observations.get(mover, [])):
            return False
        return not (getattr(trial.state, "game_info", None) or {}).get(mover, {}).get("invalid_move")

    def _collect(self, mover: int | None) -> list[tuple[int, str, Any]]:
        """Move TextArena's pending messages into `unread`; the mover's new messages are returned."""
        new: list[tuple[int, str, Any]] = []
        for pid, messages in self.state.observations.items():
            for sender, raw, kind in messages:
                text = str(raw)  # a few games send numbers
                action = getattr(kind, "name", kind) == "PLAYER_ACTION"  # a few games pass plain strings
                echo = action and pid == mover and sender in (mover, _GAME_ID)
                if not echo:
                    self.unread.setdefault(pid, []).append((sender, text, kind))
                    if not action:
                        shown = _BRACKETED_RE.findall(text) + example_lines(text)
                        self.examples.setdefault(pid, {}).update(dict.fromkeys(shown))
                    if pid == mover:
                        new.append((sender, text, kind))
            self.state.observations[pid] = []
        return new

    def view(self, pid: int) -> str:
        roles = getattr(self.state, "role_mapping", {}) or {}
        lines = [
            f"[{'GAME' if sender == _GAME_ID else roles.get(sender, f'Player {sender}')}] {text}"
            for sender, text, _ in self.unread.get(pid, [])
        ]
        return "\n".join(lines)

    def legal_actions(self, pid: int) -> list[str] | None:
        """The moves listed in the player's latest "Available/Valid moves: ..." line, if any."""
        for _, text, _ in reversed(self.unread.get(pid, [])):
            for line in reversed(text.splitlines()):
                if (found := _LEGAL_RE.search(line)) and (moves := _BRACKETED_RE.findall(found.group(1))):
                    return list(dict.fromkeys(moves))
        return None

    def rewards(self) -> dict[int, float]:
        """TextArena's final rewards; a non-number (a few games swap set_invalid_move's arguments)
        counts as 0."""
        out = {}
        for pid, value in (self.state.rewards or {}).items():
            try:
                out[int(pid)] = float(value)
            except (TypeError, ValueError):
                out[int(pid)] = 0.0
        return out

    def reason(self, pid: int) -> str:
        info = (getattr(self.state, "game_info", None) or {}).get(pid, {})
        return str(info.get("reason") or "")


@functools.cache
def _lenient_state_class(cls: type) -> type:
    """`cls` whose `add_observation` defaults `observation_type`, which older TextArena releases did not
    have and a few of TextArena 0.7.4's games (CharacterConclave) still leave out."""
    from textarena.core import ObservationType

    def add_observation(
        self: Any, message: str, observation_type: Any = None, from_id: int = _GAME_ID, to_id: int = -1
    ) -> None:
        if observation_type is None:
            player = from_id != _GAME_ID
            observation_type = ObservationType.PLAYER_ACTION if player else ObservationType.GAME_MESSAGE
        cls.add_observation(self, message, observation_type, from_id=from_id, to_id=to_id)

    return type(cls.__name__, (cls,), {"add_observation": add_observation, "__module__": cls.__module__})


def _accept_old_add_observation(state: Any) -> None:
    """Make `state.add_observation` accept TextArena's older signature (see `_lenient_state_class`)."""
    try:
        parameter = inspect.signature(type(state).add_observation).parameters.get("observation_type")
    except (AttributeError, TypeError, ValueError):
        return
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        state.__class__ = _lenient_state_class(type(state))


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
        players = _players_of(game_id)
        if players not in (None, 1):
            raise ValueError(
                f"{game_id} is a {players}-player game; use TextArenaGame or make('textarena/...')"
            )
        env, ta_turns = _build(game_id, game_kwargs)
        super().__init__(max_turns=max_turns or _default_max_turns(ta_turns), render_mode=render_mode)
        self.game_id = game_id
        self.session = _Session(game_id, env, 1)
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
        players = _players_of(game_id)
        if players == 1 or num_players == 1:
            raise ValueError(f"{game_id} is a single-player game; use TextArenaEnv or make('textarena/...')")
        if num_players is not None and players is not None and num_players != players:
            raise ValueError(f"num_players={num_players}, but {game_id} is a {players}-player game")
        n = num_players or players or 2
        env, ta_turns = _build(game_id, game_kwargs)
        super().__init__(num_players=n, max_turns=max_turns or _default_max_turns(ta_turns))
        self.game_id = game_id
        self.session = _Session(game_id, env, n)
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
    if _players_of(game_id) == 1:
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
