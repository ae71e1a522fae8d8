"""Images in token-level prompts: chat-template parts, image placeholders, decoded screenshots.

GUI observations reach the policy as OpenAI-style content parts (`palaestra.rollout.chat.env_message`):
the text, then the screenshot as a `data:image/png;base64,...` URL. A vision-language model's chat
template renders each image as a placeholder token (LLaVA's `<image>`, Qwen2-VL's
`<|vision_start|><|image_pad|><|vision_end|>`), and the engine expands every placeholder into one token
per image feature, as many as the image has after the model's preprocessing.

Token-exact bookkeeping with images (`palaestra.agents.vllm_backend`, `palaestra.rollout.runner`): a
trajectory records the prompt as the engine saw it, every placeholder expanded. The next turn's prompt
is that sequence plus the new messages' ids, in which the new image's placeholder is still a single
token; before handing it to the engine, `collapse_placeholders` shrinks every run of placeholder tokens
back to one, and the engine expands them all again, with every image of the conversation, in order.
This needs a model whose placeholder is a single token repeated per feature with something else between
two images (true of LLaVA-style and Qwen2-VL-style templates); `collapse_placeholders` checks the count.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from palaestra.agents.base import Message, message_images, message_text

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "collapse_placeholders",
    "decode_image",
    "image_token_id",
    "request_images",
    "template_messages",
]


def template_messages(messages: Sequence[Message], *, images: bool) -> list[Message]:
    """Messages as a chat template takes them.

    Args:
        messages: chat messages; content is a string or OpenAI-style parts.
        images: keep image parts, as `{"type": "image"}` (the Hugging Face template convention), so a
            vision model's template renders its placeholder; False keeps only the text.

    Returns:
        Messages whose content is a string (text-only models, or no parts) or a list of parts.
    """
    out: list[Message] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            out.append(message)
        elif not images:
            out.append({**message, "content": message_text(message)})
        else:
            parts: list[dict[str, Any]] = []
            for part in content or []:
                if part.get("type") == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                elif part.get("type") == "image_url":
                    parts.append({"type": "image"})
            out.append({**message, "content": parts})
    return out


def decode_image(url: str) -> Image:
    """A `data:image/...;base64,` URL as an RGB PIL image.

    Raises:
        ValueError: the URL is not a base64 data URL of an image PIL can read.
    """
    from PIL import Image, UnidentifiedImageError

    head, sep, payload = url.partition(",")
    if not (sep and head.startswith("data:image/") and head.endswith(";base64")):
        raise ValueError(
            f"image URL {url[:40]!r}...: expected a data:image/...;base64, URL (remote images are not "
            "fetched; the rollout sends screenshots inline)"
        )
    try:
        return Image.open(io.BytesIO(base64.b64decode(payload, validate=True))).convert("RGB")
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image URL {url[:40]!r}... does not hold a readable image: {exc}") from exc


def request_images(messages: Sequence[Message]) -> list[Image]:
    """Every image of a conversation, decoded, in the order the messages show them."""
    return [decode_image(url) for message in messages for url in message_images(message)]


def collapse_placeholders(token_ids: Sequence[int], placeholder_id: int, n_images: int) -> list[int]:
    """`token_ids` with every run of `placeholder_id` shrunk to one token (one per image).

    Raises:
        ValueError: the number of runs is not `n_images` (two images with nothing between them, or a
            prompt and images that do not belong together).
    """
    out: list[int] = []
    runs = 0
    for token in token_ids:
        if token == placeholder_id:
            if out and out[-1] == placeholder_id:
                continue
            runs += 1
        out.append(int(token))
    if runs != n_images:
        raise ValueError(
            f"the prompt has {runs} image placeholder(s) (token {placeholder_id}) for {n_images} image(s); "
            "each image needs its own placeholder, with other tokens between two images"
        )
    return out


def image_token_id(model: str) -> int | None:
    """The image placeholder token of a vision-language model folder, or None for a text-only model.

    Read from the Hugging Face config: a `vision_config` marks a vision model, and its placeholder id is
    `image_token_id` (Qwen2-VL, Gemma 3, ...) or `image_token_index` (LLaVA family).

    Raises:
        ValueError: a vision model whose config names no image token.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    if getattr(config, "vision_config", None) is None:
        return None
    for key in ("image_token_id", "image_token_index"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise ValueError(
        f"{model}: a vision model ({type(config).__name__}) whose config has neither image_token_id nor "
        "image_token_index; palaestra cannot tell its image placeholder"
    )
