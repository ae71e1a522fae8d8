"""Trainers: RL algorithms over token-exact trajectories (see docs/algorithms.md).

Each algorithm is one module that registers its config and trainer (`trainers/registry.py`);
`make_trainer(config)` builds the trainer registered under `config.algorithm.name`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from palaestra.trainers.registry import register_algorithm, resolve_algorithm

if TYPE_CHECKING:
    from palaestra.config import TrainConfig
    from palaestra.trainers.core.trainer import Trainer

__all__ = ["make_trainer", "register_algorithm"]


def make_trainer(config: TrainConfig, **kwargs: Any) -> Trainer:
    """The trainer for `config.algorithm.name`, built from the config (kwargs go to its constructor)."""
    return resolve_algorithm(config.algorithm.name).trainer(config, **kwargs)
