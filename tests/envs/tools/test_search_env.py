"""`palaestra/Tool-Search-v0`: the generated world and its questions, the cached BM25 index, the tools,
exact judging, and the expert (through gymnasium's API and through the rollout)."""

from __future__ import annotations

import json
import re
import warnings

import bm25s
import numpy as np
import pytest

import palaestra
from palaestra.agents.base import Generation, GenerationRequest
from palaestra.agents.scripted import OraclePolicy, RandomPolicy
from palaestra.envs.tools.search.documents import make_corpus
from palaestra.envs.tools.search.env import MAX_TURNS, normalize_answer
from palaestra.envs.tools.search.index import forget_indexes, load_index
from palaestra.envs.tools.search.questions import draw_question
from palaestra.rollout import Task, rollout
from palaestra.tools import ToolCall

IDS = {1: "palaestra/Tool-Search-v0-easy", 2: "palaestra/Tool-Search-v0", 3: "palaestra/Tool-Search-v0-hard"}


def _call(env, name, **arguments):
    return env.unwrapped.format_calls([ToolCall(name, arguments)])


@pytest.fixture
def env():
    env = palaestra.make(IDS[2])
    yield env
    env.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty disk cache and no index in memory (before and after the test)."""
    monkeypatch.setenv("PALAESTRA_CACHE", str(tmp_path))
    forget_indexes()
    yield tmp_path / "search"
    forget_indexes()


# -- the world and its questions -----------------------------------------------------------------------
def test_the_world_and_its_documents_come_from_the_seed():
    corpus, again, other = make_corpus(0), make_corpus.__wrapped__(0), make_corpus(1)
    assert corpus.documents == again.documents and len(corpus.documents) > 2000
    assert corpus.documents[0].text != other.documents[0].text
    names = [entity.name for entity in corpus.world.entities.values()]
    assert len(set(names)) == len(names)
    assert sum(entity.twin is not None for entity in corpus.world.entities.values()) > 100  # distractors


@pytest.mark.parametrize("level", [1, 2, 3])
def test_every_answer_is_stated_by_a_supporting_document_and_absent_from_the_question(level):
    corpus = make_corpus(0)
    for seed in range(150):
        question = draw_question(corpus, level, np.random.default_rng(seed))
        docs = [corpus.get(doc_id) for doc_id in question.supporting_docs]
        assert all(doc is not None for doc in docs)
        answer = normalize_answer(question.answer)
        assert answer and answer not in normalize_answer(question.text), question
        said = [d for d in docs if d is not None and answer in normalize_answer(f"{d.title} {d.text}")]
        assert said, question  # the fact (or, for comparisons, the winner's own page) is in the documents


def test_levels_differ_in_hops():
    corpus = make_corpus(0)
    hops = {
        level: {len(draw_question(corpus, level, np.random.default_rng(s)).hops) for s in range(60)}
        for level in (1, 2, 3)
    }
    assert hops == {1: {1}, 2: {2}, 3: {3, 4}}  # level 3: three-hop chains and comparisons (4 documents)
    assert [MAX_TURNS[level] for level in (1, 2, 3)] == sorted(MAX_TURNS.values())


@pytest.mark.parametrize("level", [1, 2, 3])
def test_thousands_of_seeds_give_thousands_of_questions(level):
    corpus = make_corpus(0)
    keys = {draw_question(corpus, level, np.random.default_rng(seed)).key for seed in range(3000)}
    assert len(keys) > 2000


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"level": 4}, "level=4; choose one of (1, 2, 3)"),
        ({"world": -1}, "world=-1; it must be an integer >= 0"),
    ],
)
def test_bad_kwargs_are_one_clear_line(kwargs, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        palaestra.make(IDS[2], **kwargs)


# -- determinism and the index -------------------------------------------------------------------------
def test_same_seed_same_question_and_same_ranking():
    first, second = palaestra.make(IDS[3]), palaestra.make(IDS[3])
    for seed in (0, 7, 2024):
        (q1, i1), (q2, i2) = first.reset(seed=seed), second.reset(seed=seed)
        assert (q1, i1) == (q2, i2)
        for env in (first, second):
            env.step(_call(env, "search", query=q1, k=10))
        assert first.unwrapped.index.search(q1, 10) == second.unwrapped.index.search(q1, 10)


def test_the_index_is_built_once_then_read_from_memory_and_disk(cache, monkeypatch):
    first = palaestra.make(IDS[1], world=3)
    assert first.unwrapped.index.origin == "built" and len(list(cache.glob("*/manifest.json"))) == 1
    second = palaestra.make(IDS[2], world=3)
    assert second.unwrapped.index is first.unwrapped.index  # same process: not even read again
    expected = first.unwrapped.index.search("river population", 8)

    def no_build(*args, **kwargs):
        raise AssertionError("the index was rebuilt")

    monkeypatch.setattr(bm25s.BM25, "index", no_build)
    forget_indexes()  # a new process: the disk cache serves it
    third = palaestra.make(IDS[3], world=3)
    assert third.unwrapped.index.origin == "disk"
    assert third.unwrapped.index.search("river population", 8) == expected
    assert not list(cache.glob(".*.tmp"))  # no temporary folder left behind


def test_a_damaged_cache_file_is_rebuilt(cache):
    built = load_index(make_corpus(3))
    (data,) = cache.glob("*/data.csc.index.npy")
    data.write_bytes(data.read_bytes()[:-16] + b"\x00" * 16)  # same size, wrong numbers
    forget_indexes()
    with pytest.warns(UserWarning, match="damaged"):
        rebuilt = load_index(make_corpus(3))
    assert rebuilt.origin == "built" and rebuilt.search("mayor", 5) == built.search("mayor", 5)
    forget_indexes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_index(make_corpus(3)).origin == "disk"  # the rebuilt cache is whole again


# -- tools and judging ---------------------------------------------------------------------------------
def test_search_ranks_documents_and_open_shows_one(env):
    env.reset(seed=0)
    doc = env.unwrapped.corpus.documents[42]
    observation, reward, terminated, _, info = env.step(_call(env, "search", query=doc.title, k=3))
    assert info["role"] == "tool" and info["format_error"] is None and not terminated and reward == 0
    lines = observation.splitlines()
    assert lines[0].startswith(f"1. {doc.doc_id} | {doc.title}") and len(lines) == 6  # 3 hits, 2 lines each
    observation, *_ = env.step(_call(env, "open", doc_id=doc.doc_id))
    assert observation == f"{doc.doc_id} | {doc.title}\n{doc.text}"
    observation, _, _, _, info = env.step(_call(env, "search", query="zzzz qqqq"))
    assert observation == "No document matches 'zzzz qqqq'." and info["format_error"] is None


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("search", {}, "'query' is a required property"),
        ("search", {"query": "   "}, "does not match"),
        ("search", {"query": "kesh", "k": 0}, "less than the minimum"),
        ("search", {"query": "kesh", "k": "5"}, "is not of type 'integer'"),
        ("search", {"query": "kesh", "top": 5}, "Additional properties"),
        ("open", {"doc_id": 17}, "is not of type 'string'"),
        ("open", {"doc_id": "17"}, "does not match"),
        ("browse", {"url": "x"}, "unknown tool 'browse'"),
    ],
)
def test_bad_tool_arguments_are_format_errors(env, name, arguments, expected):
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step(_call(env, name, **arguments))
    assert expected in info["format_error"] and expected in observation
    assert reward == 0 and not terminated
    assert "expert_action" in info


def test_an_unknown_document_is_an_error_the_agent_sees(env):
    env.reset(seed=0)
    observation, _, terminated, _, info = env.step(_call(env, "open", doc_id="D99999"))
    assert info["format_error"] is None and not terminated
    assert observation == "Error: no document 'D99999'; use an id that search listed"


def test_answers_are_judged_exactly_after_normalisation(env):
    _, info = env.reset(seed=4)
    answer = env.unwrapped.question.answer
    for reply, right in [
        (f"  the {answer.upper()}. ", True),
        (answer.lower().replace(" ", "   "), True),
        (f"{answer} city", False),
        (answer[:-1], False),
        ("", False),
    ]:
        env.reset(seed=4)
        _, reward, terminated, _, info = env.step(reply)
        assert terminated and reward == float(right) and info["success"] is right, reply
    assert normalize_answer("An Ossel, the river!") == "ossel river"
    assert normalize_answer("3,149,204") == "3149204"


# -- the expert and the baselines ----------------------------------------------------------------------
@pytest.mark.parametrize("level", [1, 2, 3])
def test_the_expert_solves_every_level_through_the_rollout(level):
    tasks = [Task(IDS[level], seed) for seed in range(40)]
    trajectories = rollout(OraclePolicy(), tasks)
    assert all(t.error is None and t.success for t in trajectories), [t.error for t in trajectories]
    searches = [sum('"search"' in turn.action for turn in t.turns) for t in trajectories]
    assert min(searches) >= 1  # it really searches
    assert max(len(t.turns) for t in trajectories) <= MAX_TURNS[level]


def test_the_experts_episode_is_token_exact_with_tool_results_untrained(smollm2_tokenizer):
    (traj,) = rollout(OraclePolicy(tokenizer=smollm2_tokenizer), [Task(IDS[3], seed=0)])
    traj.check()
    assert traj.success and traj.error is None
    tool_messages = [m for m in traj.messages if m["role"] == "tool"]
    assert len(tool_messages) == traj.num_turns - 1  # one call per reply, then the answer
    assert sum(traj.loss_mask) == sum(end - start for start, end in (t.token_span for t in traj.turns))
    assert '"name": "search"' in smollm2_tokenizer.decode(traj.token_ids[: traj.prompt_length])  # declared


def test_the_experts_calls_are_written_as_a_model_writes_them_and_reset_forgets_the_last_episode(env):
    _, info = env.reset(seed=1)
    fresh = info["expert_action"]
    for _ in range(3):
        assert '"id"' not in info["expert_action"]  # models write no call ids: the env numbers them
        _, _, _, _, info = env.step(info["expert_action"])
        assert [m["tool_call_id"] for m in info["tool_messages"]] == ["call_0"]
    assert env.reset(seed=1)[1]["expert_action"] == fresh


class _AnswerTopTitle:
    """A naive agent: searches the question, then answers the title of the best hit."""

    name = "naive"
    tokenizer = None

    async def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        out = []
        for r in requests:
            last = str(r.messages[-1]["content"])
            if sum(m["role"] != "system" for m in r.messages) == 1:  # the question
                call = {"name": "search", "arguments": {"query": last, "k": 1}}
                out.append(Generation(text=f"<tool_call>{json.dumps(call)}</tool_call>"))
            else:  # "1. D00417 | Title\n   snippet"
                out.append(Generation(text=last.split("|", 1)[-1].split("\n")[0].strip()))
        return out

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("policy", [RandomPolicy(seed=0), _AnswerTopTitle()], ids=["random", "naive"])
def test_random_and_naive_agents_do_not_solve_it(policy):
    tasks = [Task(IDS[level], seed) for level in (1, 2, 3) for seed in range(20)]
    trajectories = rollout(policy, tasks)
    assert all(t.error is None for t in trajectories)
    assert sum(t.success for t in trajectories) <= 1
