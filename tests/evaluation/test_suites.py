"""Benchmark suites: the bundled files, loading rules, errors, and resumable suite runs."""

from __future__ import annotations

import json

import pytest

from palaestra.agents.spec import make_policy
from palaestra.envs.registration import make
from palaestra.evaluation import suite_run
from palaestra.evaluation.suite_run import SUITE_RESULTS_SCHEMA_VERSION, run_suite
from palaestra.evaluation.suites import SuiteError, list_suites, load_suite


def test_bundled_suites_load_and_their_envs_build():
    assert {"math-core", "code-core", "games-core", "web-core", "tools-core", "all"} <= set(list_suites())
    everything = load_suite("all")
    parts = [load_suite(n) for n in ("math-core", "code-core", "games-core", "web-core", "tools-core")]
    assert [e.key for e in everything.envs] == [e.key for s in parts for e in s.envs]
    budgets = {e.key: e.max_new_tokens for e in everything.envs}  # each env keeps its own suite's budget
    assert budgets["Code-Bundled-v0"] == 512 and budgets["Math-Arith-v0"] == 256
    assert budgets["Game-Wordle-v0"] == 128
    for env in everything.envs:
        made = make(env.id, **env.env_kwargs())
        made.close()
    assert load_suite("math-core").envs[0].env_kwargs() == {"split": "test"}


def _write(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_suite_errors_name_the_problem_and_the_fix(tmp_path):
    with pytest.raises(SuiteError, match=r"unknown suite 'nope'; known suites in .*math-core"):
        load_suite("nope")
    bad = _write(tmp_path, "bad", "name: bad\nenvs:\n  - {id: palaestra/Math-Arith-v0, episdoes: 3}\n")
    with pytest.raises(SuiteError, match=r"envs\.0\.episdoes: unknown key"):
        load_suite(bad)
    _write(tmp_path, "a", "name: a\ninclude: [b]\n")
    _write(tmp_path, "b", "name: b\ninclude: [a]\n")
    with pytest.raises(SuiteError, match="include cycle: a -> b -> a"):
        load_suite("a", directory=tmp_path)
    dup = "name: d\nenvs:\n  - {id: palaestra/Math-Arith-v0}\n  - {id: palaestra/Math-Arith-v0, seed: 5}\n"
    with pytest.raises(SuiteError, match="distinct `name`"):
        load_suite(_write(tmp_path, "d", dup))


def _small_suite(tmp_path):
    text = (
        "name: small\nsampling: {max_new_tokens: 32}\nenvs:\n"
        "  - {id: palaestra/Math-ArithEasy-v0, split: test, episodes: 7}\n"
        "  - {id: palaestra/Math-ArithRetry-v0, split: test, episodes: 5, seed: 100}\n"
    )
    return load_suite(_write(tmp_path, "small", text))


def _episodes(results):
    return {
        spec: {k: env["episodes"] for k, env in agent["envs"].items()}
        for spec, agent in results["agents"].items()
    }


class _Killed(Exception):
    pass


def test_interrupted_suite_resumes_without_redoing_finished_chunks(tmp_path, monkeypatch):
    suite = _small_suite(tmp_path)
    policies = [make_policy("scripted:oracle"), make_policy("scripted:random", seed=3)]
    reference = run_suite(suite, policies, tmp_path / "ref", chunk_size=3)

    real = suite_run.evaluate_async
    calls = []
    resumed = False

    async def flaky(policy, env_id, **kwargs):
        nonlocal resumed
        calls.append((policy.name, env_id, kwargs["seed"], kwargs["episodes"]))
        if len(calls) == 4 and not resumed:
            raise _Killed  # the run dies in its 4th chunk
        return await real(policy, env_id, **kwargs)

    monkeypatch.setattr(suite_run, "evaluate_async", flaky)
    policies = [make_policy("scripted:oracle"), make_policy("scripted:random", seed=3)]
    with pytest.raises(_Killed):
        run_suite(suite, policies, tmp_path / "out", chunk_size=3)
    first = list(calls)
    calls.clear()
    resumed = True
    policies = [make_policy("scripted:oracle"), make_policy("scripted:random", seed=3)]
    results = run_suite(suite, policies, tmp_path / "out", chunk_size=3)
    # chunks per agent: ArithEasy 0-2, 3-5, 6; ArithRetry 100-102, 103-104 -> 5 each, 10 in all
    assert len(first) == 4 and len(calls) == 10 - 3
    assert first[3] == calls[0]  # it picks up exactly at the chunk that was interrupted
    assert _episodes(results) == _episodes(reference)
    assert results["schema_version"] == SUITE_RESULTS_SCHEMA_VERSION and results["palaestra_version"]
    assert results["suite"]["envs"][1]["seed"] == 100
    oracle = results["agents"]["scripted:oracle"]
    assert oracle["aggregate"]["score"] == 1.0
    assert oracle["envs"]["Math-ArithRetry-v0"]["seeds"] == list(range(100, 105))
    summary = oracle["envs"]["Math-ArithEasy-v0"]["summary"]
    assert summary["episodes"] == 7 and summary["success_bootstrap_ci95"] == [1.0, 1.0]
    assert {"reward_mean", "turns_mean", "generated_tokens_mean", "format_error_rate", "wall_time_s"} <= set(
        summary
    )
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == results
    leftovers = [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_folder_with_other_settings_is_not_mixed_in(tmp_path):
    suite = _small_suite(tmp_path)
    run_suite(suite, [make_policy("scripted:oracle")], tmp_path / "out", chunk_size=4)
    more = suite.model_copy(
        update={"envs": [suite.envs[0].model_copy(update={"episodes": 9}), suite.envs[1]]}
    )
    with pytest.raises(SuiteError, match="other settings"):
        run_suite(more, [make_policy("scripted:oracle")], tmp_path / "out", chunk_size=4)
