"""The guessing puzzles (Wordle, Hangman, Mastermind, GuessTheNumber) through `palaestra.make` and
`evaluate`: expert and random baselines, feedback on hand-made cases, format errors, shaped rewards,
difficulty presets and seeding.

Success rates measured with more episodes (seeds 0..299) when the thresholds were set:
    oracle: Wordle easy/medium 1.0, hard 0.997; Hangman easy 1.0, medium 0.99, hard 0.88;
        Mastermind 1.0 at every difficulty; GuessTheNumber 1.0 at every difficulty.
    random legal guesses: Wordle <= 0.01; Hangman <= 0.01; Mastermind <= 0.007;
        GuessTheNumber easy 0.23, medium 0.08, hard ~0.01 (chance: guesses / range).
"""

from __future__ import annotations

import numpy as np
import pytest

import palaestra
from palaestra.agents.spec import make_policy
from palaestra.envs.games.mastermind import score_code
from palaestra.envs.games.wordle import (
    PatternBook,
    best_guess,
    hard_mode_error,
    load_words,
    marks_code,
    score_guess,
)
from palaestra.evaluation import evaluate

WORDLE, HANGMAN, MASTERMIND, NUMBER = (
    "palaestra/Game-Wordle-v0",
    "palaestra/Game-Hangman-v0",
    "palaestra/Game-Mastermind-v0",
    "palaestra/Game-GuessTheNumber-v0",
)
PUZZLES = (WORDLE, HANGMAN, MASTERMIND, NUMBER)
DIFFICULTIES = ("easy", "medium", "hard")


def _play(env, policy, seed: int, rng: np.random.Generator) -> tuple[list[float], dict]:
    """One episode; `policy(info, rng, env)` -> reply. Returns the step rewards and the last info."""
    _, info = env.reset(seed=seed)
    rewards, done = [], False
    while not done:
        _, reward, terminated, truncated, info = env.step(policy(info, rng, env))
        rewards.append(reward)
        done = terminated or truncated
    return rewards, info


def _expert(info, rng, env) -> str:
    return info["expert_action"]


def _random_legal(info, rng, env) -> str:
    """A random legal guess that ignores the feedback."""
    if "legal_actions" in info:
        return info["legal_actions"][int(rng.integers(len(info["legal_actions"])))]
    game = env.unwrapped
    if game.game == "wordle":
        words = load_words("words5.txt")
        return f"[{words[int(rng.integers(len(words)))]}]"
    if game.game == "mastermind":
        code = rng.integers(1, game.setting.colours + 1, size=game.setting.pegs)
        return "[" + " ".join(map(str, code)) + "]"
    return f"[{int(rng.integers(1, game.high + 1))}]"  # guess-number without legal_actions (hard)


# -- registration ---------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", PUZZLES)
def test_registered_card_matches_the_env(env_id):
    card = palaestra.env_card(env_id)
    env = palaestra.make(env_id)
    assert card.family == "Game" and card.reward_range == (0.0, 1.0)
    assert card.max_turns == env.unwrapped.max_turns


@pytest.mark.parametrize("env_id", PUZZLES)
def test_bad_kwargs_are_rejected(env_id):
    with pytest.raises(ValueError, match="difficulty"):
        palaestra.make(env_id, difficulty="impossible")
    with pytest.raises(ValueError, match="shaped"):
        palaestra.make(env_id, shaped="yes")
    with pytest.raises(TypeError):
        palaestra.make(env_id, difficulty="easy", colour_blind=True)
    env = palaestra.make(env_id)
    with pytest.raises(ValueError, match="options"):
        env.reset(seed=0, options={"level": 3})


# -- expert and random baselines ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "difficulty", "episodes", "threshold"),
    [
        (WORDLE, "medium", 40, 0.95),
        (WORDLE, "hard", 30, 0.9),
        (HANGMAN, "easy", 20, 1.0),
        (HANGMAN, "medium", 60, 0.9),
        (HANGMAN, "hard", 60, 0.75),
        (MASTERMIND, "easy", 30, 1.0),
        (MASTERMIND, "medium", 30, 1.0),
        (MASTERMIND, "hard", 10, 1.0),
        (NUMBER, "easy", 30, 1.0),
        (NUMBER, "medium", 30, 1.0),
        (NUMBER, "hard", 30, 1.0),
    ],
)
def test_oracle_solves_the_puzzle(env_id, difficulty, episodes, threshold):
    result = evaluate(
        make_policy("scripted:oracle"), env_id, episodes=episodes, env_kwargs={"difficulty": difficulty}
    )
    assert result.summary.success_rate >= threshold, result.summary
    assert result.summary.format_error_rate == 0.0


