"""TicTacToe and the VersusEnv wrapper: rules, opponents, seats, format errors, forfeits."""

from __future__ import annotations

import copy

import pytest

import palaestra
from palaestra.agents.spec import make_policy
from palaestra.envs.games.tictactoe import TicTacToe, best_moves, winner_of
from palaestra.evaluation import evaluate


def test_winner_and_minimax():
    assert winner_of("XXX......") == "X" and winner_of("O...O...O") == "O" and winner_of("XOXOXOOXO") is None
    assert best_moves("XX.OO....", "X") == [2]  # win now
    assert best_moves("X.X.O....", "O") == [1]  # block


@pytest.mark.parametrize(
    ("difficulty", "min_win", "max_loss"), [("easy", 0.6, 0.0), ("medium", 0.0, 0.0), ("hard", 0.0, 0.0)]
)
def test_oracle_never_loses(difficulty, min_win, max_loss):
    result = evaluate(
        make_policy("scripted:oracle"),
        "palaestra/Game-TicTacToe-v0",
        episodes=30,
        env_kwargs={"difficulty": difficulty},
    )
    outcomes = result.summary.outcomes
    assert outcomes["loss"] <= max_loss and outcomes["win"] >= min_win, outcomes


def test_random_text_forfeits_and_random_moves_lose_to_optimal():
    result = evaluate(
        make_policy("scripted:random"),
        "palaestra/Game-TicTacToe-v0",
        episodes=10,
        env_kwargs={"difficulty": "hard"},
    )
    assert result.summary.outcomes["loss"] == 1.0 and result.summary.error_rate == 0.0
    env = palaestra.make("palaestra/Game-TicTacToe-v0", difficulty="hard").unwrapped
    losses = 0
    for seed in range(20):
        _, info = env.reset(seed=seed)
        done = False
        while not done:
            legal = info["legal_actions"]
            _, _, terminated, truncated, info = env.step(legal[seed % len(legal)])
            done = terminated or truncated
        losses += info["outcome"] == "loss"
    assert losses >= 10


def test_format_errors_are_answered_and_repeated_ones_forfeit():
    env = palaestra.make("palaestra/Game-TicTacToe-v0", seat="first", difficulty="easy").unwrapped
    _, info = env.reset(seed=0)
    observation, reward, terminated, _, info = env.step("I take the middle.")
    assert info["format_error"] and "Invalid move" in observation and not terminated
    env.step("[5]")
    observation, _, _, _, info = env.step("[5]")
    assert info["format_error"] == "cell 5 is taken"
    for _ in range(2):
        observation, reward, terminated, _, info = env.step("[0]")
    assert terminated and info["outcome"] == "loss" and reward == 0.0 and "forfeit" in observation


def test_seats_and_opponent_choice():
    env = palaestra.make("palaestra/Game-TicTacToe-v0", seat="second", opponent="optimal").unwrapped
    observation, info = env.reset(seed=1)
    assert (
        info["seat"] == "player_1"
        and info["opponent"] == "optimal"
        and "Your opponent (X) played" in observation
    )
    seats = {
        palaestra.make("palaestra/Game-TicTacToe-v0").unwrapped.reset(seed=s)[1]["seat"] for s in range(10)
    }
    assert seats == {"player_0", "player_1"}
    with pytest.raises(ValueError, match="opponent"):
        palaestra.make("palaestra/Game-TicTacToe-v0", opponent="grandmaster")
    with pytest.raises(ValueError, match="difficulty"):
        palaestra.make("palaestra/Game-TicTacToe-v0", difficulty="impossible")


def test_raw_multiplayer_protocol():
    game = TicTacToe()
    game.reset(seed=0)
    assert game.agent_selection == "player_0" and game.infos["player_0"]["legal_actions"][0] == "[1]"
    for move in ("[1]", "[4]", "[2]", "[5]", "[3]"):
        game.step(move)
    assert game.game_over and game.winner == "player_0"
    assert game.rewards == {"player_0": 1.0, "player_1": 0.0}
    assert game.terminations == {"player_0": True, "player_1": True}
    assert game.infos["player_0"]["success"] and not game.infos["player_1"]["success"]
    with pytest.raises(RuntimeError, match="finished game"):
        game.step("[9]")


