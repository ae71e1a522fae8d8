r"""Load GSM8K- and MATH-style problem records from local files; nothing here touches the network.

Sources: a `.jsonl` file, a `.json` file (a list of records, an object holding one list of records, or
JSON lines, as `Dataset.to_json` writes), a `.parquet` file, or a folder written by `datasets`'
`save_to_disk` (a `Dataset`, or a `DatasetDict` with `dataset_split` naming the split).

Record styles:
    gsm8k: {"question": ..., "answer": "...reasoning...\n#### 72"}; the gold answer follows "####" and
        the reasoning (calculator annotations `<<3*4=12>>` removed) becomes the worked solution.
    math: {"problem": ..., "solution": "... \boxed{\frac{1}{2}}"} and/or an explicit "answer" field;
        the gold answer is the "answer" field if present, else the last `\boxed{}` of the solution.
    auto (default): gsm8k for records whose answer field holds "####", math otherwise.
Field names are detected from common spellings (question/problem/prompt, answer/final_answer,
solution) or given explicitly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from palaestra.envs.math.task import MathTask
from palaestra.envs.math.verify import gsm8k_gold, last_boxed, math_gold

__all__ = ["ANSWER_FIELDS", "QUESTION_FIELDS", "SOLUTION_FIELDS", "STYLES", "load_records", "read_rows"]

QUESTION_FIELDS: tuple[str, ...] = ("question", "problem", "prompt", "query", "input")
ANSWER_FIELDS: tuple[str, ...] = ("answer", "final_answer", "expected_answer", "target")
SOLUTION_FIELDS: tuple[str, ...] = ("solution", "rationale", "reasoning")
STYLES: tuple[str, ...] = ("auto", "gsm8k", "math")
_CALCULATOR_RE = re.compile(r"<<[^<>]*>>")


def _read_jsonl(path: Path, text: str) -> list[Any]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
    return rows


def _read_json(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _read_jsonl(path, text)  # JSON lines under a .json name (Dataset.to_json writes these)
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ValueError(f"{path}: expected a list of records or an object holding one list of records")
        data = lists[0]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of records, got {type(data).__name__}")
    return data


def _load_from_disk(path: Path, dataset_split: str | None) -> list[Any]:
    import datasets  # heavy; only needed for folders

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise ValueError(f"{path} is a folder but not a dataset written by save_to_disk ({exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        if dataset_split is None and len(ds) != 1:
            raise ValueError(f"{path} holds the splits {list(ds)}; choose one with dataset_split=...")
        if dataset_split is not None and dataset_split not in ds:
            raise ValueError(f"{path} has no split {dataset_split!r}; its splits are {list(ds)}")
        ds = ds[dataset_split] if dataset_split is not None else next(iter(ds.values()))
    elif dataset_split is not None:
        raise ValueError(
            f"{path} holds a single Dataset, not a DatasetDict; drop dataset_split={dataset_split!r}"
        )
    return ds.to_list()


def read_rows(path: str | Path, *, dataset_split: str | None = None) -> list[dict[str, Any]]:
    """Read the raw records of a local file or `save_to_disk` folder.

    Args:
        path: a .jsonl, .json or .parquet file, or a folder written by `datasets`' `save_to_disk`.
        dataset_split: the split of a saved `DatasetDict` (needed when it holds more than one).

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: unsupported file type, unreadable content, records that are not objects, no records.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"records file not found: path={p}; pass a .jsonl, .json or .parquet file or a save_to_disk folder"
        )
    if p.is_dir():
        rows = _load_from_disk(p, dataset_split)
    else:
        if dataset_split is not None:
            raise ValueError(
                f"dataset_split={dataset_split!r} only applies to a save_to_disk folder, not {p}"
            )
        suffix = p.suffix.lower()
        if suffix == ".jsonl":
            rows = _read_jsonl(p, p.read_text(encoding="utf-8"))
        elif suffix == ".json":
            rows = _read_json(p)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(p).to_pylist()
        else:
            raise ValueError(
                f"{p}: unsupported file type {suffix!r}; use .jsonl, .json, .parquet or a folder "
                "written by datasets' save_to_disk"
            )
    if not rows:
        raise ValueError(f"{p} holds no records")
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise ValueError(f"{p}: record {bad} is a {type(rows[bad]).__name__}, expected an object with fields")
    return rows


