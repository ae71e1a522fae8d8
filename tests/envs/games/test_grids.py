"""Grid puzzles (Sokoban, FrozenLake, Minesweeper): oracle and random rates, rules, seeding, shaping."""

from __future__ import annotations

import time

import numpy as np
import pytest

import palaestra
from palaestra.agents.spec import make_policy
from palaestra.evaluation import evaluate

SOKOBAN, FROZENLAKE, MINESWEEPER = (
    "palaestra/Game-Sokoban-v0",
    "palaestra/Game-FrozenLake-v0",
    "palaestra/Game-Minesweeper-v0",
)
GAMES = (SOKOBAN, FROZENLAKE, MINESWEEPER)
DIFFICULTIES = ("easy", "medium", "hard")
MINESWEEPER_FLOOR = {"easy": 0.8, "medium": 0.7, "hard": 0.45}
"""Oracle win rate floors: the expert's measured rates (seeds 0-999: 0.92 / 0.85 / 0.60; seeds 0-39: 0.875 / 0.825 / 0.575) minus a margin
for the 40 episodes sampled here."""


def _play(env, policy, seed: int, rng: np.random.Generator | None = None) -> tuple[float, dict]:
    """One episode; policy "oracle" replies with info["expert_action"], "random" with a random legal action."""
    _, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        legal = info["legal_actions"]
        action = info["expert_action"] if policy == "oracle" else legal[int(rng.integers(len(legal)))]
        _, reward, terminated, truncated, info = env.step(action)
        total, done = total + reward, terminated or truncated
    return total, info


# -- oracle and baselines through the public evaluation API -----------------------------------------
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("env_id", [SOKOBAN, FROZENLAKE])
def test_oracle_solves_every_generated_level(env_id, difficulty):
    episodes = 12 if env_id == SOKOBAN else 30
    result = evaluate(
        make_policy("scripted:oracle"), env_id, episodes=episodes, env_kwargs={"difficulty": difficulty}
    )
    assert result.summary.success_rate == 1.0
    assert result.summary.format_error_rate == 0.0


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_minesweeper_oracle_wins_at_its_measured_rate(difficulty):
    result = evaluate(
        make_policy("scripted:oracle"), MINESWEEPER, episodes=40, env_kwargs={"difficulty": difficulty}
    )
    assert result.summary.success_rate >= MINESWEEPER_FLOOR[difficulty]


@pytest.mark.parametrize("env_id", GAMES)
def test_random_text_scores_zero_and_every_reply_is_a_format_error(env_id):
    result = evaluate(make_policy("scripted:random"), env_id, episodes=3, env_kwargs={"difficulty": "easy"})
    assert result.summary.success_rate == 0.0
    assert result.summary.format_error_rate == 1.0


@pytest.mark.parametrize(("env_id", "ceiling"), [(SOKOBAN, 0.1), (FROZENLAKE, 0.15), (MINESWEEPER, 0.05)])
def test_random_legal_moves_score_low(env_id, ceiling):
    env = palaestra.make(env_id, difficulty="medium").unwrapped
    rng = np.random.default_rng(0)
    wins = [_play(env, "random", seed, rng)[1]["success"] for seed in range(20 if env_id == SOKOBAN else 40)]
    assert np.mean(wins) <= ceiling


# -- format errors, seeding, shaping ----------------------------------------------------------------
@pytest.mark.parametrize("env_id", GAMES)
def test_format_errors_are_answered_and_count_as_a_turn(env_id):
    env = palaestra.make(env_id).unwrapped
    env.reset(seed=0)
    for reply in ("I would go somewhere.", "[jump 3]", "[up] then [teleport]"):
        observation, reward, terminated, truncated, info = env.step(reply)
        assert info["format_error"] and "Invalid move" in observation and "square brackets" in observation
        assert reward == 0.0 and not terminated and not truncated
    assert info["turn"] == 3 and "expert_action" in info


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("env_id", GAMES)
def test_same_seed_gives_the_same_level(env_id, difficulty):
    first, second = (
        palaestra.make(env_id, difficulty=difficulty),
        palaestra.make(env_id, difficulty=difficulty),
    )
    obs_a, info_a = first.reset(seed=7)
    obs_b, info_b = second.reset(seed=7)
    assert obs_a == obs_b and info_a["task_id"] == info_b["task_id"]
    assert difficulty in info_a["task_id"]
    ids = {first.reset(seed=seed)[1]["task_id"] for seed in range(10)}
    assert len(ids) >= 8  # seeds give different levels


