"""Trainers: RL algorithms over token-exact trajectories (see docs/algorithms.md).

`make_trainer(config)` picks the trainer named by `config.algorithm.name`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from palaestra.config import TrainConfig
    from palaestra.trainers.core.trainer import Trainer

__all__ = ["make_trainer"]


def make_trainer(config: TrainConfig, **kwargs: Any) -> Trainer:
    """The trainer for `config.algorithm.name`, built from the config (kwargs go to its constructor)."""
    from palaestra.trainers.arpo import ARPOTrainer
    from palaestra.trainers.cgi import CGITrainer
    from palaestra.trainers.critique_grpo import CritiqueGRPOTrainer
    from palaestra.trainers.gigpo import GiGPOTrainer
    from palaestra.trainers.grpo import GRPOTrainer
    from palaestra.trainers.semi_online import SemiOnlineTrainer

    trainers = {
        "grpo": GRPOTrainer,
        "arpo": ARPOTrainer,
        "gigpo": GiGPOTrainer,
        "semi_online": SemiOnlineTrainer,
        "critique_grpo": CritiqueGRPOTrainer,
        "cgi": CGITrainer,
    }
    name = config.algorithm.name
    if name not in trainers:
        raise ValueError(f"algorithm.name={name!r}; available: {', '.join(sorted(trainers))}")
    return trainers[name](config, **kwargs)
