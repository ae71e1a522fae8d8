"""GiGPO step-level advantages: anchor groups and hand-computed values, on a tiny deterministic env."""

from __future__ import annotations

import statistics

import pytest

from palaestra import StepOutcome, TextEnv
from palaestra.rollout.trajectory import Trajectory, Turn
from palaestra.trainers.core.advantages import anchor_groups, turn_token_advantages
from palaestra.trainers.gigpo import gigpo_advantages, turn_anchors


class Corridor(TextEnv):
    """Cells 0..3, start at 0, goal at 3: `[right]` / `[left]`; the observation is the cell only."""

    def __init__(self) -> None:
        super().__init__(max_turns=6)
        self.pos = 0

    def _reset(self, options):
        self.pos = 0
        return "cell 0", {"task_id": "corridor"}

    def _step(self, action: str) -> StepOutcome:
        self.pos = max(0, self.pos + (1 if "right" in action else -1))
        won = self.pos == 3
        return StepOutcome(f"cell {self.pos}", reward=float(won), terminated=won, success=won)


def _play(actions: list[str], group: int = 0) -> Trajectory:
    env = Corridor()
    obs, _ = env.reset(seed=0)
    traj = Trajectory(env_id="corridor", seed=0, group_index=group)
    traj.messages = [{"role": "system", "content": "walk"}, {"role": "user", "content": obs}]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        traj.turns.append(Turn(a, obs, r, term, trunc, info))
        traj.messages += [{"role": "assistant", "content": a}, {"role": "user", "content": obs}]
        if term:
            break
    return traj


def test_anchor_groups_are_exact_states_within_each_task_group():
    anchors = ["a", "b", "a", "a", "b"]
    groups = [0, 0, 0, 1, 1]
    assert anchor_groups(anchors, groups) == [0, 1, 0, 2, 3]
    assert anchor_groups(["cell 10", "cell 11", "x"], [0, 0, 0], similarity=0.8) == [0, 0, 1]
    with pytest.raises(ValueError, match="similarity"):
        anchor_groups(["a"], [0], similarity=1.5)


def test_revisited_states_form_anchor_groups_and_advantages_match_hand_values():
    # ep0 walks straight to the goal, ep1 steps back once (revisiting cell 0), ep2 runs out of luck.
    eps = [_play(["[right]"] * 3), _play(["[right]", "[left]", "[right]", "[right]", "[right]"])]
    eps.append(_play(["[left]", "[left]"]))
    anchors = [turn_anchors(t) for t in eps]
    assert anchors[0] == ["cell 0", "cell 1", "cell 2"]
    assert anchors[1] == ["cell 0", "cell 1", "cell 0", "cell 1", "cell 2"]
    assert anchors[2] == ["cell 0", "cell 0"]
    gamma = 0.5
    adv = gigpo_advantages([t.step_rewards for t in eps], anchors, [0, 0, 0], gamma=gamma, scale_by_std=False)
    # returns: ep0 [.25, .5, 1]; ep1 [.0625, .125, .25, .5, 1]; ep2 [0, 0]
    a_e = [1 - 2 / 3, 1 - 2 / 3, 0 - 2 / 3]  # episode returns 1, 1, 0
    cell0 = [0.25, 0.0625, 0.25, 0.0, 0.0]  # ep0 t0, ep1 t0, ep1 t2, ep2 t0, ep2 t1
    cell1 = [0.5, 0.125, 0.5]  # ep0 t1, ep1 t1, ep1 t3
    m0, m1 = sum(cell0) / 5, sum(cell1) / 3
    expected = [
        [a_e[0] + 0.25 - m0, a_e[0] + 0.5 - m1, a_e[0] + 0.0],  # cell 2: both returns are 1
        [a_e[1] + 0.0625 - m0, a_e[1] + 0.125 - m1, a_e[1] + 0.25 - m0, a_e[1] + 0.5 - m1, a_e[1]],
        [a_e[2] + 0.0 - m0, a_e[2] + 0.0 - m0],
    ]
    for got, want in zip(adv, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)