def test_infos_are_built_when_read_and_belong_to_their_step(monkeypatch):
    game = TicTacToe()
    searches = []
    expert = game.expert_action
    monkeypatch.setattr(game, "expert_action", lambda agent: searches.append(agent) or expert(agent))
    game.reset(seed=0)
    for move in ("[1]", "[5]", "[x]"):  # player_0's "[x]" is a format error: player_0 moves again
        game.step(move)
    assert searches == []  # no info read, no search
    infos = game.infos
    mover = infos["player_0"]
    assert mover["format_error"] and mover["to_move"] == "player_0" and mover["turn"] == 3
    assert mover["expert_action"] == f"[{best_moves('X...O....', 'X')[0] + 1}]"
    assert mover["legal_actions"] == ["[2]", "[3]", "[4]", "[6]", "[7]", "[8]", "[9]"]
    assert infos["player_0"] is mover and searches == ["player_0"]  # built once
    game.step("[9]")
    assert infos["player_0"] is mover  # what was read stays readable
    with pytest.raises(RuntimeError, match="earlier step"):
        infos["player_1"]
    assert "expert_action" in game.infos["player_1"] and "expert_action" not in game.infos["player_0"]
    game.infos["player_0"] = {"note": 1}
    assert dict(game.infos)["player_0"] == {"note": 1} and len(game.infos) == 2
    with pytest.raises(KeyError):
        game.infos["player_2"]
    branch = copy.deepcopy(game)  # a copy's infos are built from the copy
    branch.step("[2]")
    assert game.infos["player_1"]["turn"] == 4 and branch.infos["player_1"]["turn"] == 5


def test_random_legal_baseline_plays_legal_moves_and_loses_to_optimal():
    result = evaluate(
        make_policy("scripted:random-legal"),
        "palaestra/Game-TicTacToe-v0",
        episodes=20,
        env_kwargs={"difficulty": "hard"},
    )
    assert result.summary.format_error_rate == 0.0
    assert result.summary.outcomes["win"] == 0.0 and result.summary.outcomes["loss"] >= 0.5
    text_only = evaluate(make_policy("scripted:random-legal"), "palaestra/Math-Arith-v0", episodes=3)
    assert text_only.summary.error_rate == 0.0  # no legal_actions: random text


TWO_PLAYER = [
    "palaestra/Game-TicTacToe-v0",
    "palaestra/Game-ConnectFour-v0",
    "palaestra/Game-Negotiation-v0",
    "palaestra/Game-RockPaperScissors-v0",
]


@pytest.mark.parametrize("env_id", TWO_PLAYER)
@pytest.mark.parametrize("policy", ["scripted:oracle", "scripted:random-legal"])
def test_shaped_two_player_returns_stay_in_range_and_end_at_the_outcome(env_id, policy):
    result = evaluate(
        make_policy(policy), env_id, episodes=8, env_kwargs={"shaped": True, "difficulty": "easy"}
    )
    assert result.summary.error_rate == 0.0
    for traj in result.trajectories:
        total = sum(turn.reward for turn in traj.turns)
        assert -1e-9 <= total <= 1.0 + 1e-9
        board_game = "TicTacToe" in env_id or "ConnectFour" in env_id
        if board_game and traj.turns[-1].info.get("outcome") == "win":
            assert total == pytest.approx(1.0)


def test_shaping_pays_progress_before_the_end():
    env = palaestra.make("palaestra/Game-RockPaperScissors-v0", shaped=True, difficulty="medium").unwrapped
    plain = palaestra.make("palaestra/Game-RockPaperScissors-v0", difficulty="medium").unwrapped
    for e in (env, plain):
        _, info = e.reset(seed=3)
    early, plain_early = [], []
    for _ in range(4):
        _, r, *_, info = env.step(info["expert_action"])
        early.append(r)
    _, pinfo = plain.reset(seed=3)
    for _ in range(4):
        _, r, *_, pinfo = plain.step(pinfo["expert_action"])
        plain_early.append(r)
    assert sum(early) > 0.0 and sum(plain_early) == 0.0
