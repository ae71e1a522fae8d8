"""Semi-online rollouts (UI-S1, docs/algorithms.md §4.2-§4.3, §4.8): the policy acts along an expert's path.

At each step the policy answers the history it built itself; its action is compared with the env's
`info["expert_action"]`. On a match the env takes the policy's action. On a mismatch the Patch Module
decides: while fewer than `patch_threshold` patches were made, the expert's action goes into the
history instead and the env takes it, so the rollout continues on the expert's path; after that, the
rollout stops. The patched history entry is the expert's reply text alone (thought-free patch), or that
action with a thought a model wrote for it (off-/on-policy thought patch, `rollout/patches.py`). Each step becomes
one training row (Layout B): prompt = the history so far (its own earlier replies, patched ones
replaced by the expert's), response = the policy's own reply, token-exact.

The expert comes from the live env (any env with `expert_action`, e.g. the web tasks and games) or from
offline demonstrations (`palaestra demos` -> demos.parquet, replayed by `DemoReplayEnv`): S*_{t+1} is
the state after the expert's (or the matching) action; for deterministic envs both are the same.

The SOP metric (Semi-Online Performance) runs the policy on its own history without patches and stops
at the first mismatch: PG = mean s_i / t_i (matched steps over expert length), TSR = mean 1[s_i = t_i],
score = (PG + TSR) / 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from palaestra.agents.base import GenerationRequest, Message, Policy, SamplingParams
from palaestra.agents.scripted import OraclePolicy
from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.grid import parse_direction
from palaestra.envs.games.parsing import last_bracketed
from palaestra.rollout.chat import TokenChat, env_message, observation_text
from palaestra.rollout.driver import (
    Episode,
    EpisodeDriver,
    EpisodeError,
    Step,
    TurnStrategy,
    episode_seed,
    jsonable,
    run_one,
    run_samples,
)
from palaestra.rollout.patches import THOUGHT_TEMPLATE, PatchRequest, ThoughtWriter, patched_reply
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task, task_env
from palaestra.rollout.trajectory import SemiOnlineStep, Trajectory, Turn

__all__ = [
    "ActionMatch",
    "DemoReplayEnv",
    "ExpertPatchedTurns",
    "SOPResult",
    "SemiOnlineRollout",
    "SemiOnlineRunner",
    "match_bracketed",
    "match_exact",
    "match_web",
    "matcher_for",
    "semi_online_performance",
    "step_reward",
]


@dataclass(frozen=True)
class ActionMatch:
    """How a policy action compares with the expert's (UI-S1 `check_response_match`).

    Attributes:
        parsed: the action could be read at all (r_format).
        type_match: same kind of action (click vs type, ...; r_type).
        exact: same action and arguments (r_acc; `Matches(a, a*)`).
    """

    parsed: bool
    type_match: bool
    exact: bool


Matcher = Callable[[str, str], ActionMatch]


def match_exact(action: str, expert: str) -> ActionMatch:
    """Whole replies equal after stripping and lower-casing (envs with free-form actions)."""
    same = action.strip().lower() == expert.strip().lower()
    return ActionMatch(bool(action.strip()), same, same)


def match_bracketed(action: str, expert: str) -> ActionMatch:
    """Game moves: the last `[...]` of each reply, direction aliases unified ([U] == [up])."""
    got, want = last_bracketed(action), last_bracketed(expert)
    if got is None:
        return ActionMatch(False, False, False)
    d_got, _ = parse_direction(action)
    d_want, _ = parse_direction(expert)
    same = (
        d_got == d_want if d_got is not None and d_want is not None else got.lower() == (want or "").lower()
    )
    return ActionMatch(True, same, same)


def match_web(action: str, expert: str) -> ActionMatch:
    """Web text mode: the parsed `WebAction`s; type = same op, exact = same op and arguments."""
    from palaestra.envs.web.actions import ActionParseError, parse_action

    try:
        got = parse_action(action, "text")
    except ActionParseError:
        return ActionMatch(False, False, False)
    want = parse_action(expert, "text")
    return ActionMatch(True, got.op == want.op, got == want)


def matcher_for(env_id: str, name: Literal["auto", "bracket", "web", "exact"] = "auto") -> Matcher:
    """The action matcher for an env: `auto` picks web for `Web-` ids, bracketed moves otherwise."""
    if name == "auto":
        name = "web" if "/Web-" in env_id and not env_id.endswith("-gui") else "bracket"
    return {"bracket": match_bracketed, "web": match_web, "exact": match_exact}[name]


def step_reward(match: ActionMatch, scheme: Literal["paper", "code"] = "paper") -> float:
    """UI-S1 step reward (§4.4): paper Eq. 8, or the reference code's 0.1/0.9 with graded action score.

    paper: 0.1·r_format + 0.4·r_format·r_type + 0.5·r_format·r_type·r_acc
    code:  0.1·r_format + 0.9·(1.0 exact | 0.5 type only | 0.1 parsed, wrong type | 0.0 unparsed)
    """
    fmt, typ, acc = float(match.parsed), float(match.type_match), float(match.exact)
    if scheme == "paper":
        return 0.1 * fmt + 0.4 * fmt * typ + 0.5 * fmt * typ * acc
    score = 1.0 if match.exact else 0.5 if match.type_match else 0.1 if match.parsed else 0.0
    return 0.1 * fmt + 0.9 * score


class DemoReplayEnv(TextEnv):
    """A recorded expert demonstration (`palaestra demos`) played back as an env: offline UI-S1 (§4.1).

    The state at step t is the demo's observation S*_t and `info["expert_action"]` is the demo's action
    a*_t; every step moves to S*_{t+1} whatever the action (the runner only steps on a match or after a
    patch, i.e. on the expert's path). The episode ends with the demo; its success is the demo's.

    Args:
        demo: one expert trajectory with at least one turn.
    """

    def __init__(self, demo: Trajectory):
        if not demo.turns:
            raise ValueError(f"demo {demo.env_id} seed={demo.seed} has no turns to replay")
        super().__init__(max_turns=demo.num_turns)
        self.demo = demo
        self.system_prompt = next((str(m["content"]) for m in demo.messages if m["role"] == "system"), "")

    def _reset(self, options: dict | None) -> tuple[str, dict]:
        first = next(m for m in self.demo.messages if m["role"] != "system")
        return str(first["content"]), {
            "task_id": self.demo.task_id,
            "expert_action": self.demo.turns[0].action,
        }

    def _step(self, action: str) -> StepOutcome:
        t = self.turn
        turn, last = self.demo.turns[t], t + 1 >= self.demo.num_turns
        info = {} if last else {"expert_action": self.demo.turns[t + 1].action}
        success = last and self.demo.success
        return StepOutcome(turn.observation, reward=turn.reward, terminated=last, success=success, info=info)


@dataclass
class SemiOnlineRollout:
    """One semi-online rollout.

    Attributes:
        rows: one training row per completed step (the policy's own reply after the history at that
            step); its `algo` is a `SemiOnlineStep` (expert action, match flags, patch, env reward) and
            its turn's info is the env's.
        history: the chat the policy conditioned on (expert actions at patched steps).
        patched: per step, whether the expert's action replaced the policy's in the history.
        matches: per step, whether the policy's action matched the expert's.
        rewards: per step, the UI-S1 step reward.
        success: the env's success at the end (with patches, not the policy's own success).
        stopped: the Patch Module ended the rollout (a mismatch with no patch left).
        error: why the rollout failed (env crash, step timeout, generation error), else None; `rows`
            then hold the steps completed before.
    """

    rows: list[Trajectory] = field(default_factory=list)
    history: list[Message] = field(default_factory=list)
    patched: list[bool] = field(default_factory=list)
    matches: list[bool] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    success: bool = False
    stopped: bool = False
    error: str | None = None


class SemiOnlineRunner:
    """Runs semi-online rollouts of one policy (see the module docstring).

    Args:
        policy: any `Policy`; with a tokenizer, rows carry exact token ids.
        sampling: sampling parameters (the seed is varied per rollout and step).
        patch_threshold: patches allowed per rollout (UI-S1 ε: paper 1, script 2; None = unlimited;
            0 = stop at the first mismatch, as SOP does).
        matcher: compares an action with the expert's.
        reward_scheme: "paper" (Eq. 8) or "code" step rewards.
        max_turns: cap on steps (None: the env's own limit).
        env_factory: builds the env of a task (default: `task_env`, i.e. `palaestra.make` or the task's server;
            offline demos: a `DemoReplayEnv`).
        thought_writer: writes the thought of patched steps (None: thought-free patch).
        thought_template: joins a thought and the expert action into the patched history entry.
        config: how env calls run (`env_executor`, `step_timeout_s`) and how many rollouts at once
            (`max_concurrency`); its sampling and turn settings are not used.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        sampling: SamplingParams,
        patch_threshold: int | None = 1,
        matcher: Matcher = match_bracketed,
        reward_scheme: Literal["paper", "code"] = "paper",
        max_turns: int | None = None,
        env_factory: Callable[[Task], gym.Env] | None = None,
        thought_writer: ThoughtWriter | None = None,
        thought_template: str = THOUGHT_TEMPLATE,
        config: RolloutConfig | None = None,
    ):
        if patch_threshold is not None and patch_threshold < 0:
            raise ValueError(f"patch_threshold={patch_threshold}; use >= 0, or None for unlimited patches")
        self.policy, self.sampling = policy, sampling
        self.patch_threshold, self.matcher = patch_threshold, matcher
        self.reward_scheme, self.max_turns = reward_scheme, max_turns
        self.chat = TokenChat(policy.tokenizer) if policy.tokenizer is not None else None
        self.env_factory = env_factory or task_env
        self.thought_writer, self.thought_template = thought_writer, thought_template
        self.config = config or RolloutConfig()

    async def run(self, tasks: Sequence[Task], group_size: int) -> list[SemiOnlineRollout]:
        """`group_size` rollouts of every task, ordered by (task, sample); a failed one has `error` set."""
        return await run_samples(
            self.config, tasks, group_size, lambda task, g, s, driver: self.rollout(task, g, s, driver=driver)
        )

    async def rollout(
        self, task: Task, group_index: int = 0, sample_index: int = 0, *, driver: EpisodeDriver | None = None
    ) -> SemiOnlineRollout:
        """One rollout; never raises for env or generation failures (see `SemiOnlineRollout.error`)."""
        strategy = ExpertPatchedTurns(self, task, group_index, sample_index)
        episode = Episode(
            lambda: self.env_factory(task),
            task.seed,
            task.options,
            self.max_turns,
            f"{task.env_id} seed={task.seed} (semi-online)",
        )
        await run_one(self.config, episode, strategy, driver)
        return strategy.out

    def _seed(self, task: Task, sample: int, t: int, salt: int = 0) -> int | None:
        """A sampling seed per (task, sample, step); `salt` separates the thought's from the reply's."""
        return episode_seed(self.sampling.seed, task.seed, sample, t, salt)

    async def _patch_entry(
        self, history: list[Message], expert: str, at: tuple[Task, int, int]
    ) -> tuple[str, str | None]:
        """The patched history entry (the expert action, with a written thought if there is a writer),
        and the thought."""
        if self.thought_writer is None:
            return expert, None
        seed = self._seed(*at, salt=1)
        (thought,) = await self.thought_writer.thoughts([PatchRequest(list(history), expert, seed)])
        return patched_reply(expert, thought, self.thought_template), thought

    async def _generate(
        self, task: Task, history: list[Message], info: dict, group: int, sample: int, t: int
    ) -> tuple[Trajectory, str, tuple[int, int]]:
        """One reply to `history`: the training row (no turn yet), the reply text and its token span."""
        seed = self._seed(task, sample, t)
        prompt = self.chat.prompt_ids(history) if self.chat is not None else []
        request = GenerationRequest(
            messages=tuple(history),
            sampling=replace(self.sampling, seed=seed),
            prompt_token_ids=tuple(prompt) if self.chat is not None else None,
            info=info,
            request_id=f"{task.env_id}/{task.seed}/{sample}/{t}",
        )
        (gen,) = await self.policy.generate([request])
        if gen.finish_reason == "error":
            raise EpisodeError(f"generation failed: {gen.error}")
        ids = list(gen.token_ids) if self.chat is not None else []
        row = Trajectory(
            env_id=task.env_id,
            seed=task.seed,
            group_index=group,
            sample_index=sample,
            agent=self.policy.name,
            messages=[*history, {"role": "assistant", "content": gen.text}],
            token_ids=prompt + ids,
            loss_mask=[0] * len(prompt) + [1] * len(ids),
            logprobs=[0.0] * len(prompt) + [float(x) for x in (gen.logprobs or [0.0] * len(ids))],
            prompt_length=len(prompt),
            env_kwargs=dict(task.env_kwargs),
        )
        return row, gen.text, ((len(prompt), len(row.token_ids)) if ids else (0, 0))


