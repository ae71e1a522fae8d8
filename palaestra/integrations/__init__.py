"""Other trainers on palaestra envs: `palaestra.integrations.trl` (TRL's `GRPOTrainer`).

Each integration imports its library lazily, so palaestra itself never needs it installed.
"""
