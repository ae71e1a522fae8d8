"""Run a benchmark suite for one or more agents, resumably, and write one results JSON.

Layout of the output folder:

    OUT/results.json                          every agent x env: summary, per-episode columns, aggregate
    OUT/<agent>/<env key>/progress.json       the env's settings and the chunks finished so far
    OUT/<agent>/<env key>/chunks/*.parquet    trajectories, one file per chunk of consecutive seeds
    OUT/<agent>/<env key>/results.json        the env's `EvalResult` JSON, once all chunks are done

Episodes run in chunks of consecutive seeds. A chunk's parquet file is written (atomically) before
`progress.json` names it, so an interrupted run restarted on the same folder skips every finished chunk
and never reads a half-written file. The aggregate score of an agent is the macro average of its
per-env success rates (every env weighs the same), with a bootstrap 95% interval resampling episodes
within each env (see `stats.macro_mean_ci`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from palaestra.agents.base import Policy, SamplingParams
from palaestra.evaluation.evaluate import EvalResult, episode_records, evaluate_async
from palaestra.evaluation.stats import macro_mean_ci, summarize
from palaestra.evaluation.suites import Suite, SuiteEnv, SuiteError
from palaestra.io import atomic_write_json
from palaestra.rollout.runner import RolloutConfig
from palaestra.rollout.storage import load_trajectories, save_trajectories
from palaestra.rollout.trajectory import Trajectory

__all__ = ["SUITE_RESULTS_SCHEMA_VERSION", "aggregate_score", "run_suite", "slug"]

SUITE_RESULTS_SCHEMA_VERSION = 1


def slug(text: str) -> str:
    """A file-name-safe form of an agent spec or env key (`hf:org/name` -> `hf-org_name`)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace(":", "-")).strip("_") or "_"


def aggregate_score(per_env_success: Sequence[Sequence[float]], *, seed: int = 0) -> dict[str, Any]:
    """The suite score: macro-averaged success rate over envs, with its bootstrap 95% interval."""
    score = sum(sum(x) / len(x) for x in per_env_success) / len(per_env_success)
    return {
        "score": score,
        "ci95": list(macro_mean_ci(per_env_success, seed=seed)),
        "definition": "mean over envs of the success rate (each env weighs the same)",
    }


def _rollout_config(suite: Suite, env: SuiteEnv, max_concurrency: int) -> RolloutConfig:
    s = suite.sampling
    return RolloutConfig(
        max_turns=env.max_turns,
        max_concurrency=max_concurrency,
        sampling=SamplingParams(
            max_new_tokens=env.max_new_tokens or s.max_new_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            seed=s.seed,
        ),
    )


class _EnvRun:
    """The resumable state of one agent on one env: `progress.json` plus its chunk files."""

    def __init__(self, folder: Path, settings: dict[str, Any]):
        self.folder = folder
        self.progress_path = folder / "progress.json"
        self.settings = settings
        self.chunks: list[dict[str, Any]] = []
        if self.progress_path.exists():
            saved = json.loads(self.progress_path.read_text())
            if saved["settings"] != settings:
                raise SuiteError(
                    f"{folder} holds an evaluation with other settings ({saved['settings']}) than this one "
                    f"({settings}); write to another --out folder, or delete {folder} to start it again"
                )
            self.chunks = saved["chunks"]

    @property
    def done_seeds(self) -> set[int]:
        return {s for c in self.chunks for s in range(c["first_seed"], c["first_seed"] + c["episodes"])}

    def add_chunk(self, first_seed: int, trajectories: list[Trajectory], wall_time_s: float) -> None:
        episodes = len({t.seed for t in trajectories})
        name = f"{first_seed:09d}-{episodes:05d}.parquet"
        save_trajectories(trajectories, self.folder / "chunks" / name)  # the data first, then the record
        self.chunks.append(
            {"file": name, "first_seed": first_seed, "episodes": episodes, "wall_time_s": wall_time_s}
        )
        atomic_write_json(self.progress_path, {"settings": self.settings, "chunks": self.chunks})

    def trajectories(self) -> list[Trajectory]:
        ordered = sorted(self.chunks, key=lambda c: c["first_seed"])
        return load_trajectories([self.folder / "chunks" / c["file"] for c in ordered])

    @property
    def wall_time_s(self) -> float:
        return sum(c["wall_time_s"] for c in self.chunks)