class ExpertPatchedTurns(TurnStrategy):
    """The semi-online strategy: the env receives the policy's action on a match, the expert's on a
    patched mismatch; a mismatch with no patch left ends the rollout. Each step is recorded as a row."""

    def __init__(self, runner: SemiOnlineRunner, task: Task, group: int, sample: int):
        self.runner, self.task, self.group, self.sample = runner, task, group, sample
        self.out = SemiOnlineRollout()
        self.info: dict[str, Any] = {}
        self.task_id, self.patches = "", 0
        self.pending: tuple[Trajectory, str, float, SemiOnlineStep, str, tuple[int, int]] | None = None

    async def start(self, env: gym.Env, observation: Any, info: dict[str, Any]) -> None:
        system = getattr(env.unwrapped, "system_prompt", "")
        self.out.history = [{"role": "system", "content": system}] if system else []
        self.out.history.append(env_message(observation, info.get("role", "user")))
        self.task_id, self.info = str(info.get("task_id", "")), info

    async def act(self, turn: int) -> str | None:
        runner, task, out = self.runner, self.task, self.out
        expert = self.info.get("expert_action")
        if expert is None:
            raise ValueError(
                f"{task.env_id} gave no info['expert_action'] at step {turn}; semi-online RL needs an env "
                "with a scripted expert (see `palaestra demos`)"
            )
        row, reply, span = await runner._generate(task, out.history, self.info, self.group, self.sample, turn)
        row.task_id = self.task_id
        match = runner.matcher(reply, str(expert))
        threshold = runner.patch_threshold
        patched = not match.exact and (threshold is None or self.patches < threshold)
        reward = step_reward(match, runner.reward_scheme)
        data = SemiOnlineStep(
            turn, str(expert), match.exact, match.type_match, match.parsed, patched, env_reward=0.0
        )
        if not match.exact and not patched:  # no patch left: the rollout ends here
            row.turns, row.algo = [Turn(reply, "", reward, False, True, {}, "stop", span)], data
            self._append(row, patched, match.exact, reward)
            out.stopped = True
            return None
        taken = str(expert) if patched else reply
        entry = reply
        if patched:
            entry, thought = await runner._patch_entry(out.history, taken, (task, self.sample, turn))
            data = replace(data, patch_thought=thought)
        self.patches += patched
        self.pending = (row, reply, reward, data, entry, span)
        return taken

    async def record(self, turn: int, action: str, step: Step) -> bool:
        assert self.pending is not None
        row, reply, reward, data, entry, span = self.pending
        obs = step.observation
        row.turns = [
            Turn(
                reply,
                observation_text(obs),
                reward,
                step.terminated,
                step.truncated,
                jsonable(step.info),
                "stop",
                span,
            )
        ]
        row.algo = replace(data, env_reward=step.reward)
        self._append(row, data.patched, data.match, reward)
        self.out.history += [
            {"role": "assistant", "content": entry},
            env_message(obs, step.info.get("role", "user")),
        ]
        self.out.success = bool(step.info.get("success", False))
        self.info = step.info
        return True

    def _append(self, row: Trajectory, patched: bool, match: bool, reward: float) -> None:
        self.out.rows.append(row)
        self.out.patched.append(patched)
        self.out.matches.append(match)
        self.out.rewards.append(reward)

    def fail(self, error: str) -> None:
        self.out.error, self.out.success = error, False


