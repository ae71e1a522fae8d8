"""Which TextArena games exist, read from TextArena's registry file without importing textarena.

Importing textarena takes seconds; reading its registry file (`textarena/envs/__init__.py`) takes a
millisecond. `scan_registry` lists the games with their player counts (from the file's comments and
the game modules' own checks) and turn caps; `register_envs` registers `textarena/<id>` for each, with
`palaestra.envs.adapters.textarena.make_textarena_env` as the lazy entry point.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym

from palaestra.envs.adapters.textarena_checks import unavailable_reason
from palaestra.envs.registration import register_env

__all__ = [
    "DEFAULT_MAX_TURNS",
    "NAMESPACE",
    "RegistryListing",
    "default_max_turns",
    "env_id_of",
    "register_envs",
    "scan_registry",
]

NAMESPACE = "textarena"
DEFAULT_MAX_TURNS = 200
"""Turn cap of a game whose TextArena registration sets no `max_turns` (games end on their own)."""
_CALL_RE = re.compile(r'^(?:register|register_with_versions)\(\s*id\s*=\s*"([^"]+)"(.*)$', re.M)
_COMMENTED_CALL_RE = re.compile(r"^#[#\s]*register")
_PLAYERS_RE = re.compile(r"[\[(]\s*(\d+)(?:\s*-\s*\d+)?\s+players?\b|\bsingle-player\b|\btwo-player\b", re.I)
_WORD_PLAYERS = {"single-player": 1, "two-player": 2}
_VARIANT_RE = re.compile(r"-(raw|train)(-|$)")
_MAX_TURNS_RE = re.compile(r"\bmax_turns\s*=\s*(\d[\d_]*)")
_ENTRY_RE = re.compile(r'\bentry_point\s*=\s*"([\w.]+):')
_MIN_PLAYERS_RE = re.compile(r"\bassert\s*(\d+)\s*<=?\s*num_players\b|\bnum_players\s*(?:>=|==)\s*(\d+)")
_UNSAFE_RE = re.compile(r"[^\w:.-]")  # characters gymnasium ids cannot hold


@dataclass(frozen=True)
class RegistryListing:
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


def scan_registry(path: str | Path | None = None) -> list[RegistryListing]:
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
            RegistryListing(call.group(1), n, int(turns.group(1).replace("_", "")) if turns else None, module)
        )
    return listings


def env_id_of(game_id: str) -> str:
    """The palaestra id of a TextArena game id ("Wordle-v0" -> "textarena/Wordle-v0")."""
    return f"{NAMESPACE}/{_UNSAFE_RE.sub('_', game_id)}"


def default_max_turns(ta_max_turns: int | None) -> int:
    """A game's palaestra turn cap from TextArena's `max_turns` (None: `DEFAULT_MAX_TURNS`)."""
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
            max_turns=default_max_turns(listing.max_turns),
            reward_range=(0.0, 1.0) if n is not None and n > 1 else (-1.0, 1.0),
            # games that need 3+ players say so in TextArena's comments only; 2 is the default
            kwargs={"game_id": listing.game_id, **({"num_players": n} if n is not None and n > 2 else {})},
            availability=functools.partial(unavailable_reason, listing.game_id, listing.module),
        )
        count += 1
    return count
