"""Math envs: oracle success, modes, format errors, splits, seeding, generators, records loading."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import palaestra
from palaestra.envs.math.env import MathEnv
from palaestra.envs.math.generators import DIFFICULTIES, GENERATORS, generate
from palaestra.envs.math.records import load_records
from palaestra.envs.math.task import split_of
from palaestra.envs.math.verify import is_correct

GSM8K_ROWS = [
    {"question": f"Tom has {n} apples and buys {n + 2} more. How many apples does he have?",
     "answer": f"He has {n} + {n + 2} = <<{n}+{n + 2}={2 * n + 2}>>{2 * n + 2} apples.\n#### {2 * n + 2}"}
    for n in range(1, 41)
]  # fmt: skip
MATH_ROWS = [
    {"problem": r"Compute $\frac{1}{2} + \frac{1}{3}$.", "solution": r"We get $\boxed{\frac{5}{6}}$."},
    {"problem": r"What is $\sqrt{12}$ in simplest form?", "solution": r"$\sqrt{12} = \boxed{2\sqrt{3}}$."},
    {"problem": "Solve $x + 1 = 3$.", "solution": r"So $x = \boxed{2}$.", "answer": "2"},
    {"problem": "Which name is longest: Ann, Evelyn or Bo?", "solution": r"$\boxed{\text{Evelyn}}$"},
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def record_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("records")
    return {
        "palaestra/Math-GSM8K-v0": _write_jsonl(tmp / "gsm8k.jsonl", GSM8K_ROWS),
        "palaestra/Math-MATH-v0": _write_jsonl(tmp / "math.jsonl", MATH_ROWS),
    }


MATH_IDS = [card.id for card in palaestra.list_envs(family="Math")]


def _make(env_id, record_files, **kwargs):
    if env_id in record_files:
        kwargs.setdefault("path", record_files[env_id])
    return palaestra.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", MATH_IDS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_oracle_succeeds_on_many_seeds(env_id, split, record_files):
    env = _make(env_id, record_files, split=None if env_id in record_files else split)
    card = palaestra.env_card(env_id)
    assert card.family == "Math" and card.description and card.max_turns == env.unwrapped.max_turns
    for seed in range(40):
        _, info = env.reset(seed=seed)
        _, reward, terminated, truncated, info = env.step(info["expert_action"])
        assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True), (seed, info)
        assert info["format_error"] is None and info["answer_extracted"]


def test_records_split_keeps_only_matching_questions(record_files):
    for split in ("train", "test"):
        env = MathEnv(source="records", path=record_files["palaestra/Math-GSM8K-v0"], split=split)
        assert env.unwrapped.records and all(split_of(t.question) == split for t in env.records)


@pytest.mark.parametrize("env_id", [i for i in MATH_IDS if "Retry" not in i])
def test_wrong_answer_fails(env_id, record_files):
    env = _make(env_id, record_files)
    _, info = env.reset(seed=1)
    observation, reward, terminated, _, info = env.step(r"\boxed{123456789}")
    assert (reward, terminated, info["success"], info["format_error"]) == (0.0, True, False, None)
    assert "incorrect" in observation.lower()


def test_retry_wrong_wrong_right_gives_decayed_reward():
    env = palaestra.make("palaestra/Math-ArithRetry-v0")
    _, info = env.reset(seed=3)
    assert info["max_attempts"] == 3 and env.unwrapped.max_turns == 3
    gold = env.unwrapped.task.answer
    rewards = []
    for reply in (r"\boxed{-999}", "I think it is 1000000.", info["expert_action"]):
        observation, reward, terminated, truncated, info = env.step(reply)
        rewards.append(reward)
        assert gold not in observation.replace("1000000", "").replace("999", "")  # never reveals it
    assert rewards == [0.0, 0.0, 0.5**2]
    assert terminated and not truncated and info["success"] and info["turn"] == 3 and info["attempt"] == 3


def test_retry_feedback_asks_to_try_again():
    env = MathEnv(source="fractions", mode="retry", max_attempts=2)
    env.reset(seed=0)
    observation, _, terminated, _, info = env.step(r"\boxed{1000}")
    assert not terminated and "incorrect" in observation and "Try again" in observation
    assert info["answer_extracted"] == "1000" and info["role"] == "user"


def test_retry_attempts_exhausted_terminates_without_success():
    env = MathEnv(source="arithmetic", difficulty="easy", mode="retry", max_attempts=3, reward_decay=0.5)
    env.reset(seed=0)
    outcomes = [env.step(r"\boxed{-12345}") for _ in range(3)]
    assert [o[2] for o in outcomes] == [False, False, True]  # terminated
    assert not any(o[3] for o in outcomes)  # never truncated
    assert not outcomes[-1][4]["success"] and sum(o[1] for o in outcomes) == 0.0
    assert "No attempts left" in outcomes[-1][0]
    with pytest.raises(RuntimeError):
        env.step(r"\boxed{1}")


@pytest.mark.parametrize("mode", ["single", "retry"])
def test_format_error_is_reported_not_raised(mode):
    env = MathEnv(source="arithmetic", mode=mode, format_reward=-0.1)
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step("I am not sure.")
    assert info["format_error"] and r"\boxed{}" in info["format_error"]
    assert r"\boxed{}" in observation and "Format error" in observation
    assert reward == -0.1 and terminated == (mode == "single") and info["answer_extracted"] is None
    if mode == "retry":  # a format error used an attempt
        _, reward, *_ = env.step(env.unwrapped.task.expert_action)
        assert reward == 0.5


@pytest.mark.parametrize("action", [None, 42, ["\\boxed{1}"], b"\\boxed{1}", 3.5])
def test_non_text_action_never_raises(action):
    env = palaestra.make("palaestra/Math-ArithRetry-v0")
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step(action)
    assert isinstance(observation, str) and info["format_error"] and reward == 0.0 and not terminated
    _, reward, *_ = env.step(env.unwrapped.task.expert_action)  # the bad reply counted as attempt 1
    assert reward == 0.5


@pytest.mark.parametrize("source", sorted(GENERATORS))
def test_train_and_test_splits_are_disjoint(source):
    rng = np.random.default_rng(0)
    train = {generate(source, rng, split="train").question for _ in range(300)}
    test = {generate(source, rng, split="test").question for _ in range(300)}
    assert train and test and not train & test
    assert all(split_of(q) == "train" for q in train) and all(split_of(q) == "test" for q in test)


def test_env_splits_are_disjoint_across_seeds():
    questions = {
        s: {MathEnv(source="arithmetic", split=s).reset(seed=i)[0] for i in range(300)}
        for s in ("train", "test")
    }
    assert not questions["train"] & questions["test"]


@pytest.mark.parametrize("env_id", MATH_IDS)
def test_same_seed_same_task(env_id, record_files):
    first, second = _make(env_id, record_files), _make(env_id, record_files)
    for seed in (0, 7, 12345):
        a, info_a = first.reset(seed=seed)
        b, info_b = second.reset(seed=seed)
        assert a == b and info_a == info_b
    questions = {first.reset(seed=s)[0] for s in range(20)}
    assert len(questions) > 1


def _python_value(expression: str) -> Fraction:
    """Evaluate an arithmetic/fraction expression exactly (numbers become Fractions)."""
    code = re.sub(r"\d+", lambda m: f"Fraction({m.group()})", expression)
    return Fraction(eval(code, {"Fraction": Fraction}))


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_arithmetic_and_fraction_answers_match_python(difficulty):
    rng = np.random.default_rng(1)
    saw_parentheses = False
    for _ in range(200):
        task = generate("arithmetic", rng, difficulty=difficulty, split=None)
        expression = re.fullmatch(r"(?:What is|Compute) (.*)[?.]", task.question).group(1)
        assert _python_value(expression) == int(task.answer), task
        saw_parentheses |= "(" in expression.replace("(-", "")
        task = generate("fractions", rng, difficulty=difficulty, split=None)
        expression = re.fullmatch(r"Compute (.*)\. Give .*", task.question).group(1)
        assert _python_value(expression) == Fraction(task.answer), task
    assert saw_parentheses == (difficulty == "hard")


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_linear_equation_solution_satisfies_the_equation(difficulty):
    rng = np.random.default_rng(2)
    for _ in range(200):
        task = generate("linear_equation", rng, difficulty=difficulty, split=None)
        left, right = re.fullmatch(r"Solve for x: (.*) = (.*)\.", task.question).groups()
        code = [re.sub(r"(\d)\(", r"\1*(", re.sub(r"(\d)x", r"\1*x", side)) for side in (left, right)]
        x = int(task.answer)
        assert eval(code[0], {"x": x}) == eval(code[1], {"x": x}), task


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_word_problems_have_positive_integer_answers_and_worked_solutions(difficulty):
    rng = np.random.default_rng(3)
    for _ in range(200):
        task = generate("word_problem", rng, difficulty=difficulty, split=None)
        assert int(task.answer) > 0 and task.question.endswith("?"), task
        assert re.findall(r"\d+", task.solution)[-1] == task.answer, task
        assert is_correct(task.expert_action, task.answer).correct


def test_importing_palaestra_does_not_import_math_dependencies():
    code = (
        "import sys, palaestra; "
        "print([m for m in ('math_verify', 'palaestra.envs.math.env', 'palaestra.envs.math.verify') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- records --------------------------------------------------------------------------------------
def test_records_from_jsonl_parquet_json_and_save_to_disk(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = _write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS)
    pq.write_table(pa.Table.from_pylist(MATH_ROWS[:2]), tmp_path / "math.parquet")
    (tmp_path / "list.json").write_text(json.dumps(MATH_ROWS[:2]))
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": MATH_ROWS[:2]}))
    _write_jsonl(tmp_path / "lines.json", MATH_ROWS[:2])
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(GSM8K_ROWS[:5]),
            "test": datasets.Dataset.from_list(GSM8K_ROWS[5:8]),
        }
    ).save_to_disk(str(tmp_path / "dsdict"))
    datasets.Dataset.from_list(GSM8K_ROWS[:4]).save_to_disk(str(tmp_path / "ds"))

    gsm = load_records(jsonl, style="gsm8k")
    assert (
        len(gsm) == 40
        and gsm[0].answer == "4"
        and "<<" not in gsm[0].solution
        and "####" not in gsm[0].solution
    )
    for name in ("math.parquet", "list.json", "wrapped.json", "lines.json"):
        tasks = load_records(tmp_path / name)
        assert [t.answer for t in tasks] == [r"\frac{5}{6}", r"2\sqrt{3}"], name
    assert len(load_records(tmp_path / "dsdict", dataset_split="test")) == 3
    assert len(load_records(tmp_path / "ds")) == 4
    math_tasks = load_records(_write_jsonl(tmp_path / "m.jsonl", MATH_ROWS), style="math")
    assert [t.answer for t in math_tasks] == [r"\frac{5}{6}", r"2\sqrt{3}", "2", r"\text{Evelyn}"]


def test_records_with_custom_field_names(tmp_path):
    rows = [{"q": "What is 2+2?", "final": "4", "why": "2+2=4"}]
    tasks = load_records(
        _write_jsonl(tmp_path / "c.jsonl", rows),
        question_field="q",
        answer_field="final",
        solution_field="why",
    )
    assert (tasks[0].question, tasks[0].answer, tasks[0].solution) == ("What is 2+2?", "4", "2+2=4")


def test_records_errors_name_the_file_and_the_fields(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        load_records(tmp_path / "missing.jsonl")
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"text": "hi", "label": 1}])
    with pytest.raises(ValueError, match=r"bad\.jsonl.*question.*question_field"):
        load_records(bad)
    with pytest.raises(ValueError, match=r"no field 'prompt_text'"):
        load_records(bad, question_field="prompt_text")
    no_answer = _write_jsonl(tmp_path / "noanswer.jsonl", [{"question": "1+1?"}])
    with pytest.raises(ValueError, match=r"answer_field=\.\.\. or solution_field"):
        load_records(no_answer)
    ragged = _write_jsonl(tmp_path / "ragged.jsonl", [GSM8K_ROWS[0], {"question": "q"}])
    with pytest.raises(ValueError, match=r"ragged\.jsonl: record 1 lacks"):
        load_records(ragged)
    no_marker = _write_jsonl(tmp_path / "nomarker.jsonl", [{"question": "q", "answer": "72"}])
    with pytest.raises(ValueError, match=r"record 0: .*####"):
        load_records(no_marker, style="gsm8k")
    no_box = _write_jsonl(tmp_path / "nobox.jsonl", [{"problem": "p", "solution": "It is 3."}])
    with pytest.raises(ValueError, match=r"nobox\.jsonl: record 0: .*boxed"):
        load_records(no_box)
    (tmp_path / "x.csv").write_text("question,answer\n")
    with pytest.raises(ValueError, match=r"unsupported file type '\.csv'"):
        load_records(tmp_path / "x.csv")
    (tmp_path / "broken.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        load_records(tmp_path / "broken.jsonl")


def test_records_dataset_dict_needs_a_split(tmp_path):
    import datasets

    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(GSM8K_ROWS[:2]),
            "test": datasets.Dataset.from_list(GSM8K_ROWS[2:4]),
        }
    ).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"\['train', 'test'\].*dataset_split"):
        load_records(tmp_path / "dd")
    with pytest.raises(ValueError, match="no split 'validation'"):
        load_records(tmp_path / "dd", dataset_split="validation")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="not a dataset written by save_to_disk"):
        load_records(tmp_path / "empty_dir")


def test_records_task_index_picks_the_record(record_files):
    env = palaestra.make("palaestra/Math-MATH-v0", path=record_files["palaestra/Math-MATH-v0"])
    for index, row in enumerate(MATH_ROWS):
        question, info = env.reset(seed=0, options={"task_index": index})
        assert question == row["problem"]
        assert env.step(info["expert_action"])[1] == 1.0
    with pytest.raises(ValueError, match="task_index"):
        env.reset(options={"task_index": len(MATH_ROWS)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"index": 0})
    with pytest.raises(ValueError, match="records"):
        MathEnv(source="arithmetic").reset(options={"task_index": 0})


def test_bad_kwargs():
    with pytest.raises(TypeError):
        palaestra.make("palaestra/Math-Arith-v0", difficulty_level="hard")
    with pytest.raises(TypeError):
        MathEnv(sauce="arithmetic")
    with pytest.raises(TypeError, match="path"):
        palaestra.make("palaestra/Math-GSM8K-v0")
    for kwargs, match in [
        ({"source": "geometry"}, "source"),
        ({"difficulty": "extreme"}, "difficulty"),
        ({"split": "validation"}, "split"),
        ({"mode": "multi"}, "mode"),
        ({"max_attempts": 3}, "retry"),
        ({"mode": "retry", "max_attempts": 0}, "max_attempts"),
        ({"mode": "retry", "reward_decay": 0.0}, "reward_decay"),
        ({"path": "x.jsonl"}, "records"),
        ({"source": "records"}, "path"),
    ]:
        with pytest.raises(ValueError, match=match):
            MathEnv(**kwargs)


def test_system_prompt_states_the_format():
    assert r"\boxed{}" in MathEnv().system_prompt
    retry = MathEnv(mode="retry", max_attempts=4)
    assert "4 attempts" in retry.system_prompt and retry.max_turns == 4
