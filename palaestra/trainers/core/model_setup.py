"""The trained model's set-up: gradient checkpointing, LoRA adapters, the reference model, precision,
and what rollout engines get of it (the weights with LoRA merged, a vLLM engine's options).

Functions of the model and the config's `model:` section; `Trainer.__init__` calls them in order
(`prepare_model`, then `reference_model`) and the learner enters `autocast` and `reference_context`
around its forward passes.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from palaestra.agents.transformers_api import enable_activation_checkpointing
from palaestra.trainers.core.distributed import DistContext, wrap_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from palaestra.config import ModelConfig, TrainConfig

__all__ = [
    "autocast",
    "check_precision",
    "hf_model",
    "merged_model",
    "prepare_model",
    "reference_context",
    "reference_model",
    "trained_weights",
    "vllm_options",
]


def _cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX512-BF16 / AMX); True when unknown."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def check_precision(cfg: ModelConfig, device: torch.device) -> None:
    """Warn when bf16 autocast would be emulated (a CPU without native bf16): many times slower."""
    if cfg.precision == "bf16" and device.type == "cpu" and not _cpu_has_native_bf16():
        warnings.warn(
            "model.precision=bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): autocast emulates "
            "it and runs many times slower than fp32; set model.precision=fp32",
            stacklevel=3,
        )


def prepare_model(
    model: PreTrainedModel, cfg: ModelConfig, dist: DistContext, device: torch.device
) -> torch.nn.Module:
    """Move the model to `device`, turn on gradient checkpointing and wrap it in LoRA adapters if asked."""
    model.to(device)  # type: ignore[arg-type]  # transformers types `to` through a decorator that drops `self`
    if cfg.gradient_checkpointing:
        # non-reentrant checkpointing is the form DDP and FSDP2 support
        kwargs = {"use_reentrant": False} if dist.enabled else None
        enable_activation_checkpointing(model, kwargs)
        model.config.use_cache = False
    if cfg.lora is None:
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,  # type: ignore[arg-type]  # peft types it int, but scales by alpha / r
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft (0.21) reads the model's `is_gradient_checkpointing`, which transformers >= 5.2x deprecates
        # in favour of `is_activation_checkpointing`: peft's to change, nothing palaestra passes differently
        warnings.filterwarnings(
            "ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        return get_peft_model(model, lora)


def hf_model(module: torch.nn.Module) -> PreTrainedModel:
    """The transformers model of a trained module: the module itself, or (LoRA) the one its adapters wrap.

    Raises:
        TypeError: the module is no transformers model (nor a PEFT wrapper of one).
    """
    from peft import PeftModel
    from transformers import PreTrainedModel

    model = module.get_base_model() if isinstance(module, PeftModel) else module
    if not isinstance(model, PreTrainedModel):
        raise TypeError(
            f"expected a transformers PreTrainedModel (or a PEFT model of one), got {type(model)}"
        )
    return model


def reference_model(
    module: torch.nn.Module, cfg: ModelConfig, dist: DistContext, device: torch.device
) -> torch.nn.Module | None:
    """A frozen copy of the initial policy; None with LoRA, where the adapter-disabled model is it.

    Under FSDP2 the copy is sharded too (its passes are aligned with the other ranks' by the learner).
    """
    if cfg.lora is not None:
        return None  # see `reference_context`
    ref = copy.deepcopy(module).eval()
    ref.requires_grad_(False)
    if dist.enabled and dist.strategy == "fsdp":
        ref = wrap_model(ref, dist, device)
    return ref


@contextlib.contextmanager
def reference_context(ref: torch.nn.Module | None, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The reference model to run: `ref`, or (LoRA, `ref` None) `module` with its adapters disabled."""
    if ref is not None:
        yield ref
    else:
        from peft import PeftModel

        assert isinstance(module, PeftModel), f"no reference model and no LoRA adapters: {type(module)}"
        with module.disable_adapter():
            yield module


@contextlib.contextmanager
def autocast(cfg: ModelConfig, device: torch.device) -> Iterator[None]:
    """bf16 autocast when `model.precision=bf16`; nothing otherwise."""
    if cfg.precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def merged_model(model: torch.nn.Module, *, lora: bool) -> PreTrainedModel:
    """The model itself, or with LoRA a copy with the adapters merged into the base weights."""
    if not lora:
        return hf_model(model)
    from peft import PeftModel

    assert isinstance(model, PeftModel), f"model.lora is set, but the model is a {type(model)}"
    return hf_model(copy.deepcopy(model).merge_and_unload())


def trained_weights(model: torch.nn.Module, *, lora: bool, full: bool = True) -> dict[str, torch.Tensor]:
    """The weights a rollout backend needs after an update, under plain HF parameter names.

    Args:
        model: the rollout model (a peft model with LoRA).
        lora: whether `model` carries LoRA adapters (they are merged into the base weights).
        full: every weight; if False with LoRA, only the merged weights of the adapted layers (all
            that training changed: far less to ship to remote workers).
    """
    merged = merged_model(model, lora=lora)
    state = merged.state_dict()
    if not lora or full:
        return state
    prefix = "base_model.model."
    adapted = {
        name.removeprefix(prefix).rsplit(".lora_A", 1)[0] + "."
        for name, _ in model.named_parameters()
        if ".lora_A." in name
    }
    return {k: v for k, v in state.items() if any(k.startswith(a) for a in adapted)}


def vllm_options(config: TrainConfig) -> dict[str, Any]:
    """`make_policy` options for a vLLM engine of this run."""
    agent, model = config.agent, config.model
    return {
        "dtype": model.dtype,
        "seed": config.run.seed,
        "gpu_memory_utilization": agent.gpu_memory_utilization,
        "sleep_mode": agent.sleep_mode,
        "cpu_kv_cache_gib": agent.cpu_kv_cache_gib if model.device == "cpu" else None,
    }
