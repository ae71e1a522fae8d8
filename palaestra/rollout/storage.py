"""Saving and loading trajectories as parquet.

One row per trajectory. Token fields are list columns; turns are a list of structs; `info` dicts are
stored as JSON text (their values differ by env), and so is an algorithm's `Trajectory.algo` (with its
kind). Columns added later (`algo_json`, `token_versions`) may be missing from older files, which still load. Files are written atomically (temp file + rename),
and `datasets.load_dataset("parquet", data_files=path)` reads them, so TRL can SFT/DPO on them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from palaestra.agents.base import message_text
from palaestra.io import atomic_write_bytes
from palaestra.rollout.trajectory import Trajectory, Turn, algo_from_json, algo_to_json

__all__ = ["SCHEMA", "load_trajectories", "save_trajectories"]

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
"""A chat message as text, so `datasets`/TRL read `messages` as an ordinary chat. A multimodal message
(a GUI observation) keeps its content parts, images included, as JSON in the same position of the
`message_parts_json` column (None for plain text messages)."""
_TURN = pa.struct(
    [
        ("action", pa.string()),
        ("observation", pa.string()),
        ("reward", pa.float64()),
        ("terminated", pa.bool_()),
        ("truncated", pa.bool_()),
        ("info_json", pa.string()),
        ("finish_reason", pa.string()),
        ("token_start", pa.int64()),
        ("token_end", pa.int64()),
    ]
)
SCHEMA = pa.schema(
    [
        ("env_id", pa.string()),
        ("seed", pa.int64()),
        ("group_index", pa.int64()),
        ("sample_index", pa.int64()),
        ("task_id", pa.string()),
        ("agent", pa.string()),
        ("reward", pa.float64()),
        ("success", pa.bool_()),
        ("num_turns", pa.int64()),
        ("terminated", pa.bool_()),
        ("truncated", pa.bool_()),
        ("error", pa.string()),
        ("env_kwargs_json", pa.string()),
        ("messages", pa.list_(_MESSAGE)),
        ("message_parts_json", pa.list_(pa.string())),
        ("turns", pa.list_(_TURN)),
        ("token_ids", pa.list_(pa.int64())),
        ("loss_mask", pa.list_(pa.int8())),
        ("logprobs", pa.list_(pa.float32())),
        ("prompt_length", pa.int64()),
        ("algo_json", pa.string()),
        ("token_versions", pa.list_(pa.int64())),
    ]
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _to_row(t: Trajectory) -> dict[str, Any]:
    return {
        "env_id": t.env_id,
        "seed": t.seed,
        "group_index": t.group_index,
        "sample_index": t.sample_index,
        "task_id": t.task_id,
        "agent": t.agent,
        "reward": t.reward,
        "success": t.success,
        "num_turns": t.num_turns,
        "terminated": t.terminated,
        "truncated": t.truncated,
        "error": t.error,
        "env_kwargs_json": _dumps(t.env_kwargs),
        "messages": [{"role": m["role"], "content": message_text(m)} for m in t.messages],
        "message_parts_json": [
            None if isinstance(m["content"], str) else json.dumps(m["content"]) for m in t.messages
        ],
        "turns": [
            {
                "action": u.action,
                "observation": u.observation,
                "reward": u.reward,
                "terminated": u.terminated,
                "truncated": u.truncated,
                "info_json": _dumps(u.info),
                "finish_reason": u.finish_reason,
                "token_start": u.token_span[0],
                "token_end": u.token_span[1],
            }
            for u in t.turns
        ],
        "token_ids": t.token_ids,
        "loss_mask": t.loss_mask,
        "logprobs": t.logprobs,
        "prompt_length": t.prompt_length,
        "algo_json": algo_to_json(t.algo),
        "token_versions": t.token_versions,
    }


def _from_row(row: dict[str, Any]) -> Trajectory:
    return Trajectory(
        env_id=row["env_id"],
        seed=row["seed"],
        group_index=row["group_index"],
        sample_index=row["sample_index"],
        task_id=row["task_id"],
        agent=row["agent"],
        messages=[
            {"role": m["role"], "content": json.loads(parts) if parts else m["content"]}
            for m, parts in zip(
                row["messages"], row.get("message_parts_json") or [None] * len(row["messages"]), strict=True
            )
        ],
        turns=[
            Turn(
                action=u["action"],
                observation=u["observation"],
                reward=u["reward"],
                terminated=u["terminated"],
                truncated=u["truncated"],
                info=json.loads(u["info_json"]),
                finish_reason=u["finish_reason"],
                token_span=(u["token_start"], u["token_end"]),
            )
            for u in row["turns"]
        ],
        token_ids=list(row["token_ids"]),
        loss_mask=list(row["loss_mask"]),
        logprobs=list(row["logprobs"]),
        token_versions=list(row.get("token_versions") or []),  # files written before the column: []
        prompt_length=row["prompt_length"],
        success=row["success"],
        terminated=row["terminated"],
        truncated=row["truncated"],
        error=row["error"],
        env_kwargs=json.loads(row["env_kwargs_json"]),
        algo=algo_from_json(row.get("algo_json")),  # files written before the column: None
    )


def save_trajectories(trajectories: Sequence[Trajectory], path: str | os.PathLike[str]) -> Path:
    """Write trajectories to a parquet file atomically.

    Returns:
        The path written.
    """
    table = pa.Table.from_pylist([_to_row(t) for t in trajectories], schema=SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return Path(path)


def load_trajectories(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Trajectory]:
    """Read trajectories written by `save_trajectories` (one file or several)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Trajectory] = []
    for path in paths:
        out.extend(_from_row(row) for row in pq.read_table(path).to_pylist())
    return out
