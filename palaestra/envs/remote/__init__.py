"""Envs served elsewhere: `RemoteEnv` runs episodes on an OpenEnv server (`palaestra serve` or any
other), so rollouts use them like local envs. Importing this package imports openenv-core (the
`serve` extra); nothing in palaestra imports it until a remote env is made."""

from __future__ import annotations

from palaestra.envs.remote.client import RemoteEnv, RemoteEnvError, check_remote_env, wire_for
from palaestra.envs.remote.protocol import SERVER_NAME, TextAction, TextObservation, json_safe
from palaestra.envs.remote.wire import Answer, OpenEnvWire, PalaestraWire, Wire

__all__ = [
    "SERVER_NAME",
    "Answer",
    "OpenEnvWire",
    "PalaestraWire",
    "RemoteEnv",
    "RemoteEnvError",
    "TextAction",
    "TextObservation",
    "Wire",
    "check_remote_env",
    "json_safe",
    "wire_for",
]
