"""Registering envs: one call for a user's class, entry points for packages, helpful errors."""

from __future__ import annotations

import sys
import textwrap

import gymnasium as gym
import pytest
from typer.testing import CliRunner

import palaestra
from palaestra.cli import app
from palaestra.envs.registration import UnknownEnvError, check_env, load_plugins


def _readme_blocks(marker: str) -> str:
    """The README's python code block that follows the HTML comment `marker`."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text()
    start = text.index(f"<!-- {marker} -->")
    code_start = text.index("```python\n", start) + len("```python\n")
    return text[code_start : text.index("```", code_start)]


def test_readme_custom_env_example_runs():
    namespace: dict[str, object] = {}
    exec(compile(_readme_blocks("example: custom env"), "README.md", "exec"), namespace)
    env = palaestra.make("myproject/Reverse-v0", length=4)
    _, info = env.reset(seed=3)
    _, reward, terminated, _, info = env.step(info["expert_action"])
    assert reward == 1.0 and terminated and info["success"]
    assert any(card.id == "myproject/Reverse-v0" for card in palaestra.list_envs())
    # gymnasium's own make sees it too
    assert gym.make("myproject/Reverse-v0").unwrapped.length == 5


def test_register_twice_needs_override():
    from palaestra.envs.core import TextEnv

    palaestra.register_env("test/Dup-v0", TextEnv, override=True)
    with pytest.raises(ValueError, match="already registered"):
        palaestra.register_env("test/Dup-v0", TextEnv)


def test_entry_point_plugin_registers_envs(tmp_path, monkeypatch):
    (tmp_path / "palaestra_plugin_demo.py").write_text(
        textwrap.dedent(
            """
            import palaestra
            from palaestra.envs.core import StepOutcome, TextEnv

            class EchoEnv(TextEnv):
                def _reset(self, options):
                    return "say hi", {"task_id": "echo"}

                def _step(self, action):
                    ok = action == "hi"
                    return StepOutcome("ok", reward=float(ok), terminated=True, success=ok)

            def register():
                palaestra.register_env("plugin/Echo-v0", EchoEnv, description="echo", override=True)
            """
        )
    )
    dist = tmp_path / "palaestra_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: palaestra-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[palaestra.envs]\ndemo = palaestra_plugin_demo:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins(reload=True)
    try:
        env = palaestra.make("plugin/Echo-v0")
        env.reset(seed=0)
        assert env.step("hi")[1] == 1.0
        assert palaestra.env_card("plugin/Echo-v0").description == "echo"
    finally:
        sys.modules.pop("palaestra_plugin_demo", None)


def test_broken_plugin_warns_and_is_skipped(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[palaestra.envs]\nbroken = no_such_module_xyz:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="broken"):
        load_plugins(reload=True)


def test_unknown_id_names_close_matches():
    with pytest.raises(UnknownEnvError) as err:
        palaestra.make("palaestra/Math-Arithm-v0")
    assert "palaestra/Math-Arith-v0" in str(err.value)
    assert "palaestra envs list" in str(err.value)


def test_namespace_is_optional_for_builtin_envs():
    assert palaestra.env_card("Math-Arith-v0").id == "palaestra/Math-Arith-v0"


def test_missing_required_kwarg_is_a_clear_error():
    card = next(c for c in palaestra.list_envs() if c.required_kwargs)
    with pytest.raises(TypeError, match=card.required_kwargs[0]):
        palaestra.make(card.id)


def test_check_env_builds_the_env_once_and_names_what_is_wrong():
    check_env("palaestra/Math-ArithEasy-v0", {"split": "test"})
    with pytest.raises(UnknownEnvError, match="Did you mean: palaestra/Math-ArithEasy-v0"):
        check_env("palaestra/Math-ArithEasyy-v0", {})
    with pytest.raises(TypeError, match="Math-ArithEasy-v0 takes no kwarg 'splitt'; did you mean 'split'"):
        check_env("palaestra/Math-ArithEasy-v0", {"splitt": "train"})
    with pytest.raises(ValueError, match=r"Math-ArithEasy-v0 with kwargs \{'split': 'nope'\}: split='nope'"):
        check_env("palaestra/Math-ArithEasy-v0", {"split": "nope"})
    with pytest.raises(TypeError, match="needs path="):
        check_env("palaestra/Math-GSM8K-v0")


def test_ansi_render_is_the_transcript():
    env = palaestra.make("palaestra/Game-GuessTheNumber-v0", render_mode="ansi")
    observation, _ = env.reset(seed=0, options={"answer": 70})
    _, _, _, _, info = env.step("[50]")
    assert (
        env.render()
        == f"[env] {observation}\n[agent] [50]\n[env] The number is higher than 50. 6 guesses left."
    )
    assert info["turn"] == 1 and info["format_error"] is None and info["guesses_left"] == 6
    env.step(None)  # not text: a format error, in the transcript as its repr
    assert env.render().endswith("[agent] None\n[env] Invalid reply: expected text, got NoneType.")
    plain = palaestra.make("palaestra/Game-GuessTheNumber-v0")
    plain.reset(seed=0)
    plain.step("[50]")
    assert plain.render() is None


class _Echo(palaestra.TextEnv):
    def _reset(self, options):
        return "say hi", {"task_id": "echo"}

    def _step(self, action):
        return palaestra.StepOutcome("ok", reward=float(action == "hi"), terminated=True)


def test_an_env_that_cannot_run_here_is_not_listed_and_make_says_why():
    missing = {"reason": "it needs the file data.bin: run `fetch-data`"}
    palaestra.register_env("test/Gated-v0", _Echo, availability=lambda: missing["reason"], override=True)
    try:
        assert "test/Gated-v0" not in {card.id for card in palaestra.list_envs()}
        card = next(c for c in palaestra.list_envs(include_unavailable=True) if c.id == "test/Gated-v0")
        assert card.unavailable == missing["reason"]
        with pytest.raises(palaestra.EnvUnavailableError) as err:
            palaestra.make("test/Gated-v0")
        assert str(err.value) == "test/Gated-v0 cannot run here: it needs the file data.bin: run `fetch-data`"
        result = CliRunner().invoke(app, ["envs", "show", "test/Gated-v0"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "unavailable here: it needs the file data.bin" in result.output
    finally:
        missing["reason"] = None  # available again, for the tests that list every env
    assert "test/Gated-v0" in {card.id for card in palaestra.list_envs()}
    assert palaestra.make("test/Gated-v0").reset(seed=0)[0] == "say hi"
