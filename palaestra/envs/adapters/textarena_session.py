"""Running one TextArena game: building it from TextArena's registry, and the session that plays it.

`build` imports the game's module (after `textarena_checks` has ruled out known failures) and makes
the unwrapped TextArena env; `TextArenaSession` resets it with a seed, plays moves, tells whether
TextArena rejected one, and keeps each player's messages since that player's last move, formatted as
TextArena's `LLMObservationWrapper` does.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import inspect
import io
import random
import re
import sys
from typing import Any

from palaestra.envs.adapters.textarena_checks import (
    TextArenaUnavailableError,
    translated_errors,
    unavailable_reason,
)
from palaestra.envs.adapters.textarena_opponent import example_lines
from palaestra.envs.adapters.textarena_registry import env_id_of

__all__ = ["GAME_ID", "TextArenaSession", "build", "entry_point", "players_of"]

_INSTALL_HINT = "pip install 'palaestra[textarena]'"
GAME_ID = -1
"""TextArena's sender id of the game itself (`textarena.GAME_ID`)."""
_INVALID_RE = re.compile(r"attempted an invalid move\. Reason: (.*?)\s*(?:Please resubmit|$)", re.S)
_LEGAL_RE = re.compile(r"(?:available|valid|legal|possible)\s+(?:moves|actions)\s*:?(.*)", re.I)
_BRACKETED_RE = re.compile(r"\[[^\[\]\n]{1,40}\]")


def _spec_of(game_id: str) -> Any:
    """TextArena's registration of `game_id` (imports textarena)."""
    try:
        from textarena.envs.registration import ENV_REGISTRY
    except ImportError as exc:
        raise ImportError(f"textarena/{game_id} needs the textarena package: {_INSTALL_HINT}") from exc
    if game_id not in ENV_REGISTRY:
        raise ValueError(f"{game_id!r} is not in TextArena's registry; see `palaestra envs list`")
    return ENV_REGISTRY[game_id]


def entry_point(game_id: str) -> tuple[Any, dict[str, Any]]:
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


def players_of(game_id: str) -> int | None:
    """1 or 2 when the game's module uses TextArena's single- or two-player state, else None."""
    entry, _ = entry_point(game_id)
    try:
        source = inspect.getsource(sys.modules[entry.__module__])
    except (OSError, TypeError, KeyError, AttributeError):
        return None
    if "SinglePlayerState" in source:
        return 1
    return 2 if "TwoPlayerState" in source else None


def build(game_id: str, game_kwargs: dict[str, Any] | None) -> tuple[Any, int | None]:
    """(the unwrapped TextArena env, TextArena's `max_turns` kwarg of the game if it has one)."""
    entry, registered = entry_point(game_id)
    kwargs = {**registered, **(game_kwargs or {})}
    with translated_errors(game_id):
        try:
            env = entry(**kwargs)
        except TypeError as exc:
            raise TypeError(f"TextArena's {game_id} rejected game_kwargs={game_kwargs}: {exc}") from exc
    max_turns = kwargs.get("max_turns")
    return env, max_turns if isinstance(max_turns, int) else None


class TextArenaSession:
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
                echo = action and pid == mover and sender in (mover, GAME_ID)
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
            f"[{'GAME' if sender == GAME_ID else roles.get(sender, f'Player {sender}')}] {text}"
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
def _lenient_state_class(cls: type[Any]) -> type:
    """`cls` whose `add_observation` defaults `observation_type`, which older TextArena releases did not
    have and a few of TextArena 0.7.4's games (CharacterConclave) still leave out."""
    from textarena.core import ObservationType

    def add_observation(
        self: Any, message: str, observation_type: Any = None, from_id: int = GAME_ID, to_id: int = -1
    ) -> None:
        if observation_type is None:
            player = from_id != GAME_ID
            observation_type = ObservationType.PLAYER_ACTION if player else ObservationType.GAME_MESSAGE
        cls.add_observation(self, message, observation_type, from_id=from_id, to_id=to_id)

    return type(cls.__name__, (cls,), {"add_observation": add_observation, "__module__": cls.__module__})


def _accept_old_add_observation(state: Any) -> None:
    """Make `state.add_observation` accept TextArena's older signature (see `_lenient_state_class`)."""
    cls = state.__class__
    try:
        parameter = inspect.signature(cls.add_observation).parameters.get("observation_type")
    except (AttributeError, TypeError, ValueError):
        return
    if parameter is not None and parameter.default is inspect.Parameter.empty:
        state.__class__ = _lenient_state_class(cls)
