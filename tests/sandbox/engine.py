"""The Docker Engine the docker backend's tests run against, if one is there (it is not started here).

`scripts/sandbox-engine.sh` starts a private dockerd and builds `SANDBOX_IMAGE` (about 70 s cold,
under a second warm); `.ci/run` runs it before the tests. The tests find the engine at
`$PALAESTRA_DOCKER_HOST`, else at the script's default socket `DEFAULT_ENGINE_URL`.
"""

from __future__ import annotations

import functools
import os

SANDBOX_IMAGE = "palaestra-sandbox:test"
DEFAULT_ENGINE_URL = "unix:///run/palaestra-docker.sock"
ENGINE_URL_VAR = "PALAESTRA_DOCKER_HOST"
_START_HINT = "start one with `bash scripts/sandbox-engine.sh` (it also builds the image)"


def engine_url() -> str:
    """Where the tests look for the engine."""
    return os.environ.get(ENGINE_URL_VAR) or DEFAULT_ENGINE_URL


@functools.cache
def docker_engine_or_skip_reason() -> str:
    """The engine's URL when a daemon answers there and has `SANDBOX_IMAGE`, else why not (cached)."""
    url = engine_url()
    try:
        import docker
        import docker.errors
    except ImportError:
        return "the Docker SDK is not installed: pip install 'palaestra[sandbox-docker]'"
    if url.startswith("unix://") and not os.path.exists(url.removeprefix("unix://")):
        return f"no Docker Engine socket at {url} (set {ENGINE_URL_VAR}, or {_START_HINT})"
    try:
        client = docker.DockerClient(base_url=url, version="auto", timeout=10)
    except docker.errors.DockerException as exc:
        return f"no Docker Engine answers at {url}: {exc} ({_START_HINT})"
    try:
        client.images.get(SANDBOX_IMAGE)
    except docker.errors.ImageNotFound:
        return f"the engine at {url} has no image {SANDBOX_IMAGE!r} ({_START_HINT})"
    except docker.errors.DockerException as exc:
        return f"the engine at {url} failed to look up {SANDBOX_IMAGE!r}: {exc}"
    finally:
        client.close()
    return url
