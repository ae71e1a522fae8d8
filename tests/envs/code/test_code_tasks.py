"""Code tasks: the bundled set (references pass, wrong programs fail) and MBPP/HumanEval/APPS loading."""

from __future__ import annotations

import ast
import json
import logging
import re
import subprocess
import sys
from collections import Counter

import pytest

from palaestra.envs.code.records import load_code_records
from palaestra.envs.code.task import CodeTask, CodeTest, load_bundled, outputs_match

BUNDLED = load_bundled()

# Runs programs against a task's tests in one subprocess. Reads {"kind", "setup", "programs", "tests"}
# as JSON on stdin and prints {program name: [result per test]}: for function tasks, whether the
# statement ran without raising; for stdio tasks, the captured stdout (None if the program raised).
_DRIVER = r"""
import contextlib, io, json, sys

job = json.load(sys.stdin)
results = {}
for name, program in job["programs"].items():
    code = compile(program, "<program>", "exec")
    if job["kind"] == "function":
        namespace = {"__name__": "__program__"}
        try:
            exec(code, namespace)
            exec(job["setup"], namespace)
        except Exception:
            results[name] = [False] * len(job["tests"])
            continue
        outcome = []
        for statement in job["tests"]:
            try:
                exec(statement, namespace)
                outcome.append(True)
            except Exception:
                outcome.append(False)
        results[name] = outcome
    else:
        outcome = []
        for stdin in job["tests"]:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
            buffer = io.StringIO()
            try:
                with contextlib.redirect_stdout(buffer):
                    try:
                        exec(code, {"__name__": "__main__"})
                    except SystemExit:
                        pass
                outcome.append(buffer.getvalue())
            except Exception:
                outcome.append(None)
        results[name] = outcome
sys.__stdout__.write(json.dumps(results))
"""


def _passes(task: CodeTask, programs: dict[str, str], tests: tuple[CodeTest, ...]) -> dict[str, list[bool]]:
    """Whether each program passes each test (trusted code: a plain subprocess, no sandbox)."""
    if task.kind == "function":
        payload = [test.statement for test in tests]
    else:
        payload = [test.stdin for test in tests]
    job = {"kind": task.kind, "setup": task.setup_code, "programs": programs, "tests": payload}
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER], input=json.dumps(job), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(proc.stdout)
    if task.kind == "function":
        return raw
    return {
        name: [
            out is not None and outputs_match(out, test.expected_stdout or "")
            for out, test in zip(outs, tests, strict=True)
        ]
        for name, outs in raw.items()
    }


def _wrong_program(task: CodeTask) -> str:
    return (
        f"def {task.entry_point}(*args, **kwargs):\n    return None\n"
        if task.kind == "function"
        else "pass\n"
    )


# ---------------------------------------------------------------------------- bundled set


def test_bundled_set_shape():
    assert len(BUNDLED) >= 45
    assert len({task.task_id for task in BUNDLED}) == len(BUNDLED)
    assert all(re.fullmatch(r"pal-code-\d{3}", task.task_id) for task in BUNDLED)
    difficulties = Counter(task.difficulty for task in BUNDLED)
    kinds = Counter(task.kind for task in BUNDLED)
    assert set(difficulties) == {"easy", "medium", "hard"} and min(difficulties.values()) >= 10
    assert kinds["function"] >= 25 and kinds["stdio"] >= 12
    assert {task.source for task in BUNDLED} == {"bundled"}
    assert {task.split for task in BUNDLED} == {"train", "test"}
    for task in BUNDLED:
        assert len(task.public_tests) >= 2 and set(task.public_tests) <= set(task.hidden_tests)
        assert len(set(task.hidden_tests) - set(task.public_tests)) >= 5, task.task_id
        if task.kind == "function":
            assert f"`{task.entry_point}(" in task.prompt, task.task_id  # names the signature
            for test in task.public_tests + task.hidden_tests:
                assert test.statement is not None and "\n" not in test.statement
                (node,) = ast.parse(test.statement).body
                assert isinstance(node, ast.Assert), test.statement
        else:
            assert task.entry_point is None
            assert all(test.expected_stdout is not None for test in task.hidden_tests)