@pytest.mark.parametrize("env_id", PUZZLES)
def test_random_text_never_solves_and_is_answered(env_id):
    result = evaluate(make_policy("scripted:random"), env_id, episodes=5)
    assert result.summary.success_rate == 0.0
    assert result.summary.format_error_rate == 1.0 and result.summary.error_rate == 0.0


@pytest.mark.parametrize(
    ("env_id", "difficulty", "at_most"),
    [
        (WORDLE, "medium", 0.05),
        (HANGMAN, "medium", 0.1),
        (MASTERMIND, "medium", 0.05),
        (NUMBER, "medium", 0.25),
    ],
)
def test_random_legal_guesses_score_low(env_id, difficulty, at_most):
    env, rng = palaestra.make(env_id, difficulty=difficulty), np.random.default_rng(0)
    wins = [_play(env, _random_legal, seed, rng)[1]["success"] for seed in range(40)]
    assert np.mean(wins) <= at_most


# -- feedback on hand-made cases ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("guess", "answer", "marks"),
    [
        ("crane", "crane", "GGGGG"),
        ("babes", "abbey", "YYGGX"),
        ("bobby", "abbey", "YXGXG"),  # the third B finds no unmatched copy
        ("speed", "abide", "XXYXY"),  # one E in the answer: only the first E is yellow
        ("geese", "eerie", "XGYXG"),
        ("llama", "hello", "YYXXX"),
        ("allot", "hello", "XYGYX"),
    ],
)
def test_wordle_feedback_handles_repeated_letters(guess, answer, marks):
    assert score_guess(guess, answer) == marks
    assert int(PatternBook([answer]).row(guess)[0]) == marks_code(marks)


def test_wordle_pattern_book_matches_the_word_by_word_rule():
    words = load_words("words5.txt")
    book, rng = PatternBook(words), np.random.default_rng(0)
    for i in rng.integers(len(words), size=40):
        row = book.row(words[i])
        assert all(int(row[j]) == marks_code(score_guess(words[i], words[j])) for j in range(len(words)))
    for n in (3, 40, 300):
        candidates = np.sort(rng.choice(len(words), size=n, replace=False))
        assert book.best(candidates) == best_guess([words[j] for j in candidates])


def test_wordle_candidates_and_expert_follow_the_feedback():
    env = palaestra.make(WORDLE, difficulty="hard")
    env.reset(seed=0, options={"answer": "abbey"})
    _, _, _, _, info = env.step("[tabby]")
    game = env.unwrapped
    everything = load_words("words5.txt")
    assert game.candidates == [w for w in everything if score_guess("tabby", w) == "XYGYG"]
    assert info["expert_action"] == f"[{best_guess(game.candidates)}]"


def test_wordle_env_scores_guesses_and_rejects_non_words():
    env = palaestra.make(WORDLE, difficulty="hard")
    env.reset(seed=0, options={"answer": "abbey"})
    observation, reward, terminated, _, info = env.step("My guess: [TABBY]")
    assert "XYGYG" in observation and reward == 0.0 and not terminated and info["guesses_left"] == 5
    for reply, why in [("tabby", "square brackets"), ("[bab]", "5-letter"), ("[qzxvw]", "word list")]:
        observation, _, terminated, _, info = env.step(reply)
        assert why in info["format_error"] and "Invalid move" in observation and not terminated
        assert info["guesses_left"] == 5
    _, reward, terminated, _, info = env.step("[abbey]")
    assert reward == 1.0 and terminated and info["success"]


