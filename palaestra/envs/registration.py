"""Registering and making palaestra environments.

Envs live in gymnasium's own registry (so `gymnasium.make("palaestra/Math-Arith-v0")` works); this
module adds the catalogue data gymnasium's `EnvSpec` has no field for (family, description, turns,
reward range) and a `make` with helpful errors.

Four ways an env gets registered:
    * palaestra's own envs, on `import palaestra`;
    * a user's class, with one call: `palaestra.register_env("me/Echo-v0", EchoEnv, description=...)`;
    * a third-party package, through the entry-point group `palaestra.envs`: each entry point names a
      module (imported for its side effect) or a zero-argument callable that calls `register_env`;
    * any module that registers envs (with palaestra or with plain `gymnasium.register`), named in the
      id as gymnasium's `module:id` form does ("myenv:mine/Reverse-v0" imports `myenv`, then makes
      "mine/Reverse-v0"), or in a training config's `imports:`.

An env may be registered but unable to run here (a suite's game that needs data not installed, an API
key, a newer Python): its card's `availability` check says why and how to fix it. `list_envs` leaves
such ids out unless asked, and `make` raises `EnvUnavailableError` with that reason.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import gymnasium as gym

__all__ = [
    "ENTRY_POINT_GROUP",
    "EnvCard",
    "EnvUnavailableError",
    "UnknownEnvError",
    "check_env",
    "env_card",
    "list_envs",
    "load_plugins",
    "make",
    "register_env",
    "resolve_id",
    "split_module",
]

ENTRY_POINT_GROUP = "palaestra.envs"
DEFAULT_NAMESPACE = "palaestra"


@dataclass(frozen=True)
class EnvCard:
    """Catalogue entry of a registered env.

    Attributes:
        id: full gymnasium id, e.g. "palaestra/Math-Arith-v0".
        family: Math, Code, Web, Game, or a third party's own name.
        description: one line shown by `palaestra envs list`.
        max_turns: the most actions an episode takes with the registered kwargs.
        reward_range: (low, high) of the episode return.
        required_kwargs: kwargs `make` needs (e.g. a dataset path).
        entry_point: "module:Class" or the class itself; None for a gymnasium registration without one
            (a vector-only env).
        kwargs: the registered default kwargs.
        availability: a cheap check, `() -> None` when the env can run here, else why it cannot and
            the fix (one line); None: always available.
    """

    id: str
    family: str
    description: str
    max_turns: int
    reward_range: tuple[float, float]
    required_kwargs: tuple[str, ...]
    entry_point: str | Callable[..., gym.Env] | None
    kwargs: dict[str, Any]
    availability: Callable[[], str | None] | None = None

    @property
    def unavailable(self) -> str | None:
        """Why the env cannot run here, and the fix; None when it can."""
        return None if self.availability is None else self.availability()


class EnvUnavailableError(RuntimeError):
    """Raised by `make` for a registered env that cannot run here; the message says why and the fix."""


class UnknownEnvError(KeyError):
    """Raised for an env id nobody registered; the message names close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plain
        return str(self.args[0])


_cards: dict[str, EnvCard] = {}
_plugins_loaded = False


def _family_of(env_id: str) -> str:
    name = env_id.split("/", 1)[-1]
    return name.split("-", 1)[0] if "-" in name else "Other"


