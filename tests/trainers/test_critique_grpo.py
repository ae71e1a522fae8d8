"""Critique-GRPO: refinements from a critic that reveals the answer succeed and get positive advantages;
their tokens enter the loss through the shaped ratio π/(π+γ)."""

from __future__ import annotations

import asyncio
import math
import re

import pytest
import torch

from palaestra.agents.base import Generation, SamplingParams
from palaestra.rollout.critique import RuleCritic, refine
from palaestra.rollout.runner import RolloutConfig, Task, rollout
from palaestra.rollout.trajectory import Refinement
from palaestra.trainers.core.advantages import group_advantages
from palaestra.trainers.core.losses import LossConfig
from palaestra.trainers.critique_grpo import critique_grpo_loss, select_refinements


class CopiesTheCritique:
    """Answers wrong, unless the prompt carries a critique with a boxed answer: then it copies it."""

    name = "copies-critique"
    tokenizer = None

    async def generate(self, requests):
        out = []
        for r in requests:
            found = re.findall(r"ground truth is:.*?\\boxed\{([^}]*)\}", r.messages[-1]["content"], re.S)
            out.append(Generation(text=f"\\boxed{{{found[-1]}}}" if found else "\\boxed{-98765}"))
        return out

    async def close(self):
        return None


def test_scripted_critic_that_reveals_the_answer_gives_successful_refinements_with_positive_advantage():
    policy = CopiesTheCritique()
    tasks = [Task("palaestra/Math-ArithEasy-v0", seed) for seed in (1, 2)]
    initial = rollout(policy, tasks, RolloutConfig(group_size=4))
    assert not any(t.success for t in initial)  # all fail: the refinement condition of the paper
    refined = asyncio.run(refine(policy, initial, RuleCritic("ground_truth"), SamplingParams()))
    assert all(r.success and isinstance(r.algo, Refinement) for r in refined)
    assert "ground truth is" in refined[0].algo_data(Refinement).critique
    assert refined[0].messages[-2] == initial[0].messages[-2]  # trained as a reply to the original prompt
    group = [t for t in initial if t.group_index == 0]
    chosen = select_refinements([r for r in refined if r.group_index == 0], 1)
    final = chosen + group[1:]  # "replace": 3 initial + 1 refinement
    adv = group_advantages([t.reward for t in final], [0] * 4, scale_by_std=False).tolist()
    assert adv[0] == pytest.approx(0.75) and all(a == pytest.approx(-0.25) for a in adv[1:])
    (plain,) = asyncio.run(refine(policy, initial[:1], RuleCritic("indicative"), SamplingParams()))
    assert (
        plain.algo_data(Refinement).critique == "The generated solution is incorrect." and not plain.success
    )


def test_select_refinements_prefers_correct_then_reward():
    from palaestra.rollout.trajectory import Trajectory, Turn

    def t(success, reward):
        x = Trajectory(env_id="e", seed=0, success=success)
        x.turns = [Turn("a", "o", reward, True, False, {})]
        return x

    items = [t(False, 0.5), t(True, 1.0), t(False, 0.9)]
    assert select_refinements(items, 1) == [items[1]]
    assert select_refinements(items, 2) == [items[1], items[2]]


