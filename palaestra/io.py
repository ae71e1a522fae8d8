"""Atomic file writes: readers see either the old file or the whole new one, never half of it.

Also `read_jsonl`, the reader of append-only JSON-lines files, which tolerates a line cut short, and
`cache_root`, the folder of palaestra's on-disk caches (converted models, search indexes).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_ENV",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cache_root",
    "read_jsonl",
]

CACHE_ENV = "PALAESTRA_CACHE"


def cache_root() -> Path:
    """palaestra's cache folder: `$PALAESTRA_CACHE`, else the platform's user cache (`~/.cache/palaestra`,
    or `$XDG_CACHE_HOME/palaestra`, on Linux)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get(CACHE_ENV) or user_cache_dir("palaestra")).expanduser()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and checkpoints are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def read_jsonl(path: str | os.PathLike[str]) -> list[Any]:
    """The records of a JSON-lines file, in order.

    A line that is not complete JSON (an append cut short by a kill or a full disk) is skipped with a
    warning naming it, so the records before it stay readable.
    """
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(
                f"{path}: line {number} is not complete JSON (a write cut short?); skipped it", stacklevel=2
            )
    return records
