"""TextArena adapter: single-player games, two-player games through the multi-player protocol, errors."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("textarena", reason="needs textarena: pip install 'palaestra[textarena]'")

import palaestra
import palaestra.envs.adapters  # registers the adapter ids
from palaestra.agents.base import Generation, GenerationRequest
from palaestra.cli import app
from palaestra.envs.adapters import textarena as ta_adapter
from palaestra.envs.adapters import textarena_checks as ta_checks
from palaestra.envs.adapters import textarena_opponent as ta_opponent
from palaestra.envs.adapters import textarena_registry as ta_registry
from palaestra.envs.adapters import textarena_session as ta_session
from palaestra.envs.adapters.textarena import MissingNLTKDataError, TextArenaGame, TextArenaUnavailableError
from palaestra.envs.adapters.textarena_checks import translated_errors
from palaestra.rollout.matches import Match, game_of, play_matches

TTT = "textarena/TicTacToe-v0"


class FirstLegalMove:
    """A policy that plays the first move the game lists."""

    name = "first-legal"
    tokenizer = None

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return [Generation(text=f"I play {r.info['legal_actions'][0]}") for r in requests]

    async def close(self) -> None:
        pass


def test_ids_are_listed_without_importing_the_suites():
    code = textwrap.dedent(
        """
        import sys, palaestra, palaestra.envs.adapters
        assert "textarena" not in sys.modules and "reasoning_gym" not in sys.modules
        print(len(palaestra.list_envs("TextArena")))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 100


def test_single_player_game_played_to_the_end_by_binary_search():
    env = palaestra.make("textarena/GuessTheNumber-v0")
    observation, info = env.reset(seed=7)
    assert "Guess The Number" in observation and "[5]" in observation
    assert "TextArena" in env.unwrapped.system_prompt and "first message" in env.unwrapped.system_prompt
    low, high, done, total = 1, 20, False, 0.0
    while not done:
        guess = (low + high) // 2
        observation, reward, terminated, truncated, info = env.step(f"My guess is [{guess}]")
        total, done = total + reward, terminated or truncated
        assert info["format_error"] is None
        if "higher" in observation:
            low = guess + 1
        elif "lower" in observation:
            high = guess - 1
    assert terminated and info["success"] and total == 1.0 and "Game over" in observation
    assert info["turn"] <= 5  # binary search over 1..20


def test_rejected_moves_are_format_errors_and_a_second_one_ends_the_game():
    env = palaestra.make("textarena/GuessTheNumber-v0")
    env.reset(seed=0)
    observation, reward, terminated, _, info = env.step("no idea")
    assert not terminated and reward == 0.0 and "invalid move" in observation
    assert "[number]" in info["format_error"]
    observation, _, terminated, _, info = env.step("still no idea")
    assert terminated and not info["success"] and info["format_error"] and "Game over" in observation


def test_same_seed_same_game():
    first = palaestra.make("textarena/Minesweeper-v0").reset(seed=3)
    again = palaestra.make("textarena/Minesweeper-v0").reset(seed=3)
    assert first == again
    moves = ["[0 0]", "[1 1]", "[2 2]"]
    transcripts = []
    for _ in range(2):
        env = palaestra.make("textarena/TowerOfHanoi-v0")
        env.reset(seed=5)
        transcripts.append([env.step(m) for m in moves[:2]])
    assert transcripts[0] == transcripts[1]


def test_two_player_game_through_play_matches():
    matches = [Match(TTT, seed=s, seats={"player_0": "random", "player_1": "random"}) for s in range(4)]
    matches.append(Match(TTT, seed=9, seats={"player_0": FirstLegalMove(), "player_1": "random"}))
    results = play_matches(matches)
    for result in results:
        assert result.error is None
        assert sum(result.returns.values()) == pytest.approx(1.0)  # win 1 + loss 0, or 0.5 + 0.5
        assert result.winner in (None, "player_0", "player_1")
    traj = results[-1].trajectories["player_0"]
    assert "TicTacToe-v0" in traj.messages[0]["content"] and traj.turns
    assert traj.turns[-1].info["outcome"] == results[-1].outcome("player_0")


