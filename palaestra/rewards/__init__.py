"""Judged and composed rewards: rubrics of criteria (env reward, success, text checks, Python functions,
LLM judges) with weights and gates, applied to any env by the `RubricReward` wrapper."""

from palaestra.rewards.judge import Judge, Verdict, parse_score, shared_judge, verdict_key
from palaestra.rewards.rubric import RewardContext, Rubric, RubricScore
from palaestra.rewards.spec import DEFAULT_JUDGE_PROMPT, Criterion, JudgeConfig, RewardSpec
from palaestra.rewards.wrapper import RubricReward, with_reward

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "Criterion",
    "Judge",
    "JudgeConfig",
    "RewardContext",
    "RewardSpec",
    "Rubric",
    "RubricReward",
    "RubricScore",
    "Verdict",
    "parse_score",
    "shared_judge",
    "verdict_key",
    "with_reward",
]
