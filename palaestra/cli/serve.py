"""`palaestra serve`: host sessions of registered envs over the OpenEnv protocol."""

from __future__ import annotations

from typing import Annotated

import typer

from palaestra.cli.shared import console, fail

__all__ = ["serve_command"]


def serve_command(
    env_ids: Annotated[
        list[str], typer.Argument(help="Env ids to serve (palaestra, plugin or module:id envs).")
    ],
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one (printed).")] = 8765,
    max_sessions: Annotated[
        int, typer.Option(help="Sessions open at once; one more is refused with CAPACITY_REACHED.")
    ] = 256,
    idle_timeout: Annotated[
        float, typer.Option(help="Close a session (and free its env) after this many seconds without a call.")
    ] = 300.0,
) -> None:
    """Serve sessions of ENV_IDS over the OpenEnv protocol (WebSocket /ws, openenv-core's server).

    Each client session gets its own env; it is closed, with its browser context, sandbox or
    subprocess, when the client closes, disconnects, dies or stays idle past --idle-timeout.
    Clients: `palaestra eval --env-server URL`, a config's `envs.train[].server`, or any OpenEnv client.
    """
    if max_sessions < 1:
        raise fail(f"--max-sessions={max_sessions}; it must be >= 1")
    if not idle_timeout > 0:
        raise fail(f"--idle-timeout={idle_timeout}; it must be > 0 seconds")
    if not 0 <= port < 65536:
        raise fail(f"--port={port}; it must be in 0..65535")
    from palaestra.envs.registration import UnknownEnvError, env_card

    for env_id in env_ids:
        try:
            reason = env_card(env_id).unavailable
        except UnknownEnvError as exc:
            raise fail(str(exc)) from None
        if reason is not None:
            raise fail(f"{env_id} cannot run here: {reason}")
    try:
        from palaestra.serving import EnvServer, create_app
    except ImportError as exc:
        raise fail(f"serve needs openenv-core ({exc}); pip install 'palaestra[serve]'") from None
    app = create_app(env_ids, max_sessions=max_sessions, idle_timeout_s=idle_timeout)
    try:
        server = EnvServer(app, host=host, port=port)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    ids = ", ".join(app.state.env_ids)
    console.print(
        f"serving {ids} on {server.url} (max {max_sessions} sessions, idle timeout {idle_timeout:g} s)"
    )
    server.serve_forever()