def test_game_of_returns_the_textarena_game_and_the_random_opponent():
    game, opponents = game_of(TTT)
    assert isinstance(game, TextArenaGame) and set(opponents) == {"random"}
    game.reset(seed=1)
    assert game.agent_selection == "player_0" and game.infos["player_0"]["legal_actions"][0] == "[0]"
    game.step("[9]")  # off the board: TextArena rejects it, the same seat moves again
    assert game.infos["player_0"]["format_error"] and game.agent_selection == "player_0"
    assert "invalid move" in game.observe("player_0")
    game.step("[4]")
    assert game.agent_selection == "player_1" and "[4]" not in game.infos["player_1"]["legal_actions"]


def test_versus_view_against_the_random_opponent():
    env = palaestra.make(TTT, seat="first")
    observation, info = env.reset(seed=2)
    assert info["seat"] == "player_0" and "Tic Tac Toe" in observation
    rng, done, total = np.random.default_rng(0), False, 0.0
    while not done:
        move = str(rng.choice(info["legal_actions"]))
        observation, reward, terminated, truncated, info = env.step(move)
        total, done = total + reward, terminated or truncated
    assert terminated and info["outcome"] in ("win", "draw", "loss") and "Game over" in observation
    assert total == {"win": 1.0, "draw": 0.5, "loss": 0.0}[info["outcome"]]


def test_missing_nltk_data_found_only_when_built_names_the_resource_and_the_command(monkeypatch, tmp_path):
    nltk = pytest.importorskip("nltk")

    def offline_game(**_):  # NLTK's own LookupError, as raised offline
        nltk.data.find("corpora/words", paths=[str(tmp_path)])

    monkeypatch.setattr(ta_session, "entry_point", lambda game_id: (offline_game, {}))
    monkeypatch.setattr(ta_adapter, "players_of", lambda game_id: 1)
    with pytest.raises(MissingNLTKDataError, match=r"python -m nltk\.downloader words") as err:
        palaestra.make("textarena/GuessTheNumber-v0")
    assert err.value.resource == "words" and "GuessTheNumber-v0" in str(err.value)
    assert isinstance(err.value, palaestra.EnvUnavailableError)


def test_wordle_offline_for_real_is_unavailable_with_the_download_command(monkeypatch):
    nltk = pytest.importorskip("nltk")
    try:
        nltk.data.find("corpora/words")
        pytest.skip("NLTK's words corpus is installed here")
    except LookupError:
        pass
    monkeypatch.setattr(nltk, "download", lambda *args, **kwargs: False)  # offline, even in CI
    with pytest.raises(palaestra.EnvUnavailableError, match=r"python -m nltk\.downloader words") as err:
        palaestra.make("textarena/Wordle-v0")
    assert "\n" not in str(err.value)
    with pytest.raises(TextArenaUnavailableError, match="'words'"):  # the adapter's entry point too
        ta_adapter.TextArenaEnv(game_id="Wordle-v0")
    assert "textarena/Wordle-v0" not in {card.id for card in palaestra.list_envs("TextArena")}
    assert "textarena/Wordle-v0" in {
        card.id for card in palaestra.list_envs("TextArena", include_unavailable=True)
    }


def test_syntax_errors_when_a_game_is_imported_name_the_bug_and_python(monkeypatch, tmp_path):
    (tmp_path / "broken_ta_game.py").write_text("def reset(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with (
        pytest.raises(TextArenaUnavailableError, match="bug in TextArena") as err,
        translated_errors("Broken-v0"),
    ):
        importlib.import_module("broken_ta_game")
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in str(err.value)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="TextArena's Chess compiles on Python >= 3.12")
def test_chess_on_python_311_is_a_clear_error():
    with pytest.raises(
        palaestra.EnvUnavailableError, match=r"Chess-v0 cannot run here: .*Python 3\.1\d.*>= 3\.12"
    ):
        palaestra.make("textarena/Chess-v0")


def test_unknown_id_names_close_matches():
    with pytest.raises(palaestra.UnknownEnvError, match="textarena/Wordle-v0"):
        palaestra.make("textarena/Wordel-v0")


def test_ids_are_sanitised_and_variants_skipped():
    assert ta_registry.env_id_of("Taboo-v0-city/country") == "textarena/Taboo-v0-city_country"
    games = {listing.game_id: listing for listing in ta_adapter.scan_registry()}
    assert games["TicTacToe-v0"].players == 2 and games["GuessTheNumber-v0"].players == 1
    assert not any(g.endswith(("-raw", "-train")) for g in games)