def test_wordle_hard_mode_requires_the_hints():
    env = palaestra.make(WORDLE, difficulty="hard")
    env.reset(seed=0, options={"answer": "abbey"})
    env.step("[tabby]")  # XYGYG: B and Y green at 3 and 5; A and a second B elsewhere
    assert "letter 3 must be 'b'" in env.step("[crane]")[4]["format_error"]
    assert "must contain 'a'" in env.step("[hobby]")[4]["format_error"]
    assert "3 copies of 'e'" in hard_mode_error("fence", [("geese", score_guess("geese", "eerie"))])
    medium = palaestra.make(WORDLE, difficulty="medium")
    medium.reset(seed=0, options={"answer": "chase"})
    medium.step("[crane]")
    assert medium.step("[tulip]")[4]["format_error"] is None  # no hard mode below hard


@pytest.mark.parametrize(
    ("guess", "code", "pegs"),
    [
        ((1, 2, 3, 4), (1, 2, 3, 4), (4, 0)),
        ((1, 2, 3, 4), (4, 3, 2, 1), (0, 4)),
        ((1, 1, 2, 2), (1, 2, 1, 2), (2, 2)),
        ((1, 1, 1, 1), (1, 2, 3, 4), (1, 0)),
        ((1, 2, 3, 3), (3, 3, 3, 1), (1, 2)),
        ((5, 6, 5, 6), (1, 2, 3, 4), (0, 0)),
    ],
)
def test_mastermind_peg_counts(guess, code, pegs):
    assert score_code(guess, code) == pegs


def test_mastermind_env_answers_pegs_and_format_errors():
    env = palaestra.make(MASTERMIND, difficulty="medium")
    env.reset(seed=0, options={"answer": "1 2 1 2"})
    observation, *_ = env.step("[1 1 2 2]")
    assert "2 black, 2 white" in observation
    observation, *_ = env.step("[2,1,2,1]")
    assert "0 black, 4 white" in observation
    for reply, why in [("1 2 3 4", "square brackets"), ("[1 2 3]", "4 colour"), ("[1 2 3 9]", "colour 9")]:
        _, _, terminated, _, info = env.step(reply)
        assert why in info["format_error"] and not terminated and info["guesses_left"] == 8
    _, reward, terminated, _, info = env.step("[1212]")
    assert reward == 1.0 and terminated and info["success"]


def test_hangman_reveals_letters_and_counts_lives():
    env = palaestra.make(HANGMAN, difficulty="medium")
    _, info = env.reset(seed=0, options={"answer": "apple"})
    assert info["pattern"] == "_ _ _ _ _" and info["lives_left"] == 6 and len(info["legal_actions"]) == 26
    _, _, _, _, info = env.step("[p]")
    assert info["pattern"] == "_ p p _ _" and info["lives_left"] == 6 and "[p]" not in info["legal_actions"]
    _, _, _, _, info = env.step("[z]")
    assert info["lives_left"] == 5
    for reply, why in [
        ("[p]", "already guessed"),
        ("[ab]", "one letter"),
        ("[7]", "one letter"),
        ("p", "brackets"),
    ]:
        _, _, terminated, _, info = env.step(reply)
        assert why in info["format_error"] and info["lives_left"] == 5
    assert terminated  # the 4th invalid reply (max_format_errors=3) loses the game
    assert not info["success"]


def test_hangman_whole_word_guess():
    env = palaestra.make(HANGMAN, difficulty="medium")
    env.reset(seed=0, options={"answer": "apple"})
    _, _, _, _, info = env.step("[ample]")
    assert info["lives_left"] == 5 and info["expert_action"] != "[ample]"
    _, reward, terminated, _, info = env.step("It is [APPLE]")
    assert reward == 1.0 and terminated and info["success"]


def test_guess_the_number_hints_and_range():
    env = palaestra.make(NUMBER, difficulty="medium")
    _, info = env.reset(seed=0, options={"answer": 37})
    assert info["expert_action"] == "[50]" and len(info["legal_actions"]) == 100
    observation, _, _, _, info = env.step("[50]")
    assert "lower than 50" in observation and info["expert_action"] == "[25]"
    observation, _, _, _, info = env.step("I'll go with [25].")
    assert "higher than 25" in observation and info["expert_action"] == "[37]"
    for reply, why in [("[150]", "outside 1-100"), ("[forty]", "not a whole number")]:
        _, _, _, _, info = env.step(reply)
        assert why in info["format_error"] and info["guesses_left"] == 5
    assert env.step("[37]")[4]["success"]
    _, info = palaestra.make(NUMBER, difficulty="hard").reset(seed=0)
    assert "legal_actions" not in info  # 1000 numbers: too many to list


