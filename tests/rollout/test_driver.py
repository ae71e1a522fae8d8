"""The episode driver isolates failures for every rollout kind.

For plain episodes, semi-online rollouts, critique refinements, critique-guided episodes and matches:
an env that raises on its 2nd step, and one that hangs past the step timeout, end as failed episodes
(with the error) while the call completes, and the other episodes are exactly what a run without the
bad env gives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import pytest

import palaestra
from palaestra.agents.base import Generation, GenerationRequest, SamplingParams
from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.tictactoe import OPPONENTS, TicTacToe
from palaestra.rollout.critique import CritiqueGuidedRunner, RuleCritic, refine
from palaestra.rollout.matches import Match, play_matches
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task
from palaestra.rollout.semi_online import SemiOnlineRunner, match_bracketed
from palaestra.rollout.trajectory import Refinement, SemiOnlineStep, Trajectory

FLAKY, FLAKY_GAME = "test/Flaky-v0", "test/FlakyTicTacToe-v0"
HANG_S = 2.0
"""How long a hanging step sleeps; the thread config's step timeout is far shorter."""


def _misbehave(fail: str | None) -> None:
    if fail == "raise":
        raise RuntimeError("simulated env crash")
    if fail == "hang":
        time.sleep(HANG_S)


class FlakyEnv(TextEnv):
    """Play the move shown ([m0]..[m2], seeded); `fail` ("raise" or "hang") at step `fail_at`."""

    def __init__(self, *, fail: str | None = None, fail_at: int = 2, steps: int = 3):
        super().__init__(max_turns=steps)
        self.fail, self.fail_at, self.steps = fail, fail_at, steps
        self.system_prompt = "Play the move you are shown."

    def _reset(self, options: dict | None) -> tuple[str, dict]:
        self.moves = [f"[m{int(m)}]" for m in self.np_random.integers(0, 3, self.steps)]
        return f"Play {self.moves[0]}.", {"task_id": "flaky", "expert_action": self.moves[0]}

    def _step(self, action: str) -> StepOutcome:
        t = self.turn  # steps taken before this one
        if t + 1 == self.fail_at:
            _misbehave(self.fail)
        done = t + 1 >= self.steps
        right = float(action.strip() == self.moves[t])
        info = {} if done else {"expert_action": self.moves[t + 1]}
        return StepOutcome(
            f"Played. Now {info.get('expert_action', 'stop')}.",
            reward=right,
            terminated=done,
            success=done,
            info=info,
        )


class FlakyTicTacToe(TicTacToe):
    """TicTacToe whose 2nd move raises or hangs (`fail`)."""

    def __init__(self, *, fail: str | None = None):
        super().__init__()
        self.fail = fail

    def _step(self, agent: str, action: str) -> Any:
        if self.turn == 1:
            _misbehave(self.fail)
        return super()._step(agent, action)


class FlakyGameHolder(gym.Env):
    """What `game_of` reads: the game and its scripted players."""

    def __init__(self, fail: str | None = None):
        self.game, self.opponents = FlakyTicTacToe(fail=fail), OPPONENTS


@pytest.fixture(autouse=True, scope="module")
def _register():
    palaestra.register_env(FLAKY, FlakyEnv, max_turns=3, override=True)
    palaestra.register_env(FLAKY_GAME, FlakyGameHolder, max_turns=9, override=True)


class SeededPolicy:
    """Text-only; the reply depends only on the request's sampling seed (so on the driver's seeding)."""

    name = "seeded"
    tokenizer = None

    def __init__(self, moves: int = 3, template: str = "[m{}]", offset: int = 0):
        self.moves, self.template, self.offset = moves, template, offset

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return [
            Generation(text=self.template.format((r.sampling.seed or 0) % self.moves + self.offset))
            for r in requests
        ]

    async def close(self) -> None:
        pass


SAMPLING = SamplingParams(seed=123)
GOOD = [Task(FLAKY, seed=s) for s in range(3)]
BAD = {"raise": {"fail": "raise"}, "hang": {"fail": "hang"}}
CONFIG = {
    "raise": RolloutConfig(group_size=2, sampling=SAMPLING),
    "hang": RolloutConfig(group_size=2, sampling=SAMPLING, env_executor="thread", step_timeout_s=0.3),
}
EXPECTED_ERROR = {"raise": "simulated env crash", "hang": "step_timeout_s=0.3"}


def _bad_task(fail: str) -> Task:
    return Task(FLAKY, seed=7, env_kwargs=BAD[fail])


@pytest.mark.parametrize("fail", ["raise", "hang"])
def test_plain_episodes(fail):
    async def run(tasks: list[Task]) -> list[Trajectory]:
        runner = RolloutRunner(SeededPolicy(), CONFIG[fail])
        try:
            return await runner.run(tasks)
        finally:
            runner.close()

    alone = asyncio.run(run(GOOD))
    mixed = asyncio.run(run([*GOOD, _bad_task(fail)]))
    assert mixed[: len(alone)] == alone and all(t.error is None and t.terminated for t in alone)
    for t in mixed[len(alone) :]:
        assert EXPECTED_ERROR[fail] in (t.error or "") and not t.success and t.num_turns == 1


