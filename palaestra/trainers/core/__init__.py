"""Trainer core: the pure maths every algorithm shares (docs/algorithms.md §1), plus the loop's parts.

Public maths, importable from here:
    losses      clipped surrogate, loss aggregations, KL estimators, logprobs / entropy from logits
    advantages  group-relative advantages, token broadcast, discounted returns
    filters     DAPO dynamic sampling and overlong shaping, StarPO-S variance filtering

The loop (`trainer.Trainer`), the update it extends (`learner.Learner`), the model's set-up
(`model_setup`), the algorithm config's base (`config.AlgorithmConfig`) and the loop's parts (batching,
checkpoints, optimizer, sampler, tracking) are imported from their modules, so importing the maths does
not pull in models or rollout machinery.
"""

from __future__ import annotations

from palaestra.trainers.core.advantages import (
    AdvantageEstimator,
    GroupRelativeEstimator,
    broadcast_to_tokens,
    discounted_returns,
    group_advantages,
    token_advantages,
)
from palaestra.trainers.core.filters import (
    group_returns,
    keep_informative_groups,
    overlong_mask,
    soft_overlong_penalty,
    starpo_s_filter,
    truncated_replies,
    zero_variance_groups,
)
from palaestra.trainers.core.losses import (
    AGGREGATIONS,
    KL_ESTIMATORS,
    Aggregation,
    LossConfig,
    bind_aggregation,
    clipped_pg_token_loss,
    entropy_from_logits,
    kl_k1,
    kl_k2,
    kl_k3,
    masked_mean,
    masked_sum,
    policy_loss,
    selected_logprobs,
    seq_mean_token_mean,
    seq_mean_token_sum_norm,
    token_mean,
)

__all__ = [
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "AdvantageEstimator",
    "Aggregation",
    "GroupRelativeEstimator",
    "LossConfig",
    "bind_aggregation",
    "broadcast_to_tokens",
    "clipped_pg_token_loss",
    "discounted_returns",
    "entropy_from_logits",
    "group_advantages",
    "group_returns",
    "keep_informative_groups",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "masked_mean",
    "masked_sum",
    "overlong_mask",
    "policy_loss",
    "selected_logprobs",
    "seq_mean_token_mean",
    "seq_mean_token_sum_norm",
    "soft_overlong_penalty",
    "starpo_s_filter",
    "token_advantages",
    "token_mean",
    "truncated_replies",
    "zero_variance_groups",
]
