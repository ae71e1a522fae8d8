"""A tiny randomly initialised LLaVA (CLIP vision tower + Llama), built locally: nothing is downloaded.

LLaVA rather than Qwen2-VL: transformers' Qwen2-VL processor needs a video processor, which needs
torchvision, and the project's CPU venv has none; LLaVA's processor runs on PIL alone. Its image
placeholder `<image>` is one token that the processor (and vLLM) repeats once per image feature:
16 here (a 56x56 image in 14-pixel patches, the CLS feature dropped).
"""

from __future__ import annotations

from pathlib import Path

IMAGE_TOKEN = "<image>"
IMAGE_FEATURES = 16
# a ChatML template (SmolLM2's format) that renders each image part as the placeholder
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'text' %}{{ p['text'] }}"
    "{% elif p['type'] in ('image', 'image_url') %}\n<image>\n{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_vlm_tokenizer():
    """SmolLM2's tokenizer plus the image placeholder and a template that renders images."""
    from palaestra.agents.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def tiny_vlm_config(image_token_id: int, vocab_size: int, eos_token_id: int | None = None):
    """The model's config: 1-layer CLIP (56 px, 14 px patches), 2-layer Llama with head_dim 32."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    return LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=1,
            image_size=56,
            patch_size=14,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
            max_position_embeddings=4096,
            eos_token_id=eos_token_id,
            tie_word_embeddings=False,
        ),
        image_token_index=image_token_id,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )


def build_tiny_vlm(path: Path, seed: int = 0) -> Path:
    """Save the tiny LLaVA, its tokenizer and its processor to `path` (an HF folder vLLM can load)."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = tiny_vlm_tokenizer()
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = tiny_vlm_config(image_id, len(tokenizer), tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}
        ),
        tokenizer=tokenizer,
        chat_template=TEMPLATE,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
