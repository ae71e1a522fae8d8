"""The LLM judge: asks a policy backend to score a reply against a rubric, parses the score, caches verdicts.

A `Judge` runs its policy on a private event loop in a thread of its own, so synchronous callers (a
gymnasium wrapper's `step`, run in the rollout's thread pool) wait for a verdict while the rollout's
own loop goes on. Verdicts are kept on disk by the content hash of what was judged (`verdict_key`):
a repeated or resumed run reads them back instead of asking again. A judge error, a timeout or a
verdict without a score never raises: the verdict records the error and scores the configured fallback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from palaestra.agents.base import GenerationRequest, Policy, SamplingParams
from palaestra.agents.models import chat_prompt_ids
from palaestra.io import atomic_write_json, cache_root
from palaestra.rewards.spec import JudgeConfig, resolve_callable

__all__ = ["Judge", "Verdict", "parse_score", "shared_judge", "verdict_key"]

_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_SCORE_LINE = re.compile(
    r"score\s*\**\s*[:=]?\s*\**\s*(-?\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?", re.IGNORECASE
)
_FRACTION = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*\.?\s*")


@dataclass(frozen=True)
class Verdict:
    """One judgement of one reply.

    Attributes:
        score: the score in [0, 1] (the fallback when `error` is set).
        raw: the judge's reply ('' when it gave none).
        error: why no score was read (judge error, timeout, unparseable reply); None when it was.
        version: the judge prompt's label (`JudgeConfig.prompt_version`).
        prompt_hash: the content hash of the judge's prompt and rubric (`JudgeConfig.prompt_hash`).
        key: the content hash this verdict is cached under.
        judge: the judge's policy spec.
        cached: read from the cache rather than asked now.
    """

    score: float
    raw: str
    error: str | None
    version: str
    prompt_hash: str
    key: str
    judge: str
    cached: bool = False

    def record(self) -> dict[str, Any]:
        return asdict(self)


def parse_score(text: str, scale: float) -> float:
    """The score in [0, 1] that a judge's reply gives on a 0..`scale` scale.

    Read, in order: a JSON object with a "score" key; the last "Score: N" or "Score: N/M"; the last
    fraction "N/M"; a reply that is only a number. A fraction N/M scores N/M, a bare N scores N/scale.

    Raises:
        ValueError: no score found, or one outside its scale.
    """
    for match in reversed(_JSON_OBJECT.findall(text)):
        try:
            value = json.loads(match)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            score = next((v for k, v in value.items() if str(k).lower() == "score"), None)
            if isinstance(score, int | float) and not isinstance(score, bool):
                return _within(float(score), scale, text)
    found = _SCORE_LINE.findall(text) or _FRACTION.findall(text)
    if found:
        number, top = found[-1]
        return _within(float(number), float(top) if top else scale, text)
    bare = _NUMBER.fullmatch(text)
    if bare:
        return _within(float(bare.group(1)), scale, text)
    raise ValueError(f"no score in the judge's reply {_clip(text)!r}")


def _within(score: float, top: float, text: str) -> float:
    if top <= 0 or not 0 <= score <= top:
        raise ValueError(
            f"score {score:g}/{top:g} is outside 0..{top:g} in the judge's reply {_clip(text)!r}"
        )
    return score / top


def _clip(text: str, size: int = 120) -> str:
    return text if len(text) <= size else text[:size] + "..."


def fill_prompt(config: JudgeConfig, task: str, reply: str) -> str:
    """The judge's prompt for one reply: the template's {task}, {rubric}, {reply} and {scale} filled in."""
    values = {"task": task, "rubric": config.rubric, "reply": reply, "scale": f"{config.scale:g}"}
    return re.sub(r"\{(task|rubric|reply|scale)\}", lambda m: values[m.group(1)], config.prompt)


def verdict_key(config: JudgeConfig, task: str, reply: str) -> str:
    """The content hash a verdict is cached under: prompt, rubric, task, reply, judge model and sampling."""
    content = {
        "system_prompt": config.system_prompt,
        "prompt": config.prompt,
        "rubric": config.rubric,
        "scale": config.scale,
        "task": task,
        "reply": reply,
        "judge": config.policy,
        "policy_options": config.policy_options,
        "sampling": [config.max_new_tokens, config.temperature, config.seed],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


class Judge:
    """Scores replies with one policy, on a private event loop in a daemon thread.

    Args:
        policy: the judge's backend (any `Policy`); built lazily from `spec` when None.
        spec: the policy's spec (its name in verdicts, and what builds it).
        options: the backend's options.
    """

    def __init__(
        self, policy: Policy | None = None, *, spec: str = "", options: dict[str, Any] | None = None
    ):
        self._policy = policy
        self.spec = spec or (policy.name if policy is not None else "")
        self.options = dict(options or {})
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"judge {self.spec}", daemon=True)
        self._thread.start()
        self._build_lock = threading.Lock()
        self._lock = threading.Lock()  # guards _key_locks
        self._key_locks: dict[str, tuple[threading.Lock, int]] = {}  # key -> (lock, verdicts waiting on it)
        self.calls = 0  # judge requests sent (cache hits are not calls)

    @property
    def policy(self) -> Policy:
        with self._build_lock:
            if self._policy is None:
                self._policy = _build_policy(self.spec, self.options)
            return self._policy

    def verdict(self, config: JudgeConfig, task: str, reply: str) -> Verdict:
        """Judge `reply` to `task` under `config` (a cached verdict when there is one); never raises."""
        key = verdict_key(config, task, reply)
        with self._lock:
            key_lock, waiting = self._key_locks.get(key, (threading.Lock(), 0))
            self._key_locks[key] = (key_lock, waiting + 1)
        try:
            with key_lock:  # concurrent samples with the same reply are judged once
                return self._cached_or_asked(config, task, reply, key)
        finally:
            with self._lock:
                key_lock, waiting = self._key_locks.pop(key)
                if waiting > 1:
                    self._key_locks[key] = (key_lock, waiting - 1)

    def _cached_or_asked(self, config: JudgeConfig, task: str, reply: str, key: str) -> Verdict:
        path = _cache_path(config, key)
        cached = _read_cached(path) if path is not None else None
        if cached is not None:
            return Verdict(**{**cached, "key": key, "cached": True})
        verdict = self._ask(config, task, reply, key)
        if path is not None and verdict.error is None:
            atomic_write_json(path, {k: v for k, v in verdict.record().items() if k not in ("key", "cached")})
        return verdict

    def _ask(self, config: JudgeConfig, task: str, reply: str, key: str) -> Verdict:
        raw, score, error = "", config.fallback, None
        try:
            raw = self._generate(config, fill_prompt(config, task, reply))
            score = parse_score(raw, config.scale)
        except Exception as exc:  # a judge failure of any kind: recorded, scored as the fallback
            if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError):
                error = f"judge timed out after {config.timeout_s:g}s"
            else:
                error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Verdict(score, raw, error, config.prompt_version, config.prompt_hash, key, self.spec)

    def _generate(self, config: JudgeConfig, prompt: str) -> str:
        messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
        messages.append({"role": "user", "content": prompt})
        sampling = SamplingParams(
            max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=config.seed
        )
        policy = self.policy
        prompt_ids = None
        if policy.tokenizer is not None:  # token-level backends condition on exact ids
            prompt_ids = tuple(chat_prompt_ids(policy.tokenizer, messages))
        request = GenerationRequest(messages=tuple(messages), sampling=sampling, prompt_token_ids=prompt_ids)
        self.calls += 1
        call = asyncio.wait_for(policy.generate([request]), config.timeout_s)
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        try:  # the outer limit also covers a policy that blocks its loop
            (generation,) = future.result(timeout=config.timeout_s + 5.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise
        if generation.finish_reason == "error":
            raise RuntimeError(f"judge generation failed: {generation.error}")
        return generation.text

    def close(self) -> None:
        """Close the policy and stop the loop's thread."""
        if self._policy is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._policy.close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def _build_policy(spec: str, options: dict[str, Any]) -> Policy:
    from palaestra.agents.spec import BACKENDS, make_policy

    if spec.partition(":")[0] in BACKENDS:
        return make_policy(spec, **options)
    policy = resolve_callable(spec)()
    if not isinstance(policy, Policy):
        raise TypeError(f"{spec} returned a {type(policy).__name__}, not a Policy")
    return policy


def _cache_path(config: JudgeConfig, key: str) -> Path | None:
    if not config.cache:
        return None
    folder = Path(config.cache_dir) if config.cache_dir else cache_root() / "judge"
    return folder / key[:2] / f"{key}.json"


def _read_cached(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, or unreadable: judged again and rewritten
        return None
    fields = ("score", "raw", "error", "version", "prompt_hash", "judge")
    if not isinstance(value, dict) or not set(fields) <= set(value):
        return None
    return {name: value[name] for name in fields}


_SHARED: dict[str, Judge] = {}
_SHARED_LOCK = threading.Lock()


def shared_judge(config: JudgeConfig) -> Judge:
    """The process's judge for `config`'s policy and options: envs of one run share one loaded model."""
    name = json.dumps([config.policy, config.policy_options], sort_keys=True, default=str)
    with _SHARED_LOCK:
        if name not in _SHARED:
            _SHARED[name] = Judge(spec=config.policy, options=config.policy_options)
        return _SHARED[name]
