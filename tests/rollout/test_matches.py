"""Multi-player matches: seats played by policies or scripted players, one trajectory per policy seat."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from palaestra.agents.base import Generation, GenerationRequest
from palaestra.agents.scripted import OraclePolicy
from palaestra.cli import app
from palaestra.evaluation import evaluate_against
from palaestra.rollout.matches import Match, play_matches

TTT = "palaestra/Game-TicTacToe-v0"


class ConcurrencyProbe:
    """Replies with the expert move; records how many requests were pending at once."""

    name = "probe"
    tokenizer = None

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.in_flight += len(requests)
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= len(requests)
        return [Generation(text=str(r.info["expert_action"])) for r in requests]

    async def close(self) -> None:
        pass


def test_self_play_gives_one_trajectory_per_seat_with_its_own_view(smollm2_tokenizer):
    policy = OraclePolicy(tokenizer=smollm2_tokenizer)
    (result,) = play_matches([Match(TTT, seed=3, seats={"player_0": policy, "player_1": policy})])
    assert result.error is None and result.winner is None  # optimal play draws
    assert set(result.trajectories) == {"player_0", "player_1"}
    x, o = result.trajectories["player_0"], result.trajectories["player_1"]
    assert "as X" in x.messages[0]["content"] and "as O" in o.messages[0]["content"]
    assert len(x.turns) == 5 and len(o.turns) == 4
    assert sum(t.reward for t in x.turns) == sum(t.reward for t in o.turns) == 0.5
    for traj in (x, o):
        assert traj.turns[-1].info["outcome"] == "draw" and traj.terminated
        replies = [i for i, m in zip(traj.token_ids, traj.loss_mask, strict=True) if m]
        assert len(replies) == sum(end - start for start, end in (t.token_span for t in traj.turns))


def test_policy_against_scripted_players_and_outcomes():
    policy = OraclePolicy()
    results = play_matches(
        [Match(TTT, seed=s, seats={"player_0": "random", "player_1": policy}) for s in range(20)]
    )
    outcomes = Counter(r.outcome("player_1") for r in results)
    assert outcomes["loss"] == 0 and outcomes["win"] > 0
    assert all(set(r.trajectories) == {"player_1"} for r in results)
    won = next(r for r in results if r.winner == "player_1")
    assert won.returns == {"player_0": 0.0, "player_1": 1.0} and won.trajectories["player_1"].success


def test_all_seats_of_all_matches_are_batched_together():
    probe = ConcurrencyProbe()
    play_matches([Match(TTT, seed=s, seats={"player_0": probe, "player_1": probe}) for s in range(8)])
    assert probe.peak >= 8, "requests of concurrent matches should reach the backend together"


def test_bad_seats_are_clear_errors():
    policy = OraclePolicy()
    with pytest.raises(ValueError, match="seats"):
        play_matches([Match(TTT, seed=0, seats={"player_0": policy})])
    with pytest.raises(ValueError, match="no scripted player"):
        play_matches([Match(TTT, seed=0, seats={"player_0": policy, "player_1": "grandmaster"})])
    with pytest.raises(ValueError, match="not a multi-player game"):
        play_matches([Match("palaestra/Math-Arith-v0", seed=0, seats={"player_0": policy})])


def test_a_failing_policy_ends_only_its_match():
    class Broken(ConcurrencyProbe):
        async def generate(self, requests):
            return [Generation(text="", finish_reason="error", error="backend down") for _ in requests]

    (result,) = play_matches([Match(TTT, seed=0, seats={"player_0": Broken(), "player_1": "random"})])
    assert result.error and "backend down" in result.error
    assert result.outcome("player_0") == "error" and not result.trajectories["player_0"].success


def test_evaluate_against_reports_win_draw_loss():
    policy = OraclePolicy()
    vs_random = evaluate_against(policy, TTT, "random", episodes=20)
    vs_optimal = evaluate_against(policy, TTT, "optimal", episodes=10)
    assert vs_random.summary.outcomes["loss"] == 0.0 and vs_random.summary.outcomes["win"] > 0.5
    assert vs_optimal.summary.outcomes == {"win": 0.0, "draw": 1.0, "loss": 0.0, "unfinished": 0.0}
    assert {t.env_kwargs["seat"] for t in vs_optimal.trajectories} == {"player_0", "player_1"}
    with pytest.raises(ValueError, match="offers"):
        evaluate_against(policy, TTT, "grandmaster", episodes=1)


def test_cli_eval_against_opponents():
    args = ["eval", "--env", TTT, "--agent", "scripted:oracle", "--episodes", "6", "--opponent", "optimal"]
    result = CliRunner().invoke(app, [*args, "--opponent", "self", "--no-progress"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "vs optimal" in result.output and "vs self" in result.output
    assert "draw" in result.output and "100.0%" in result.output
