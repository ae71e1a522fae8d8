"""Rollout runner: multi-turn episodes, groups, failures, timeouts, token-exact sequences."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

import palaestra
from palaestra.agents.base import Generation, GenerationRequest, SamplingParams
from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.rollout import RolloutConfig, RolloutRunner, Task, TokenChat, rollout


class CountdownEnv(TextEnv):
    """Reply with the number shown; counts down from a seeded start in [start, start+2] to 0.

    `crash_at`: raise on the last step of episodes that started there; `hang_at`: sleep 2 s at that number.
    """

    def __init__(self, *, start: int = 3, crash_at: int | None = None, hang_at: int | None = None):
        super().__init__(max_turns=10)
        self.start, self.crash_at, self.hang_at = start, crash_at, hang_at
        self.system_prompt = "Repeat the number you are shown."

    def _reset(self, options):
        self.n = self.first = int(self.np_random.integers(self.start, self.start + 3))
        return f"Say {self.n}.", {"task_id": f"countdown-{self.n}", "expert_action": str(self.n)}

    def _step(self, action: str) -> StepOutcome:
        if self.first == self.crash_at and self.n == 1:
            raise RuntimeError("simulated env crash")
        if self.hang_at is not None and self.n == self.hang_at:
            time.sleep(2.0)
        if action.strip() != str(self.n):
            return StepOutcome(
                f"Wrong. Say {self.n}.", format_error=None, info={"expert_action": str(self.n)}
            )
        self.n -= 1
        done = self.n == 0
        return StepOutcome(
            "Done." if done else f"Say {self.n}.",
            reward=1.0,
            terminated=done,
            success=done,
            info={"expert_action": str(self.n), "role": "tool" if self.n % 2 else "user"},
        )


@pytest.fixture(autouse=True, scope="module")
def _register():
    palaestra.register_env("test/Countdown-v0", CountdownEnv, max_turns=10, override=True)


class ExpertTextPolicy:
    """Text-only policy that replies with the env's expert action."""

    name = "expert-text"
    tokenizer = None

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.batch_sizes.append(len(requests))
        await asyncio.sleep(0)
        return [Generation(text=str(r.info["expert_action"])) for r in requests]

    async def close(self) -> None:
        pass


class ScriptedTokenPolicy:
    """Token-level policy: replies are tokenized expert actions; records every prompt it saw.

    Every `truncate_every`-th reply is cut before its end-of-turn token (as a spent budget would).
    """

    name = "scripted-tokens"

    def __init__(self, tokenizer, truncate_every: int = 0):
        self.tokenizer = tokenizer
        self.truncate_every = truncate_every
        self.prompts: list[list[int]] = []
        self.calls = 0

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for r in requests:
            assert r.prompt_token_ids is not None
            self.prompts.append(list(r.prompt_token_ids))
            self.calls += 1
            text = str(r.info["expert_action"])
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            truncated = self.truncate_every and self.calls % self.truncate_every == 0
            if not truncated:
                ids = [*ids, self.tokenizer.eos_token_id]
            logprobs = tuple(-0.5 - 0.01 * i for i in range(len(ids)))
            out.append(Generation(text, tuple(ids), logprobs, "length" if truncated else "stop"))
        return out

    async def close(self) -> None:
        pass


def test_text_policy_multi_turn_groups_and_batching():
    policy = ExpertTextPolicy()
    trajs = rollout(
        policy, [Task("test/Countdown-v0", seed=s) for s in range(3)], RolloutConfig(group_size=2)
    )
    assert len(trajs) == 6
    assert [(t.group_index, t.sample_index) for t in trajs] == [(g, s) for g in range(3) for s in range(2)]
    for t in trajs:
        assert t.success and t.terminated and not t.truncated and t.error is None
        assert t.num_turns == t.reward  # one reward per correct countdown step
        assert t.messages[0]["role"] == "system" and t.messages[-1]["role"] == "assistant"
        assert t.token_ids == [] and t.loss_mask == []
    # the two samples of a group share the task
    assert trajs[0].task_id == trajs[1].task_id
    # concurrent episodes reach the policy at the same time (one request each, many calls interleaved)
    assert len(policy.batch_sizes) == sum(t.num_turns for t in trajs)