def _field(
    path: Path,
    row: dict[str, Any],
    given: str | None,
    candidates: tuple[str, ...],
    kwarg: str,
    required: bool,
) -> str | None:
    """The field name to use: `given`, else the first candidate present in `row`."""
    if given is not None:
        if given not in row:
            raise ValueError(
                f"{path}: records have no field {given!r} ({kwarg}); their fields: {sorted(row)}"
            )
        return given
    found = next((name for name in candidates if name in row), None)
    if found is None and required:
        raise ValueError(
            f"{path}: records have no {kwarg.removesuffix('_field')} field; looked for {list(candidates)}, "
            f"found {sorted(row)}. Name it with {kwarg}=..."
        )
    return found


def _text(row: dict[str, Any], name: str | None) -> str:
    value = row.get(name) if name is not None else None
    return "" if value is None else str(value)


def _task(row: dict[str, Any], q: str, a: str | None, s: str | None, style: str) -> MathTask:
    """One record as a task; raises ValueError with the reason when it has no usable answer."""
    question, answer, solution = _text(row, q).strip(), _text(row, a), _text(row, s)
    if not question:
        raise ValueError(f"empty {q!r} field")
    if style == "gsm8k" or (style == "auto" and "####" in answer):
        if not answer:
            raise ValueError(f"no GSM8K answer in field {a!r}")
        reasoning = _CALCULATOR_RE.sub("", answer.rsplit("####", 1)[0]).strip()
        return MathTask(question, gsm8k_gold(answer), solution.strip() or reasoning, "records")
    if answer.strip():
        boxed = last_boxed(answer)
        return MathTask(
            question, (boxed if boxed is not None else answer).strip(), solution.strip(), "records"
        )
    if not solution:
        raise ValueError(f"neither an answer ({a!r}) nor a solution ({s!r}) field has a value")
    return MathTask(question, math_gold(solution), solution.strip(), "records")


def load_records(
    path: str | Path,
    *,
    style: str = "auto",
    question_field: str | None = None,
    answer_field: str | None = None,
    solution_field: str | None = None,
    dataset_split: str | None = None,
) -> list[MathTask]:
    """Load math problems from a local file or `save_to_disk` folder (see the module docstring).

    Args:
        path: a .jsonl, .json or .parquet file, or a `save_to_disk` folder.
        style: "auto", "gsm8k" or "math".
        question_field: the question's field (default: the first of `QUESTION_FIELDS` present).
        answer_field: the answer's field (default: the first of `ANSWER_FIELDS` present).
        solution_field: the worked solution's field (default: the first of `SOLUTION_FIELDS` present).
        dataset_split: the split of a saved `DatasetDict`.

    Returns:
        The tasks, in file order, with `source` "records".

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: unreadable source, missing fields (the message names the file, the record and the
            fields it has), or a record without a usable answer.
    """
    if style not in STYLES:
        raise ValueError(f"style={style!r}; choose one of {STYLES}")
    p = Path(path).expanduser()
    rows = read_rows(p, dataset_split=dataset_split)
    q = _field(p, rows[0], question_field, QUESTION_FIELDS, "question_field", required=True)
    assert q is not None  # required=True raises instead
    a = _field(p, rows[0], answer_field, ANSWER_FIELDS, "answer_field", required=style == "gsm8k")
    s = _field(p, rows[0], solution_field, SOLUTION_FIELDS, "solution_field", required=False)
    if a is None and s is None:
        raise ValueError(
            f"{p}: records have neither an answer field (looked for {list(ANSWER_FIELDS)}) nor a solution "
            f"field (looked for {list(SOLUTION_FIELDS)}); found {sorted(rows[0])}. Name one with "
            "answer_field=... or solution_field=..."
        )
    tasks = []
    for index, row in enumerate(rows):
        missing = [name for name in (q, a, s) if name is not None and name not in row]
        if missing:
            raise ValueError(f"{p}: record {index} lacks the field(s) {missing}; it has {sorted(row)}")
        try:
            tasks.append(_task(row, q, a, s, style))
        except ValueError as exc:
            raise ValueError(f"{p}: record {index}: {exc}") from None
    return tasks
