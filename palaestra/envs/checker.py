"""The env checker for env authors: does an env follow the text-env contract palaestra trains on?

`run_checks("me/Echo-v0")` builds the env and runs:

    gymnasium      gymnasium's own `check_env` (its warnings are findings too)
    text spaces    text actions; text observations (or a dict with a "text" entry); a text system prompt
    determinism    same seed and same replies -> the same observations, rewards and infos
    info keys      `task_id` (and `success`, `format_error`, `turn`) after reset and every step
    reward range   the episode return lies in the registered reward range; rewards are finite floats
    episode length an episode ends (terminated or truncated) within the registered turn limit
    format errors  malformed replies (not text, too long, garbage) raise nothing; a non-text one sets
                   `info["format_error"]`
    expert         `info["expert_action"]`, if the env gives one, solves the task when played
    tools          a tool env's declarations are function schemas with unique names and valid
                   parameter schemas, and the expert's calls read back with the env's parser and fit them

Each finding says what passed or failed and, for a failure, how to fix it. `palaestra envs check ID`
prints them; the conformance test of every bundled env asserts that none fails.
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from palaestra.envs.registration import EnvCard, env_card, make
from palaestra.tools.schema import validate_arguments

__all__ = ["STANDARD_INFO_KEYS", "CheckReport", "Finding", "run_checks"]

STANDARD_INFO_KEYS = ("task_id", "success", "format_error", "turn")
"""The info keys every palaestra env returns after reset and each step (`palaestra.TextEnv` adds them)."""

MALFORMED_REPLIES: tuple[Any, ...] = (None, 42, "x" * 70_000, "", "@@##!! ~~ \x00 garbage ]][[")
"""Replies a model may send that the env must survive: not text (the first two), too long, empty, garbage."""

UNDECLARED_TURN_CAP = 100
"""Steps played when the env declares no turn limit (the episode-length check then fails anyway)."""


@dataclass(frozen=True)
class Finding:
    """One check's outcome.

    Attributes:
        check: the check's name ("determinism", "info keys", ...).
        ok: whether it passed.
        detail: what was found (one line).
        fix: how to fix a failure (one line); "" when it passed.
    """

    check: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class CheckReport:
    """All findings for one env and its kwargs."""

    env_id: str
    kwargs: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "kwargs": self.kwargs,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
        }

    def __str__(self) -> str:
        lines = [f"{self.env_id}: {'passes' if self.ok else f'{len(self.failures)} check(s) fail'}"]
        for f in self.findings:
            lines.append(f"  {'PASS' if f.ok else 'FAIL'} {f.check}: {f.detail}")
            if f.fix:
                lines.append(f"       fix: {f.fix}")
        return "\n".join(lines)


def _raised(exc: BaseException) -> str:
    """`ValueError: bad (env.py:42)`: the exception and where it was raised, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


@contextmanager
def _closing(env: gym.Env) -> Iterator[gym.Env]:
    try:
        yield env
    finally:
        env.close()


class _Screenshot:
    """A screenshot that equals another of the same page: same shape, at most 0.1% of pixels differ.

    Chromium may anti-alias a few pixels of text differently from one paint to the next on a loaded
    machine; the page itself is the same.
    """

    def __init__(self, image: np.ndarray):
        self.image = image

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Screenshot) or self.image.shape != other.image.shape:
            return False
        return bool((self.image != other.image).any(axis=-1).mean() <= 1e-3)

    def __repr__(self) -> str:
        return f"<screenshot {self.image.shape}>"


def _comparable(value: Any) -> Any:
    """Observations and infos with screenshots wrapped, so transcripts compare with ==."""
    if isinstance(value, dict):
        return {key: _comparable(v) for key, v in value.items()}
    if isinstance(value, np.ndarray):
        return _Screenshot(value)
    return value