@pytest.mark.parametrize("fail", ["raise", "hang"])
def test_semi_online_rollouts(fail):
    def run(tasks: list[Task]):
        runner = SemiOnlineRunner(
            SeededPolicy(),
            sampling=SAMPLING,
            patch_threshold=None,
            matcher=match_bracketed,
            config=CONFIG[fail],
        )
        return asyncio.run(runner.run(tasks, 2))

    alone = run(GOOD)
    mixed = run([*GOOD, _bad_task(fail)])
    assert mixed[: len(alone)] == alone and all(r.error is None and len(r.rows) == 3 for r in alone)
    assert any(p for r in alone for p in r.patched) and any(m for r in alone for m in r.matches)
    for r in mixed[len(alone) :]:
        assert EXPECTED_ERROR[fail] in (r.error or "") and not r.success
        # the completed first step is kept, its lists aligned with its rows
        assert len(r.rows) == len(r.matches) == len(r.rewards) == len(r.patched) == 1
        assert r.rows[0].algo_data(SemiOnlineStep).step == 0


@pytest.mark.parametrize("fail", ["raise", "hang"])
def test_critique_refinements(fail):
    config = CONFIG[fail]
    single = RolloutConfig(max_turns=1, sampling=SAMPLING)
    runner = RolloutRunner(SeededPolicy(), single)
    initial = asyncio.run(runner.run(GOOD))
    runner.close()
    # the refinement's scoring env is a fresh env of the task; the bad one fails on its (only) step
    bad = dataclasses.replace(initial[0], env_kwargs={**BAD[fail], "fail_at": 1}, seed=7)
    policy, critic = SeededPolicy(offset=0), RuleCritic("ground_truth")
    alone = asyncio.run(refine(policy, initial, critic, SAMPLING, config=config))
    mixed = asyncio.run(refine(policy, [*initial, bad], critic, SAMPLING, config=config))
    assert mixed[: len(alone)] == alone and all(r.error is None and r.terminated for r in alone)
    assert all(isinstance(r.algo, Refinement) and "refinement" not in r.turns[0].info for r in alone)
    (failed,) = mixed[len(alone) :]
    assert EXPECTED_ERROR[fail] in (failed.error or "") and not failed.success and failed.reward == 0.0


@pytest.mark.parametrize("fail", ["raise", "hang"])
def test_critique_guided_episodes(fail):
    def run(tasks: list[Task]):
        runner = CritiqueGuidedRunner(
            SeededPolicy(),
            RuleCritic("ground_truth"),
            sampling=SAMPLING,
            matcher=match_bracketed,
            config=CONFIG[fail],
        )
        return asyncio.run(runner.run(tasks, 2))

    alone = run(GOOD)
    mixed = run([*GOOD, _bad_task(fail)])
    assert mixed[: len(alone)] == alone and all(e.error is None and len(e.refined_rows) == 3 for e in alone)
    for e in mixed[len(alone) :]:
        assert EXPECTED_ERROR[fail] in (e.error or "") and not e.success
        assert len(e.refined_rows) == len(e.direct_rows) == len(e.candidates) == len(e.requests) == 1


@pytest.mark.parametrize("fail", ["raise", "hang"])
def test_matches_and_self_play(fail):
    config = RolloutConfig(
        sampling=SAMPLING, env_executor="thread", step_timeout_s=0.3 if fail == "hang" else None
    )
    policy = SeededPolicy(moves=9, template="[{}]", offset=1)

    def matches(env_kwargs: dict) -> list[Match]:
        seats = [{"player_0": policy, "player_1": policy}, {"player_0": "random", "player_1": policy}]
        return [
            Match(FLAKY_GAME, seed=s, seats=seat, env_kwargs=env_kwargs) for s in range(2) for seat in seats
        ]

    good = matches({})
    alone = play_matches(good, config)
    mixed = play_matches([*good, *matches({"fail": fail})], config)
    assert mixed[: len(alone)] == alone and all(r.error is None for r in alone)
    for r in mixed[len(alone) :]:
        assert EXPECTED_ERROR[fail] in (r.error or "") and r.outcome("player_1") == "error"
        assert all(t.error == r.error and not t.success for t in r.trajectories.values())


def test_the_good_matches_are_played_to_the_end():
    policy = SeededPolicy(moves=9, template="[{}]", offset=1)
    (result,) = play_matches([Match(FLAKY_GAME, seed=0, seats={"player_0": policy, "player_1": policy})])
    trajectories = result.trajectories.values()
    assert result.error is None and all(t.terminated for t in trajectories)
    assert sum(t.num_turns for t in trajectories) >= 3  # past the move the bad game fails on
