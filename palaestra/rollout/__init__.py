"""Rollout: run episodes concurrently and record token-exact trajectories."""

from __future__ import annotations

from palaestra.rollout.chat import ChatTemplateError, TokenChat
from palaestra.rollout.runner import EpisodeError, RolloutConfig, RolloutRunner, Task, rollout
from palaestra.rollout.storage import load_trajectories, save_trajectories
from palaestra.rollout.trajectory import Trajectory, Turn

__all__ = [
    "ChatTemplateError",
    "EpisodeError",
    "RolloutConfig",
    "RolloutRunner",
    "Task",
    "TokenChat",
    "Trajectory",
    "Turn",
    "load_trajectories",
    "rollout",
    "save_trajectories",
]