def test_crashing_env_fails_only_its_episode():
    tasks = [Task("test/Countdown-v0", seed=s, env_kwargs={"crash_at": 4}) for s in range(10)]
    trajs = rollout(ExpertTextPolicy(), tasks)
    failed = [t for t in trajs if t.error]
    ok = [t for t in trajs if not t.error]
    assert failed and ok, "seeds should give both crashing and clean episodes"
    assert all("simulated env crash" in t.error and not t.success for t in failed)
    assert all(t.success for t in ok)


def test_step_timeout_ends_the_hung_episode():
    config = RolloutConfig(env_executor="thread", step_timeout_s=0.3)
    tasks = [Task("test/Countdown-v0", seed=s, env_kwargs={"hang_at": 1}) for s in range(2)]
    start = time.perf_counter()
    trajs = rollout(ExpertTextPolicy(), tasks, config)
    assert time.perf_counter() - start < 2.0 * len(tasks)
    assert all(t.error and "step_timeout_s" in t.error for t in trajs)
    assert threading.active_count() < 50


class StuckOnceEnv(CountdownEnv):
    """CountdownEnv whose very first step waits until the test releases it (a hung env)."""

    release = threading.Event()
    steps = 0

    def _step(self, action: str) -> StepOutcome:
        StuckOnceEnv.steps += 1
        if StuckOnceEnv.steps == 1:
            self.release.wait()
        return super()._step(action)


def test_a_stuck_step_gives_up_its_worker_and_does_not_hold_the_process():
    palaestra.register_env("test/StuckOnce-v0", StuckOnceEnv, max_turns=10, override=True)
    config = RolloutConfig(env_executor="thread", step_timeout_s=0.3, max_concurrency=1)
    tasks = [Task("test/StuckOnce-v0", seed=s) for s in range(3)]
    try:
        trajs = rollout(ExpertTextPolicy(), tasks, config)
        stuck = [t for t in threading.enumerate() if t.name.startswith("palaestra-env") and t.is_alive()]
    finally:
        StuckOnceEnv.release.set()
    assert "step_timeout_s=0.3" in trajs[0].error
    # one worker, stuck: the later episodes got a fresh one instead of timing out behind it
    assert trajs[1].success and trajs[2].success and not trajs[1].error
    assert stuck and all(t.daemon for t in stuck), "a stuck worker must not be joined at exit"


def test_step_timeout_must_be_positive():
    with pytest.raises(ValueError, match="step_timeout_s=-1; it must be > 0"):
        RolloutConfig(env_executor="thread", step_timeout_s=-1)


def test_max_turns_truncates():
    trajs = rollout(ExpertTextPolicy(), [Task("test/Countdown-v0", seed=0)], RolloutConfig(max_turns=2))
    (t,) = trajs
    assert t.num_turns == 2 and t.truncated and not t.terminated and not t.success
    assert t.turns[-1].truncated


def test_inline_timeout_is_rejected():
    with pytest.raises(ValueError, match="env_executor='thread'"):
        RolloutConfig(step_timeout_s=1.0)


@pytest.mark.parametrize("truncate_every", [0, 2])
def test_token_exact_multi_turn_sequence(smollm2_tokenizer, truncate_every):
    tok = smollm2_tokenizer
    policy = ScriptedTokenPolicy(tok, truncate_every=truncate_every)
    trajs = rollout(policy, [Task("test/Countdown-v0", seed=s) for s in range(2)])
    prompts = iter(policy.prompts)
    for t in trajs:
        t.check()
        assert t.num_turns >= 3 and t.success
        # every prompt the policy saw is a prefix of the final sequence, and the sequence continues it
        # with exactly the sampled reply ids
        for turn in t.turns:
            prompt = next(prompts)
            start, end = turn.token_span
            assert t.token_ids[:start] == prompt
            reply_ids = tok(turn.action, add_special_tokens=False)["input_ids"]
            assert t.token_ids[start : start + len(reply_ids)] == reply_ids
            assert all(t.loss_mask[start:end]) and t.logprobs[start] == pytest.approx(-0.5)
        # the loss mask covers exactly the sampled reply tokens
        assert sum(t.loss_mask) == sum(e - s for s, e in (u.token_span for u in t.turns))
        assert t.loss_mask[: t.prompt_length] == [0] * t.prompt_length
        # env and template tokens have no logprob
        assert all(lp == 0.0 for lp, m in zip(t.logprobs, t.loss_mask, strict=True) if not m)
    if not truncate_every:
        # with every turn closed by the policy, the sequence is the template's rendering of the chat
        # (the template ends the last reply with a newline the policy never sampled)
        t = trajs[0]
        decoded, rendered = tok.decode(t.token_ids), TokenChat(tok).render(t.messages)
        assert rendered.startswith(decoded) and rendered[len(decoded) :] == "\n"


