"""Policy-loss maths shared by every critic-free trainer (docs/algorithms.md §1.4-§1.8, §16.1).

Pure functions of tensors aligned to target positions (see `batching.py`):

    logp, old_logp, behav_logp, ref_logp, adv, loss_mask, entropy      # (B, T)

`loss_mask` is 1 on policy-sampled (assistant) tokens; other tokens add no loss, KL or entropy (§1.2).
These are *losses* (minimised): surrogate and entropy bonus enter with a minus sign, the KL with a plus.

`policy_loss` composes agg(clipped_pg_token_loss) + kl_coef·agg(KL_tok) − entropy_coef·agg(H_tok), `agg` one of
the aggregations of §1.5; each takes an optional *global* count so that gradient accumulation over
micro-batches gives exactly the full mini-batch loss (see `token_mean`). With an off-policy correction
(§16.1) each token's surrogate is first multiplied by a detached importance weight of the sampler's
logprobs `behav_logp`: truncated IS (`tis_pg_token_loss`) or the decoupled objective
(`decoupled_pg_token_loss`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch

__all__ = [
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "LOG_RATIO_LIMIT",
    "Aggregation",
    "Correction",
    "LossConfig",
    "behav_weight",
    "bind_aggregation",
    "clipped_pg_token_loss",
    "decoupled_pg_token_loss",
    "entropy_from_logits",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "masked_mean",
    "masked_sum",
    "policy_loss",
    "selected_logprobs",
    "seq_mean_token_mean",
    "seq_mean_token_sum_norm",
    "tis_pg_token_loss",
    "tis_weight",
    "token_mean",
]

Tensor = torch.Tensor
Aggregation = Callable[[Tensor, Tensor], Tensor]
"""`(loss_tok, loss_mask) -> scalar`, an aggregation bound to its normalising counts."""
Correction = Literal["none", "tis", "decoupled"]
"""Off-policy correction of the surrogate (§16.1): none, truncated IS, or the decoupled objective."""

LOG_RATIO_LIMIT = 20.0
"""|log π_θ − log π_old| is clamped to this before `exp` (as verl) so a stray ratio cannot overflow."""


# -- masked reductions ---------------------------------------------------------------------------------
def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of `x` where `mask` is 1 (over all elements, or along `dim`)."""
    masked = x * mask.to(x.dtype)
    return masked.sum() if dim is None else masked.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` where `mask` is 1; an empty mask gives 0, not NaN (§1.8)."""
    count = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1)


# -- clipped surrogate ---------------------------------------------------------------------------------
def clipped_pg_token_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token PPO-clip loss with asymmetric bounds and optional dual-clip (docs/algorithms.md §1.4).

    With ρ = exp(logp − old_logp):

        L_tok = max(−A·ρ, −A·clip(ρ, 1 − clip_low, 1 + clip_high))
        dual-clip, only where A < 0:  L_tok = min(L_tok, −A·c)

    Args:
        logp: (B, T) log π_θ of the sampled tokens (carries the gradient).
        old_logp: (B, T) log π_old of the same tokens (no gradient).
        adv: (B, T) advantage of each token.
        clip_low: ε_low, the ratio's lower bound is 1 − clip_low (PPO/GRPO 0.2).
        clip_high: ε_high, the ratio's upper bound is 1 + clip_high (PPO 0.2, DAPO clip-higher 0.28).
        dual_clip: the dual-clip constant c > 1 (verl: 3.0), or None for plain PPO-clip.

    Returns:
        loss_tok: (B, T) per-token loss (not masked).
        clipped_low: (B, T) bool, A < 0 and ρ < 1 − clip_low: the lower bound is active (zero gradient).
        clipped_high: (B, T) bool, A > 0 and ρ > 1 + clip_high: the upper bound is active (zero gradient).
    """
    log_ratio = (logp - old_logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    ratio = torch.exp(log_ratio)  # (B, T)
    loss_unclipped = -adv * ratio
    loss_clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss_tok = torch.maximum(loss_unclipped, loss_clipped)  # (B, T)
    if dual_clip is not None:
        loss_tok = torch.where(adv < 0, torch.minimum(loss_tok, -adv * dual_clip), loss_tok)
    with torch.no_grad():
        clipped_low = (adv < 0) & (ratio < 1.0 - clip_low)
        clipped_high = (adv > 0) & (ratio > 1.0 + clip_high)
    return loss_tok, clipped_low, clipped_high


# -- off-policy corrections (§16.1) --------------------------------------------------------------------
def _truncated_ratio(logp_num: Tensor, logp_den: Tensor, cap: float | None) -> Tensor:
    """min(exp(logp_num − logp_den), cap) per token, detached; cap None: not truncated."""
    with torch.no_grad():
        ratio = torch.exp((logp_num - logp_den).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT))
        return ratio if cap is None else ratio.clamp(max=cap)


def tis_weight(old_logp: Tensor, rollout_logp: Tensor, cap: float) -> Tensor:
    """Truncated importance weight of the rollout-vs-trainer mismatch: min(π_old / π_rollout, C).

    Args:
        old_logp: (B, T) log π_old, the trainer's own logprobs of the weights that sampled.
        rollout_logp: (B, T) log π_rollout, the sampler's logprobs of the same tokens.
        cap: C >= 1 (verl examples, Yao et al. 2025: 2.0).

    Returns:
        (B, T) detached weights in (0, C].
    """
    return _truncated_ratio(old_logp, rollout_logp, cap)


def behav_weight(prox_logp: Tensor, behav_logp: Tensor, cap: float | None) -> Tensor:
    """Decoupled PPO's behaviour weight π_prox / π_behav, truncated at `cap` (AReaL's behav_imp_weight).

    Args:
        prox_logp: (B, T) log π_prox, the policy at the start of the current update.
        behav_logp: (B, T) log π_behav, the logprobs recorded when each token was sampled.
        cap: truncation bound >= 1, or None for the untruncated weight.

    Returns:
        (B, T) detached weights.
    """
    return _truncated_ratio(prox_logp, behav_logp, cap)


def tis_pg_token_loss(
    logp: Tensor,
    old_logp: Tensor,
    rollout_logp: Tensor,
    adv: Tensor,
    *,
    clip_low: float,
    clip_high: float,
    cap: float,
    dual_clip: float | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """PPO-clip around π_old times the truncated IS weight: L_tok = min(π_old / π_rollout, C) · L_clip.

    `L_clip` is `clipped_pg_token_loss(logp, old_logp, adv, ...)`; the weight carries no gradient.

    Returns:
        loss_tok, clipped_low, clipped_high: as `clipped_pg_token_loss`.
        weight: (B, T) the truncated weight (see `tis_weight`).
    """
    weight = tis_weight(old_logp, rollout_logp, cap)
    loss_tok, clipped_low, clipped_high = clipped_pg_token_loss(
        logp, old_logp, adv, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip
    )
    return weight * loss_tok, clipped_low, clipped_high, weight


def decoupled_pg_token_loss(
    logp: Tensor,
    prox_logp: Tensor,
    behav_logp: Tensor,
    adv: Tensor,
    *,
    clip_low: float,
    clip_high: float,
    behav_weight_cap: float | None,
    dual_clip: float | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Decoupled clipped objective (Hilton et al. 2021; AReaL): clip around π_prox, weight by π_prox / π_behav.

    With r = exp(logp − prox_logp) and w = min(π_prox / π_behav, behav_weight_cap), detached:

        L_tok = w · max(−A·r, −A·clip(r, 1 − clip_low, 1 + clip_high))      (dual-clip as §1.4)

    Args:
        logp: (B, T) log π_θ (carries the gradient).
        prox_logp: (B, T) log π_prox, the policy at the start of the current update (no gradient).
        behav_logp: (B, T) log π_behav, recorded when each token was sampled (no gradient).
        adv: (B, T) advantage of each token.
        clip_low, clip_high, dual_clip: as `clipped_pg_token_loss`.
        behav_weight_cap: truncation of w (AReaL `behav_imp_weight_cap`: 5.0), or None.

    Returns:
        loss_tok, clipped_low, clipped_high: as `clipped_pg_token_loss` (clipping of r).
        weight: (B, T) w (see `behav_weight`).
    """
    weight = behav_weight(prox_logp, behav_logp, behav_weight_cap)
    loss_tok, clipped_low, clipped_high = clipped_pg_token_loss(
        logp, prox_logp, adv, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip
    )
    return weight * loss_tok, clipped_low, clipped_high, weight


# -- aggregations (§1.5) -------------------------------------------------------------------------------
def _num_sequences(mask: Tensor, num_sequences: int | None, like: Tensor) -> Tensor:
    """The global count if given, else the rows with at least one masked token (empty rows carry no loss)."""
    if num_sequences is None:
        return (mask.sum(-1) > 0).sum().to(like.dtype).clamp(min=1)
    return like.new_tensor(max(num_sequences, 1))


def token_mean(loss_tok: Tensor, mask: Tensor, *, total_tokens: int | None = None) -> Tensor:
    """DAPO token-level mean: Σ_{b,k} M·L / Σ_{b,k} M (docs/algorithms.md §1.5, §2.2 item 4).

    Every token weighs the same, so long replies weigh more than short ones. Gradient accumulation (§1.5
    note): verl takes the token-mean per micro-batch and divides by the number of micro-batches, which is
    not the mini-batch token-mean when micro-batches hold different token counts. Pass `total_tokens` =
    the masked tokens of *all* micro-batches of the optimizer step: the micro-batch losses then sum
    exactly to the full mini-batch token-mean.

    Args:
        loss_tok: (B, T) per-token values.
        mask: (B, T) loss mask.
        total_tokens: global masked-token count of the optimizer step; None: this batch's own count.

    Returns:
        Scalar tensor.
    """
    count = mask.to(loss_tok.dtype).sum() if total_tokens is None else loss_tok.new_tensor(total_tokens)
    return masked_sum(loss_tok, mask) / count.clamp(min=1)


def seq_mean_token_mean(loss_tok: Tensor, mask: Tensor, *, num_sequences: int | None = None) -> Tensor:
    """Original GRPO: (1/B) Σ_b [Σ_k M·L / Σ_k M] (docs/algorithms.md §1.5, §2.1).

    Every sequence weighs the same whatever its length. B counts rows with at least one masked token.

    Args:
        loss_tok: (B, T) per-token values.
        mask: (B, T) loss mask.
        num_sequences: global B over all micro-batches of the optimizer step (exact accumulation);
            None: this batch's own count.

    Returns:
        Scalar tensor.
    """
    per_seq = masked_mean(loss_tok, mask, dim=-1)  # (B,)
    return per_seq.sum() / _num_sequences(mask, num_sequences, loss_tok)


def seq_mean_token_sum_norm(
    loss_tok: Tensor, mask: Tensor, *, norm_len: int, num_sequences: int | None = None
) -> Tensor:
    """Dr. GRPO constant normaliser, paper form: (1/B) Σ_b Σ_k M·L / L_const (docs/algorithms.md §1.5, §2.3).

    Neither the length bias (1/|o_i|) nor the padded length enters. verl's variant omits the 1/B (a
    constant factor for a fixed batch size); we keep it so the scale does not depend on B.

    Args:
        loss_tok: (B, T) per-token values.
        mask: (B, T) loss mask.
        norm_len: L_const, e.g. the generation budget (understand-r1-zero: 3000).
        num_sequences: global B over all micro-batches of the optimizer step; None: this batch's count.

    Returns:
        Scalar tensor.
    """
    if norm_len < 1:
        raise ValueError(f"norm_len={norm_len}, but the Dr. GRPO normaliser must be >= 1")
    return masked_sum(loss_tok, mask) / (_num_sequences(mask, num_sequences, loss_tok) * norm_len)


AGGREGATIONS: dict[str, Callable[..., Tensor]] = {
    "token-mean": token_mean,
    "seq-mean-token-mean": seq_mean_token_mean,
    "seq-mean-token-sum-norm": seq_mean_token_sum_norm,
}
"""Config name (verl's `loss_agg_mode`) -> aggregation. For config lookup only; see `bind_aggregation`."""


# -- KL estimators (§1.6) ------------------------------------------------------------------------------
def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = log π_θ − log π_ref per token (unbiased, high variance, can be negative)."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k2 = ½ (log π_θ − log π_ref)² per token (verl "mse")."""
    return 0.5 * (logp - ref_logp).square()


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = exp(d) − d − 1 with d = log π_ref − log π_θ, per token (GRPO, verl "low_var_kl"; §1.6).

    ≥ 0 and an unbiased estimate of KL(π_θ ‖ π_ref) under samples of π_θ. As verl: d is clamped to
    [−20, 20] (keeps `exp` finite, so no NaN gradients) and the result to [−10, 10].
    """
    d = (ref_logp - logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)
    return (torch.exp(d) - d - 1.0).clamp(-10.0, 10.0)


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


# -- logits -> per-token quantities --------------------------------------------------------------------
def selected_logprobs(logits: Tensor, token_ids: Tensor, *, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / temperature) at `token_ids`, as gather − logsumexp (no 2nd (B, T, V) tensor).

    Args:
        logits: (B, T, V) next-token logits (cast to float32 first for bf16 models).
        token_ids: (B, T) the tokens whose logprob is wanted.
        temperature: the sampling temperature; logits are divided by it first (1.0: unchanged).

    Returns:
        (B, T) logprobs.
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}, expected > 0 (greedy rollouts have no logprobs)")
    if temperature != 1.0:
        logits = logits / temperature
    picked = logits.gather(-1, token_ids.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of softmax(logits) per position: H = logsumexp(z) − Σ_v softmax(z)_v·z_v (§1.7).

    Args:
        logits: (B, T, V).

    Returns:
        (B, T) entropies in nats (log V for uniform logits).
    """
    probs = torch.softmax(logits, dim=-1)  # (B, T, V)
    return torch.logsumexp(logits, dim=-1) - torch.einsum("...v,...v->...", probs, logits)  # no 2nd (B, T, V)


# -- the composed policy loss --------------------------------------------------------------------------
@dataclass(frozen=True)
class LossConfig:
    """Options of `policy_loss`; defaults follow docs/algorithms.md Appendix B (DAPO-style GRPO)."""

    clip_low: float = 0.2
    """ε_low: the ratio is clipped below at 1 − clip_low (§1.4)."""
    clip_high: float = 0.28
    """ε_high: the ratio is clipped above at 1 + clip_high (DAPO clip-higher 0.28; symmetric PPO 0.2)."""
    dual_clip: float | None = None
    """Dual-clip constant c > 1 bounding the loss of negative-advantage tokens at −A·c (verl 3.0); None: off."""
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    """§1.5: token-mean (DAPO), seq-mean-token-mean (GRPO), seq-mean-token-sum-norm (Dr. GRPO)."""
    norm_len: int | None = None
    """Dr. GRPO constant L_const (e.g. the generation budget); required by seq-mean-token-sum-norm only."""
    kl_coef: float = 0.0
    """β of the KL-to-reference term in the loss (§1.6); 0: no KL term and no reference model needed."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Per-token KL estimator (GRPO: k3)."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient (§1.7; RAGEN / verl-agent 0.001)."""
    correction: Correction = "none"
    """§16.1: none; tis (truncated IS of the sampler-vs-trainer mismatch); decoupled (stale samples)."""
    tis_cap: float = 2.0
    """C of truncated IS: each token's weight is min(π_old / π_rollout, C) (verl examples: 2)."""
    behav_weight_cap: float | None = 5.0
    """Truncation of the decoupled weight π_prox / π_behav (AReaL: 5); None: not truncated."""

    def __post_init__(self) -> None:
        if not 0 < self.clip_low < 1:
            raise ValueError(f"clip_low={self.clip_low}, expected 0 < clip_low < 1 (PPO: 0.2)")
        if self.clip_high <= 0:
            raise ValueError(f"clip_high={self.clip_high}, expected > 0 (PPO: 0.2, DAPO: 0.28)")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ValueError(f"dual_clip={self.dual_clip}, expected c > 1 (verl: 3.0) or None")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation={self.aggregation!r}; expected one of {sorted(AGGREGATIONS)}")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator={self.kl_estimator!r}; expected one of {sorted(KL_ESTIMATORS)}")
        if (self.aggregation == "seq-mean-token-sum-norm") != (
            self.norm_len is not None and self.norm_len >= 1
        ):
            raise ValueError(
                f"aggregation={self.aggregation!r} with norm_len={self.norm_len}: norm_len >= 1 is needed by, "
                "and only by, seq-mean-token-sum-norm (e.g. max_new_tokens x max_turns)"
            )
        if self.kl_coef < 0 or self.entropy_coef < 0:
            raise ValueError(f"kl_coef={self.kl_coef}, entropy_coef={self.entropy_coef}: expected >= 0")
        if self.correction not in ("none", "tis", "decoupled"):
            raise ValueError(f"correction={self.correction!r}; expected one of none, tis, decoupled")
        if not self.tis_cap >= 1:
            raise ValueError(f"tis_cap={self.tis_cap}, expected C >= 1 (verl: 2.0)")
        if self.behav_weight_cap is not None and not self.behav_weight_cap >= 1:
            raise ValueError(f"behav_weight_cap={self.behav_weight_cap}, expected >= 1 (AReaL: 5.0) or None")


def bind_aggregation(
    cfg: LossConfig, *, total_tokens: int | None = None, num_sequences: int | None = None
) -> Aggregation:
    """The aggregation named by `cfg.aggregation`, bound to the optimizer step's global counts.

    Args:
        cfg: loss options.
        total_tokens: masked tokens of the whole optimizer step (used by token-mean).
        num_sequences: sequences of the whole optimizer step (used by the two sequence means).

    Returns:
        `(loss_tok, loss_mask) -> scalar`. With both counts None: normalised by the batch's own counts.
    """
    fn = AGGREGATIONS[cfg.aggregation]
    if fn is token_mean:
        return partial(token_mean, total_tokens=total_tokens)
    if fn is seq_mean_token_sum_norm:
        assert cfg.norm_len is not None  # LossConfig checks it
        return partial(seq_mean_token_sum_norm, norm_len=cfg.norm_len, num_sequences=num_sequences)
    return partial(fn, num_sequences=num_sequences)


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    loss_mask: Tensor,
    cfg: LossConfig,
    *,
    behav_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    entropy: Tensor | None = None,
    total_tokens: int | None = None,
    num_sequences: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped surrogate + KL penalty − entropy bonus, aggregated over the loss mask (§1.4-§1.8).

        loss = agg(L_tok) + kl_coef · agg(KL_tok(logp, ref_logp)) − entropy_coef · agg(H_tok)

    L_tok is `clipped_pg_token_loss`, or with `cfg.correction` its off-policy corrected form (§16.1):
    `tis_pg_token_loss` (old_logp = π_old, behav_logp = π_rollout) or `decoupled_pg_token_loss`
    (old_logp = π_prox, behav_logp = π_behav).

    Every term uses the same aggregation and the same global counts, so summing the losses of the
    micro-batches of one optimizer step gives exactly the loss of the whole mini-batch.

    Args:
        logp: (B, T) log π_θ of the sampled tokens.
        old_logp: (B, T) log π_old of the same tokens (π_prox of the decoupled objective).
        adv: (B, T) per-token advantages (a sequence's scalar broadcast over its mask).
        loss_mask: (B, T) 1 on policy-sampled tokens.
        cfg: loss options.
        behav_logp: (B, T) the sampler's logprobs; required when cfg.correction is not "none", else unused.
        ref_logp: (B, T) log π_ref; required when cfg.kl_coef > 0, else only logged.
        entropy: (B, T) per-token entropy; required when cfg.entropy_coef > 0, else only logged.
        total_tokens: masked tokens of the whole optimizer step (exact accumulation; token-mean).
        num_sequences: sequences of the whole optimizer step (exact accumulation; sequence means).

    Returns:
        loss: scalar tensor to back-propagate.
        metrics: floats normalised by *this* batch's own counts (so averaging them over micro-batches
            estimates the step's value): `loss/pg`, `loss/kl` (if ref_logp), `loss/entropy` (if entropy),
            `clip/frac_low`, `clip/frac_high`, `clip/frac_dual` (if dual-clip), `clip/frac` (any of them),
            `loss/approx_kl` (k3 of π_old vs π_θ), `loss/ratio_mean`; with a correction
            `offpolicy/tis_weight_mean` and `offpolicy/tis_capped_frac`, or
            `offpolicy/behav_weight_mean` and `offpolicy/behav_weight_capped_frac`.

    Raises:
        ValueError: a coefficient is > 0 but its input is missing.
    """
    if cfg.kl_coef > 0 and ref_logp is None:
        raise ValueError(f"kl_coef={cfg.kl_coef} but no ref_logp given; compute reference logprobs")
    if cfg.entropy_coef > 0 and entropy is None:
        raise ValueError(f"entropy_coef={cfg.entropy_coef} but no entropy given; pass entropy_from_logits")
    if cfg.correction != "none" and behav_logp is None:
        raise ValueError(
            f"correction={cfg.correction!r} but no behav_logp given; pass the sampler's logprobs"
        )
    agg = bind_aggregation(cfg, total_tokens=total_tokens, num_sequences=num_sequences)
    local_agg = bind_aggregation(cfg)
    loss_tok, clipped_low, clipped_high, weight_metrics = _surrogate(
        logp, old_logp, behav_logp, adv, loss_mask, cfg
    )
    loss = agg(loss_tok, loss_mask)
    with torch.no_grad():
        metrics = {"loss/pg": float(local_agg(loss_tok, loss_mask)), **weight_metrics}
    if ref_logp is not None:
        kl_tok = KL_ESTIMATORS[cfg.kl_estimator](logp, ref_logp)  # (B, T)
        if cfg.kl_coef > 0:
            loss = loss + cfg.kl_coef * agg(kl_tok, loss_mask)
        metrics["loss/kl"] = float(local_agg(kl_tok.detach(), loss_mask))
    if entropy is not None:
        if cfg.entropy_coef > 0:
            loss = loss - cfg.entropy_coef * agg(entropy, loss_mask)
        metrics["loss/entropy"] = float(local_agg(entropy.detach(), loss_mask))
    metrics.update(_ratio_metrics(logp.detach(), old_logp, adv, loss_mask, cfg, clipped_low, clipped_high))
    return loss, metrics


def _surrogate(
    logp: Tensor,
    old_logp: Tensor,
    behav_logp: Tensor | None,
    adv: Tensor,
    loss_mask: Tensor,
    cfg: LossConfig,
) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
    """The per-token surrogate that `cfg.correction` names, its clip masks and its weight's metrics."""
    if cfg.correction == "none":
        loss_tok, low, high = clipped_pg_token_loss(
            logp, old_logp, adv, clip_low=cfg.clip_low, clip_high=cfg.clip_high, dual_clip=cfg.dual_clip
        )
        return loss_tok, low, high, {}
    assert behav_logp is not None  # policy_loss checks it
    cap: float | None
    if cfg.correction == "tis":
        cap, keys = cfg.tis_cap, ("offpolicy/tis_weight_mean", "offpolicy/tis_capped_frac")
        loss_tok, low, high, weight = tis_pg_token_loss(
            logp,
            old_logp,
            behav_logp,
            adv,
            clip_low=cfg.clip_low,
            clip_high=cfg.clip_high,
            cap=cap,
            dual_clip=cfg.dual_clip,
        )
    else:
        cap, keys = (
            cfg.behav_weight_cap,
            ("offpolicy/behav_weight_mean", "offpolicy/behav_weight_capped_frac"),
        )
        loss_tok, low, high, weight = decoupled_pg_token_loss(
            logp,
            old_logp,
            behav_logp,
            adv,
            clip_low=cfg.clip_low,
            clip_high=cfg.clip_high,
            behav_weight_cap=cap,
            dual_clip=cfg.dual_clip,
        )
    capped = _truncated_ratio(old_logp, behav_logp, None) > cap if cap is not None else torch.zeros_like(low)
    metrics = {
        keys[0]: float(masked_mean(weight, loss_mask)),
        keys[1]: float(masked_mean(capped.to(weight.dtype), loss_mask)),
    }
    return loss_tok, low, high, metrics


def _ratio_metrics(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    loss_mask: Tensor,
    cfg: LossConfig,
    clipped_low: Tensor,
    clipped_high: Tensor,
) -> dict[str, float]:
    """Clip fractions of masked tokens, mean ratio, CleanRL's approx_kl ((ρ − 1) − log ρ: k3 under π_old)."""
    ratio = torch.exp((logp - old_logp).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT))  # (B, T)
    clipped = clipped_low | clipped_high
    metrics = {"clip/frac_low": float(masked_mean(clipped_low.float(), loss_mask))}
    metrics["clip/frac_high"] = float(masked_mean(clipped_high.float(), loss_mask))
    if cfg.dual_clip is not None:
        dual = (adv < 0) & (ratio > cfg.dual_clip)
        clipped = clipped | dual
        metrics["clip/frac_dual"] = float(masked_mean(dual.float(), loss_mask))
    metrics["clip/frac"] = float(masked_mean(clipped.float(), loss_mask))
    metrics["loss/approx_kl"] = float(masked_mean(kl_k3(old_logp, logp), loss_mask))
    metrics["loss/ratio_mean"] = float(masked_mean(ratio, loss_mask))
    return metrics