def _text_of(observation: Any) -> Any:
    return observation.get("text") if isinstance(observation, dict) else observation


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Checks:
    """The checks of one env; each method returns its findings (an exception becomes a failing one)."""

    def __init__(self, card: EnvCard, kwargs: dict[str, Any], seeds: Sequence[int]):
        self.card, self.kwargs, self.seeds = card, kwargs, tuple(seeds)
        self.limit = card.max_turns or UNDECLARED_TURN_CAP

    def make(self) -> gym.Env:
        return make(self.card.id, **self.kwargs)

    def scripted_replies(self, info: dict[str, Any], space: gym.Space) -> list[Any]:
        """A fixed mix: unreadable, random text, a non-str, a math answer, the expert's (if any), then
        filler (unreadable replies) long enough to end any episode within the turn limit."""
        replies: list[Any] = ["I am not sure.", space.sample(), None, "\\boxed{0}"]
        replies += [info["expert_action"]] if info.get("expert_action") is not None else []
        return replies + ["I am not sure."] * self.limit

    # -- the checks ---------------------------------------------------------------------------------
    def gymnasium(self, env: gym.Env) -> list[Finding]:
        fix = "gymnasium's env checker found it; its message names the fix"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                gymnasium_check_env(env.unwrapped)
            except Exception as exc:
                return [Finding("gymnasium", False, f"check_env raised {_raised(exc)}", fix)]
        found = [Finding("gymnasium", False, " ".join(str(w.message).split()), fix) for w in caught]
        return found or [Finding("gymnasium", True, "gymnasium's check_env passes with no warning")]

    def text_spaces(self, env: gym.Env) -> list[Finding]:
        fix = (
            "use palaestra.TextSpace() (any string) or gymnasium.spaces.Text for action_space and "
            "observation_space (GUI envs: a Dict space with a 'text' entry)"
        )
        problems = []
        if not isinstance(env.action_space, spaces.Text):
            problems.append(f"action_space is {env.action_space}, not a text space")
        obs_space: gym.Space | None = env.observation_space
        if isinstance(obs_space, spaces.Dict):
            obs_space = obs_space.spaces.get("text")
        if not isinstance(obs_space, spaces.Text):
            problems.append(f"observation_space is {env.observation_space}, not text (or a dict with 'text')")
        observation, _ = env.reset(seed=self.seeds[0])
        if not isinstance(_text_of(observation), str):
            problems.append(f"reset returned a {type(_text_of(observation)).__name__}, not text")
        elif not env.observation_space.contains(observation):
            problems.append(f"reset's observation {_short(observation)} is not in observation_space")
        prompt = getattr(env.unwrapped, "system_prompt", "")
        if not isinstance(prompt, str):
            problems.append(f"system_prompt is a {type(prompt).__name__}, not text")
        if problems:
            return [Finding("text spaces", False, "; ".join(problems), fix)]
        return [Finding("text spaces", True, "text actions and observations; a text system prompt")]

    def determinism(self) -> list[Finding]:
        """Two fresh envs play every seed in turn with the same replies: their transcripts must match (so
        nothing depends on the clock, global RNGs, or what an earlier episode left behind)."""
        fix = (
            "draw every random choice from self.np_random (seeded by reset(seed=...)), never from random, "
            "numpy.random or the clock; reset every piece of episode state in reset"
        )
        first, second = self._transcripts(), self._transcripts()
        for (seed, a), (_, b) in zip(first, second, strict=True):
            if a != b:
                return [
                    Finding(
                        "determinism", False, f"seed {seed}: two runs differ: {_short(a)} vs {_short(b)}", fix
                    )
                ]
        seeds = ", ".join(map(str, self.seeds))
        return [Finding("determinism", True, f"same seed and replies, same transcript (seeds {seeds})")]

    def _transcripts(self) -> list[tuple[int, Any]]:
        """(seed, entry) of the scripted episode of every seed, played one after the other on one env."""
        entries: list[tuple[int, Any]] = []
        with _closing(self.make()) as env:
            for seed in self.seeds:
                env.action_space.seed(seed)
                observation, info = env.reset(seed=seed)
                entries.append((seed, ("reset", _comparable(observation), _comparable(info))))
                for action in self.scripted_replies(info, env.action_space)[:8]:
                    observation, reward, terminated, truncated, info = env.step(action)
                    step = (_comparable(observation), reward, terminated, truncated, _comparable(info))
                    entries.append((seed, (action, *step)))
                    if terminated or truncated:
                        break
        return entries

    def episode(self, env: gym.Env) -> list[Finding]:
        """info keys, reward range and episode length, from one episode of scripted replies."""
        low, high = self.card.reward_range
        _, info = env.reset(seed=self.seeds[0])
        missing = {k: "reset" for k in STANDARD_INFO_KEYS if k not in info}
        total, steps, done, bad_rewards = 0.0, 0, False, []
        for action in self.scripted_replies(info, env.action_space)[: self.limit]:
            _, reward, terminated, truncated, info = env.step(action)
            steps += 1
            if type(reward) is not float or not math.isfinite(reward):
                bad_rewards.append(reward)
            else:
                total += reward
            missing.update(
                {k: f"step {steps}" for k in STANDARD_INFO_KEYS if k not in info and k not in missing}
            )
            if done := terminated or truncated:
                break
        findings = []
        if missing:
            where = ", ".join(f"{k} (first missing after {w})" for k, w in missing.items())
            fix = (
                "return info with task_id (a stable id of the task: same seed, same id), success (bool), "
                "format_error (str or None) and turn (int) from reset and step; palaestra.TextEnv adds them"
            )
            findings.append(Finding("info keys", False, f"info lacks {where}", fix))
        else:
            findings.append(
                Finding("info keys", True, f"{', '.join(STANDARD_INFO_KEYS)} after reset and every step")
            )
        if bad_rewards:
            findings.append(
                Finding(
                    "reward range",
                    False,
                    f"step rewards must be finite Python floats, got {_short(bad_rewards[0])}",
                    "return float(reward) from step",
                )
            )
        elif not low <= total <= high:
            findings.append(
                Finding(
                    "reward range",
                    False,
                    f"unhelpful replies' return {total:g} is outside the registered reward_range "
                    f"[{low:g}, {high:g}]",
                    "register the env with the reward_range its returns can reach, or bound its rewards",
                )
            )
        else:
            findings.append(
                Finding(
                    "reward range", True, f"unhelpful replies' return {total:g} within [{low:g}, {high:g}]"
                )
            )
        if not self.card.max_turns:
            findings.append(
                Finding(
                    "episode length",
                    False,
                    "the env declares no turn limit",
                    "register it with register_env(..., max_turns=N) or gymnasium.register(..., "
                    "max_episode_steps=N)",
                )
            )
        elif not done:
            findings.append(
                Finding(
                    "episode length",
                    False,
                    f"an episode of unhelpful replies did not end within max_turns={self.card.max_turns}",
                    "end the episode (terminated or truncated) by the declared max_turns, or declare more",
                )
            )
        else:
            findings.append(
                Finding("episode length", True, f"ended after {steps} of at most {self.card.max_turns} turns")
            )
        return findings

    def format_errors(self, env: gym.Env) -> list[Finding]:
        fix = (
            "catch replies step cannot read and return an observation saying so, info['format_error'] = "
            "'why' and a zero reward (palaestra.TextEnv does it for replies that are not text)"
        )
        first, _ = env.reset(seed=self.seeds[0])
        for reply in MALFORMED_REPLIES:
            try:
                observation, _, terminated, truncated, info = env.step(reply)
            except Exception as exc:
                return [
                    Finding("format errors", False, f"step({_short(reply, 30)}) raised {_raised(exc)}", fix)
                ]
            if type(observation) is not type(first) or not env.observation_space.contains(observation):
                detail = f"step({_short(reply, 30)}) returned the observation {_short(observation)}"
                return [Finding("format errors", False, f"{detail}, not one of observation_space", fix)]
            if not isinstance(reply, str) and not info.get("format_error"):
                detail = f"step({reply!r}) (not text) left info['format_error'] empty"
                return [Finding("format errors", False, detail, fix)]
            if terminated or truncated:
                first, _ = env.reset(seed=self.seeds[0])
        return [
            Finding("format errors", True, "malformed replies raise nothing; non-text ones set format_error")
        ]

    def expert(self, env: gym.Env) -> list[Finding]:
        """The expert's replies, played from reset on every seed, solve the task (or draw a game: against a
        strong opponent a game may allow no win)."""
        fix = "make info['expert_action'] a reply that solves the task from the current state"
        draws: list[int] = []
        for seed in self.seeds:
            _, info = env.reset(seed=seed)
            if info.get("expert_action") is None:
                if seed == self.seeds[0]:
                    return [
                        Finding(
                            "expert",
                            True,
                            "no info['expert_action'] (optional: scripted:oracle, demos and semi-online "
                            "training need it)",
                        )
                    ]
                return [Finding("expert", False, f"seed {seed}: reset gives no expert_action", fix)]
            total, turn, done = 0.0, 0, False
            while not done and turn < self.limit:
                action = info.get("expert_action")
                if action is None:
                    detail = f"seed {seed}: info['expert_action'] missing after turn {turn}"
                    return [Finding("expert", False, detail, fix)]
                _, reward, terminated, truncated, info = env.step(action)
                total, turn, done = total + float(reward), turn + 1, terminated or truncated
            low, high = self.card.reward_range
            if not low <= total <= high:
                detail = (
                    f"seed {seed}: the expert's return {total:g} is outside the registered reward_range "
                    f"[{low:g}, {high:g}]"
                )
                fix = "register the env with the reward_range its returns can reach, or bound its rewards"
                return [Finding("reward range", False, detail, fix)]
            if info.get("outcome") == "draw" and not info.get("success"):
                draws.append(seed)
            elif not info.get("success"):
                detail = (
                    f"seed {seed}: playing expert_action did not succeed (return {total:g} in {turn} turns)"
                )
                return [Finding("expert", False, detail, fix)]
        seeds = ", ".join(map(str, self.seeds))
        drew = f"; drew the game on seed(s) {', '.join(map(str, draws))}" if draws else ""
        return [Finding("expert", True, f"expert_action solves the task (seeds {seeds}){drew}")]

    def tools(self, env: gym.Env) -> list[Finding]:
        """A tool env's declarations are well formed and its expert's calls fit them."""
        _, info = env.reset(seed=self.seeds[0])
        unwrapped = env.unwrapped
        declared = list(getattr(unwrapped, "tools", None) or [])
        if not declared:
            return [Finding("tools", True, "no tools declared (optional: see palaestra.envs.tools.ToolEnv)")]
        problem = _declaration_problem(declared)
        if problem is not None:
            fix = "declare each tool with palaestra.tools.function_tool(name, description, json_schema)"
            return [Finding("tools", False, problem, fix)]
        parser = getattr(unwrapped, "tool_parser", None)
        if parser is None or not callable(getattr(parser, "parse", None)):
            fix = "give the env a tool_parser (palaestra.tools.get_tool_parser), as ToolEnv does"
            return [Finding("tools", False, "the env declares tools but has no tool_parser", fix)]
        by_name = {tool["function"]["name"]: tool for tool in declared}
        calls, turn, done = 0, 0, False
        while not done and turn < self.limit and info.get("expert_action") is not None:
            parsed = parser.parse(str(info["expert_action"]))
            fix = "make expert_action's calls with env.format_calls(...) and the declared tools' arguments"
            if parsed.error is not None:
                return [
                    Finding(
                        "tools", False, f"turn {turn}: the expert's reply does not parse: {parsed.error}", fix
                    )
                ]
            for call in parsed.calls:
                error = (
                    validate_arguments(by_name[call.name], call.arguments)
                    if call.name in by_name
                    else f"unknown tool {call.name!r}"
                )
                if error is not None:
                    return [Finding("tools", False, f"turn {turn}: the expert's call: {error}", fix)]
            calls += len(parsed.calls)
            _, _, terminated, truncated, info = env.step(info["expert_action"])
            turn, done = turn + 1, terminated or truncated
        names = ", ".join(by_name)
        return [
            Finding("tools", True, f"{len(declared)} tools ({names}); the expert made {calls} valid calls")
        ]


