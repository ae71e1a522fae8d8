"""transformers calls whose names changed within the versions palaestra supports (`transformers>=4.56`).

Newer releases renamed two things and warn (`FutureWarning`) on every use of the old names:

* the KV cache keyword of a model's forward pass: `past_key_values=` became `cache=`;
* gradient checkpointing became activation checkpointing (`activation_checkpointing_enable`,
  `is_activation_checkpointing`).

Each function here picks the name the installed transformers has, by looking for it rather than at
the version number, so the same call works (and is silent) on every supported release. It also holds
`progress_bars_off`, the one place palaestra silences transformers' own progress bars.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import Cache, PreTrainedModel

__all__ = [
    "cache_kwargs",
    "enable_activation_checkpointing",
    "is_activation_checkpointing",
    "progress_bars_off",
]


@cache
def _cache_keyword(model_class: type) -> str:
    params = inspect.signature(model_class.forward).parameters  # type: ignore[attr-defined]  # a torch Module
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(model: torch.nn.Module, cache: Cache) -> dict[str, Cache]:
    """`{keyword: cache}` to pass a KV cache to `model`'s forward pass under the name it takes.

    Args:
        model: a transformers model, or a PEFT model of one (it passes the keyword through).
        cache: the cache to read and extend.
    """
    get_base_model = getattr(model, "get_base_model", None)  # PEFT
    base = get_base_model() if callable(get_base_model) else model
    model_class: type = type(base)
    return {_cache_keyword(model_class): cache}


def is_activation_checkpointing(model: torch.nn.Module) -> bool:
    """Whether activation (gradient) checkpointing is on; False for a module that has neither flag.

    Works on wrappers (PEFT) that forward attribute look-ups to the transformers model.
    """
    from transformers import PreTrainedModel

    # the new name where it exists: reading the old one there warns
    new = hasattr(PreTrainedModel, "is_activation_checkpointing")
    return bool(getattr(model, "is_activation_checkpointing" if new else "is_gradient_checkpointing", False))


def enable_activation_checkpointing(model: PreTrainedModel, kwargs: dict[str, Any] | None = None) -> None:
    """Turn on activation checkpointing; `kwargs` go to `torch.utils.checkpoint` (e.g. `use_reentrant`)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


@contextlib.contextmanager
def progress_bars_off() -> Iterator[None]:
    """No transformers (or hub) progress bars inside the block; the previous setting is restored after.

    For work palaestra reports itself (loading a converted model, saving a checkpoint): transformers
    draws a bar for each file it reads or writes, which would bury palaestra's own progress.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
