"""Off-policy corrections of the clipped surrogate, hand-computed (docs/algorithms.md §16.1).

Each example is one row of three tokens, written as probabilities so that every ratio is a round number:
the expected losses and gradients below are worked out by hand, not by the formula under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from palaestra.config import ConfigError, load_config
from palaestra.trainers.core.losses import (
    LossConfig,
    behav_weight,
    clipped_pg_token_loss,
    decoupled_pg_token_loss,
    policy_loss,
    tis_pg_token_loss,
    tis_weight,
    token_mean,
)
from tests.trainers.test_losses import CONFIGS, SPLITS, _ragged_batch

F64 = torch.float64


def logs(probs: list[float]) -> torch.Tensor:
    return torch.tensor([probs], dtype=F64).log()  # (1, 3)


def close(actual: torch.Tensor | float, expected: torch.Tensor | float | list, atol: float = 1e-12) -> None:
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), atol=atol, rtol=0
    )


MASK = torch.ones(1, 3, dtype=F64)


# ---------------------------------------------------------------------------------------------------------
# truncated importance sampling: w = min(π_old / π_rollout, C), C = 2; r = π_θ / π_old, clip [0.8, 1.28]
# ---------------------------------------------------------------------------------------------------------
TIS_ROLLOUT = [0.2, 0.8, 0.4]  # π_rollout, the sampler's probabilities
TIS_OLD = [0.6, 0.4, 0.5]  # π_old, the trainer's: π_old / π_rollout = 3, 0.5, 1.25
TIS_THETA = [0.66, 0.2, 0.75]  # π_θ: r = 1.1, 0.5, 1.5
TIS_ADV = [[1.0, -1.0, 2.0]]


def test_tis_three_tokens_by_hand():
    logp = logs(TIS_THETA).requires_grad_(True)
    loss_tok, low, high, weight = tis_pg_token_loss(
        logp,
        logs(TIS_OLD),
        logs(TIS_ROLLOUT),
        torch.tensor(TIS_ADV, dtype=F64),
        clip_low=0.2,
        clip_high=0.28,
        cap=2.0,
    )
    # w: 3 -> capped at 2; 0.5; 1.25
    close(weight, [[2.0, 0.5, 1.25]])
    # token 1: r 1.1, A +1: max(-1.1, -1.1)  = -1.1, x 2    = -2.2   (inside the clip range)
    # token 2: r 0.5, A -1: max(0.5, 0.8)    = 0.8,  x 0.5  = 0.4    (lower bound active)
    # token 3: r 1.5, A +2: max(-3.0, -2.56) = -2.56, x 1.25 = -3.2  (upper bound active)
    close(loss_tok, [[-2.2, 0.4, -3.2]])
    assert low.tolist() == [[False, True, False]] and high.tolist() == [[False, False, True]]
    # token-mean (-2.2 + 0.4 - 3.2) / 3 = -5/3; only token 1 has a gradient: -w·A·r / 3 = -2.2 / 3
    loss = token_mean(loss_tok, MASK)
    close(loss, -5.0 / 3.0)
    loss.backward()
    close(logp.grad, [[-2.2 / 3.0, 0.0, 0.0]])


def test_tis_in_policy_loss_logs_the_weight():
    cfg = LossConfig(correction="tis", tis_cap=2.0)
    adv = torch.tensor(TIS_ADV, dtype=F64)
    loss, metrics = policy_loss(logs(TIS_THETA), logs(TIS_OLD), adv, MASK, cfg, behav_logp=logs(TIS_ROLLOUT))
    close(loss, -5.0 / 3.0)
    close(metrics["loss/pg"], -5.0 / 3.0)
    close(metrics["offpolicy/tis_weight_mean"], (2.0 + 0.5 + 1.25) / 3.0)
    close(metrics["offpolicy/tis_capped_frac"], 1.0 / 3.0)
    # a larger C lets the first token weigh 3: (-3.3 + 0.4 - 3.2) / 3
    loss, metrics = policy_loss(
        logs(TIS_THETA),
        logs(TIS_OLD),
        adv,
        MASK,
        LossConfig(correction="tis", tis_cap=4.0),
        behav_logp=logs(TIS_ROLLOUT),
    )
    close(loss, -6.1 / 3.0)
    assert metrics["offpolicy/tis_capped_frac"] == 0.0


# ---------------------------------------------------------------------------------------------------------
# decoupled: w = min(π_prox / π_behav, cap), cap = 5; r = π_θ / π_prox, clip [0.8, 1.28]
# ---------------------------------------------------------------------------------------------------------
BEHAV = [0.1, 0.8, 0.2]  # π_behav, the (stale) sampling policy
PROX = [0.8, 0.2, 0.4]  # π_prox, the policy at the start of the update: π_prox / π_behav = 8, 0.25, 2
THETA = [0.72, 0.28, 0.28]  # π_θ: r = 0.9, 1.4, 0.7
ADV = [[1.0, -1.0, -0.5]]


def test_decoupled_three_tokens_by_hand():
    logp = logs(THETA).requires_grad_(True)
    loss_tok, low, high, weight = decoupled_pg_token_loss(
        logp,
        logs(PROX),
        logs(BEHAV),
        torch.tensor(ADV, dtype=F64),
        clip_low=0.2,
        clip_high=0.28,
        behav_weight_cap=5.0,
    )
    close(weight, [[5.0, 0.25, 2.0]])  # 8 truncated at 5
    # token 1: r 0.9, A +1:   max(-0.9, -0.9)  = -0.9, x 5    = -4.5  (vs π_behav the ratio would be 7.2,
    #          clipped with no gradient: clipping is around π_prox)
    # token 2: r 1.4, A -1:   max(1.4, 1.28)   = 1.4,  x 0.25 = 0.35  (pessimistic side: not clipped)
    # token 3: r 0.7, A -0.5: max(0.35, 0.4)   = 0.4,  x 2    = 0.8   (lower bound active)
    close(loss_tok, [[-4.5, 0.35, 0.8]])
    assert low.tolist() == [[False, False, True]] and high.tolist() == [[False, False, False]]
    # token-mean -3.35 / 3; gradients -w·A·r / 3: token 1 -4.5 / 3, token 2 +0.35 / 3, token 3 clipped
    loss = token_mean(loss_tok, MASK)
    close(loss, -3.35 / 3.0)
    loss.backward()
    close(logp.grad, [[-1.5, 0.35 / 3.0, 0.0]])


def test_decoupled_in_policy_loss_logs_the_weight_and_can_be_untruncated():
    adv = torch.tensor(ADV, dtype=F64)
    cfg = LossConfig(correction="decoupled")  # behav_weight_cap 5 by default
    loss, metrics = policy_loss(logs(THETA), logs(PROX), adv, MASK, cfg, behav_logp=logs(BEHAV))
    close(loss, -3.35 / 3.0)
    close(metrics["offpolicy/behav_weight_mean"], (5.0 + 0.25 + 2.0) / 3.0)
    close(metrics["offpolicy/behav_weight_capped_frac"], 1.0 / 3.0)
    # no truncation: token 1 weighs 8, -0.9 x 8 = -7.2; (-7.2 + 0.35 + 0.8) / 3
    cfg = LossConfig(correction="decoupled", behav_weight_cap=None)
    loss, metrics = policy_loss(logs(THETA), logs(PROX), adv, MASK, cfg, behav_logp=logs(BEHAV))
    close(loss, -6.05 / 3.0)
    close(metrics["offpolicy/behav_weight_mean"], (8.0 + 0.25 + 2.0) / 3.0)
    assert metrics["offpolicy/behav_weight_capped_frac"] == 0.0


def test_decoupled_with_dual_clip_by_hand():
    # token 2 again, with A = -1 and r = 1.4 > c = 1.2: dual-clip bounds the loss at -A·c = 1.2, x 0.25 = 0.3
    loss_tok, *_ = decoupled_pg_token_loss(
        logs(THETA),
        logs(PROX),
        logs(BEHAV),
        torch.tensor(ADV, dtype=F64),
        clip_low=0.2,
        clip_high=0.28,
        behav_weight_cap=5.0,
        dual_clip=1.2,
    )
    close(loss_tok, [[-4.5, 0.3, 0.8]])


def test_weights_carry_no_gradient():
    behav = logs(BEHAV).requires_grad_(True)
    prox = logs(PROX).requires_grad_(True)
    assert not behav_weight(prox, behav, 5.0).requires_grad
    assert not tis_weight(prox, behav, 2.0).requires_grad
    for cfg in (LossConfig(correction="decoupled"), LossConfig(correction="tis")):
        logp = logs(THETA).requires_grad_(True)
        loss, _ = policy_loss(logp, logs(PROX), torch.tensor(ADV, dtype=F64), MASK, cfg, behav_logp=behav)
        loss.backward()
        assert behav.grad is None, "the behaviour logprobs enter only through the detached weight"


def test_correction_needs_the_behaviour_logprobs():
    with pytest.raises(ValueError, match="behav_logp"):
        policy_loss(logs(THETA), logs(PROX), torch.tensor(ADV, dtype=F64), MASK, LossConfig(correction="tis"))


# ---------------------------------------------------------------------------------------------------------
# π_behav = π_prox: both corrections are today's loss, bit for bit
# ---------------------------------------------------------------------------------------------------------
FULL_OPTIONS = [
    {
        "aggregation": c.aggregation,
        "norm_len": c.norm_len,
        "kl_coef": 0.1,
        "entropy_coef": 0.01,
        "dual_clip": 3.0,
    }
    for c in CONFIGS
]


@pytest.mark.parametrize("options", FULL_OPTIONS, ids=lambda o: o["aggregation"])
@pytest.mark.parametrize("correction", ["tis", "decoupled"])
def test_equal_behaviour_and_proximal_policies_give_todays_loss_exactly(options, correction):
    logp, old_logp, ref_logp, adv, mask, entropy = _ragged_batch(seed=2)
    grads, losses, metrics = [], [], []
    for cfg in (LossConfig(**options), LossConfig(**options, correction=correction)):
        param = logp.clone().requires_grad_(True)
        loss, parts = policy_loss(
            param,
            old_logp,
            adv,
            mask,
            cfg,
            behav_logp=old_logp.clone(),
            ref_logp=ref_logp,
            entropy=entropy * param,
        )
        loss.backward()
        grads.append(param.grad)
        losses.append(loss.detach())
        metrics.append(parts)
    assert torch.equal(losses[0], losses[1]) and torch.equal(grads[0], grads[1])
    extra = {k: v for k, v in metrics[1].items() if k.startswith("offpolicy/")}
    assert metrics[1] == {**metrics[0], **extra}
    assert list(extra.values()) == [1.0, 0.0]  # weight mean 1, nothing capped
    # and today's loss is the plain clipped surrogate, aggregated (no KL / entropy here)
    plain, _ = policy_loss(logp, old_logp, adv, mask, LossConfig(correction=correction), behav_logp=old_logp)
    today = token_mean(clipped_pg_token_loss(logp, old_logp, adv, clip_low=0.2, clip_high=0.28)[0], mask)
    assert torch.equal(plain, today)


# ---------------------------------------------------------------------------------------------------------
# exact gradient accumulation holds with a correction on
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", FULL_OPTIONS, ids=lambda o: o["aggregation"])
@pytest.mark.parametrize("correction", ["tis", "decoupled"])
def test_gradient_accumulation_stays_exact_with_a_correction(options, correction):
    cfg = LossConfig(**options, correction=correction, tis_cap=1.2, behav_weight_cap=1.2)
    logp, old_logp, ref_logp, adv, mask, entropy = _ragged_batch(seed=3)
    behav_logp = old_logp + 0.3 * torch.randn(
        old_logp.shape, generator=torch.Generator().manual_seed(4), dtype=F64
    )
    full_param = logp.clone().requires_grad_(True)
    full, metrics = policy_loss(
        full_param,
        old_logp,
        adv,
        mask,
        cfg,
        behav_logp=behav_logp,
        ref_logp=ref_logp,
        entropy=entropy * full_param,
    )
    full.backward()
    capped = metrics[f"offpolicy/{'tis' if correction == 'tis' else 'behav_weight'}_capped_frac"]
    assert 0.0 < capped < 1.0, "the example exercises both truncated and untruncated weights"
    acc_param = logp.clone().requires_grad_(True)
    total = torch.zeros((), dtype=F64)
    for a, b, c in SPLITS:
        p = acc_param[a:b, :c]
        loss, _ = policy_loss(
            p,
            old_logp[a:b, :c],
            adv[a:b, :c],
            mask[a:b, :c],
            cfg,
            behav_logp=behav_logp[a:b, :c],
            ref_logp=ref_logp[a:b, :c],
            entropy=entropy[a:b, :c] * p,
            total_tokens=int(mask.sum()),
            num_sequences=6,
        )
        loss.backward()
        total = total + loss.detach()
    close(total, full.detach())
    close(acc_param.grad, full_param.grad)
    uncorrected, _ = policy_loss(
        logp, old_logp, adv, mask, LossConfig(**options), ref_logp=ref_logp, entropy=entropy
    )
    assert abs(float(uncorrected - full.detach())) > 1e-3, "the correction changed the loss"


# ---------------------------------------------------------------------------------------------------------
# config validation: one clear line per mistake
# ---------------------------------------------------------------------------------------------------------
def test_loss_config_rejects_bad_caps():
    with pytest.raises(ValueError, match=r"tis_cap=0.5, expected C >= 1"):
        LossConfig(correction="tis", tis_cap=0.5)
    with pytest.raises(ValueError, match=r"behav_weight_cap=0.0, expected >= 1"):
        LossConfig(correction="decoupled", behav_weight_cap=0.0)
    with pytest.raises(ValueError, match="correction='is'"):
        LossConfig(correction="is")  # type: ignore[arg-type]
    assert LossConfig(correction="decoupled", behav_weight_cap=None).behav_weight_cap is None


def _load(algorithm: dict) -> None:
    load_config(envs={"train": [{"id": "palaestra/Math-Arith-v0"}]}, algorithm=algorithm)


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        (
            {"correction": "tis", "tis_cap": 0.5},
            "algorithm.tis_cap: Input should be greater than or equal to 1",
        ),
        (
            {"correction": "decoupled", "behav_weight_cap": 0.9},
            "algorithm.behav_weight_cap: Input should be greater",
        ),
        ({"correction": "importance"}, "algorithm.correction: Input should be 'none', 'tis' or 'decoupled'"),
        ({"tis_cap": 3.0}, "tis_cap=3.0 only applies to correction=tis (got correction=none)"),
        (
            {"correction": "tis", "behav_weight_cap": 2.0},
            "behav_weight_cap=2.0 only applies to correction=decoupled",
        ),
        (
            {"correction": "tis", "recompute_old_logprobs": False},
            "set algorithm.recompute_old_logprobs: true",
        ),
        (
            {"name": "critique_grpo", "correction": "decoupled"},
            "correction is not an option of critique_grpo: its mixed loss (critique_grpo_loss) has no off-policy",
        ),
        ({"name": "cgi", "correction": "tis"}, "algorithm.correction: unknown key; allowed for cgi"),
    ],
)
def test_bad_correction_options_are_one_clear_line(algorithm, message):
    with pytest.raises(ConfigError) as err:
        _load(algorithm)
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and message in lines[1], str(err.value)


@pytest.mark.parametrize("name", ["grpo", "arpo", "gigpo", "semi_online"])
def test_every_algorithm_of_the_shared_loss_takes_the_corrections(name):
    algorithm = {"name": name, "correction": "decoupled", "behav_weight_cap": None}
    config = load_config(envs={"train": [{"id": "palaestra/Math-Arith-v0"}]}, algorithm=algorithm)
    assert config.algorithm.correction == "decoupled" and config.algorithm.behav_weight_cap is None


def test_log_ratio_is_clamped_so_huge_weights_stay_finite():
    w = behav_weight(torch.tensor([[0.0]], dtype=F64), torch.tensor([[-1e4]], dtype=F64), None)
    close(w[0, 0], math.exp(20.0), atol=1e-3)
