"""From trajectories to padded, length-bucketed training micro-batches.

Every tensor is aligned to *target* positions: column t of a `(B, T-1)` tensor describes the prediction
of token t+1 from tokens 0..t. So `loss_mask[b, t]` is 1 when token t+1 of row b was sampled by the
policy, `behav_logp[b, t]` is that token's sampling logprob, `old_logp[b, t]` the logprob the loss
takes as π_old (the sampling one, or the trainer's own when recomputed) and `adv[b, t]` its advantage.

Rows are sorted by length and cut into micro-batches whose padded size (rows x longest row) stays under
a token budget, so short sequences are not padded to the longest of the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from palaestra.rollout.trajectory import Trajectory

__all__ = [
    "Advantages",
    "MicroBatch",
    "Normalizers",
    "PrefixPlan",
    "Row",
    "StepBatch",
    "bucket_by_length",
    "collate",
    "plan",
    "prompt_length",
]


@dataclass(frozen=True)
class Row:
    """One training sequence.

    Attributes:
        token_ids: the exact token sequence.
        loss_mask: 1 on policy-sampled tokens.
        logprobs: sampling logprob per token (0.0 where not sampled).
        advantage: scalar advantage of the sequence, or one value per token.
        index: position of the row in its step's batch (to scatter results back).
        off_policy: the sampled tokens answer another context than the row's own prompt (e.g. a
            Critique-GRPO refinement trained as a reply to the original prompt).
    """

    token_ids: Sequence[int]
    loss_mask: Sequence[int]
    logprobs: Sequence[float]
    advantage: float | Sequence[float]
    index: int
    off_policy: bool = False

    def __len__(self) -> int:
        return len(self.token_ids)


@dataclass
class PrefixPlan:
    """How a micro-batch's rows split into shared prompts and per-row suffixes.

    Attributes:
        prefix_ids: (P, Lp) distinct prompts, right-padded.
        prefix_mask: (P, Lp) 1 on real prompt tokens.
        prefix_len: (P,) prompt lengths.
        owner: (B,) index of each row's prompt.
        suffix_ids: (B, Ls) each row's tokens after its prompt, right-padded.
        suffix_mask: (B, Ls) 1 on real suffix tokens.
    """

    prefix_ids: torch.Tensor
    prefix_mask: torch.Tensor
    prefix_len: torch.Tensor
    owner: torch.Tensor
    suffix_ids: torch.Tensor
    suffix_mask: torch.Tensor

    def to(self, device: torch.device | str) -> PrefixPlan:
        return PrefixPlan(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def prompt_length(row: Row) -> int:
    """Tokens before the row's first policy-sampled token."""
    return next((i for i, m in enumerate(row.loss_mask) if m), len(row))


def plan(rows: Sequence[Row], pad_id: int, *, min_saving: float = 0.1) -> PrefixPlan | None:
    """Split rows into distinct prompts and suffixes; None if that saves < `min_saving` of the tokens.

    Rows whose first policy token is at position 0 (no prompt) or that have none cannot share.
    """
    prompts: dict[tuple[int, ...], int] = {}
    owner, suffixes = [], []
    for row in rows:
        n = prompt_length(row)
        if n == 0 or n == len(row):
            return None
        owner.append(prompts.setdefault(tuple(row.token_ids[:n]), len(prompts)))
        suffixes.append(row.token_ids[n:])
    total = sum(len(r) for r in rows)
    computed = sum(len(p) for p in prompts) + sum(len(s) for s in suffixes)
    if total - computed < min_saving * total:
        return None
    prefix_ids, prefix_mask = _right_pad(list(prompts), pad_id)
    suffix_ids, suffix_mask = _right_pad(suffixes, pad_id)
    return PrefixPlan(
        prefix_ids=prefix_ids,
        prefix_mask=prefix_mask,
        prefix_len=prefix_mask.sum(-1),
        owner=torch.as_tensor(owner, dtype=torch.long),
        suffix_ids=suffix_ids,
        suffix_mask=suffix_mask,
    )


def _right_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


class Normalizers(dict):
    """Counts over a whole mini-batch that micro-batch losses divide by: `tokens` and `sequences`."""


@dataclass(frozen=True)
class Advantages:
    """What an algorithm's `advantages` hook returns.

    Attributes:
        values: per trajectory, its advantage, or one value per token.
        metrics: diagnostics of the computation (e.g. `gigpo/anchor_groups`), logged with the step.
    """

    values: list[float | list[float]]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StepBatch:
    """The trajectories one step trains on, with what the algorithm computed per trajectory.

    Attributes:
        trajectories: the step's trajectories.
        advantages: per trajectory, one advantage or one value per token.
        trainable: per trajectory, whether it enters the loss (None: all do).
        off_policy: per trajectory, `Row.off_policy` (None: none is).
    """

    trajectories: list[Trajectory]
    advantages: list[float | list[float]]
    trainable: list[bool] | None = None
    off_policy: list[bool] | None = None

    def __post_init__(self) -> None:
        n = len(self.trajectories)
        for name in ("advantages", "trainable", "off_policy"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"{n} trajectories but {len(values)} {name}")

    def rows(self) -> list[Row]:
        """Training rows of the trainable trajectories that have sampled tokens."""
        n = len(self.trajectories)
        keep = self.trainable if self.trainable is not None else [True] * n
        off = self.off_policy if self.off_policy is not None else [False] * n
        return [
            Row(t.token_ids, t.loss_mask, t.logprobs, adv, i, off_policy)
            for i, (t, adv, trainable, off_policy) in enumerate(
                zip(self.trajectories, self.advantages, keep, off, strict=True)
            )
            if trainable and t.num_generated_tokens > 0
        ]


@dataclass
class MicroBatch:
    """Right-padded tensors of a few rows.

    Attributes:
        input_ids: (B, T) token ids, padded with `pad_id`.
        attention_mask: (B, T) 1 on real tokens.
        loss_mask: (B, T-1) 1 where the target token was sampled by the policy.
        old_logp: (B, T-1) sampling logprob of each target token (replaced by recomputed ones if asked).
        behav_logp: (B, T-1) sampling logprob of each target token, kept when `old_logp` is replaced
            (the behaviour policy of the off-policy corrections).
        adv: (B, T-1) advantage of each target token (0 where loss_mask is 0).
        indices: (B,) row indices in the step's batch.
        off_policy: (B,) bool, `Row.off_policy` of each row.
        prefix: how the rows share prompts, for the shared-prefix pass (None: plain pass).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor
    old_logp: torch.Tensor
    behav_logp: torch.Tensor
    adv: torch.Tensor
    indices: list[int]
    off_policy: torch.Tensor
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
            self.behav_logp.to(device),
            self.adv.to(device),
            self.indices,
            self.off_policy.to(device),
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
    old_logp = old_logp[:, 1:] * loss_mask
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        loss_mask=loss_mask,
        old_logp=old_logp,
        behav_logp=old_logp.clone(),
        adv=adv[:, 1:] * loss_mask,
        indices=[r.index for r in rows],
        off_policy=torch.tensor([r.off_policy for r in rows], dtype=torch.bool),
        prefix=plan(rows, pad_id) if share_prefix else None,
    )