@pytest.mark.parametrize("env_id", GAMES)
def test_shaped_returns_stay_in_range_and_success_returns_one(env_id):
    env = palaestra.make(env_id, difficulty="easy", shaped=True).unwrapped
    rng = np.random.default_rng(1)
    for seed in range(8):
        total, info = _play(env, "oracle", seed)
        assert total == pytest.approx(1.0) if info["success"] else 0.0 <= total < 0.5
        total, info = _play(env, "random", seed, rng)
        assert total == pytest.approx(1.0) if info["success"] else 0.0 <= total < 0.5
    _, info = env.reset(seed=0)
    _, reward, *_ = env.step(info["expert_action"])
    assert 0.0 <= reward <= 0.5


@pytest.mark.parametrize("env_id", GAMES)
def test_bad_kwargs_and_options_raise(env_id):
    with pytest.raises(ValueError, match="difficulty"):
        palaestra.make(env_id, difficulty="impossible")
    with pytest.raises(TypeError):
        palaestra.make(env_id, colour="blue")
    with pytest.raises(ValueError, match="unknown reset options"):
        palaestra.make(env_id).reset(seed=0, options={"nonsense": 1})


def test_generation_is_fast():
    env = palaestra.make(SOKOBAN, difficulty="hard").unwrapped
    start = time.perf_counter()
    for seed in range(20):
        env.reset(seed=seed)
    assert (time.perf_counter() - start) / 20 < 0.2  # ~30 ms typical; loose for slow CI machines


# -- Sokoban rules ----------------------------------------------------------------------------------
def _sokoban(level: str):
    env = palaestra.make(SOKOBAN).unwrapped
    observation, info = env.reset(seed=0, options={"level": level})
    return env, observation, info


def test_sokoban_pushing_a_box_into_a_wall_does_nothing():
    env, before, _ = _sokoban("######\n#  . #\n# @$##\n######")
    observation, reward, terminated, _, info = env.step("[right]")
    assert "cannot move right: a wall" in observation and reward == 0.0 and not terminated
    assert observation.split("\n")[1:5] == before.split("\n")[1:5]  # same grid
    assert info["format_error"] is None and info["turn"] == 1
    observation, *_ = env.step("[R]")  # aliases work too
    assert "cannot move right" in observation


def test_sokoban_box_on_goal_renders_as_star_and_solves():
    env, observation, info = _sokoban("#####\n#@$.#\n#####")
    assert "#@$.#" in observation and info["expert_action"] == "[right]"
    observation, reward, terminated, _, info = env.step("Push it. [right]")
    assert "# @*#" in observation and "Boxes on goals: 1/1" in observation
    assert reward == 1.0 and terminated and info["success"]


def test_sokoban_player_on_goal_and_walls_render():
    env, observation, _ = _sokoban("######\n#+ $ #\n######")
    assert "#+ $ #" in observation
    observation, *_ = env.step("[left]")
    assert "walked into a wall" in observation
    observation, *_ = env.step("[right]")
    assert "#.@$ #" in observation


def test_sokoban_expert_replans_after_a_detour():
    level = "#######\n#     #\n# $ . #\n#  @  #\n#######"
    env, _, info = _sokoban(level)
    for detour in ("[down]", "[left]", "[left]", "[up]"):
        _, _, terminated, _, info = env.step(detour)
        assert not terminated
    for _ in range(20):
        _, _, terminated, _, info = env.step(info["expert_action"])
        if terminated:
            break
    assert info["success"]


