"""The two-player duels: Connect Four, Negotiation and repeated Rock-Paper-Scissors.

Win rates are measured with the public `evaluate` API against each scripted opponent (thresholds sit
well below the rates measured on 40-200 episodes, quoted next to each); rules are checked by driving
the raw multi-agent protocol.
"""

from __future__ import annotations

import numpy as np
import pytest

import palaestra
from palaestra.agents.spec import make_policy
from palaestra.envs.games.connect_four import OPPONENTS as CF_OPPONENTS
from palaestra.envs.games.connect_four import ConnectFour, has_four
from palaestra.envs.games.negotiation import ITEMS, Negotiation, value_of
from palaestra.envs.games.rps import RockPaperScissors
from palaestra.evaluation import evaluate

CONNECT_FOUR = "palaestra/Game-ConnectFour-v0"
NEGOTIATION = "palaestra/Game-Negotiation-v0"
RPS = "palaestra/Game-RockPaperScissors-v0"


def _oracle(env_id: str, difficulty: str, episodes: int):
    return evaluate(
        make_policy("scripted:oracle"), env_id, episodes=episodes, env_kwargs={"difficulty": difficulty}
    ).summary


def _play(game, moves: list[str]) -> None:
    for move in moves:
        mover = game.agent_selection
        game.step(move)
        assert game.infos[mover]["format_error"] is None, (move, game.infos[mover])


# -- oracle and random baselines -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "difficulty", "episodes", "min_success", "min_reward"),
    [
        (CONNECT_FOUR, "easy", 10, 0.9, 0.9),  # measured on 40: success 1.00
        (CONNECT_FOUR, "medium", 10, 0.7, 0.8),  # 0.95, reward 0.98
        (CONNECT_FOUR, "hard", 10, 0.3, 0.5),  # 0.65, reward 0.78 (draws count 0.5)
        (NEGOTIATION, "easy", 40, 0.85, 0.65),  # 200: success 0.98, reward 0.80
        (NEGOTIATION, "medium", 40, 0.8, 0.6),  # 0.93, 0.69
        (NEGOTIATION, "hard", 40, 0.7, 0.55),  # 0.84, 0.63
        (RPS, "easy", 60, 0.65, 0.6),  # 200: success 0.81, reward 0.69
        (RPS, "medium", 60, 0.95, 0.75),  # 1.00, 0.86
    ],
)
def test_oracle_beats_the_scripted_opponents(env_id, difficulty, episodes, min_success, min_reward):
    summary = _oracle(env_id, difficulty, episodes)
    assert summary.error_rate == 0 and summary.format_error_rate == 0
    assert summary.success_rate >= min_success, summary
    assert summary.reward_mean >= min_reward, summary


def test_oracle_breaks_even_against_uniform_random_rps():
    summary = _oracle(RPS, "hard", 100)  # measured on 200: success 0.41, reward 0.49
    assert 0.25 <= summary.success_rate <= 0.6
    assert 0.4 <= summary.reward_mean <= 0.6


@pytest.mark.parametrize("env_id", [CONNECT_FOUR, NEGOTIATION, RPS])
def test_random_text_is_only_format_errors(env_id):
    summary = evaluate(make_policy("scripted:random"), env_id, episodes=4).summary
    assert summary.error_rate == 0
    assert summary.format_error_rate == 1.0
    assert summary.reward_mean == 0.0  # forfeits / walks away


def _random_legal_play(env_id: str, episodes: int, **kwargs) -> tuple[float, float]:
    """(success rate, mean return) of uniformly random legal moves."""
    env = palaestra.make(env_id, **kwargs)
    rng = np.random.default_rng(0)
    successes, returns = 0, 0.0
    for seed in range(episodes):
        _, info = env.reset(seed=seed)
        done = False
        while not done:
            legal = info["legal_actions"]
            _, reward, terminated, truncated, info = env.step(legal[int(rng.integers(len(legal)))])
            assert info["format_error"] is None
            returns += reward
            done = terminated or truncated
        successes += info["success"]
    return successes / episodes, returns / episodes


def test_random_legal_play_loses_to_the_search_opponent():
    success, _ = _random_legal_play(CONNECT_FOUR, 10, difficulty="hard")
    assert success == 0.0
    success, _ = _random_legal_play(CONNECT_FOUR, 10, difficulty="medium")
    assert success <= 0.1


def test_random_legal_play_bargains_worse_than_the_oracle():
    success, reward = _random_legal_play(NEGOTIATION, 40, difficulty="hard")  # measured: 0.35, 0.35
    oracle = _oracle(NEGOTIATION, "hard", 40)
    assert success < 0.55 and reward < oracle.reward_mean - 0.15