def register_env(
    env_id: str,
    entry_point: str | Callable[..., gym.Env],
    *,
    description: str = "",
    family: str | None = None,
    max_turns: int = 1,
    reward_range: tuple[float, float] = (0.0, 1.0),
    required_kwargs: tuple[str, ...] = (),
    kwargs: dict[str, Any] | None = None,
    availability: Callable[[], str | None] | None = None,
    override: bool = False,
) -> EnvCard:
    """Register an env in gymnasium's registry and palaestra's catalogue.

    Args:
        env_id: "[namespace/]Name-vN". Ids without a namespace go to your own namespace, not
            "palaestra/" (which is reserved for the built-in envs).
        entry_point: the env class (or any callable returning an env) or a lazy "module:Class" string.
        description: one line for `palaestra envs list`.
        family: catalogue family; by default the part of the name before the first "-".
        max_turns: most actions per episode with these kwargs.
        reward_range: (low, high) of the episode return.
        required_kwargs: kwargs that `make` must receive.
        kwargs: default kwargs passed to the entry point.
        availability: a cheap check (see `EnvCard.availability`), called by `list_envs` and `make`.
        override: replace an existing registration instead of raising.

    Returns:
        The catalogue card.

    Raises:
        ValueError: the id is already registered and `override` is False.
    """
    if env_id in gym.registry and not override:
        raise ValueError(f"env id {env_id!r} is already registered; pass override=True to replace it")
    if env_id in gym.registry:
        del gym.registry[env_id]
    gym.register(id=env_id, entry_point=entry_point, kwargs=dict(kwargs or {}), disable_env_checker=True)
    card = EnvCard(
        id=env_id,
        family=family or _family_of(env_id),
        description=description,
        max_turns=max_turns,
        reward_range=reward_range,
        required_kwargs=tuple(required_kwargs),
        entry_point=entry_point,
        kwargs=dict(kwargs or {}),
        availability=availability,
    )
    _cards[env_id] = card
    return card