async def _run_env(
    policy: Policy, suite: Suite, env: SuiteEnv, folder: Path, *, chunk_size: int, max_concurrency: int
) -> EvalResult:
    config = _rollout_config(suite, env, max_concurrency)
    settings = {
        "env": env.model_dump(mode="json"),
        "sampling": suite.sampling.model_dump(mode="json"),
        "agent": policy.name,
    }
    state = _EnvRun(folder, settings)
    done = state.done_seeds
    seeds = list(range(env.seed, env.seed + env.episodes))
    todo = [s for s in seeds if s not in done]
    # consecutive runs of unfinished seeds, cut into chunks
    starts = [s for i, s in enumerate(todo) if i == 0 or todo[i - 1] != s - 1]
    for start in starts:
        end = start
        while end + 1 in todo:
            end += 1
        for first in range(start, end + 1, chunk_size):
            n = min(chunk_size, end + 1 - first)
            part = await evaluate_async(
                policy, env.id, episodes=n, seed=first, env_kwargs=env.env_kwargs(), config=config
            )
            state.add_chunk(first, part.trajectories, part.summary.wall_time_s)
    trajectories = state.trajectories()
    result = EvalResult(
        env.id,
        policy.name,
        seeds,
        env.env_kwargs(),
        config,
        summarize(trajectories, state.wall_time_s),
        trajectories,
    )
    atomic_write_json(folder / "results.json", result.to_json())
    return result


def _env_record(env: SuiteEnv, result: EvalResult, folder: Path, out: Path) -> dict[str, Any]:
    return {
        "env_id": result.env_id,
        "env_kwargs": result.env_kwargs,
        "seeds": result.seeds,
        "max_turns": env.max_turns,
        "rollout": dataclasses.asdict(result.config),
        "summary": result.summary.to_dict(),
        "episodes": episode_records(result.trajectories),
        "trajectories": [str((folder / "chunks").relative_to(out))],
    }


def run_suite(
    suite: Suite,
    policies: Sequence[Policy],
    out_dir: str | Path,
    *,
    specs: Sequence[str] | None = None,
    chunk_size: int = 32,
    max_concurrency: int = 64,
    on_env_done: Any = None,
) -> dict[str, Any]:
    """Evaluate every policy on every env of the suite; resumes a previous run in `out_dir`.

    Args:
        suite: a loaded suite (`load_suite`).
        policies: the agents, evaluated one after another.
        out_dir: output folder (see the module docstring); reusing it resumes.
        specs: the agent specs the policies were made from (results keys; default: policy names).
        chunk_size: episodes per chunk (the unit of resumption).
        max_concurrency: most episodes in flight at once.
        on_env_done: optional callback `(agent_key, env_key, EvalResult)` after each env.

    Returns:
        The results (also written to `out_dir/results.json`).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}; it must be >= 1")
    specs = list(specs) if specs is not None else [p.name for p in policies]
    if not policies or len(specs) != len(policies) or len(set(specs)) != len(specs):
        raise ValueError(f"need one distinct spec per policy, got specs={specs} for {len(policies)} policies")
    from palaestra import __version__

    out = Path(out_dir)
    path = out / "results.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    agents: dict[str, Any] = results.get("agents", {})
    for spec, policy in zip(specs, policies, strict=True):
        envs: dict[str, Any] = {}
        for env in suite.envs:
            folder = out / slug(spec) / slug(env.key)
            result = asyncio.run(
                _run_env(policy, suite, env, folder, chunk_size=chunk_size, max_concurrency=max_concurrency)
            )
            envs[env.key] = _env_record(env, result, folder, out)
            if on_env_done is not None:
                on_env_done(spec, env.key, result)
        success = [[float(x) for x in rec["episodes"]["success"]] for rec in envs.values()]
        agents[spec] = {"agent": policy.name, "aggregate": aggregate_score(success), "envs": envs}
        results = {
            "schema_version": SUITE_RESULTS_SCHEMA_VERSION,
            "kind": "suite",
            "palaestra_version": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "suite": suite.model_dump(mode="json"),
            "agents": agents,
        }
        atomic_write_json(path, results)
    return json.loads(path.read_text())  # exactly what the file holds (tuples as lists)