# -- Connect Four rules ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("moves", "winner"),
    [
        (["1", "1", "2", "2", "3", "3", "4"], "player_0"),  # bottom row
        (["5", "1", "2", "1", "3", "1", "7", "1"], "player_1"),  # column 1
        (["1", "2", "2", "3", "3", "4", "3", "4", "4", "7", "4"], "player_0"),  # diagonal /
        (["7", "6", "6", "5", "5", "4", "5", "4", "4", "1", "4"], "player_0"),  # diagonal \
    ],
)
def test_connect_four_detects_every_line(moves, winner):
    game = ConnectFour()
    game.reset(seed=0)
    for i, col in enumerate(moves):
        assert not game.game_over, f"ended early after {i} moves"
        game.step(f"I drop it here: [{col}]")
        assert game.infos[f"player_{i % 2}"]["format_error"] is None
    assert game.game_over and game.winner == winner
    assert game.rewards == {winner: 1.0, ("player_1" if winner == "player_0" else "player_0"): 0.0}
    assert game.infos[winner]["success"] and all(game.terminations.values())


def test_has_four_on_bitboards():
    assert has_four(0b1111)  # column 0, rows 0-3
    assert not has_four(0b111)
    assert has_four(sum(1 << (7 * c) for c in range(2, 6)))  # bottom row, columns 3-6
    assert has_four(sum(1 << (8 * i) for i in range(4)))  # diagonal /
    assert has_four(sum(1 << (3 + 6 * i) for i in range(4)))  # diagonal \ from (row 3, col 0)
    assert not has_four(sum(1 << (7 * c) for c in (0, 1, 2, 4)))


def test_connect_four_full_column_is_a_format_error():
    game = ConnectFour()
    game.reset(seed=0)
    for _ in range(3):  # X O X O X O in column 1: no four
        game.step("[1]")
        game.step("[1]")
    assert "[1]" not in game.legal_actions("player_0")
    game.step("[1]")
    assert game.agent_selection == "player_0" and "full" in game.infos["player_0"]["format_error"]
    assert not game.game_over
    assert "column 1 is full" in game.observe("player_0")
    game.step("[8]")
    assert "no column" in game.infos["player_0"]["format_error"]
    game.step("[2]")
    assert game.infos["player_0"]["format_error"] is None and game.agent_selection == "player_1"


def test_connect_four_forfeits_after_too_many_errors():
    game = ConnectFour(max_format_errors=1)
    game.reset(seed=0)
    game.step("hmm")
    game.step("still thinking")
    assert game.game_over and game.winner == "player_1" and game.rewards["player_1"] == 1.0


# -- Negotiation rules -----------------------------------------------------------------------------
def _negotiation(seed: int = 3, rounds: int = 2) -> Negotiation:
    game = Negotiation(rounds=rounds)
    game.reset(seed=seed)
    return game


def test_negotiation_values_are_private_and_worth_ten():
    game = _negotiation()
    for seat in game.possible_agents:
        assert value_of(game.values[seat], game.counts) == 10
    assert game.values["player_0"] != game.values["player_1"]
    view = game.observe("player_0")
    worth = ", ".join(f"{name[:-1]} {v}" for name, v in zip(ITEMS, game.values["player_0"], strict=True))
    assert worth in view
    other = ", ".join(f"{name[:-1]} {v}" for name, v in zip(ITEMS, game.values["player_1"], strict=True))
    assert other not in view


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("[propose: books=9 hats=0 balls=0]", "the pool has"),
        ("[propose: books=1 hats=0]", "once each"),
        ("[propose: books=1 hats=0 balls=0 books=1]", "once each"),
        ("[propose: books=1 hats=0 balls=0 please]", "once each"),
        ("[give me everything]", "no [propose"),
        ("[accept]", "no offer"),
        ("[reject]", "no offer"),
    ],
)
def test_negotiation_malformed_or_infeasible_moves_are_format_errors(reply, why):
    game = _negotiation()
    game.step(reply)
    assert why in game.infos["player_0"]["format_error"]
    assert game.agent_selection == "player_0" and game.moves == 0


def test_negotiation_deal_pays_each_seat_its_own_value():
    game = _negotiation()
    take = (game.counts[0], 0, 1)
    game.step(f"Let me open. [Propose: balls=1, books={take[0]} hats=0]")
    assert game.infos["player_0"]["format_error"] is None and game.agent_selection == "player_1"
    assert "Standing offer" in game.observe("player_1")
    game.step("[accept]")
    rest = tuple(c - t for c, t in zip(game.counts, take, strict=True))
    mine, theirs = value_of(game.values["player_0"], take), value_of(game.values["player_1"], rest)
    assert game.game_over and game.deal == {"player_0": take, "player_1": rest}
    assert game.rewards == {"player_0": mine / 10, "player_1": theirs / 10}
    assert game.infos["player_0"]["success"] == (mine >= 5)
    assert game.infos["player_1"]["success"] == (theirs >= 5)
    expected = None if mine == theirs else "player_0" if mine > theirs else "player_1"
    assert game.winner == expected


