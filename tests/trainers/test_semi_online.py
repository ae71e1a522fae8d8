"""UI-S1 semi-online RL: patched histories, truncated returns, advantages and SOP by hand."""

from __future__ import annotations

import asyncio
import statistics

import pytest

import palaestra
from palaestra import StepOutcome, TextEnv
from palaestra.agents.base import Generation, SamplingParams
from palaestra.rollout.runner import Task
from palaestra.rollout.semi_online import (
    ActionMatch,
    SemiOnlineRunner,
    match_bracketed,
    match_web,
    semi_online_performance,
    step_reward,
)
from palaestra.rollout.trajectory import SemiOnlineStep
from palaestra.trainers.core.advantages import truncated_discounted_returns
from palaestra.trainers.semi_online import semi_online_advantages


class Path4(TextEnv):
    """Four steps; the expert's move at step k is `[m<k>]`; any move advances (so patches matter only in
    the history); success after the fourth step."""

    def __init__(self) -> None:
        super().__init__(max_turns=4)

    def _reset(self, options):
        return "start", {"task_id": "p", "expert_action": "go [m0]"}

    def _step(self, action: str) -> StepOutcome:
        k = self._turn + 1
        done = k == 4
        info = {"expert_action": f"go [m{k}]", "taken": action}
        return StepOutcome(f"at {k}", reward=float(done), terminated=done, success=done, info=info)


class ListPolicy:
    """A text policy replying with a fixed list of moves, one per call, in order."""

    name = "list"
    tokenizer = None

    def __init__(self, replies):
        self.replies = list(replies)

    async def generate(self, requests):
        return [Generation(text=self.replies.pop(0)) for _ in requests]

    async def close(self):
        return None


@pytest.fixture(scope="module", autouse=True)
def _env():
    palaestra.register_env("test/Path4-v0", Path4, max_turns=4, override=True)


def _run(replies, threshold):
    runner = SemiOnlineRunner(ListPolicy(replies), sampling=SamplingParams(), patch_threshold=threshold)
    return asyncio.run(runner.rollout(Task("test/Path4-v0", 0)))


def test_patched_history_holds_exactly_the_expert_actions_at_patched_steps():
    out = _run(["[m0]", "[wrong]", "[m2]", "[oops]", "[m4]"], threshold=2)
    assert out.matches == [True, False, True, False]
    assert out.patched == [False, True, False, True]
    assistant = [m["content"] for m in out.history if m["role"] == "assistant"]
    assert assistant == ["[m0]", "go [m1]", "[m2]", "go [m3]"]  # own replies, expert's at patched steps
    assert [row.turns[0].action for row in out.rows] == ["[m0]", "[wrong]", "[m2]", "[oops]"]  # rows: own
    assert [row.algo_data(SemiOnlineStep).expert_action for row in out.rows] == [
        f"go [m{k}]" for k in range(4)
    ]
    assert out.success and not out.stopped
    # each row's prompt is the history before that step
    assert out.rows[2].messages[:-1] == out.history[:5]


def test_rollout_stops_when_the_patches_are_spent():
    out = _run(["[m0]", "[x]", "[y]", "[m3]"], threshold=1)
    assert out.matches == [True, False, False] and out.patched == [False, True, False]
    assert out.stopped and not out.success and len(out.rows) == 3
    assert out.rows[-1].turns[0].truncated
    assert _run(["[x]"], threshold=0).patched == [False]


def test_step_rewards_and_matchers():
    assert step_reward(ActionMatch(True, True, True)) == pytest.approx(1.0)
    assert step_reward(ActionMatch(True, True, False)) == pytest.approx(0.5)
    assert step_reward(ActionMatch(True, False, False)) == pytest.approx(0.1)
    assert step_reward(ActionMatch(False, False, False)) == 0.0
    assert step_reward(ActionMatch(True, True, False), "code") == pytest.approx(0.1 + 0.45)
    assert step_reward(ActionMatch(True, False, False), "code") == pytest.approx(0.1 + 0.09)
    assert match_bracketed("I go [U]", "[up]").exact and not match_bracketed("[down]", "[up]").exact
    assert not match_bracketed("no move", "[up]").parsed
    web = match_web('type [3] "bob"', 'type [3] "alice"')
    assert web.parsed and web.type_match and not web.exact
    assert match_web("click [4]", "click [4]").exact


def test_truncated_returns_paper_and_code_semantics():
    r, m = [1.0, 0.5, 1.0, 1.0], [True, False, True, True]
    # paper: the run from t=0 includes the first mismatching step; code stops before it
    assert truncated_discounted_returns(r, m, 0.5) == pytest.approx([1.25, 0.5, 1.5, 1.0])
    assert truncated_discounted_returns(r, m, 0.5, include_mismatch=False) == pytest.approx(
        [1.0, 0.5, 1.5, 1.0]
    )