def test_envs_list_shows_textarena_ids():
    result = CliRunner().invoke(app, ["envs", "list", "--family", "TextArena"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert TTT in result.output and "textarena/GuessTheNumber-v0" in result.output


def test_nothing_is_registered_without_the_packages(monkeypatch):
    from palaestra.envs.adapters import reasoning_gym as rg_adapter

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    assert ta_adapter.scan_registry() == [] and rg_adapter.scan_datasets() == []
    assert ta_adapter.register_envs() == 0 and rg_adapter.register_envs() == 0


def test_move_candidates_fill_placeholders_and_split_totals():
    rng = np.random.default_rng(0)
    assert ta_opponent.example_lines(
        "Use:\n    [Propose] CCAACCCC\n- Accept: '[Accept]'.\n  ╲ [9 ] ╲ art"
    ) == [
        "[Propose] CCAACCCC",
        "[Accept]",
    ]
    listed = list(ta_opponent.candidate_moves(["[0]", "[4]"], ["[play X]"], "", rng))
    assert set(listed[:2]) == {"[0]", "[4]"} and listed[2] == "[play X]"  # listed moves first
    filled = list(ta_opponent.candidate_moves(None, ["[swap X Y]", "[<number>]"], "", rng, limit=30))
    assert any(re.fullmatch(r"\[swap \d+ \d+\]", m) for m in filled)
    assert any(re.fullmatch(r"\[\d+\]", m) for m in filled)
    blotto = ta_opponent.candidate_moves(None, ["[A4 B2 C2]"], "Units to allocate: 20", rng, limit=30)
    assert any(sum(map(int, re.findall(r"\d+", m))) == 20 for m in blotto)


@pytest.mark.parametrize("game_id", ["Chopsticks-v0", "ColonelBlotto-v0", "GermanWhist-v0", "TwoDollar-v0"])
def test_random_opponent_finds_moves_textarena_accepts_where_no_moves_are_listed(game_id):
    game = TextArenaGame(game_id)
    game.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(4):  # both seats, twice
        seat = game.agent_selection
        assert game.legal_actions(seat) is None
        game.step(ta_adapter.random_opponent(game, seat, rng))
        assert game.infos[seat]["format_error"] is None and not game.game_over


def test_learner_second_against_the_random_opponent_gets_its_turn():
    env = palaestra.make("textarena/Chopsticks-v0", seat="second")
    for seed in range(3):
        observation, info = env.reset(seed=seed)
        assert info["seat"] == "player_1" and "Player 0" in observation


def test_character_conclave_replies_reach_the_other_players():
    game = TextArenaGame("CharacterConclave-v0", num_players=3)
    game.reset(seed=0)
    game.step("Hello, I am the most impressive.")  # TextArena 0.7.4's game calls an older API here
    assert game.infos["player_0"]["format_error"] is None
    assert "[Player 0] Hello, I am the most impressive." in game.observe("player_1")


def test_secret_mafia_gets_the_players_its_code_demands():
    card = palaestra.env_card("textarena/SecretMafia-v0")
    assert card.kwargs["num_players"] == 6 and "6 players" in card.description  # its comment says 5-15
    env = palaestra.make(card.id)
    _, info = env.reset(seed=0)
    assert info["seat"].startswith("player_")


def test_unavailable_games_are_hidden_from_envs_list_and_shown_with_all(monkeypatch):
    runner, columns = CliRunner(), {"COLUMNS": "400"}
    monkeypatch.setenv(ta_checks.API_KEY_VARIABLE, "")
    listed = runner.invoke(app, ["envs", "list", "--family", "TextArena"], env=columns)
    assert listed.exit_code == 0 and "textarena/Debate-v0 " not in listed.output
    assert "cannot run here; `palaestra envs list --all` shows them" in listed.output
    shown = runner.invoke(app, ["envs", "list", "--all", "--family", "TextArena"], env=columns)
    assert "unavailable here: it calls LLMs through OpenRouter (a judge or game master) and " in shown.output
    show = runner.invoke(app, ["envs", "show", "textarena/Debate-v0"], env=columns)
    assert show.exit_code == 0 and f"export {ta_checks.API_KEY_VARIABLE}=" in show.output
