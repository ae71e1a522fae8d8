"""Semi-online RL (UI-S1): expert-conditioned rollouts with a Patch Module (docs/algorithms.md §4).

Paper: Lu et al., "UI-S1: Advancing GUI Automation via Semi-online Reinforcement Learning" (arXiv
2509.11543); reference code X-PLUG/MobileAgent UI-S1 (`core_uis1.py`, `dapo_ray_trainer.py`).

Sampling (`palaestra.rollout.semi_online`): N rollouts per task follow the expert's path; a mismatching
action is patched with the expert's in the history (at most `patch_threshold` times, with the `patch`
strategy's thought), then the rollout stops. Every step is a training row (Layout B): the policy's own reply to its history.

Objective, for rollout i of a task, step t, step reward r_t (§4.4) and match flags:

    R_t^i    = Σ_{k=t}^{t_end} γ^{k−t} r_k^i        truncated at the first divergence (Eq. 9)
    A^S      = (R_t^i − μ_t) / σ_t                  over the rollouts of the task at step index t (Eq. 10)
    A^E      = (R(τ_i) − μ_τ) / σ_τ                 R(τ_i) = Σ_t r_t^i over the task's rollouts (Eq. 11)
    A        = w_E · A^E + w_S · A^S                 (Eq. 12; code weights 1 and 1, ω = w_S)
    L        = token-mean PPO-clip + β k3-KL         (Eq. 13, `trainers/core` loss; β = 1e-4)

Dynamic sampling (§4.6, code): a task group is kept if std of its rollouts' R_0 > η (0.3), or it has a
single rollout; otherwise more tasks are rolled out, up to `max_sampling_rounds` rounds.

Choices (§4.11, §15 item 6), each a config field:
    * `reward_scheme`: paper Eq. 8 (default) or the code's 0.1/0.9 graded score.
    * `include_mismatch`: Eq. 9 includes the first mismatching step's reward (paper, default); the code
      stops before it.
    * `episode_advantage`: "trajectory" (paper Eq. 11, one R(τ) per rollout, statistics over rollouts)
      or "rows" (code: each row's own step score, statistics over all rows of the task).
    * `patch_threshold`: ε = 1 (paper final config); the example script uses 2; None = unlimited.
    * Expert source: the live env's `expert_action` (default) or offline demos (`demos`: a
      demos.parquet of `palaestra demos`, one task per demo, replayed by `DemoReplayEnv`).
    * `patch` (§4.3 Table 1, `rollout/patches.py`): "thought_free" (paper's final config, default):
      (a*_t, ∅); "off_policy_thought": (a*_t, M0(I, a*_t, S_t)), an auxiliary model `thought_model`
      (any agent spec) writes the thought; "on_policy_thought": (a*_t, M(I, a*_t, H_t, S_t)), the
      policy itself, given the expert action as a hint that stays out of the history (+1
      generation per patch). The thought is the `<think>` text of the reply (code's `_sf`); the entry
      is `thought_template` (default "<think>{thought}</think>\n{action}"). Thought tokens are not
      trained (they sit in later rows' prompts). The history is the full chat (no 2-step truncation).
    * Patched steps are not trained with the expert action as target (neither paper nor code does).

Evaluation adds SOP (`eval/<env>/sop_progress|sop_success|sop_score`) next to online success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from palaestra.agents.base import Policy, SamplingParams
from palaestra.evaluation.evaluate import EvalResult
from palaestra.rollout.patches import THOUGHT_TEMPLATE, ModelThought, ThoughtWriter
from palaestra.rollout.remote_jobs import ModelSpec, SemiOnlineJob, ThoughtSpec
from palaestra.rollout.runner import RolloutConfig, Task
from palaestra.rollout.semi_online import (
    DemoReplayEnv,
    SemiOnlineRollout,
    SemiOnlineRunner,
    matcher_for,
    semi_online_performance,
)
from palaestra.rollout.storage import load_trajectories
from palaestra.rollout.trajectory import SemiOnlineStep, Trajectory
from palaestra.trainers.core.advantages import group_advantages, truncated_discounted_returns
from palaestra.trainers.core.batching import Advantages
from palaestra.trainers.core.ray_source import RayRollouts
from palaestra.trainers.core.sampler import TaskPoolSampler, WeightedEnv
from palaestra.trainers.core.tracking import mean_or_zero
from palaestra.trainers.core.trainer import Trainer
from palaestra.trainers.grpo import GroupNormOptions, GRPOTrainer, PolicyLossOptions
from palaestra.trainers.registry import register_algorithm

if TYPE_CHECKING:
    from palaestra.config import TrainConfig

__all__ = ["DEMO_TASK", "SemiOnlineConfig", "SemiOnlineTrainer", "semi_online_advantages"]

DEMO_TASK = "offline-demo"
"""Env id of the tasks drawn with `algorithm.demos`: their seed is the index of the demo to replay."""


_OWN_SAMPLING = "semi-online sampling has its own dynamic sampling (min_return_std, max_sampling_rounds)"


class SemiOnlineConfig(PolicyLossOptions, GroupNormOptions):
    """UI-S1 options (paper Table 9 defaults), on top of GRPO's loss options.

    Not GRPO's sampling options (its own rollouts and dynamic sampling), `overlong` (a row's reply is
    never cut: the rollout stops at a mismatch) nor `singleton` (UI-S1's statistics are its own).
    """

    earlier_defaults: ClassVar[dict[str, Any]] = {
        "singleton": "raw",
        "dynamic_sampling": False,
        "starpo_s_keep_ratio": None,
        "overlong": "off",
        "overlong_buffer": 32,
    }
    unsupported: ClassVar[dict[str, str]] = {
        "dynamic_sampling": _OWN_SAMPLING,
        "starpo_s_keep_ratio": _OWN_SAMPLING,
        "overlong": "its rows are single replies the semi-online runner never marks as cut",
        "overlong_buffer": "its rows are single replies the semi-online runner never marks as cut",
        "singleton": "UI-S1's advantages keep a lone rollout's raw episode score and a lone step's zero",
    }

    name: Literal["semi_online"] = "semi_online"
    max_sampling_rounds: int = Field(
        3, ge=1, description="Rollout rounds per step while task groups fail min_return_std."
    )
    clip_high: float = Field(0.2, gt=0, description="Upper clip (verl default 0.2).")
    gamma: float = Field(0.5, ge=0, le=1, description="Discount of the truncated future return (paper 0.5).")
    step_weight: float = Field(1.0, ge=0, description="ω, weight of the step-level advantage (paper 1).")
    episode_weight: float = Field(1.0, ge=0, description="Weight of the episode-level advantage (code 1).")
    patch_threshold: int | None = Field(
        1, ge=0, description="Patches per rollout before it stops (paper 1, script 2, None unlimited)."
    )
    matcher: Literal["auto", "bracket", "web", "exact"] = Field(
        "auto", description="Action comparison: web actions, bracketed game moves, or whole replies."
    )
    reward_scheme: Literal["paper", "code"] = Field("paper", description="Step reward: Eq. 8 or the code's.")
    include_mismatch: bool = Field(True, description="Eq. 9: the first mismatching step's reward counts.")
    episode_advantage: Literal["trajectory", "rows"] = Field(
        "trajectory", description="A^E from trajectory returns (paper) or per-row step scores (code)."
    )
    min_return_std: float | None = Field(
        0.3, ge=0, description="Dynamic sampling η: keep task groups whose R_0 std exceeds this (None: off)."
    )
    sop_eval: bool = Field(True, description="Add the SOP metric to evaluations.")
    demos: str | None = Field(
        None, description="demos.parquet of `palaestra demos`: train on these offline expert trajectories."
    )
    patch: Literal["thought_free", "off_policy_thought", "on_policy_thought"] = Field(
        "thought_free",
        description="Patch strategy (§4.3): no thought (paper's final), a thought by an auxiliary model "
        "(thought_model), or by the policy itself.",
    )
    thought_model: str | None = Field(
        None,
        description="off_policy_thought: agent spec of the auxiliary model M0 (hf:PATH, openai:MODEL, ...).",
    )
    thought_model_options: dict[str, Any] = Field(
        default_factory=dict, description="Backend options of thought_model (agents/spec.make_policy)."
    )
    thought_max_new_tokens: int = Field(128, ge=1, description="Length budget of a written thought.")
    thought_template: str = Field(
        THOUGHT_TEMPLATE, description="Patched history entry; {thought} and {action} are filled in."
    )

    @model_validator(mode="after")
    def _patch_fits(self) -> SemiOnlineConfig:
        if (self.patch == "off_policy_thought") != (self.thought_model is not None):
            raise ValueError(
                f"patch={self.patch!r} with thought_model={self.thought_model!r}: the off-policy thought patch "
                "needs thought_model (an agent spec such as hf:/models/aux), and only it uses one"
            )
        missing = [k for k in ("{thought}", "{action}") if k not in self.thought_template]
        if missing:
            raise ValueError(f"thought_template={self.thought_template!r} lacks {', '.join(missing)}")
        return self

    def async_unsupported(self) -> str | None:
        return "its expert-patched episodes are rolled out by the learner step by step"


def semi_online_advantages(
    step_returns: Sequence[float],
    episode_scores: Sequence[float],
    groups: Sequence[Hashable],
    rollouts: Sequence[Hashable],
    steps: Sequence[int],
    *,
    step_weight: float = 1.0,
    episode_weight: float = 1.0,
    scale_by_std: bool = True,
    eps: float = 1e-6,
    episode_advantage: Literal["trajectory", "rows"] = "trajectory",
) -> list[float]:
    """UI-S1 advantage of every row (module docstring, Eqs. 10-12).

    Args:
        step_returns: per row, R_t (truncated discounted future return).
        episode_scores: per row, R(τ) of its rollout ("trajectory") or its own step reward ("rows").
        groups: per row, its task group.
        rollouts: per row, its rollout id (unique across groups); "trajectory" counts each rollout once.
        steps: per row, its step index t.
        step_weight: w_S (ω).
        episode_weight: w_E.
        scale_by_std: divide by the group std (paper) or only centre.
        eps: added to the std.
        episode_advantage: "trajectory" or "rows".

    Returns:
        Per row, A = w_E A^E + w_S A^S.
    """
    n = len(step_returns)
    if not (len(episode_scores) == len(groups) == len(rollouts) == len(steps) == n):
        raise ValueError(
            "step_returns, episode_scores, groups, rollouts and steps must have one entry per row"
        )
    normalise = partial(group_advantages, scale_by_std=scale_by_std, eps=eps)
    if episode_advantage == "trajectory":
        first: dict[Hashable, int] = {}
        for i, r in enumerate(rollouts):
            first.setdefault(r, i)
        keys = list(first)
        per_rollout = normalise([episode_scores[first[k]] for k in keys], [groups[first[k]] for k in keys])
        index = {k: j for j, k in enumerate(keys)}
        a_episode = [float(per_rollout[index[r]]) for r in rollouts]
    else:
        a_episode = normalise(list(episode_scores), list(groups)).tolist()
    a_step = normalise(list(step_returns), list(zip(groups, steps, strict=True)), singleton="zero")
    return [episode_weight * e + step_weight * float(s) for e, s in zip(a_episode, a_step, strict=True)]


def annotate_returns(rollout: SemiOnlineRollout, gamma: float, include_mismatch: bool) -> None:
    """Set each row's `step_return` and its rollout's `episode_return` in the row's `SemiOnlineStep`."""
    returns = truncated_discounted_returns(
        rollout.rewards, rollout.matches, gamma, include_mismatch=include_mismatch
    )
    total = float(sum(rollout.rewards))
    for row, ret in zip(rollout.rows, returns, strict=True):
        row.algo = replace(row.algo_data(SemiOnlineStep), step_return=float(ret), episode_return=total)


class SemiOnlineTrainer(GRPOTrainer):
    """Semi-online sampling and UI-S1 advantages with the shared loss (see the module docstring)."""

    def __init__(self, config: TrainConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        algo = self.algo
        self.demos: list[Trajectory] = []
        if algo.demos is not None:
            self.demos = [d for d in load_trajectories(algo.demos) if d.turns]
            if not self.demos:
                raise ValueError(f"algorithm.demos={algo.demos} holds no demonstration with turns")
            pool = [WeightedEnv(DEMO_TASK)]
            self.sampler = TaskPoolSampler(pool, range(len(self.demos)), seed=config.run.seed)
        self.thought_writer = self._thought_writer()

    @property
    def algo(self) -> SemiOnlineConfig:
        """This run's UI-S1 options (`config.algorithm`)."""
        return SemiOnlineConfig.of(self.config.algorithm)

    def _thought_spec(self) -> ThoughtSpec | None:
        """The patch strategy's thought writer, as a description (None: thought-free)."""
        algo = self.algo
        if algo.patch == "thought_free":
            return None
        r = self.config.rollout
        sampling = SamplingParams(
            max_new_tokens=algo.thought_max_new_tokens, temperature=r.temperature, top_p=r.top_p
        )
        model = None
        if algo.patch == "off_policy_thought":
            model = ModelSpec(str(algo.thought_model), dict(algo.thought_model_options))
        return ThoughtSpec(sampling, with_history=algo.patch == "on_policy_thought", model=model)

    def _thought_writer(self) -> ThoughtWriter | None:
        """The patch strategy's thought writer (None: thought-free); with `rollout.ray` the workers
        build their own (`_thought_spec`), so none is built here."""
        spec = self._thought_spec()
        if spec is None or self.config.rollout.ray is not None:
            return None
        writer: Policy = self.policy
        if spec.model is not None:
            from palaestra.agents.spec import make_policy

            writer = make_policy(spec.model.spec, **spec.model.options)
        return ModelThought(writer, sampling=spec.sampling, with_history=spec.with_history)

    def _runner(self, config: RolloutConfig, env_id: str) -> SemiOnlineRunner:
        algo = self.algo
        factory = None
        if env_id == DEMO_TASK:  # offline: the task seed indexes the demo set
            factory = lambda task: DemoReplayEnv(self.demos[task.seed])  # noqa: E731
            env_id = self.demos[0].env_id
        return SemiOnlineRunner(
            self.policy,
            sampling=config.sampling,
            patch_threshold=algo.patch_threshold,
            matcher=matcher_for(env_id, algo.matcher),
            reward_scheme=algo.reward_scheme,
            max_turns=self.config.rollout.max_turns,
            env_factory=factory,
            thought_writer=self.thought_writer,
            thought_template=algo.thought_template,
            config=config,
        )

    def _jobs(self, config: RolloutConfig, task: Task) -> list[SemiOnlineJob]:
        """`rollout.ray`: the task's rollouts as jobs for the workers (`_runner`'s arguments)."""
        algo, env_id, demos = self.algo, task.env_id, None
        if env_id == DEMO_TASK:  # the workers read the demos from the path
            env_id, demos = self.demos[0].env_id, str(Path(str(algo.demos)).resolve())
        matcher, thought = matcher_for(env_id, algo.matcher), self._thought_spec()
        return [
            SemiOnlineJob(
                task,
                0,
                s,
                config,
                matcher=matcher,
                patch_threshold=algo.patch_threshold,
                reward_scheme=algo.reward_scheme,
                max_turns=self.config.rollout.max_turns,
                thought=thought,
                thought_template=algo.thought_template,
                demos=demos,
            )
            for s in range(config.group_size)
        ]

    async def _rollouts(self, tasks: list[Task], config: RolloutConfig) -> list[list[SemiOnlineRollout]]:
        """Per task, its `group_size` rollouts: on the Ray workers (`rollout.ray`) or here."""
        if isinstance(self.rollouts, RayRollouts):
            jobs = [self._jobs(config, task) for task in tasks]
            done = await self.rollouts.run_jobs([j for per_task in jobs for j in per_task])
            n = config.group_size
            return [done[g * n : (g + 1) * n] for g in range(len(tasks))]
        # one runner per task: the matcher depends on the env
        return [await self._runner(config, t.env_id).run([t], config.group_size) for t in tasks]

    async def _semi_online(self, tasks: list[Task], offset: int) -> list[SemiOnlineRollout]:
        algo = self.algo
        config = self.rollout_config(self.step)
        out: list[SemiOnlineRollout] = []
        for g, rollouts in enumerate(await self._rollouts(tasks, config)):
            for r in rollouts:
                annotate_returns(r, algo.gamma, algo.include_mismatch)
                for row in r.rows:
                    row.group_index = offset + g
            out += rollouts
        return out

    async def collect(self, tasks: list[Task]) -> tuple[list[Trajectory], dict[str, float]]:
        algo = self.algo
        kept: list[SemiOnlineRollout] = []
        wanted, rounds, dropped, offset, all_rollouts = len(tasks), 0, 0, 0, []
        while True:
            rounds += 1
            rollouts = await self._semi_online(tasks, offset)
            all_rollouts += rollouts
            by_group: dict[int, list[SemiOnlineRollout]] = {}
            for r in rollouts:
                if r.rows:
                    by_group.setdefault(r.rows[0].group_index, []).append(r)
            for members in by_group.values():
                r0 = [m.rows[0].algo_data(SemiOnlineStep).returns()[0] for m in members]
                if (
                    algo.min_return_std is None
                    or len(r0) < 2
                    or float(np.std(r0, ddof=1)) > algo.min_return_std
                ):
                    kept += members
                else:
                    dropped += 1
            have = len({r.rows[0].group_index for r in kept})
            if have >= wanted or rounds >= algo.max_sampling_rounds:
                break
            offset += len(tasks)
            tasks = self.sampler.sample(wanted - have)
        if not kept:  # nothing informative: train on the last round rather than skip the step
            kept = [r for r in rollouts if r.rows]
        # a failed rollout counts as one failed episode, as in the plain path (its completed steps train)
        self._check_env_errors([r.error for r in all_rollouts])
        rows = [(i, row) for i, r in enumerate(kept) for row in r.rows]
        for i, row in rows:
            row.sample_index = i  # unique rollout id across the step (`semi_online_advantages`)
        metrics = {
            "semi_online/match_rate": mean_or_zero([m for r in all_rollouts for m in r.matches]),
            "semi_online/patches_mean": mean_or_zero([sum(r.patched) for r in all_rollouts]),
            "semi_online/stopped_rate": mean_or_zero([r.stopped for r in all_rollouts]),
            "semi_online/patched_success": mean_or_zero([r.success for r in all_rollouts]),
            "rollout/env_errors": float(sum(r.error is not None for r in all_rollouts)),
            "sampling/rounds": float(rounds),
            "sampling/low_std_dropped": float(dropped),
        }
        return [row for _, row in rows], metrics

    trainable = Trainer.trainable  # every row (GRPO's overlong filter does not apply)

    def advantages(self, trajectories: list[Trajectory]) -> Advantages:
        algo = self.algo
        data = [t.algo_data(SemiOnlineStep) for t in trajectories]
        returns = [d.returns() for d in data]
        if algo.episode_advantage == "trajectory":
            episode = [r[1] for r in returns]
        else:
            episode = [t.turns[0].reward for t in trajectories]
        values = semi_online_advantages(
            [r[0] for r in returns],
            episode,
            [t.group_index for t in trajectories],
            [(t.group_index, t.sample_index) for t in trajectories],
            [d.step for d in data],
            step_weight=algo.step_weight,
            episode_weight=algo.episode_weight,
            scale_by_std=algo.scale_by_std,
            eps=algo.adv_eps,
            episode_advantage=algo.episode_advantage,
        )
        return Advantages(list(values))

    def evaluate(self) -> tuple[dict[str, float], list[EvalResult]]:
        """Online success (the core's evaluation) and, next to it, SOP on the same held-out tasks."""
        metrics, results = super().evaluate()
        algo = self.algo
        if not algo.sop_eval:
            return metrics, results
        cfg = self.config
        sampling = SamplingParams(
            max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
            temperature=cfg.eval.temperature,
            seed=cfg.run.seed,
        )
        was_training = self.model.training
        self.model.eval()
        for e in cfg.envs.eval:
            sop = asyncio.run(
                semi_online_performance(
                    self.policy,
                    e.id,
                    seeds=range(e.seed, e.seed + e.episodes),
                    env_kwargs=e.kwargs,
                    sampling=sampling,
                    matcher=matcher_for(e.id, algo.matcher),
                    max_turns=cfg.rollout.max_turns,
                )
            )
            key = e.id.split("/")[-1]
            metrics.update(
                {
                    f"eval/{key}/sop_progress": sop.progress,
                    f"eval/{key}/sop_success": sop.success_rate,
                    f"eval/{key}/sop_score": sop.score,
                }
            )
        self.model.train(was_training)
        return metrics, results


register_algorithm("semi_online", config=SemiOnlineConfig, trainer=SemiOnlineTrainer)