def load_plugins(*, reload: bool = False) -> None:
    """Import the `palaestra.envs` entry points of installed packages (once, unless `reload`).

    A plugin that fails to load is reported with a warning and skipped.
    """
    global _plugins_loaded
    if _plugins_loaded and not reload:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
            if callable(target):
                target()
        except Exception as exc:  # a broken plugin must not break palaestra
            warnings.warn(f"env plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)


def list_envs(family: str | None = None, *, include_unavailable: bool = False) -> list[EnvCard]:
    """The catalogued envs that can run here, sorted by id, optionally of one family.

    Args:
        family: only this family (case-insensitive).
        include_unavailable: also the envs whose `availability` check fails here (their card's
            `unavailable` says why and the fix).
    """
    load_plugins()
    cards = sorted(_cards.values(), key=lambda c: c.id)
    if family is not None:
        cards = [c for c in cards if c.family.lower() == family.lower()]
    if not include_unavailable:
        cards = [c for c in cards if c.unavailable is None]
    return cards


def split_module(env_id: str) -> tuple[str | None, str]:
    """`"myenv:mine/Reverse-v0"` -> `("myenv", "mine/Reverse-v0")`; an id without a module -> `(None, id)`."""
    module, sep, name = env_id.partition(":")
    return (module, name) if sep else (None, env_id)


def _import_env_module(module: str, env_id: str) -> None:
    """Import the module a `module:id` names, for the envs it registers; any failure is one line."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise UnknownEnvError(f"env id {env_id!r}: importing {module!r} failed: {exc}") from exc
        raise UnknownEnvError(
            f"env id {env_id!r}: no module named {module!r}; the part before ':' is a module that registers "
            "the env: put its folder on PYTHONPATH (palaestra looks in the current folder too) or install it"
        ) from exc
    except Exception as exc:  # the module's own error, as one line
        raise UnknownEnvError(
            f"env id {env_id!r}: importing {module!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def resolve_id(env_id: str) -> str:
    """Return the registered full id for `env_id` ("Math-Arith-v0" -> "palaestra/Math-Arith-v0").

    `module:id` (gymnasium's form) imports `module` first, then resolves `id`; the module is left out of
    the result.

    Raises:
        UnknownEnvError: the module cannot be imported, or nothing is registered under that id; the
            message lists close matches.
    """
    load_plugins()
    module, env_id = split_module(env_id)
    if module is not None:
        _import_env_module(module, f"{module}:{env_id}")
    if env_id in gym.registry:
        return env_id
    namespaced = f"{DEFAULT_NAMESPACE}/{env_id}"
    if "/" not in env_id and namespaced in gym.registry:
        return namespaced
    known = sorted(gym.registry)
    close = difflib.get_close_matches(env_id, known, n=5, cutoff=0.6)
    close += [k for k in difflib.get_close_matches(namespaced, known, n=5, cutoff=0.6) if k not in close]
    hint = f" Did you mean: {', '.join(close[:5])}?" if close else ""
    raise UnknownEnvError(f"unknown env id {env_id!r}.{hint} Run `palaestra envs list` to see every id.")


def env_card(env_id: str) -> EnvCard:
    """The catalogue card of an env (gymnasium-only registrations get a minimal card: `max_turns` is the
    spec's `max_episode_steps`, 0 when it has none; any reward)."""
    full = resolve_id(env_id)
    if full in _cards:
        return _cards[full]
    spec = gym.spec(full)
    max_turns = spec.max_episode_steps or 0
    return EnvCard(
        full,
        _family_of(full),
        "",
        max_turns,
        (float("-inf"), float("inf")),
        (),
        spec.entry_point,
        spec.kwargs,
    )


def make(env_id: str, *, server: str | None = None, **kwargs: Any) -> gym.Env:
    """Create an env by id, like `gymnasium.make`, with palaestra's checks.

    Args:
        env_id: full id or a palaestra id without its namespace.
        server: an OpenEnv server's URL ("ws://host:port"): the env runs there, in a session of its
            own (`palaestra.envs.remote.RemoteEnv`; the id and kwargs are the server's to check).
        **kwargs: override the registered kwargs.

    Raises:
        UnknownEnvError: unknown id (the message names close matches).
        EnvUnavailableError: the env cannot run here (the message says why and the fix).
        TypeError: a required kwarg is missing, or the env rejected a kwarg.
    """
    if server is not None:
        from palaestra.envs.remote import RemoteEnv

        return RemoteEnv(server, env_id, env_kwargs=kwargs)
    card = env_card(env_id)
    if (reason := card.unavailable) is not None:
        raise EnvUnavailableError(f"{card.id} cannot run here: {reason}")
    missing = [k for k in card.required_kwargs if k not in kwargs and k not in card.kwargs]
    if missing:
        raise TypeError(
            f"{card.id} needs {', '.join(f'{k}=...' for k in missing)}; e.g. make({card.id!r}, "
            + ", ".join(f"{k}=..." for k in missing)
            + ")"
        )
    return gym.make(card.id, **kwargs)


def _accepted_kwargs(entry_point: str | Callable[..., gym.Env] | None) -> list[str] | None:
    """Keyword names the env's constructor takes, or None when it takes any (`**kwargs`) or is opaque."""
    from gymnasium.envs.registration import load_env_creator

    if entry_point is None:
        return None
    try:
        creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
        params = inspect.signature(creator).parameters.values()
    except (ImportError, AttributeError, TypeError, ValueError):
        return None  # constructing it below reports an import error in the env's own words
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def check_env(env_id: str, kwargs: dict[str, Any] | None = None) -> None:
    """Build the env `env_id` with `kwargs` once and close it: a check before a run relies on it.

    Raises:
        UnknownEnvError: unknown id (the message names close matches).
        TypeError: a kwarg the env does not take (named, with close matches), or a required one missing.
        ValueError: the env rejected a kwarg's value (its own message, prefixed with the env id).
    """
    kwargs = dict(kwargs or {})
    card = env_card(env_id)
    accepted = _accepted_kwargs(card.entry_point)
    unknown = [k for k in kwargs if accepted is not None and k not in accepted]
    if unknown:
        close = difflib.get_close_matches(unknown[0], accepted or [], n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"it takes: {', '.join(accepted or []) or 'none'}"
        raise TypeError(f"{card.id} takes no kwarg {unknown[0]!r}; {hint}")
    try:
        env = make(card.id, **kwargs)
    except ValueError as exc:
        raise ValueError(f"{card.id} with kwargs {kwargs}: {exc}") from exc
    env.close()