@pytest.mark.parametrize("env_id", PUZZLES)
def test_too_many_format_errors_lose_the_game(env_id):
    env = palaestra.make(env_id, max_format_errors=1)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("no idea")
    assert not terminated and info["format_error"] is not None
    observation, reward, terminated, _, info = env.step("still no idea")
    assert terminated and reward == 0.0 and not info["success"] and "you lose" in observation


# -- shaped rewards -------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", PUZZLES)
def test_shaped_returns_stay_in_range(env_id):
    env, rng = palaestra.make(env_id, shaped=True), np.random.default_rng(1)
    dense = False
    for seed in range(12):
        policy = _expert if seed % 2 else _random_legal
        rewards, info = _play(env, policy, seed, rng)
        total = sum(rewards)
        assert -1e-9 <= total <= 1.0 + 1e-9 and min(rewards) >= 0.0
        if info["success"]:
            assert total == pytest.approx(1.0)
        else:
            assert total < 0.5
        dense |= any(0.0 < r < 0.5 for r in rewards)
    assert dense, "shaped=True paid no progress reward"
    plain = palaestra.make(env_id)
    for seed in range(4):
        rewards, info = _play(plain, _random_legal, seed, rng)
        assert sum(rewards) == float(info["success"]) and set(rewards) <= {0.0, 1.0}


# -- difficulty and seeding -----------------------------------------------------------------------
def test_difficulty_changes_the_game():
    wordle = {d: palaestra.make(WORDLE, difficulty=d).unwrapped for d in DIFFICULTIES}
    assert [wordle[d].max_guesses for d in DIFFICULTIES] == [8, 6, 6]
    assert len(wordle["hard"].answers) > len(wordle["medium"].answers)
    assert "Hard mode" in wordle["hard"].system_prompt and "Hard mode" not in wordle["medium"].system_prompt

    hangman = {"easy": (8, 10, 8), "medium": (5, 7, 6), "hard": (4, 5, 6)}
    for difficulty, (low, high, lives) in hangman.items():
        env = palaestra.make(HANGMAN, difficulty=difficulty)
        infos = [env.reset(seed=s)[1] for s in range(15)]
        assert {len(info["pattern"].split()) for info in infos} <= set(range(low, high + 1))
        assert {info["lives_left"] for info in infos} == {lives}

    pegs = {
        d: palaestra.make(MASTERMIND, difficulty=d).reset(seed=0)[1]["expert_action"] for d in DIFFICULTIES
    }
    assert len(pegs["easy"][1:-1].split()) == 4 and len(pegs["hard"][1:-1].split()) == 5
    easy = palaestra.make(MASTERMIND, difficulty="easy")
    with pytest.raises(ValueError, match="not a easy code"):
        easy.reset(seed=0, options={"answer": "1 1 2 3"})  # easy codes repeat no colour

    highs = {d: palaestra.make(NUMBER, difficulty=d).unwrapped.high for d in DIFFICULTIES}
    assert highs == {"easy": 20, "medium": 100, "hard": 1000}


@pytest.mark.parametrize("env_id", PUZZLES)
def test_same_seed_same_game(env_id):
    def game(seed: int) -> tuple:
        env = palaestra.make(env_id)
        _, info = env.reset(seed=seed)
        rewards, last = _play(env, _expert, seed, np.random.default_rng(0))
        return info["task_id"], info["expert_action"], tuple(rewards), last["turn"]

    assert game(7) == game(7)
    assert len({game(seed)[0] for seed in range(8)}) > 4
    shaped = palaestra.make(env_id, shaped=True)
    assert shaped.reset(seed=7)[1]["task_id"] == game(7)[0]


@pytest.mark.parametrize(
    "env_id",
    [
        "palaestra/Game-GuessTheNumber-v0",
        "palaestra/Game-Mastermind-v0",
        "palaestra/Game-ConnectFour-v0",
        "palaestra/Game-TicTacToe-v0",
    ],
)
def test_unicode_digits_that_int_rejects_are_format_errors(env_id):
    env = palaestra.make(env_id)
    env.reset(seed=0)
    assert env.step("[²]")[4]["format_error"]  # "²".isdigit() is True, but int("²") raises