def test_refinement_tokens_enter_the_loss_through_the_shaped_ratio():
    # row 0: an initial reply (one token, ratio 1); row 1: a refinement (one token with π = 0.5)
    logp = torch.tensor([[math.log(0.3)], [math.log(0.5)]], requires_grad=True)
    old = torch.tensor([[math.log(0.3)], [0.0]])
    adv = torch.tensor([[-1.0], [2.0]])
    mask = torch.ones(2, 1)
    ref = torch.tensor([[0.0], [1.0]])
    cfg = LossConfig(clip_low=0.2, clip_high=0.2, aggregation="token-mean")
    loss, metrics = critique_grpo_loss(logp, old, adv, mask, ref, cfg, gamma=0.1)
    shaped = 0.5 / 0.6  # inside [0.8, 1.2]: not clipped
    assert float(loss.detach()) == pytest.approx((1.0 * 1.0 - 2.0 * shaped) / 2)
    loss.backward()
    # d/dlogp: initial −A·ρ = 1·1 → +1; refinement −A·γπ/(π+γ)² = −2·0.05/0.36
    assert logp.grad[0, 0] == pytest.approx(1.0 / 2)
    assert logp.grad[1, 0] == pytest.approx(-2 * 0.05 / 0.36 / 2, rel=1e-5)
    assert metrics["critique/refinement_tokens"] == 0.5 and metrics["critique/shaped_mean"] == pytest.approx(
        shaped
    )


def test_clipped_shaped_ratio_gives_no_gradient_to_unlikely_wrong_refinements():
    logp = torch.tensor([[math.log(0.1)]], requires_grad=True)  # f = 0.5 < 0.8
    cfg = LossConfig(clip_low=0.2, clip_high=0.2, aggregation="token-mean")
    args = (logp, torch.zeros(1, 1), torch.tensor([[-1.0]]), torch.ones(1, 1), torch.ones(1, 1), cfg)
    critique_grpo_loss(*args, refinement_clip=True)[0].backward()
    assert logp.grad.item() == 0.0  # paper's clip: incorrect, unlikely refinement tokens are ignored
    logp.grad = None
    critique_grpo_loss(*args, refinement_clip=False)[0].backward()
    assert logp.grad.item() == pytest.approx(0.1 * 0.1 / 0.04)  # code: still pushed down


def test_cgi_critic_in_the_loop_turns_wrong_candidates_into_successful_refinements():
    from palaestra.rollout.critique import CritiqueGuidedRunner
    from palaestra.rollout.semi_online import match_exact
    from palaestra.trainers.cgi import sft_loss

    runner = CritiqueGuidedRunner(
        CopiesTheCritique(), RuleCritic("ground_truth"), sampling=SamplingParams(), matcher=match_exact
    )
    (ep,) = asyncio.run(runner.run([Task("palaestra/Math-ArithEasy-v0", 3)]))
    assert ep.candidates == ["\\boxed{-98765}"] and ep.success and ep.reward == 1.0
    assert "incorrect" in ep.critiques[0] and "ground truth" in ep.critiques[0]
    refined, direct = ep.refined_rows[0], ep.direct_rows[0]
    assert refined.turns[0].action == direct.turns[0].action != ep.candidates[0]
    assert "Critique:" in refined.messages[-2]["content"]  # the refined row's context holds the critique
    assert all("Critique" not in str(m["content"]) for m in direct.messages)  # the direct row's does not
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    loss, metrics = sft_loss(logp, torch.tensor([[1.0, 1.0]]))
    assert float(loss) == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2) == metrics["loss/nll"]


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_critique_loss_is_exact_under_micro_batching(aggregation):
    torch.manual_seed(0)
    logp = -torch.rand(4, 6)
    old = logp + 0.1 * torch.randn(4, 6)
    adv = torch.randn(4, 1).expand(4, 6)
    mask = (torch.rand(4, 6) > 0.3).float()
    ref = torch.tensor([[1.0], [0.0], [0.0], [1.0]]).expand(4, 6)
    cfg = LossConfig(
        aggregation=aggregation, norm_len=8 if aggregation == "seq-mean-token-sum-norm" else None
    )
    counts = {"total_tokens": int(mask.sum()), "num_sequences": 4}
    whole, _ = critique_grpo_loss(logp, old, adv, mask, ref, cfg, **counts)
    parts = sum(
        critique_grpo_loss(logp[s], old[s], adv[s], mask[s], ref[s], cfg, **counts)[0]
        for s in (slice(0, 1), slice(1, 4))
    )
    assert float(parts) == pytest.approx(float(whole), rel=1e-6)
