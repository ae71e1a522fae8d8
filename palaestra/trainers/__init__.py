"""Trainers: RL algorithms over token-exact trajectories (see ../shared/ALGORITHMS.md)."""