@pytest.mark.parametrize("task", BUNDLED, ids=lambda task: task.task_id)
def test_reference_passes_and_wrong_program_fails(task):
    tests = task.public_tests + task.hidden_tests
    programs = {"reference": task.reference_solution, "wrong": _wrong_program(task)}
    results = _passes(task, programs, tests)
    failed = [test for test, ok in zip(tests, results["reference"], strict=True) if not ok]
    assert not failed, f"{task.task_id}: the reference fails {failed}"
    assert not all(results["wrong"][len(task.public_tests) :]), f"{task.task_id}: a wrong program passes"


def test_load_bundled_filters_and_validates_difficulty():
    hard = load_bundled("hard")
    assert hard and all(task.difficulty == "hard" for task in hard)
    assert sum(len(load_bundled(level)) for level in ("easy", "medium", "hard")) == len(BUNDLED)
    with pytest.raises(ValueError, match="difficulty='extreme'"):
        load_bundled("extreme")


def test_task_round_trip_expert_action_and_split():
    for task in BUNDLED[:3] + BUNDLED[-3:]:
        assert CodeTask.from_dict(json.loads(json.dumps(task.to_dict()))) == task
        assert task.expert_action.startswith("Here is my solution.\n\n```python\n")
        assert task.reference_solution.strip() in task.expert_action
        assert task.split in ("train", "test")


def test_invalid_tasks_and_tests_are_rejected():
    with pytest.raises(ValueError, match="exactly one of"):
        CodeTest()
    with pytest.raises(ValueError, match="2 statements"):
        CodeTest(statement="x = 1; assert x == 1")
    with pytest.raises(ValueError, match="not valid Python"):
        CodeTest(statement="assert f(1 ==")
    task = BUNDLED[0].to_dict()
    with pytest.raises(ValueError, match="expected a function CodeTest"):
        CodeTask.from_dict({**task, "hidden_tests": [{"stdin": "", "expected_stdout": "1"}]})
    with pytest.raises(ValueError, match="entry_point=None"):
        CodeTask.from_dict(
            {**task, "kind": "stdio", "public_tests": [], "hidden_tests": [{"expected_stdout": "1"}]}
        )
    with pytest.raises(ValueError, match=r"missing \['prompt'\]"):
        CodeTask.from_dict({k: v for k, v in task.items() if k != "prompt"})


def test_outputs_match_ignores_trailing_whitespace_only():
    assert outputs_match("1 2 \r\n3\n\n", "1 2\n3")
    assert not outputs_match(" 1\n", "1\n")
    assert not outputs_match("1\n2\n", "1\n")


# ---------------------------------------------------------------------------- records: written for these tests

