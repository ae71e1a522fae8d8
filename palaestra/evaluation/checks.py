"""Checks of evaluation inputs that run before any model loads or episode plays.

Each raises `ValueError` with one line that names the bad value and what was expected, so
`palaestra eval` and `palaestra demos` fail in a second instead of after (or during) the compute.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from palaestra.envs import registration
from palaestra.envs.registration import EnvUnavailableError, UnknownEnvError, make, resolve_id

__all__ = ["ORACLE", "check_env", "check_expert", "check_opponents", "check_out_dir"]

ORACLE = "scripted:oracle"


def check_env(env_id: str, env_kwargs: dict[str, Any] | None = None, server: str | None = None) -> str:
    """`registration.check_env` (build the env once with `env_kwargs`, close it), as one `ValueError` line.

    With `server`, the env is reset once on that OpenEnv server instead (`check_remote_env`).

    Returns:
        The env's full id (with `server`: `env_id` as given; the server resolves it).

    Raises:
        ValueError: an unknown id (naming close matches), or kwargs the env rejects: an unknown or
            missing kwarg, a bad value, a data file that is not there, a missing optional dependency,
            an env that cannot run here.
    """
    if server is not None:
        from palaestra.envs.remote import RemoteEnvError, check_remote_env

        try:
            check_remote_env(server, env_id, env_kwargs)
        except RemoteEnvError as exc:
            raise ValueError(" ".join(str(exc).split())) from None
        return env_id
    try:
        full_id = resolve_id(env_id)
        registration.check_env(full_id, env_kwargs)
    except UnknownEnvError as exc:
        raise ValueError(exc.args[0] if exc.args else str(exc)) from None
    except (TypeError, ValueError, FileNotFoundError, ImportError, EnvUnavailableError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        given = f" with kwargs {env_kwargs}" if env_kwargs else ""
        prefix = "" if text.startswith(full_id) else f"{full_id}{given}: "
        raise ValueError(prefix + text) from None
    return full_id


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def check_out_dir(path: str | Path, *, flag: str = "--out") -> Path:
    """Make sure results can be written under `path`: create the folder and a temporary file in it.

    Returns:
        The folder (it exists afterwards).

    Raises:
        ValueError: `path` is a file, lies under a file, or cannot be created or written to.
    """
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is a file, not a folder; pass a folder path")
    ancestor = _existing_ancestor(out)
    if not out.exists() and not ancestor.is_dir():
        raise ValueError(f"{flag} {out} lies under the file {ancestor}; pass a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(
            f"{flag} {out} cannot be written ({reason}); pass a folder you can write to"
        ) from None
    return out


def check_opponents(env_id: str, env_kwargs: dict[str, Any], opponents: list[str]) -> None:
    """Check that `env_id` is a multi-player game and each opponent is 'self', one of its scripted
    players, or a valid agent spec (`BACKEND:TARGET`, checked without loading it).

    Raises:
        ValueError: the env is not a game, or an opponent is unknown.
    """
    from palaestra.agents.spec import check_spec
    from palaestra.rollout.matches import game_of

    _, scripted = game_of(env_id, **env_kwargs)
    for spec in opponents:
        if ":" in spec:
            check_spec(spec)
        elif spec != "self" and spec not in scripted:
            raise ValueError(
                f"--opponent {spec!r}: {env_id} offers 'self', its scripted players {sorted(scripted)}, "
                "or an agent spec (hf:..., scripted:oracle)"
            )


def check_expert(
    env_id: str, env_kwargs: dict[str, Any] | None = None, *, seed: int = 0, who: str = ORACLE
) -> None:
    """Check that the env gives `info["expert_action"]` at reset, which `who` (the scripted oracle, expert
    demonstrations) plays; call it after `check_env`.

    Raises:
        ValueError: one line naming the env and what to do instead.
    """
    env = make(env_id, **dict(env_kwargs or {}))
    try:
        _, info = env.reset(seed=seed)
    finally:
        env.close()
    if info.get("expert_action") is None:
        raise ValueError(
            f"{who} plays the env's info['expert_action'], which {env_id} does not give (seed {seed}); "
            "evaluate another agent (hf:..., scripted:random) or add expert_action to the env's info"
        )