def test_std_scaling_weight_and_singleton_anchor_groups():
    rewards = [[0.0, 1.0], [0.0, 0.0]]
    anchors = [["s", "goal-side"], ["s", "dead-end"]]
    adv = gigpo_advantages(rewards, anchors, ["g", "g"], gamma=1.0, step_weight=2.0, scale_by_std=True)
    sd_e = statistics.stdev([1.0, 0.0])
    a_e = [0.5 / (sd_e + 1e-6), -0.5 / (sd_e + 1e-6)]
    sd_s = statistics.stdev([1.0, 0.0])  # state "s": returns 1 and 0; other states are singletons
    assert adv[0] == pytest.approx([a_e[0] + 2 * 0.5 / (sd_s + 1e-6), a_e[0]], abs=1e-5)
    assert adv[1] == pytest.approx([a_e[1] - 2 * 0.5 / (sd_s + 1e-6), a_e[1]], abs=1e-5)


def test_step_row_statistics_and_invalid_penalty():
    rewards = [[0.0, 1.0], [0.0]]
    anchors = [["s", "t"], ["s"]]
    invalid = [[False, False], [True]]
    adv = gigpo_advantages(
        rewards, anchors, [0, 0], gamma=1.0, episode_stats="steps", invalid=invalid, invalid_penalty=0.1
    )
    # row scores: 1, 1, -0.1 (mean 0.6333); step returns at "s": 1 and -0.1 (mean 0.45)
    mean = (1 + 1 - 0.1) / 3
    assert adv[0] == pytest.approx([1 - mean + 0.55, 1 - mean], abs=1e-6)
    assert adv[1] == pytest.approx([-0.1 - mean - 0.55], abs=1e-6)


def test_turn_advantages_land_on_each_reply_tokens():
    t = Trajectory(env_id="x", seed=0, token_ids=list(range(8)), loss_mask=[0, 1, 1, 0, 0, 1, 1, 1])
    t.logprobs = [0.0] * 8
    t.turns = [
        Turn("a", "o", 0.0, False, False, {}, token_span=(1, 3)),
        Turn("b", "o", 1.0, True, False, {}, token_span=(5, 8)),
    ]
    assert turn_token_advantages(t, [2.0, -1.0]) == [0, 2, 2, 0, 0, -1, -1, -1]


def test_spa_progress_estimator_learns_contributions_that_add_up_to_the_return():
    import json

    import torch

    from palaestra.trainers.spa import ProgressEstimator, progress_step_rewards

    torch.manual_seed(0)
    good, bad = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    episodes = [torch.stack([bad, good]), torch.stack([bad, bad]), torch.stack([good])]
    returns = [1.0, 0.0, 1.0]
    est = ProgressEstimator(3, lr=0.1, fit_iters=300)
    assert est(episodes[0]).tolist() == [0.0, 0.0]  # zero-initialised head: no progress yet
    mse = est.fit(episodes, returns)
    assert mse < 1e-3
    c = est(torch.stack([bad, good])).tolist()
    assert c[1] > c[0] and sum(c) == pytest.approx(1.0, abs=0.05)  # the "good" step carries the credit
    assert progress_step_rewards([0.25, 0.75], [True, False], alpha=2.0, beta=0.5) == [1.0, 1.5]
    again = ProgressEstimator(3)
    again.load(json.loads(json.dumps(est.state())))
    assert again(episodes[0]).tolist() == pytest.approx(est(episodes[0]).tolist())


def test_gigpo_takes_episode_returns_apart_from_progress_step_rewards():
    adv = gigpo_advantages(
        [[0.5, 0.5], [0.0]], [["s", "t"], ["s"]], [0, 0], gamma=1.0, episode_returns=[1.0, 0.0]
    )
    # A^E from the env returns (1, 0): ±0.5; A^S at "s" from progress returns (1.0 vs 0.0): ±0.5
    assert adv == [pytest.approx([1.0, 0.5]), pytest.approx([-1.0])]


def test_anchor_metrics_count_anchor_groups_whose_returns_differ():
    from palaestra.trainers.gigpo import anchor_metrics

    metrics = anchor_metrics(
        [[0.0, 1.0], [0.0, 0.0], [1.0], [1.0]],
        [["s0", "s1"], ["s0", "s2"], ["t"], ["t"]],
        [0, 0, 1, 1],
        gamma=0.5,
    )
    # group 0: s0 seen twice with returns 0.5 and 0.0 (signal); group 1: t twice, both returns 1.0
    assert metrics == {
        "gigpo/anchor_groups": 2.0,
        "gigpo/anchor_groups_signal": 1.0,
        "gigpo/steps_with_signal": 2 / 6,
    }