def _declaration_problem(tools: Sequence[Any]) -> str | None:
    """What is wrong with a list of tool declarations, or None."""
    import jsonschema

    names: set[str] = set()
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            return f"tool {index} is not {{'type': 'function', 'function': {{...}}}}: {_short(tool)}"
        name = function.get("name")
        if not isinstance(name, str) or not name:
            return f"tool {index} has no name"
        if name in names:
            return f"two tools are named {name!r}"
        names.add(name)
        schema = function.get("parameters", {"type": "object"})
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            return f"tool {name!r} has an invalid parameters schema: {exc.message}"
        if schema.get("type") != "object":
            return (
                f"tool {name!r}: parameters must be a JSON schema of type object, got {schema.get('type')!r}"
            )
    return None


ORDER = (
    "gymnasium",
    "text spaces",
    "determinism",
    "info keys",
    "reward range",
    "episode length",
    "format errors",
    "expert",
    "tools",
)
"""The order findings are reported in (the module docstring's)."""

CHECKS: tuple[tuple[str, Callable[[_Checks, gym.Env], list[Finding]]], ...] = (
    ("gymnasium", _Checks.gymnasium),
    ("text spaces", _Checks.text_spaces),
    ("info keys", _Checks.episode),
    ("format errors", _Checks.format_errors),
    ("expert", _Checks.expert),
    ("tools", _Checks.tools),
)
"""The checks that play on one shared env, in order (each resets it); determinism makes its own two."""