def test_advantages_match_hand_computed_values():
    # one task, two rollouts: A has 2 steps (returns 1.5, 1.0; R(τ)=2), B has 1 step (return .1; R(τ)=.1)
    adv = semi_online_advantages(
        [1.5, 1.0, 0.1], [2.0, 2.0, 0.1], [0, 0, 0], ["A", "A", "B"], [0, 1, 0], scale_by_std=True
    )
    sd_e = statistics.stdev([2.0, 0.1])  # A^E over rollouts, each counted once
    sd_0 = statistics.stdev([1.5, 0.1])  # A^S at step 0; step 1 is a singleton (0)
    a_e = (2.0 - 1.05) / (sd_e + 1e-6)
    a_s = (1.5 - 0.8) / (sd_0 + 1e-6)
    assert adv == pytest.approx([a_e + a_s, a_e, -a_e - a_s], abs=1e-5)
    rows = semi_online_advantages(
        [1.5, 1.0, 0.1],
        [1.0, 1.0, 0.1],
        [0, 0, 0],
        ["A", "A", "B"],
        [0, 1, 0],
        scale_by_std=False,
        episode_advantage="rows",
        step_weight=0.5,
    )
    mean = 2.1 / 3
    assert rows == pytest.approx([1 - mean + 0.5 * 0.7, 1 - mean, 0.1 - mean - 0.5 * 0.7], abs=1e-6)


def test_sop_counts_consecutive_matches_against_the_expert_length():
    policy = ListPolicy(["[m0]", "[m1]", "[bad]"])
    sop = asyncio.run(semi_online_performance(policy, "test/Path4-v0", seeds=[0], max_turns=None))
    assert sop.matched == [2] and sop.expert_steps == [4]
    assert sop.progress == pytest.approx(0.5) and sop.success_rate == 0.0 and sop.score == pytest.approx(0.25)


def test_offline_demos_replay_as_the_expert_path():
    from palaestra.rollout.demos import collect_demos
    from palaestra.rollout.semi_online import DemoReplayEnv

    (demo,) = collect_demos("test/Path4-v0", episodes=1).trajectories
    runner = SemiOnlineRunner(
        ListPolicy(["[m0]", "[nope]", "[m2]", "[m3]"]),
        sampling=SamplingParams(),
        patch_threshold=1,
        env_factory=lambda task: DemoReplayEnv(demo),
    )
    out = asyncio.run(runner.rollout(Task("offline-demo", 0)))
    assert out.matches == [True, False, True, True] and out.patched == [False, True, False, False]
    assistant = [m["content"] for m in out.history if m["role"] == "assistant"]
    assert assistant == ["[m0]", "go [m1]", "[m2]", "[m3]"]
    observations = [m["content"] for m in out.history if m["role"] == "user"]
    assert observations == ["start"] + [t.observation for t in demo.turns]  # S*_t from the demo
    assert out.success == demo.success is True


class ScriptedThinker:
    """A thought generator: explains whichever expert action its hint names, and records its prompts."""

    name = "thinker"
    tokenizer = None

    def __init__(self) -> None:
        self.prompts: list[list[dict]] = []

    async def generate(self, requests):
        out = []
        for r in requests:
            self.prompts.append(list(r.messages))
            action = r.messages[-1]["content"].split("\n")[1]
            out.append(Generation(text=f"<think>{action} leads to the goal</think>\n{action}"))
        return out

    async def close(self):
        return None


@pytest.mark.parametrize("on_policy", [True, False])
def test_thought_patches_put_the_expert_action_and_the_written_thought_in_the_history(on_policy):
    from palaestra.rollout.patches import ModelThought, extract_thought, patched_reply

    thinker = ScriptedThinker()
    runner = SemiOnlineRunner(
        ListPolicy(["[m0]", "[wrong]", "[m2]", "[oops]"]),
        sampling=SamplingParams(),
        patch_threshold=2,
        thought_writer=ModelThought(thinker, with_history=on_policy),
    )
    out = asyncio.run(runner.rollout(Task("test/Path4-v0", 0)))
    assert out.patched == [False, True, False, True] and out.success
    assistant = [m["content"] for m in out.history if m["role"] == "assistant"]
    assert assistant == [
        "[m0]",
        "<think>go [m1] leads to the goal</think>\ngo [m1]",
        "[m2]",
        "<think>go [m3] leads to the goal</think>\ngo [m3]",
    ]
    assert [row.turns[0].action for row in out.rows] == ["[m0]", "[wrong]", "[m2]", "[oops]"]  # rows: own
    assert out.rows[3].algo_data(SemiOnlineStep).patch_thought == "go [m3] leads to the goal"
    assert all("Hint" not in str(m["content"]) for m in out.history)  # the hint stays out of the history
    first, second = thinker.prompts  # one thought per patched step
    assert "go [m1]" in first[-1]["content"] and "go [m3]" in second[-1]["content"]
    if on_policy:  # M(I, a*, H_t, S_t): the history so far, then the hint
        assert second[:-1] == out.rows[3].messages[:-1]
    else:  # M0(I, a*, S_t): only the current state
        assert second[:-1] == [{"role": "user", "content": "at 3"}]
    assert extract_thought("no tags") == "no tags" and extract_thought("<think>cut") == "cut"
    assert patched_reply("go [m1]", "") == "go [m1]"  # an empty thought is the thought-free patch


def test_patch_strategy_config_needs_a_model_only_for_off_policy_thoughts():
    from palaestra.config import ConfigError, load_config

    def cfg(**algo):
        return load_config(None, [], envs={"train": [{"id": "x"}]}, algorithm={"name": "semi_online", **algo})

    assert cfg().algorithm.patch == "thought_free"
    assert cfg(patch="off_policy_thought", thought_model="hf:tiny-random").algorithm.thought_model
    with pytest.raises(ConfigError, match="thought_model"):
        cfg(patch="off_policy_thought")
    with pytest.raises(ConfigError, match="thought_model"):
        cfg(patch="on_policy_thought", thought_model="hf:tiny-random")
    with pytest.raises(ConfigError, match="lacks"):
        cfg(thought_template="{action}")