@dataclass(frozen=True)
class SOPResult:
    """Semi-Online Performance of one env (§4.8).

    Attributes:
        progress: PG, mean over tasks of matched steps / expert steps.
        success_rate: TSR, share of tasks matched to the end.
        score: (PG + TSR) / 2.
        matched: per task, consecutive matched steps s_i.
        expert_steps: per task, the expert's episode length t_i.
    """

    progress: float
    success_rate: float
    score: float
    matched: list[int]
    expert_steps: list[int]


async def semi_online_performance(
    policy: Policy,
    env_id: str,
    *,
    seeds: Sequence[int],
    env_kwargs: dict | None = None,
    sampling: SamplingParams | None = None,
    matcher: Matcher | None = None,
    max_turns: int | None = None,
) -> SOPResult:
    """SOP of `policy` on the tasks `seeds` of `env_id`: own history, no patch, stop at the first mismatch."""
    tasks = [Task(env_id, int(s), dict(env_kwargs or {})) for s in seeds]
    runner = SemiOnlineRunner(
        policy,
        sampling=sampling or SamplingParams(temperature=0.0),
        patch_threshold=0,
        matcher=matcher or matcher_for(env_id),
        max_turns=max_turns,
    )
    rollouts = await runner.run(tasks, 1)
    experts = RolloutRunner(OraclePolicy(), RolloutConfig(max_turns=max_turns))
    try:
        demos = await experts.run(tasks)
    finally:
        experts.close()
    matched = [int(np.argmin(r.matches)) if not all(r.matches) else len(r.matches) for r in rollouts]
    lengths = [max(d.num_turns, 1) for d in demos]
    progress = float(np.mean([min(s / t, 1.0) for s, t in zip(matched, lengths, strict=True)]))
    success = float(np.mean([s >= t for s, t in zip(matched, lengths, strict=True)]))
    return SOPResult(progress, success, (progress + success) / 2, matched, lengths)
