"""Why a TextArena game cannot run here, read from its sources: each check on a fake TextArena package."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from palaestra.envs.adapters import textarena_checks as checks

GOOD = "import random\nimport textarena as ta\nfrom textarena.envs.Good.renderer import draw\n"


class FakeTextArena:
    """A `textarena` package folder to write game modules into."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, relative: str, source: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


@pytest.fixture
def fake_textarena(tmp_path, monkeypatch):
    """The installed TextArena replaced by a fake package with one working game, "Good-v0"."""
    fake = FakeTextArena(tmp_path / "textarena")
    monkeypatch.setattr(checks, "textarena_root", lambda: fake.root)
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "nltk_data"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/nltk_data of the machine's
    monkeypatch.delenv(checks.API_KEY_VARIABLE, raising=False)
    checks._facts.cache_clear()
    checks._game_facts.cache_clear()
    fake.write("envs/Good/env.py", GOOD)
    fake.write("envs/Good/renderer.py", "def draw():\n    return ''\n")
    yield fake
    checks._facts.cache_clear()
    checks._game_facts.cache_clear()


def test_a_game_that_needs_nothing_missing_is_available(fake_textarena):
    assert checks.unavailable_reason("Good-v0", "textarena.envs.Good.env") is None


def test_a_module_missing_from_the_package(fake_textarena):
    reason = checks.unavailable_reason("Gone-v0", "textarena.envs.Gone.env")
    assert "textarena.envs.Gone.env" in reason and "packaging bug" in reason


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="PEP 701 f-strings compile on Python >= 3.12")
def test_a_module_that_needs_a_newer_python(fake_textarena):
    fake_textarena.write("envs/New/env.py", "from textarena.envs.New.board import show\n")
    fake_textarena.write("envs/New/board.py", 'def show(b):\n    return f"{b["a"]}"\n')  # same quotes inside
    reason = checks.unavailable_reason("New-v0", "textarena.envs.New.env")  # the error is in an import
    assert "textarena/envs/New/board.py does not compile on Python 3.1" in reason
    assert "needs Python >= 3.12" in reason


def test_a_module_with_a_syntax_error(fake_textarena):
    fake_textarena.write("envs/Broken/env.py", "def reset(:\n    pass\n")
    reason = checks.unavailable_reason("Broken-v0", "textarena.envs.Broken.env")
    assert "textarena/envs/Broken/env.py does not compile" in reason and "a bug in TextArena" in reason


def test_a_package_that_is_not_installed(fake_textarena):
    fake_textarena.write(
        "envs/Baby/env.py",
        """
        import os, palaestra_no_such_package_a
        from palaestra_no_such_package_b.bot import Bot
        try:
            import palaestra_optional_package  # guarded: not required
        except ImportError:
            pass
        """,
    )
    reason = checks.unavailable_reason("Baby-v0", "textarena.envs.Baby.env")
    assert reason.endswith("pip install palaestra_no_such_package_a palaestra_no_such_package_b")


def test_data_the_game_reads_from_its_own_package(fake_textarena):
    fake_textarena.write(
        "envs/Data/env.py",
        """
        import os, importlib.resources
        class Env:
            def __init__(self, name):
                self.game_dir = os.path.dirname(__file__)
                open(os.path.join(self.game_dir, "instructions", "book.txt"))
                os.path.join(os.path.dirname(__file__), "configs", name)
                importlib.resources.files("textarena.envs.Data").joinpath("words.json").open()
        """,
    )
    left = {
        "textarena/envs/Data/instructions/book.txt",
        "textarena/envs/Data/configs",
        "textarena/envs/Data/words.json",
    }
    while left:  # one missing path named at a time, until the game has all it reads
        reason = checks.unavailable_reason("Data-v0", "textarena.envs.Data.env")
        named = [path for path in left if f"does not ship {path}, which the game reads" in reason]
        assert len(named) == 1, reason
        (fake_textarena.root.parent / named[0]).parent.mkdir(parents=True, exist_ok=True)
        (fake_textarena.root.parent / named[0]).touch()
        left.remove(named[0])
    assert checks.unavailable_reason("Data-v0", "textarena.envs.Data.env") is None


def test_nltk_data_names_the_download_command_and_is_found_once_installed(fake_textarena, tmp_path):
    fake_textarena.write(
        "envs/Words/env.py", GOOD + "from textarena.envs.utils.word_lists import Dictionary\n"
    )
    fake_textarena.write(
        "envs/utils/word_lists.py",
        """
        import nltk
        from nltk.corpus import words
        nltk.download(["words", "averaged_perceptron_tagger_eng"])
        """,
    )
    reason = checks.unavailable_reason("Words-v0", "textarena.envs.Words.env")
    assert "`python -m nltk.downloader words averaged_perceptron_tagger_eng`" in reason
    (tmp_path / "nltk_data" / "corpora" / "words").mkdir(parents=True)
    (tmp_path / "nltk_data" / "taggers").mkdir(parents=True)
    (tmp_path / "nltk_data" / "taggers" / "averaged_perceptron_tagger_eng.zip").write_bytes(b"")
    assert checks.unavailable_reason("Words-v0", "textarena.envs.Words.env") is None


def test_an_llm_judge_needs_the_api_key(fake_textarena, monkeypatch):
    fake_textarena.write(
        "envs/Judge/env.py",
        """
        class Env:
            def __init__(self, jury_class=None):
                if jury_class is None:
                    from textarena.envs.utils import OpenRouterJury
                    jury_class = OpenRouterJury
        """,
    )
    reason = checks.unavailable_reason("Judge-v0", "textarena.envs.Judge.env")
    assert f"export {checks.API_KEY_VARIABLE}=" in reason
    monkeypatch.setenv(checks.API_KEY_VARIABLE, "sk-test")
    assert checks.unavailable_reason("Judge-v0", "textarena.envs.Judge.env") is None


def test_without_textarena_the_install_command(monkeypatch):
    monkeypatch.setattr(checks, "textarena_root", lambda: None)
    assert "pip install 'palaestra[textarena]'" in checks.unavailable_reason(
        "Any-v0", "textarena.envs.Any.env"
    )


def test_nltk_paths_follow_nltk_data_first(monkeypatch, tmp_path):
    monkeypatch.setenv("NLTK_DATA", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert checks.nltk_data_paths()[:2] == [tmp_path / "a", tmp_path / "b"]
    assert Path(sys.prefix) / "nltk_data" in checks.nltk_data_paths()
