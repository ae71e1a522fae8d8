"""reasoning-gym datasets as palaestra envs: `palaestra.make("reasoning_gym/<dataset>")` (extra `reasoning-gym`).

Every dataset reasoning-gym registers gets the id `reasoning_gym/<dataset>` (family "ReasoningGym"),
e.g. `palaestra.make("reasoning_gym/basic_arithmetic", size=1000, seed=0)`. The env is math-style:

    dataset: reasoning_gym.create_dataset(name, size=size, seed=seed, **config), built once per env.
    task:    entry `i` of the dataset, i = drawn from the reset seed, or `options={"task_index": i}`.
    answer:  the text inside the last <answer>...</answer> of the reply (reasoning-gym's own format;
             surrounding whitespace stripped). A reply without it has a format error.
    judge:   the dataset's own `score_answer(answer, entry)`, a score in [0, 1] (some datasets give
             partial credit); success = a score of 1.

`reasoning_gym/composite` mixes datasets and needs them named: `config={"datasets": [{"name":
"chain_sum", "weight": 1.0, "config": {...}}, ...]}` ("weight" defaults to 1, "config" to {}).

Modes (as in `palaestra.envs.math.env.MathEnv`):
    single: one reply; reward = the score (`format_reward` if no answer could be read).
    retry:  after a reply that does not score 1, the env says so (never revealing the answer) and asks
        for another attempt, up to `max_attempts`. The reply that ends the episode (a success, or the
        last attempt) earns `reward_decay**(attempt-1) * score`; earlier replies earn 0, or
        `format_reward` when unreadable.

Info keys besides the standard ones: `expert_action` (`<answer>gold</answer>` when the entry has a
gold answer), `attempt`, `max_attempts`, `dataset`, `task_index`, and after a step `answer_extracted`
and `score`.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import gymnasium as gym

from palaestra.envs.core import StepOutcome, TextEnv, draw_index
from palaestra.envs.registration import register_env

__all__ = ["MODES", "NAMESPACE", "ReasoningGymEnv", "extract_answer", "register_envs", "scan_datasets"]

NAMESPACE = "reasoning_gym"
MODES: tuple[str, ...] = ("single", "retry")
DEFAULT_RETRY_ATTEMPTS = 3
_INSTALL_HINT = "pip install 'palaestra[reasoning-gym]'"
_MAX_SOURCE_BYTES = 64_000  # dataset modules are small; the large files are generated data
_REGISTER_RE = re.compile(rb"^register_dataset\(\s*(?:[\"']([\w.-]+)[\"']|(DATASET_NAME)\b)", re.M)
_NAME_RE = re.compile(rb"^DATASET_NAME\s*=\s*[\"']([\w.-]+)[\"']", re.M)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S)
COMPOSITE = "composite"
_COMPOSITE_EXAMPLE = "config={'datasets': [{'name': 'chain_sum', 'weight': 1.0}]}"

_PROMPT = (
    "Solve the task. Think step by step if it helps, then give your final answer inside answer tags, "
    "e.g. <answer>42</answer>. Put only the final answer in the tags, in the form the task asks for."
)
_RETRY_PROMPT = " If your answer is wrong you will be told so and can try again, up to {n} attempts in all."
FORMAT_HINT = "End your reply with your final answer inside answer tags, e.g. <answer>42</answer>."


def scan_datasets(root: str | Path | None = None) -> list[str]:
    """The dataset names reasoning-gym registers, read from its sources without importing it.

    Importing reasoning_gym takes seconds; this reads the `register_dataset(...)` calls of its
    modules. `reasoning_gym.factory.DATASETS` is the authority when an env is made.

    Args:
        root: the package folder; default: the installed reasoning_gym's. Missing package -> [].
    """
    if root is None:
        spec = importlib.util.find_spec("reasoning_gym")
        if spec is None or spec.origin is None:
            return []
        root = Path(spec.origin).parent
    names: set[str] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "data")]
        for file in files:
            path = os.path.join(folder, file)
            if not file.endswith(".py") or os.path.getsize(path) > _MAX_SOURCE_BYTES:
                continue
            with open(path, "rb") as fh:
                source = fh.read()
            if b"register_dataset(" not in source:
                continue
            for call in _REGISTER_RE.finditer(source):
                literal = call.group(1) or ((m := _NAME_RE.search(source)) and m.group(1))
                if literal:
                    names.add(literal.decode())
    return sorted(names)


def register_envs() -> int:
    """Register `reasoning_gym/<dataset>` for every installed dataset; returns how many.

    Cheap and silent without reasoning-gym (registers nothing); ids already registered are skipped.
    """
    count = 0
    for name in scan_datasets():
        env_id = f"{NAMESPACE}/{name}"
        if env_id in gym.registry:
            continue
        composite = name == COMPOSITE
        register_env(
            env_id,
            "palaestra.envs.adapters.reasoning_gym:ReasoningGymEnv",
            description=(
                f"reasoning-gym's mix of datasets, named by {_COMPOSITE_EXAMPLE}"
                if composite
                else f"reasoning-gym's {name} dataset, judged by its own scorer (<answer> tags)"
            ),
            family="ReasoningGym",
            max_turns=1,
            reward_range=(0.0, 1.0),
            required_kwargs=("config",) if composite else (),
            kwargs={"dataset": name},
        )
        count += 1
    return count


def extract_answer(reply: str) -> str | None:
    """The stripped text of the last <answer>...</answer> in `reply`, or None."""
    found = _ANSWER_RE.findall(reply)
    return found[-1].strip() if found else None


def _create_dataset(name: str, size: int, seed: int, config: dict[str, Any]) -> Any:
    try:
        import reasoning_gym
        from reasoning_gym.factory import DATASETS
    except ImportError as exc:
        raise ImportError(f"reasoning_gym/{name} needs the reasoning-gym package: {_INSTALL_HINT}") from exc
    if name not in DATASETS:
        close = difflib.get_close_matches(name, list(DATASETS), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"reasoning-gym has no dataset {name!r}.{hint}")
    given = config
    if name == COMPOSITE:
        config = {**config, "datasets": _dataset_specs(config.get("datasets"))}
    try:
        return reasoning_gym.create_dataset(name, size=size, seed=seed, **config)
    except TypeError as exc:
        raise TypeError(f"reasoning-gym's {name} rejected config={given}: {exc}") from exc
    except AssertionError as exc:  # reasoning-gym validates configs with asserts
        raise ValueError(f"reasoning-gym's {name} rejected config={given}: {exc}") from exc


def _dataset_specs(datasets: Any) -> list[Any]:
    """The composite's `datasets`, given as dicts (as in YAML), as reasoning-gym's `DatasetSpec`s."""
    from reasoning_gym.composite import DatasetSpec

    if not isinstance(datasets, list | tuple) or not datasets:
        raise ValueError(f"reasoning_gym/{COMPOSITE} needs the datasets to mix, e.g. {_COMPOSITE_EXAMPLE}")
    specs = []
    for item in datasets:
        if isinstance(item, DatasetSpec):
            specs.append(item)
            continue
        extra = set(item) - {"name", "weight", "config"} if isinstance(item, dict) else None
        if extra is None or extra or "name" not in item:
            raise ValueError(
                f"reasoning_gym/{COMPOSITE}: each dataset is a dict with 'name' and optionally 'weight' and "
                f"'config', got {item!r}"
            )
        specs.append(
            DatasetSpec(item["name"], float(item.get("weight", 1.0)), dict(item.get("config") or {}))
        )
    return specs


class ReasoningGymEnv(TextEnv):
    """A reasoning-gym task per episode, judged by the dataset's own scorer (see the module docstring).

    Args:
        dataset: reasoning-gym's dataset name, e.g. "basic_arithmetic".
        size: number of tasks in the dataset.
        seed: the dataset's seed (which tasks it holds); the reset seed picks one of them.
        config: extra fields of the dataset's config (e.g. {"min_terms": 2}).
        mode: "single" or "retry".
        max_attempts: replies allowed in retry mode (default 3); single mode allows exactly 1.
        reward_decay: retry mode: the ending reply at attempt j earns reward_decay**(j-1) * score.
        format_reward: reward for a reply with no <answer> tags.
        render_mode: None or "ansi".

    Raises:
        ValueError: an unknown dataset or an option out of range.
        TypeError: a config field the dataset does not have.
    """

    def __init__(
        self,
        *,
        dataset: str,
        size: int = 500,
        seed: int = 0,
        config: dict[str, Any] | None = None,
        mode: str = "single",
        max_attempts: int | None = None,
        reward_decay: float = 0.5,
        format_reward: float = 0.0,
        render_mode: str | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; choose one of {MODES}")
        if mode == "single" and max_attempts not in (None, 1):
            raise ValueError(f"max_attempts={max_attempts} needs mode='retry'; single mode allows 1 reply")
        attempts = max_attempts or (DEFAULT_RETRY_ATTEMPTS if mode == "retry" else 1)
        if not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"max_attempts={max_attempts!r}; it must be an integer >= 1")
        if not 0.0 < reward_decay <= 1.0:
            raise ValueError(f"reward_decay={reward_decay}; it must lie in (0, 1]")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size={size!r}; it must be an integer >= 1")
        super().__init__(max_turns=attempts, render_mode=render_mode)
        self.dataset_name, self.size, self.seed, self.mode = dataset, size, seed, mode
        self.reward_decay, self.format_reward = float(reward_decay), float(format_reward)
        self.dataset = _create_dataset(dataset, size, seed, dict(config or {}))
        self.system_prompt = _PROMPT + (_RETRY_PROMPT.format(n=attempts) if mode == "retry" else "")
        self._entry: dict[str, Any] = {}
        self._index = 0

    @property
    def entry(self) -> dict[str, Any]:
        """The current task's dataset entry (question, answer, metadata)."""
        if not self._entry:
            raise RuntimeError("no task yet; call reset() first")
        return self._entry

    @property
    def expert_action(self) -> str | None:
        gold = self.entry.get("answer")
        return None if gold is None else f"<answer>{gold}</answer>"

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        index = draw_index(self.size, options, self.np_random, "ReasoningGymEnv")
        self._index, self._entry = index, self.dataset[index]
        info = {
            "task_id": f"{self.dataset_name}-{self.seed}-{index}",
            "dataset": self.dataset_name,
            "task_index": index,
            "attempt": 0,
            "max_attempts": self.max_turns,
        }
        if self.expert_action is not None:
            info["expert_action"] = self.expert_action
        return str(self._entry["question"]), info

    def _score(self, answer: str) -> float:
        try:
            score = float(self.dataset.score_answer(answer, self.entry))
        except Exception:  # a scorer choking on odd text is a wrong answer, not a crash
            return 0.0
        return min(1.0, max(0.0, score))

    def _step(self, action: str) -> StepOutcome:
        attempt = self.turn + 1  # TextEnv counts every reply (non-text ones too) as a turn
        left = self.max_turns - attempt
        answer = extract_answer(action)
        score = 0.0 if answer is None else self._score(answer)
        info: dict[str, Any] = {
            "answer_extracted": answer,
            "score": score,
            "attempt": attempt,
            "max_attempts": self.max_turns,
            "role": "user",
        }
        if self.expert_action is not None:
            info["expert_action"] = self.expert_action
        if score >= 1.0:
            reward = self.reward_decay ** (attempt - 1)
            return StepOutcome("Correct.", reward=reward, terminated=True, success=True, info=info)
        format_error = None if answer is not None else "no <answer>...</answer> tags in the reply"
        if format_error is not None:
            reward, feedback = self.format_reward, f"Format error: {format_error}. {FORMAT_HINT}"
        else:
            reward = self.reward_decay ** (attempt - 1) * score if left <= 0 else 0.0
            feedback = f"Your answer {answer} is incorrect."
        if left > 0:
            feedback += f" Try again ({left} attempt{'s' if left > 1 else ''} left)."
        elif self.mode == "retry":
            feedback += " No attempts left."
        return StepOutcome(
            feedback, reward=reward, terminated=left <= 0, format_error=format_error, info=info
        )
