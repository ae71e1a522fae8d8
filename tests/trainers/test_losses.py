"""Hand-computed checks of the policy-loss maths (docs/algorithms.md §1.4-§1.8)."""

from __future__ import annotations

import math

import pytest
import torch

from palaestra.trainers.core.losses import (
    AGGREGATIONS,
    KL_ESTIMATORS,
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

F64 = torch.float64
LOG2 = math.log(2.0)


def t(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def close(actual: torch.Tensor | float, expected: torch.Tensor | float | list, atol: float = 1e-9) -> None:
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64), atol=atol, rtol=0
    )


# ---------------------------------------------------------------------------------------------------------
# clipped surrogate (§1.4)
# ---------------------------------------------------------------------------------------------------------
# One row of six tokens; old_logp = 0 so ratio = exp(logp) = the listed value.
RATIOS = [1.5, 1.25, 0.5, 1.5, 0.5, 1.0]
ADV = [1.0, 1.0, -1.0, -1.0, 1.0, 2.0]


def _six_tokens(requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logp = torch.log(t([RATIOS])).requires_grad_(requires_grad)  # (1, 6)
    return logp, torch.zeros(1, 6, dtype=F64), t([ADV])


def test_clip_higher_asymmetric():
    logp, old_logp, adv = _six_tokens(requires_grad=True)
    loss_tok, low, high = clipped_pg_token_loss(logp, old_logp, adv, clip_low=0.2, clip_high=0.28)
    # L = max(-A*rho, -A*clip(rho, 0.8, 1.28)):
    #   rho 1.5,  A +1: max(-1.5, -1.28) = -1.28   upper bound active (clipped_high)
    #   rho 1.25, A +1: max(-1.25, -1.25) = -1.25  inside [0.8, 1.28]: unclipped
    #   rho 0.5,  A -1: max(0.5, 0.8)     = 0.8    lower bound active (clipped_low)
    #   rho 1.5,  A -1: max(1.5, 1.28)    = 1.5    pessimistic branch: NOT clipped
    #   rho 0.5,  A +1: max(-0.5, -0.8)   = -0.5   NOT clipped
    #   rho 1.0,  A +2: -2
    close(loss_tok, [[-1.28, -1.25, 0.8, 1.5, -0.5, -2.0]])
    assert high.tolist() == [[True, False, False, False, False, False]]
    assert low.tolist() == [[False, False, True, False, False, False]]
    # dL/dlogp = -A*rho where unclipped (d rho / d logp = rho), 0 where a bound is active
    loss_tok.sum().backward()
    close(logp.grad, [[0.0, -1.25, 0.0, 1.5, -0.5, -2.0]])


def test_clip_symmetric():
    logp, old_logp, adv = _six_tokens()
    loss_tok, low, high = clipped_pg_token_loss(logp, old_logp, adv, clip_low=0.2, clip_high=0.2)
    # the only change vs clip-higher: rho 1.25 > 1.2 with A > 0 is now clipped: -1.2
    close(loss_tok, [[-1.2, -1.2, 0.8, 1.5, -0.5, -2.0]])
    assert high.tolist() == [[True, True, False, False, False, False]]
    assert low.tolist() == [[False, False, True, False, False, False]]


def test_dual_clip_bounds_negative_advantages_only():
    # rho = e^3 = 20.0855 for all; c = 3
    logp = torch.full((1, 4), 3.0, dtype=F64, requires_grad=True)
    old_logp = torch.zeros(1, 4, dtype=F64)
    adv = t([[-1.0, -2.0, 1.0, 0.0]])
    plain, _, _ = clipped_pg_token_loss(logp, old_logp, adv, clip_low=0.2, clip_high=0.28)
    e3 = math.exp(3.0)
    # plain: A=-1: max(e^3, 1.28) = e^3; A=-2: 2e^3; A=+1: -1.28; A=0: 0
    close(plain, [[e3, 2 * e3, -1.28, 0.0]])
    dual, _, _ = clipped_pg_token_loss(logp, old_logp, adv, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    # dual: A<0 bounded by -A*c: min(e^3, 3) = 3, min(2e^3, 6) = 6; A>=0 untouched
    close(dual, [[3.0, 6.0, -1.28, 0.0]])
    dual.sum().backward()
    close(logp.grad, [[0.0, 0.0, 0.0, 0.0]])  # every token is on a bound


def test_dual_clip_inactive_below_c():
    # A=-1, rho=1.5 < c=3: max(1.5, 1.28) = 1.5 either way
    logp, old_logp, adv = torch.log(t([[1.5]])), torch.zeros(1, 1, dtype=F64), t([[-1.0]])
    out, _, _ = clipped_pg_token_loss(logp, old_logp, adv, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    close(out, [[1.5]])


def test_extreme_log_ratio_is_finite():
    logp = torch.tensor([[80.0, -80.0]], dtype=torch.float32, requires_grad=True)
    loss_tok, _, _ = clipped_pg_token_loss(
        logp, torch.zeros(1, 2), torch.tensor([[-1.0, 1.0]]), clip_low=0.2, clip_high=0.28
    )
    loss_tok.sum().backward()
    assert torch.isfinite(loss_tok).all() and torch.isfinite(logp.grad).all()
    close(loss_tok[0, 0], math.exp(20.0), atol=1e3)  # log ratio clamped to 20 before exp


# ---------------------------------------------------------------------------------------------------------
# aggregations (§1.5)
# ---------------------------------------------------------------------------------------------------------
# Row 0: 3 tokens [1, 2, 3]; row 1: 1 token [4]; row 2: no token (ignored). Masked-out values are junk.
LOSS_TOK = [[1.0, 2.0, 3.0, 99.0], [4.0, 99.0, 99.0, 99.0], [99.0, 99.0, 99.0, 99.0]]
MASK = [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_masked_helpers():
    x, m = t(LOSS_TOK), t(MASK)
    close(masked_sum(x, m), 10.0)
    close(masked_sum(x, m, dim=-1), [6.0, 4.0, 0.0])
    close(masked_mean(x, m), 2.5)
    close(masked_mean(x, m, dim=-1), [2.0, 4.0, 0.0])  # empty row: 0, not NaN


def test_token_mean_differs_from_seq_mean_with_uneven_lengths():
    x, m = t(LOSS_TOK), t(MASK)
    close(token_mean(x, m), (1 + 2 + 3 + 4) / 4)  # 2.5: every token weighs the same
    close(seq_mean_token_mean(x, m), (6 / 3 + 4 / 1) / 2)  # 3.0: every sequence weighs the same
    assert float(token_mean(x, m)) != float(seq_mean_token_mean(x, m))


def test_dr_grpo_constant_normaliser():
    x, m = t(LOSS_TOK), t(MASK)
    # (1/B) sum_b sum_k M L / L_const = (6 + 4) / (2 * 4) = 1.25
    close(seq_mean_token_sum_norm(x, m, norm_len=4), 1.25)
    close(seq_mean_token_sum_norm(x, m, norm_len=10), 0.5)  # (6 + 4) / (2 * 10)
    # padding does not change it (unlike verl's L_pad form): pad the batch to T = 9
    padded_x = torch.cat([x, torch.full((3, 5), 7.0, dtype=F64)], dim=1)
    padded_m = torch.cat([m, torch.zeros(3, 5, dtype=F64)], dim=1)
    close(seq_mean_token_sum_norm(padded_x, padded_m, norm_len=4), 1.25)
    with pytest.raises(ValueError, match="norm_len"):
        seq_mean_token_sum_norm(x, m, norm_len=0)


def _ragged_batch(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Six rows of lengths 7, 2, 5, 1, 3, 6 (prompt tokens masked at the start), right-padded to T = 8."""
    gen = torch.Generator().manual_seed(seed)
    lengths, prompt = [7, 2, 5, 1, 3, 6], [1, 0, 2, 0, 1, 1]
    mask = torch.zeros(6, 8, dtype=F64)
    for b, (n, p) in enumerate(zip(lengths, prompt, strict=True)):
        mask[b, p:n] = 1.0
    logp = -torch.rand(6, 8, generator=gen, dtype=F64)
    old_logp = logp + 0.3 * torch.randn(6, 8, generator=gen, dtype=F64)
    ref_logp = logp + 0.5 * torch.randn(6, 8, generator=gen, dtype=F64)
    adv = torch.randn(6, 1, generator=gen, dtype=F64) * mask
    entropy = torch.rand(6, 8, generator=gen, dtype=F64)
    return logp, old_logp, ref_logp, adv, mask, entropy


# micro-batches of different sizes, each cut to its own longest row (as length bucketing does)
SPLITS = [(0, 1, 7), (1, 4, 5), (4, 6, 6)]  # (first row, end row, columns kept)

CONFIGS = [
    LossConfig(aggregation="token-mean"),
    LossConfig(aggregation="seq-mean-token-mean"),
    LossConfig(aggregation="seq-mean-token-sum-norm", norm_len=16),
]


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_aggregation_micro_batches_with_global_counts_sum_to_full_batch(name):
    logp, _, _, _, mask, _ = _ragged_batch()
    x = logp.exp() * 3.0
    cfg = LossConfig(aggregation=name, norm_len=16 if name == "seq-mean-token-sum-norm" else None)
    full = bind_aggregation(cfg)(x, mask)
    glob = bind_aggregation(cfg, total_tokens=int(mask.sum()), num_sequences=6)
    pieces = [glob(x[a:b, :c], mask[a:b, :c]) for a, b, c in SPLITS]
    close(sum(pieces), full, atol=1e-12)
    if name != "seq-mean-token-sum-norm":  # the test can fail: local normalisation is not exact
        local = bind_aggregation(cfg)
        mean_of_locals = sum(local(x[a:b, :c], mask[a:b, :c]) for a, b, c in SPLITS) / len(SPLITS)
        assert abs(float(mean_of_locals - full)) > 1e-3


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.aggregation)
def test_policy_loss_gradient_accumulation_is_exact(cfg):
    cfg = LossConfig(
        aggregation=cfg.aggregation, norm_len=cfg.norm_len, kl_coef=0.1, entropy_coef=0.01, dual_clip=3.0
    )
    logp, old_logp, ref_logp, adv, mask, entropy = _ragged_batch(seed=1)
    full_param = logp.clone().requires_grad_(True)
    full, _ = policy_loss(
        full_param, old_logp, adv, mask, cfg, ref_logp=ref_logp, entropy=entropy * full_param
    )
    full.backward()
    acc_param = logp.clone().requires_grad_(True)
    total = 0.0
    for a, b, c in SPLITS:
        p = acc_param[a:b, :c]
        loss, _ = policy_loss(
            p,
            old_logp[a:b, :c],
            adv[a:b, :c],
            mask[a:b, :c],
            cfg,
            ref_logp=ref_logp[a:b, :c],
            entropy=entropy[a:b, :c] * p,
            total_tokens=int(mask.sum()),
            num_sequences=6,
        )
        loss.backward()
        total = total + loss.detach()
    close(total, full.detach(), atol=1e-12)
    close(acc_param.grad, full_param.grad, atol=1e-12)


def test_loss_config_validation():
    assert LossConfig() == LossConfig(clip_low=0.2, clip_high=0.28, aggregation="token-mean", kl_coef=0.0)
    with pytest.raises(ValueError, match="norm_len"):
        LossConfig(aggregation="seq-mean-token-sum-norm")
    with pytest.raises(ValueError, match="norm_len"):
        LossConfig(norm_len=100)
    with pytest.raises(ValueError, match="aggregation"):
        LossConfig(aggregation="seq-mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dual_clip"):
        LossConfig(dual_clip=0.5)
    with pytest.raises(ValueError, match="clip_low"):
        LossConfig(clip_low=1.0)
    with pytest.raises(ValueError, match="kl_estimator"):
        LossConfig(kl_estimator="k4")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# KL estimators (§1.6)
# ---------------------------------------------------------------------------------------------------------
def test_kl_estimator_values():
    logp, ref_logp = torch.log(t([0.5])), torch.log(t([0.25]))
    close(kl_k1(logp, ref_logp), [LOG2])  # log 0.5 - log 0.25 = log 2 = 0.693147
    close(kl_k2(logp, ref_logp), [0.5 * LOG2**2])  # 0.5 * 0.693147^2 = 0.240227
    # k3: d = log 0.25 - log 0.5 = -log 2; e^d - d - 1 = 0.5 + 0.693147 - 1 = 0.193147
    close(kl_k3(logp, ref_logp), [0.5 + LOG2 - 1.0])
    close(kl_k3(logp, logp), [0.0])
    assert set(KL_ESTIMATORS) == {"k1", "k2", "k3"}


def test_k3_is_clamped_and_its_gradient_finite():
    logp = t([0.0, 0.0, -100.0]).requires_grad_(True)
    ref_logp = t([15.0, -15.0, 0.0])
    kl = kl_k3(logp, ref_logp)
    # e^15 - 15 - 1 = 3.27e6 -> 10;  e^-15 + 15 - 1 = 14.0000003 -> 10;  d = 100 clamped to 20 -> 10
    close(kl, [10.0, 10.0, 10.0])
    kl.sum().backward()
    assert torch.isfinite(logp.grad).all()


# ---------------------------------------------------------------------------------------------------------
# logits -> logprobs / entropy
# ---------------------------------------------------------------------------------------------------------
def test_entropy_of_uniform_is_log_v():
    close(entropy_from_logits(torch.zeros(2, 3, 7, dtype=F64)), torch.full((2, 3), math.log(7.0), dtype=F64))


def test_entropy_of_known_distribution():
    # p = (1/2, 1/4, 1/4): H = 1/2 log 2 + 2 * 1/4 log 4 = 1.5 log 2; shifting logits changes nothing
    logits = torch.log(t([[[0.5, 0.25, 0.25]]])) + 3.0
    close(entropy_from_logits(logits), [[1.5 * LOG2]])
    random_logits = torch.randn(4, 5, 9, dtype=F64)
    close(entropy_from_logits(random_logits), torch.distributions.Categorical(logits=random_logits).entropy())


@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.0])
def test_selected_logprobs_equals_log_softmax_gather(temperature):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=gen, dtype=F64)
    ids = torch.randint(0, 11, (2, 5), generator=gen)
    expected = torch.log_softmax(logits / temperature, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    close(selected_logprobs(logits, ids, temperature=temperature), expected, atol=1e-12)


def test_selected_logprobs_rejects_zero_temperature():
    with pytest.raises(ValueError, match="temperature"):
        selected_logprobs(torch.zeros(1, 1, 3), torch.zeros(1, 1, dtype=torch.long), temperature=0.0)


# ---------------------------------------------------------------------------------------------------------
# policy_loss: composition, signs, metrics
# ---------------------------------------------------------------------------------------------------------
def test_policy_loss_adds_kl_and_subtracts_entropy():
    logp = torch.log(t([[0.5, 0.5]])).requires_grad_(True)
    old_logp = logp.detach().clone()  # ratio 1
    ref_logp = torch.log(t([[0.25, 0.25]]))
    adv, mask = t([[2.0, -1.0]]), t([[1, 1]])
    entropy = t([[2.0, 1.0]])
    cfg = LossConfig(kl_coef=0.1, entropy_coef=0.01)
    loss, metrics = policy_loss(logp, old_logp, adv, mask, cfg, ref_logp=ref_logp, entropy=entropy)
    # pg: token losses [-2, +1] -> token-mean -0.5
    # kl: k3 = 0.193147 on both tokens -> +0.1 * 0.193147
    # entropy: mean(2, 1) = 1.5 -> -0.01 * 1.5
    kl = 0.5 + LOG2 - 1.0
    close(loss, -0.5 + 0.1 * kl - 0.01 * 1.5)
    assert metrics["loss/pg"] == pytest.approx(-0.5)
    assert metrics["loss/kl"] == pytest.approx(kl)
    assert metrics["loss/entropy"] == pytest.approx(1.5)
    assert metrics["loss/ratio_mean"] == pytest.approx(1.0)
    assert metrics["loss/approx_kl"] == pytest.approx(0.0)
    assert metrics["clip/frac"] == 0.0
    # KL gradient alone: d k3 / d logp = 1 - e^(ref - logp) = 1 - 0.5 = 0.5 per token, token-mean over 2
    # tokens -> 0.25 each: gradient descent lowers logp towards the (lower) reference
    logp.grad = None
    kl_only, _ = policy_loss(
        logp, old_logp, torch.zeros(1, 2, dtype=F64), mask, LossConfig(kl_coef=1.0), ref_logp=ref_logp
    )
    kl_only.backward()
    close(logp.grad, [[0.25, 0.25]])


def test_policy_loss_kl_and_entropy_only_logged_when_coefficient_is_zero():
    logp = torch.log(t([[0.5, 0.5]]))
    args = (logp, logp, t([[2.0, -1.0]]), t([[1, 1]]), LossConfig())
    loss, metrics = policy_loss(*args, ref_logp=torch.log(t([[0.25, 0.25]])), entropy=t([[2.0, 1.0]]))
    close(loss, -0.5)
    assert "loss/kl" in metrics and "loss/entropy" in metrics
    _, bare = policy_loss(*args)
    assert "loss/kl" not in bare and "loss/entropy" not in bare


def test_policy_loss_requires_inputs_of_active_terms():
    x, m = torch.zeros(1, 2), torch.ones(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(x, x, x, m, LossConfig(kl_coef=0.1))
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(x, x, x, m, LossConfig(entropy_coef=0.1))


def test_policy_loss_clip_metrics():
    logp, old_logp, adv = _six_tokens()
    mask = t([[1, 1, 1, 1, 1, 0]])  # the last token (rho 1, A 2) is not trained
    loss, metrics = policy_loss(logp, old_logp, adv, mask, LossConfig())
    close(loss, (-1.28 - 1.25 + 0.8 + 1.5 - 0.5) / 5)  # token-mean over the 5 masked tokens
    assert metrics["clip/frac_high"] == pytest.approx(1 / 5)  # rho 1.5, A > 0
    assert metrics["clip/frac_low"] == pytest.approx(1 / 5)  # rho 0.5, A < 0
    assert metrics["clip/frac"] == pytest.approx(2 / 5)
    assert metrics["loss/ratio_mean"] == pytest.approx((1.5 + 1.25 + 0.5 + 1.5 + 0.5) / 5)  # 1.05
    # approx_kl = mean of (rho - 1) - log rho
    approx = sum((r - 1) - math.log(r) for r in RATIOS[:5]) / 5  # 0.120444
    assert metrics["loss/approx_kl"] == pytest.approx(approx)
    assert "clip/frac_dual" not in metrics
    # dual-clip: rho e^3 with A < 0 counts as clipped
    logp = t([[3.0, 0.0]])
    _, dual = policy_loss(
        logp, torch.zeros(1, 2, dtype=F64), t([[-1.0, 1.0]]), t([[1, 1]]), LossConfig(dual_clip=3.0)
    )
    assert dual["clip/frac_dual"] == pytest.approx(0.5)
    assert dual["clip/frac"] == pytest.approx(0.5)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_one_sgd_step_moves_logp_with_the_advantage(sign):
    theta = torch.zeros(4, dtype=F64, requires_grad=True)  # toy policy: softmax(theta) over 4 tokens
    token = torch.tensor([[2]])

    def logp_of_token() -> torch.Tensor:
        return selected_logprobs(theta.view(1, 1, 4), token)  # (1, 1)

    before = logp_of_token().detach()
    loss, _ = policy_loss(logp_of_token(), before, t([[sign]]), t([[1]]), LossConfig())
    loss.backward()
    with torch.no_grad():
        theta -= 0.5 * theta.grad
    after = logp_of_token().detach()
    assert float(after - before) * sign > 0  # A > 0: more likely; A < 0: less likely


def test_entropy_bonus_step_raises_entropy():
    theta = torch.tensor([2.0, 0.0, -1.0], dtype=F64, requires_grad=True)
    logits = theta.view(1, 1, 3)
    entropy = entropy_from_logits(logits)
    zero = torch.zeros(1, 1, dtype=F64)
    loss, _ = policy_loss(zero, zero, zero, t([[1]]), LossConfig(entropy_coef=1.0), entropy=entropy)
    loss.backward()
    with torch.no_grad():
        theta -= 0.5 * theta.grad
    assert float(entropy_from_logits(theta.detach().view(1, 1, 3))) > float(entropy.detach())
