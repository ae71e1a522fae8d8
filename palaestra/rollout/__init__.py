"""Rollout: run episodes concurrently and record token-exact trajectories."""

from __future__ import annotations

from palaestra.rollout.chat import ChatTemplateError, TokenChat
from palaestra.rollout.driver import Episode, EpisodeDriver, EpisodeError, Step, TurnStrategy
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task, rollout
from palaestra.rollout.storage import load_trajectories, save_trajectories
from palaestra.rollout.trajectory import GuidedStep, Refinement, SemiOnlineStep, Trajectory, Turn

__all__ = [
    "ChatTemplateError",
    "Episode",
    "EpisodeDriver",
    "EpisodeError",
    "GuidedStep",
    "Refinement",
    "RolloutConfig",
    "RolloutRunner",
    "SemiOnlineStep",
    "Step",
    "Task",
    "TokenChat",
    "Trajectory",
    "Turn",
    "TurnStrategy",
    "load_trajectories",
    "rollout",
    "save_trajectories",
]