MBPP_ROWS = [
    {"task_id": 1, "text": "Write a function to add two numbers.", "code": "def add_nums(a, b):\r\n    return a + b\r\n",
     "test_list": ["assert add_nums(1, 2) == 3", "assert add_nums(-1, 1) == 0"], "test_setup_code": "",
     "challenge_test_list": ["assert add_nums(10**20, 1) == 10**20 + 1"]},
    {"task_id": 2, "text": "Write a function to drop repeated items from a list.",
     "code": "def _key(x):\n    return x\n\ndef uniq(xs):\n    return list(dict.fromkeys(xs))\n",
     "test_list": ["assert sorted(uniq([3, 1, 3])) == [1, 3]", "assert uniq([]) == []"], "test_setup_code": "",
     "challenge_test_list": []},
    {"task_id": 3, "text": "Write a function for the area of a circle of radius r.",
     "code": "import math\ndef circle_area(r):\n    return math.pi * r * r\n",
     "test_list": ["assert isclose(circle_area(1), 3.14159, abs_tol=1e-4)"], "test_setup_code": "from math import isclose",
     "challenge_test_list": []},
]  # fmt: skip
HUMANEVAL_ROWS = [
    {"task_id": "X/0", "entry_point": "add",
     "prompt": 'def add(x: int, y: int) -> int:\n    """Add two numbers.\n    >>> add(2, 3)\n    5\n    """\n',
     "canonical_solution": "    return x + y\n",
     "test": "\n\nMETADATA = {'author': 'me'}\n\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
             "    assert candidate(-1, 1) == 0, 'sign'\n    assert candidate(0, 0) == 0\n"},
    {"task_id": "X/1", "entry_point": "square",
     "prompt": 'def square(n: int) -> int:\n    """The square of n."""\n', "canonical_solution": "    return n * n\n",
     "test": "def check(candidate):\n    for n in range(-5, 6):\n        assert candidate(n) == n ** 2\n"},
    {"task_id": "X/2", "entry_point": "double",
     "prompt": 'def double(n: int) -> int:\n    """Twice n."""\n', "canonical_solution": "    return 2 * n\n",
     "test": "def _expected(n):\n    return n + n\n\n\ndef check(candidate):\n    assert candidate(4) == _expected(4)\n"},
]  # fmt: skip
APPS_ROWS = [
    {"question": "Read two integers and print their product.", "difficulty": "introductory", "starter_code": "",
     "solutions": json.dumps(["print 1", "a, b = map(int, input().split())\nprint(a * b)\n"]),
     "input_output": json.dumps({"inputs": ["2 3\n", "-1 5\n"], "outputs": ["6\n", "-5\n"]})},
    {"question": "Return the sum of a list of integers.", "difficulty": "interview", "starter_code": "",
     "solutions": json.dumps(["def total(xs):\n    return sum(xs)\n"]),
     "input_output": json.dumps({"fn_name": "total", "inputs": [[[1, 2, 3]], [[]]], "outputs": [[6], [0]]})},
    {"question": "Double a number.", "difficulty": "competition",
     "starter_code": "class Solution:\n    def double(self, x: int) -> int:\n",
     "solutions": json.dumps(["class Solution:\n    def double(self, x):\n        return 2 * x\n"]),
     "input_output": json.dumps({"fn_name": "double", "inputs": [[2], [5]], "outputs": [4, 10]})},
    {"question": "A problem without solutions.", "difficulty": "interview", "starter_code": "",
     "solutions": "[]", "input_output": json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]})},
    {"question": "A problem without tests.", "difficulty": "interview", "starter_code": "",
     "solutions": json.dumps(["print(1)"]), "input_output": ""},
    {"question": "Read two lines with one integer each and print their sum.", "difficulty": "introductory",
     "starter_code": "", "solutions": json.dumps(["print(int(input()) + int(input()))"]),
     "input_output": json.dumps({"inputs": [["1", "2"]], "outputs": [["3"]]})},
]  # fmt: skip


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _check_references(tasks):
    for task in tasks:
        results = _passes(task, {"reference": task.reference_solution}, task.hidden_tests)
        assert all(results["reference"]), task


def test_mbpp_records_from_jsonl_and_save_to_disk(tmp_path):
    import datasets

    folder = tmp_path / "mbpp_saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(MBPP_ROWS)}).save_to_disk(str(folder))
    from_jsonl = load_code_records(_write_jsonl(tmp_path / "mbpp.jsonl", MBPP_ROWS))
    from_disk = load_code_records(folder, style="mbpp", dataset_split="test")
    assert from_jsonl == from_disk
    add, uniq, area = from_jsonl
    assert [task.entry_point for task in from_jsonl] == ["add_nums", "uniq", "circle_area"]
    assert (
        add.prompt.startswith("Write a function to add two numbers.")
        and "assert add_nums(1, 2) == 3" in add.prompt
    )
    assert [t.statement for t in add.public_tests] == ["assert add_nums(1, 2) == 3"]
    assert len(add.hidden_tests) == 3 and "\r" not in add.reference_solution
    assert area.setup_code == "from math import isclose"
    assert {(t.source, t.difficulty, t.kind) for t in from_jsonl} == {("mbpp", "easy", "function")}
    assert re.fullmatch(r"mbpp-[0-9a-f]{16}", uniq.task_id)
    _check_references(from_jsonl)


