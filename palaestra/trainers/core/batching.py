"""From trajectories to padded, length-bucketed training micro-batches.

Every tensor is aligned to *target* positions: column t of a `(B, T-1)` tensor describes the prediction
of token t+1 from tokens 0..t. So `loss_mask[b, t]` is 1 when token t+1 of row b was sampled by the
policy, `old_logp[b, t]` is that token's sampling logprob and `adv[b, t]` its advantage.

Rows are sorted by length and cut into micro-batches whose padded size (rows x longest row) stays under
a token budget, so short sequences are not padded to the longest of the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.forward import PrefixPlan, plan, prompt_length

__all__ = ["MicroBatch", "Normalizers", "Row", "StepBatch", "bucket_by_length", "collate"]


@dataclass(frozen=True)
class Row:
    """One training sequence.

    Attributes:
        token_ids: the exact token sequence.
        loss_mask: 1 on policy-sampled tokens.
        logprobs: sampling logprob per token (0.0 where not sampled).
        advantage: scalar advantage of the sequence, or one value per token.
        index: position of the row in its step's batch (to scatter results back).
    """

    token_ids: Sequence[int]
    loss_mask: Sequence[int]
    logprobs: Sequence[float]
    advantage: float | Sequence[float]
    index: int

    def __len__(self) -> int:
        return len(self.token_ids)


class Normalizers(dict):
    """Counts over a whole mini-batch that micro-batch losses divide by: `tokens` and `sequences`."""


class StepBatch:
    """The trajectories one step trains on, with their advantages."""

    def __init__(
        self,
        trajectories: list[Trajectory],
        advantages: list[float | list[float]],
        trainable: list[bool] | None = None,
    ):
        if len(trajectories) != len(advantages):
            raise ValueError(f"{len(trajectories)} trajectories but {len(advantages)} advantages")
        self.trajectories = trajectories
        self.advantages = advantages
        self.trainable = trainable if trainable is not None else [True] * len(trajectories)

    def rows(self) -> list[Row]:
        """Training rows of the trainable trajectories that have sampled tokens."""
        return [
            Row(t.token_ids, t.loss_mask, t.logprobs, adv, i)
            for i, (t, adv, keep) in enumerate(
                zip(self.trajectories, self.advantages, self.trainable, strict=True)
            )
            if keep and t.num_generated_tokens > 0
        ]


@dataclass
class MicroBatch:
    """Right-padded tensors of a few rows.

    Attributes:
        input_ids: (B, T) token ids, padded with `pad_id`.
        attention_mask: (B, T) 1 on real tokens.
        loss_mask: (B, T-1) 1 where the target token was sampled by the policy.
        old_logp: (B, T-1) sampling logprob of each target token (replaced by recomputed ones if asked).
        adv: (B, T-1) advantage of each target token (0 where loss_mask is 0).
        indices: (B,) row indices in the step's batch.
        prefix: how the rows share prompts, for the shared-prefix pass (None: plain pass).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    old_logp: torch.Tensor
    adv: torch.Tensor
    indices: list[int]
    prefix: PrefixPlan | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.loss_mask.sum())

    @property
    def target_window(self) -> tuple[int, int]:
        """Columns [lo, hi) of the (B, T-1) tensors that hold every sampled target of the batch.

        Only these positions need logits: prompts and padding outside the window are skipped.
        """
        cols = self.loss_mask.any(dim=0).nonzero()
        if len(cols) == 0:
            return 0, 0
        return int(cols[0]), int(cols[-1]) + 1

    def to(self, device: torch.device | str) -> MicroBatch:
        return MicroBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.loss_mask.to(device),
            self.old_logp.to(device),
            self.adv.to(device),
            self.indices,
            self.prefix.to(device) if self.prefix is not None else None,
        )


def bucket_by_length(
    rows: Sequence[Row], max_tokens: int, *, keep_prompts_together: bool = False
) -> list[list[Row]]:
    """Group rows (longest first) so that rows x longest length <= max_tokens in every group.

    A row longer than `max_tokens` gets a group of its own. With `keep_prompts_together`, rows that
    start with the same prompt (a task's group shares its prompt) are ordered next to each other,
    groups by their longest row, so a micro-batch holds whole groups for the shared-prefix pass.
    """
    ordered = sorted(rows, key=len, reverse=True)
    if keep_prompts_together:
        longest: dict[tuple[int, ...], int] = {}
        for row in ordered:
            longest.setdefault(_prompt(row), len(row))
        rank = {key: i for i, key in enumerate(longest)}
        ordered.sort(key=lambda row: rank[_prompt(row)])  # stable: longest first within a prompt
    groups: list[list[Row]] = []
    for row in ordered:
        if groups and (len(groups[-1]) + 1) * len(groups[-1][0]) <= max_tokens:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _prompt(row: Row) -> tuple[int, ...]:
    return tuple(row.token_ids[: prompt_length(row)])


def collate(rows: Sequence[Row], pad_id: int, *, share_prefix: bool = False) -> MicroBatch:
    """Right-pad rows into one `MicroBatch` (with a shared-prefix plan if asked and worth it)."""
    length = max(len(r) for r in rows)
    b = len(rows)
    input_ids = torch.full((b, length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((b, length), dtype=torch.long)
    loss_mask = torch.zeros((b, length), dtype=torch.float32)
    old_logp = torch.zeros((b, length), dtype=torch.float32)
    adv = torch.zeros((b, length), dtype=torch.float32)
    for i, row in enumerate(rows):
        n = len(row)
        input_ids[i, :n] = torch.as_tensor(row.token_ids, dtype=torch.long)
        attention_mask[i, :n] = 1
        loss_mask[i, :n] = torch.as_tensor(row.loss_mask, dtype=torch.float32)
        old_logp[i, :n] = torch.as_tensor(row.logprobs, dtype=torch.float32)
        adv[i, :n] = torch.as_tensor(row.advantage, dtype=torch.float32)
    # shift to target positions: column t predicts token t+1
    loss_mask = loss_mask[:, 1:]
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        loss_mask=loss_mask,
        old_logp=old_logp[:, 1:] * loss_mask,
        adv=adv[:, 1:] * loss_mask,
        indices=[r.index for r in rows],
        prefix=plan(rows, pad_id) if share_prefix else None,
    )
