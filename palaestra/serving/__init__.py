"""`palaestra serve`: sessions of any registered env over the OpenEnv protocol (openenv-core's server).

See `palaestra.serving.server` for the server and `palaestra.serving.session` for one session's env;
clients are `palaestra.envs.remote.RemoteEnv` or any OpenEnv client.
"""

from __future__ import annotations

from palaestra.serving.server import EnvServer, SessionServer, create_app
from palaestra.serving.session import ServedIds, SessionClosedError, SessionEnv

__all__ = ["EnvServer", "ServedIds", "SessionClosedError", "SessionEnv", "SessionServer", "create_app"]
