"""What a run folder holds, for reports and the viewer: config, training metrics, evaluations, trajectories.

Recognised layouts (any mix):

    RUN/config.yaml, RUN/metrics.jsonl                   a training run (`palaestra train`)
    RUN/eval/<stage>/<env>/results.json + trajectories   its held-out evaluations (stage: before, after)
    RUN/results.json (kind: suite) + agent/env/chunks    a suite evaluation (`palaestra eval --suite`)
    RUN/**/results.json + trajectories.parquet           single-env evaluations (`palaestra eval --out`)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from palaestra.evaluation.stats import macro_mean_ci
from palaestra.io import read_jsonl
from palaestra.rollout.storage import load_trajectories
from palaestra.rollout.trajectory import Trajectory

__all__ = ["EnvEval", "Evaluation", "RunData", "load_run"]


@dataclass
class EnvEval:
    """One env of one evaluation: its results record and the parquet files of its trajectories."""

    key: str
    record: dict[str, Any]
    files: list[Path]

    @property
    def summary(self) -> dict[str, Any]:
        return self.record["summary"]

    def trajectories(self) -> list[Trajectory]:
        return load_trajectories(self.files) if self.files else []


@dataclass
class Evaluation:
    """A set of env results under one label (an agent of a suite, or a training stage like `after`)."""

    label: str
    envs: dict[str, EnvEval] = field(default_factory=dict)
    aggregate: dict[str, Any] | None = None

    def score(self) -> dict[str, Any]:
        """The aggregate score (macro mean of success rates) with its 95% CI."""
        if self.aggregate is not None:
            return self.aggregate
        samples = [[float(x) for x in e.record["episodes"]["success"]] for e in self.envs.values()]
        samples = [s for s in samples if s]
        if not samples:
            return {"score": float("nan"), "ci95": [float("nan"), float("nan")]}
        score = sum(sum(s) / len(s) for s in samples) / len(samples)
        return {"score": score, "ci95": list(macro_mean_ci(samples))}


@dataclass
class RunData:
    """Everything a report shows about one run folder."""

    root: Path
    config: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    evaluations: list[Evaluation]

    @property
    def name(self) -> str:
        return self.root.resolve().name

    @property
    def is_empty(self) -> bool:
        return not self.metrics and not self.evaluations


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:  # invalid JSON or not text
        raise ValueError(f"{path} is not valid JSON ({exc}); was it written by palaestra?") from None


def _chunk_files(folder: Path) -> list[Path]:
    progress = folder / "progress.json"
    if not progress.exists():
        return []
    chunks = _read_json(progress)["chunks"]
    return [folder / "chunks" / c["file"] for c in sorted(chunks, key=lambda c: c["first_seed"])]


def _suite_evaluations(root: Path, data: dict[str, Any]) -> list[Evaluation]:
    out = []
    for spec, agent in data["agents"].items():
        ev = Evaluation(spec, aggregate=agent.get("aggregate"))
        for key, rec in agent["envs"].items():
            folders = [root / p for p in rec.get("trajectories", [])]
            ev.envs[key] = EnvEval(key, rec, [f for d in folders for f in _chunk_files(d.parent)])
        out.append(ev)
    return out


def _single_env_evaluations(root: Path) -> list[Evaluation]:
    by_label: dict[str, Evaluation] = {}
    for path in sorted(root.rglob("results.json")):
        if "viewer" in path.relative_to(root).parts:
            continue
        data = _read_json(path)
        if not isinstance(data, dict) or "env_id" not in data or "summary" not in data:
            continue
        # the label is the folder above the env's: RUN/eval/<stage>/<env>/ -> stage; RUN/ itself -> its name
        rel = path.parent.parent.relative_to(root) if path.parent != root else Path()
        parts = rel.parts[1:] if rel.parts[:1] == ("eval",) else rel.parts
        label = "/".join(parts) or root.resolve().name
        key = data["env_id"].split("/")[-1]
        parquet = path.parent / "trajectories.parquet"
        ev = by_label.setdefault(label, Evaluation(label))
        ev.envs[key] = EnvEval(key, data, [parquet] if parquet.exists() else [])
    order = {"before": 0, "after": 2}
    return sorted(by_label.values(), key=lambda e: (order.get(e.label, 1), e.label))


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    """Read a run folder (see the module docstring).

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds neither training metrics nor evaluation results.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run folder {root} does not exist")
    config = None
    if (root / "config.yaml").exists():
        config = yaml.safe_load((root / "config.yaml").read_text())
    metrics = []
    if (root / "metrics.jsonl").exists():
        metrics = read_jsonl(root / "metrics.jsonl")  # a line cut short by a kill is skipped, with a warning
    top = root / "results.json"
    data = _read_json(top) if top.exists() else {}
    if isinstance(data, dict) and data.get("kind") == "suite":
        evaluations = _suite_evaluations(root, data)  # its per-env results.json are already in it
    else:
        evaluations = _single_env_evaluations(root)
    run = RunData(root, config, metrics, evaluations)
    if run.is_empty:
        raise ValueError(
            f"{root} holds no metrics.jsonl and no evaluation results.json; pass a training run folder "
            "(palaestra train) or an evaluation output folder (palaestra eval --out)"
        )
    return run