def test_sokoban_deadlock_goes_on_until_the_step_limit():
    env = palaestra.make(SOKOBAN, max_steps=5).unwrapped
    env.reset(seed=0, options={"level": "#####\n#  $#\n#@  #\n# . #\n#####"})
    _, _, terminated, truncated, info = env.step("[up]")
    assert not terminated and not truncated  # the box in the corner is stuck, the episode goes on
    for _ in range(4):
        _, _, terminated, truncated, info = env.step(info["expert_action"])
    assert truncated and not terminated and not info["success"]


# -- FrozenLake rules -------------------------------------------------------------------------------
def test_frozenlake_hole_ends_the_episode_and_goal_wins():
    env = palaestra.make(FROZENLAKE).unwrapped
    observation, info = env.reset(seed=0, options={"map": ["SFF", "HFH", "FFG"]})
    assert "P F F" in observation and info["expert_action"] in ("[right]",)
    observation, _, _, _, _ = env.step("[left]")
    assert "edge" in observation
    observation, reward, terminated, _, info = env.step("[down]")
    assert terminated and reward == 0.0 and not info["success"] and "hole" in observation
    env.reset(seed=0, options={"map": ["SFF", "HFH", "FFG"]})
    for move in ("[right]", "[D]", "[down]", "right! [r]"):
        _, reward, terminated, _, info = env.step(move)
    assert terminated and reward == 1.0 and info["success"]


def test_frozenlake_slippery_is_seeded_and_the_oracle_mostly_wins():
    env = palaestra.make(FROZENLAKE, difficulty="easy", slippery=True).unwrapped
    runs = [[_play(env, "oracle", seed)[1]["turn"] for seed in range(5)] for _ in range(2)]
    assert runs[0] == runs[1]
    wins = [_play(env, "oracle", seed)[1]["success"] for seed in range(40)]
    assert np.mean(wins) >= 0.8  # measured 0.94 over 100 seeds


# -- Minesweeper rules ------------------------------------------------------------------------------
def test_minesweeper_flood_fill_opens_the_board():
    env = palaestra.make(MINESWEEPER, difficulty="easy").unwrapped
    observation, _ = env.reset(seed=0, options={"mines": [(3, 4), (4, 3), (4, 4)]})
    observation, reward, terminated, _, info = env.step("[reveal 0 0]")
    assert "Revealed 22 cells" in observation and terminated and reward == 1.0 and info["success"]
    assert "\n2 0 0 0 1 1\n3 0 0 1 3 #\n4 0 0 1 # #\n" in observation


def test_minesweeper_mine_loses_and_flags_toggle():
    env = palaestra.make(MINESWEEPER, difficulty="easy").unwrapped
    env.reset(seed=0, options={"mines": [(3, 4), (4, 3), (4, 4)]})
    observation, *_ = env.step("[flag 4 4]")
    assert "Flagged" in observation and observation.split("\n")[6].endswith("F")
    _, _, _, _, info = env.step("[reveal 4 4]")
    assert info["format_error"] and "flagged" in info["format_error"]
    env.step("[unflag 4 4]")
    observation, reward, terminated, _, info = env.step("[reveal 4 4]")
    assert terminated and reward == 0.0 and not info["success"] and "*" in observation


def test_minesweeper_first_reveal_is_always_safe_and_opens_an_area():
    env = palaestra.make(MINESWEEPER, difficulty="hard").unwrapped
    rng = np.random.default_rng(0)
    for seed in range(30):
        env.reset(seed=seed)
        r, c = rng.integers(10, size=2)
        observation, _, terminated, _, info = env.step(f"[r {r},{c}]")
        assert not terminated and info["format_error"] is None
        assert "Revealed 1 cell." not in observation