def test_humaneval_records_from_json(tmp_path):
    path = tmp_path / "humaneval.json"
    path.write_text(json.dumps(HUMANEVAL_ROWS))
    add, square, double = load_code_records(path)
    assert [t.statement for t in add.hidden_tests] == [
        "assert add(2, 3) == 5",
        "assert add(-1, 1) == 0, 'sign'",
        "assert add(0, 0) == 0",
    ]
    assert add.public_tests == add.hidden_tests[:1] and add.setup_code == ""  # METADATA dropped
    assert "`add`" in add.prompt and "def add(x: int, y: int) -> int:" in add.prompt
    assert square.public_tests == () and [t.statement for t in square.hidden_tests] == ["check(square)"]
    assert "def check(candidate)" in square.setup_code
    assert (
        "def _expected" in double.setup_code
        and double.hidden_tests[0].statement == "assert double(4) == _expected(4)"
    )
    assert {(t.source, t.difficulty) for t in (add, square, double)} == {("humaneval", "medium")}
    _check_references([add, square, double])


def test_apps_records_from_parquet(tmp_path, caplog):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "apps.parquet"
    pq.write_table(pa.Table.from_pylist(APPS_ROWS), path)
    with caplog.at_level(logging.WARNING, logger="palaestra.envs.code.records"):
        product, total, double, two_lines = load_code_records(path)
    assert "skipped 2 of 6 records" in caplog.text
    assert product.kind == "stdio" and product.entry_point is None and product.difficulty == "easy"
    assert product.reference_solution.startswith("a, b = map")  # the Python 2 solution is passed over
    assert product.hidden_tests[1] == CodeTest(stdin="-1 5\n", expected_stdout="-5\n")
    assert total.kind == "function" and total.difficulty == "medium"
    assert [t.statement for t in total.hidden_tests] == [
        "assert total([1, 2, 3]) in ([6], 6)",
        "assert total([]) in ([0], 0)",
    ]
    assert double.difficulty == "hard" and "Solution().double" in double.setup_code
    assert "class Solution:" in double.prompt
    assert two_lines.hidden_tests == (CodeTest(stdin="1\n2", expected_stdout="3"),)
    assert all(re.fullmatch(r"apps-[0-9a-f]{16}", t.task_id) for t in (product, total, double, two_lines))
    _check_references([product, total, double, two_lines])


def test_apps_file_without_usable_records_raises(tmp_path):
    path = _write_jsonl(tmp_path / "apps.jsonl", APPS_ROWS[3:5])
    with pytest.raises(ValueError, match=r"none of its 2 records is usable"):
        load_code_records(path, style="apps")


@pytest.mark.parametrize(
    ("rows", "style", "message"),
    [
        ([MBPP_ROWS[0], {k: v for k, v in MBPP_ROWS[1].items() if k != "code"}], "auto", r"record 1: lacks the field\(s\) \['code'\]"),
        ([{**MBPP_ROWS[0], "test_list": ["assert add_nums(1 =="]}], "mbpp", "record 0: test statement .* is not valid Python"),
        ([{**HUMANEVAL_ROWS[0], "test": "assert True\n"}], "humaneval", r"record 0: field 'test' defines no `def check"),
        ([APPS_ROWS[0], {**APPS_ROWS[1], "input_output": "{not json"}], "apps", "record 1: field 'input_output' is not valid JSON"),
        ([{**APPS_ROWS[0], "difficulty": "trivial"}], "apps", "record 0: difficulty='trivial'"),
        ([{"question": "q", "answer": "a"}], "auto", r"cannot tell the record style .* Pass style=\.\.\."),
    ],
    ids=["mbpp-missing-field", "mbpp-bad-test", "humaneval-no-check", "apps-bad-json", "apps-difficulty", "auto-unknown"],
)  # fmt: skip
def test_malformed_records_name_file_and_record(tmp_path, rows, style, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        load_code_records(path, style=style)


def test_unknown_style_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="style='leetcode'"):
        load_code_records(_write_jsonl(tmp_path / "x.jsonl", MBPP_ROWS), style="leetcode")