def test_negotiation_without_a_deal_pays_nothing():
    game = _negotiation(rounds=2)
    for move in ("[propose: books=0 hats=0 balls=0]", "[reject]", "[propose: books=1 hats=1 balls=1]"):
        game.step(move)
        assert not game.game_over
    game.step("[propose: books=0 hats=0 balls=0]")  # the 4th move is the last: nobody can accept it
    assert game.game_over and game.deal is None and game.winner is None
    assert game.rewards == {"player_0": 0.0, "player_1": 0.0}
    assert not any(info["success"] for info in game.infos.values())


def test_negotiation_env_success_is_a_good_deal_not_the_winner():
    env = palaestra.make(NEGOTIATION, difficulty="medium", seat="first")
    _, info = env.reset(seed=0)
    game = env.unwrapped.game
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(info["expert_action"])
        done = terminated or truncated
    share = game.deal["player_0"] if game.deal else None
    assert info["success"] == (share is not None and value_of(game.values["player_0"], share) >= 5)


# -- Rock-Paper-Scissors rules ---------------------------------------------------------------------
def test_rps_scores_and_rewards():
    game = RockPaperScissors(rounds=3)
    game.reset(seed=0)
    _play(game, ["[rock]", "[scissors]", "[rock]", "[paper]", "I go [PAPER]", "[paper]"])
    assert game.game_over and game.winner is None
    assert game.score("player_0") == (1, 1, 1) and game.score("player_1") == (1, 1, 1)
    assert game.rewards == {"player_0": 0.5, "player_1": 0.5}
    game.reset(seed=0)
    _play(game, ["[rock]", "[scissors]", "[scissors]", "[paper]", "[rock]", "[paper]"])
    assert game.winner == "player_0" and game.score("player_0") == (2, 1, 0)
    assert game.rewards["player_0"] == pytest.approx((1 / 3 + 1) / 2)
    assert game.rewards["player_1"] == pytest.approx((-1 / 3 + 1) / 2)
    assert game.infos["player_0"]["success"] and not game.infos["player_1"]["success"]


def test_rps_the_second_seat_cannot_see_the_first_seats_move():
    views = set()
    for first in ("[rock]", "[paper]", "[scissors]"):
        game = RockPaperScissors(rounds=2)
        game.reset(seed=0)
        game.step(first)
        views.add(game.observe("player_1"))
    assert len(views) == 1  # the same view whatever player_0 picked
    game.step("[rock]")
    assert "your opponent played scissors" in game.observe("player_1")


def test_rps_the_opponents_move_is_fixed_before_the_learner_moves():
    for seat in ("first", "second"):
        revealed = set()
        for reply in ("[rock]", "[paper]", "[scissors]"):
            env = palaestra.make(RPS, difficulty="hard", seat=seat)
            observation, _ = env.reset(seed=11)
            assert "your opponent played" not in observation
            observation, *_ = env.step(reply)
            revealed.add(observation.split("your opponent played ")[1].split(":")[0])
        assert len(revealed) == 1, (seat, revealed)


def test_rps_bad_move_is_a_format_error():
    game = RockPaperScissors()
    game.reset(seed=0)
    game.step("[lizard]")
    assert "no move" in game.infos["player_0"]["format_error"] and game.agent_selection == "player_0"


# -- determinism and the raw protocol --------------------------------------------------------------
@pytest.mark.parametrize("env_id", [CONNECT_FOUR, NEGOTIATION, RPS])
def test_same_seed_same_game(env_id):
    def transcript() -> list:
        env = palaestra.make(env_id, difficulty="hard")
        observation, info = env.reset(seed=5)
        out: list = [observation, info]
        for _ in range(4):
            result = env.step(info["expert_action"])
            out.append(result)
            info = result[-1]
            if result[2] or result[3]:
                break
        return out

    assert transcript() == transcript()


def test_raw_protocol_with_two_scripted_seats():
    game = ConnectFour(search_depth=2)
    game.reset(seed=1)
    rng = np.random.default_rng(0)
    players = {"player_0": "expert", "player_1": "random"}
    while not game.game_over:
        seat = game.agent_selection
        info = game.infos[seat]
        assert info["to_move"] == seat and "expert_action" in info and "legal_actions" in info
        other = "player_1" if seat == "player_0" else "player_0"
        assert "expert_action" not in game.infos[other]
        move = info["expert_action"] if players[seat] == "expert" else CF_OPPONENTS["random"](game, seat, rng)
        assert move in info["legal_actions"]
        game.step(move)
        if not game.game_over:
            assert game.rewards == {"player_0": 0.0, "player_1": 0.0}
            assert game.agent_selection == other
    assert game.winner == "player_0"
    assert game.rewards == {"player_0": 1.0, "player_1": 0.0}
    assert game.terminations == {"player_0": True, "player_1": True}
    assert game.truncations == {"player_0": False, "player_1": False}
    assert game.infos["player_0"]["success"] and not game.infos["player_1"]["success"]
    assert all(info["winner"] == "player_0" and info["to_move"] is None for info in game.infos.values())
    assert "you win" in game.observe("player_0") and "you lose" in game.observe("player_1")
    with pytest.raises(RuntimeError):
        game.step("[1]")