def run_checks(
    env_id: str, kwargs: dict[str, Any] | None = None, *, seeds: Sequence[int] = (0, 1, 2024)
) -> CheckReport:
    """Check the env `env_id` (made with `kwargs`) against palaestra's text-env contract.

    Args:
        env_id: registered id, or `module:id`.
        kwargs: env kwargs (e.g. a data file the env requires).
        seeds: the seeds the determinism and expert checks play.

    Returns:
        The report: one or more findings per check. A check that raises fails with the exception (and
        where it was raised); the others still run.

    Raises:
        UnknownEnvError: nobody registered `env_id` (the message names close matches).
    """
    card = env_card(env_id)
    kwargs = dict(kwargs or {})
    report = CheckReport(card.id, kwargs)
    try:
        env = make(card.id, **kwargs)
    except Exception as exc:
        report.findings.append(
            Finding(
                "make",
                False,
                f"making the env raised {_raised(exc)}",
                "pass the kwargs it needs (palaestra envs check ID --env-kwarg KEY=VALUE), or fix its constructor",
            )
        )
        return report
    checks = _Checks(card, kwargs, seeds)
    with _closing(env):
        for name, check in CHECKS:
            try:
                report.findings.extend(check(checks, env))
            except Exception as exc:
                report.findings.append(
                    Finding(name, False, f"raised {_raised(exc)}", "the env raised; fix it there")
                )
    try:
        report.findings.extend(checks.determinism())
    except Exception as exc:
        report.findings.append(
            Finding("determinism", False, f"raised {_raised(exc)}", "the env raised; fix it there")
        )
    report.findings.sort(key=lambda f: ORDER.index(f.check) if f.check in ORDER else len(ORDER))
    return report