def test_generation_error_is_recorded():
    class Broken(ExpertTextPolicy):
        async def generate(self, requests):
            return [Generation("", finish_reason="error", error="engine exploded") for _ in requests]

    (t,) = rollout(Broken(), [Task("test/Countdown-v0", seed=0)])
    assert t.error and "engine exploded" in t.error and not t.success


def test_runner_on_episode_end_and_sampling_seeds():
    class SeedSpy(ExpertTextPolicy):
        def __init__(self):
            super().__init__()
            self.seeds: list[int | None] = []

        async def generate(self, requests):
            self.seeds.extend(r.sampling.seed for r in requests)
            return await super().generate(requests)

    config = RolloutConfig(group_size=2, sampling=SamplingParams(seed=7))
    done = []
    first, second = SeedSpy(), SeedSpy()
    rollout(first, [Task("test/Countdown-v0", seed=1)], config, on_episode_end=done.append)
    rollout(second, [Task("test/Countdown-v0", seed=1)], config)
    assert len(done) == 2
    assert len(set(first.seeds)) == len(first.seeds), "each (sample, turn) gets its own sampling seed"
    assert sorted(first.seeds) == sorted(second.seeds), "sampling seeds are reproducible"


def test_runner_accepts_custom_env_factory():
    made = []

    def factory(env_id, **kwargs):
        made.append(env_id)
        return CountdownEnv(**kwargs)

    async def main():
        runner = RolloutRunner(ExpertTextPolicy(), env_factory=factory)
        return await runner.run([Task("anything", seed=0)])

    (t,) = asyncio.run(main())
    assert made == ["anything"] and t.success


class BlockingCountdownEnv(CountdownEnv):
    """CountdownEnv whose steps declare that they block (as code and browser envs do)."""

    metadata = {**CountdownEnv.metadata, "blocking_step": True}  # noqa: RUF012


@pytest.mark.parametrize(("blocking", "on_loop"), [(False, True), (True, False)])
def test_auto_executor_moves_only_blocking_envs_off_the_event_loop(blocking, on_loop):
    env_class = BlockingCountdownEnv if blocking else CountdownEnv
    palaestra.register_env("test/MaybeBlocking-v0", env_class, max_turns=10, override=True)
    seen: set[str] = set()
    original = env_class._step

    def spy(self, action):
        seen.add(threading.current_thread().name)
        return original(self, action)

    env_class._step = spy
    try:
        trajs = rollout(ExpertTextPolicy(), [Task("test/MaybeBlocking-v0", seed=s) for s in range(3)])
    finally:
        env_class._step = original
    assert all(t.success for t in trajs)
    assert RolloutConfig().env_executor == "auto"
    assert (seen == {threading.current_thread().name}) == on_loop, seen


def test_each_turn_records_the_version_its_reply_was_sampled_with(smollm2_tokenizer):
    """Partial rollouts: when the weights change between two turns, the episode goes on and each reply's
    tokens carry the version current when it was requested (backends that track versions per token,
    `Generation.token_versions`, override it)."""
    versions = iter(range(100))
    runner = RolloutRunner(ScriptedTokenPolicy(smollm2_tokenizer), version=lambda: next(versions))
    (t,) = asyncio.run(runner.run([Task("test/Countdown-v0", seed=0)]))
    runner.close()
    t.check()
    assert len(t.token_versions) == len(t.token_ids)
    for k, turn in enumerate(t.turns):
        start, end = turn.token_span
        assert t.token_versions[start:end] == [k] * (end - start)
    assert all(v == -1 for v, m in zip(t.token_versions, t.loss_mask, strict=True) if not m)
    assert (t.min_version, t.max_version) == (0, t.num_turns - 1)


def test_backend_token_versions_are_kept(smollm2_tokenizer):
    class MixedVersions(ScriptedTokenPolicy):
        async def generate(self, requests):
            out = await super().generate(requests)
            return [
                Generation(
                    g.text,
                    g.token_ids,
                    g.logprobs,
                    g.finish_reason,
                    token_versions=(7,) + (8,) * (len(g.token_ids) - 1),
                )
                for g in out
            ]

    (t,) = rollout(MixedVersions(smollm2_tokenizer), [Task("test/Countdown-v0", seed=0)])
    start, end = t.turns[0].token_span
    assert t.token_versions[start:end] == [7] + [8] * (end - start - 1)
