"""Agents: the `Policy` protocol and its backends."""

from __future__ import annotations

from palaestra.agents.base import (
    FinishReason,
    Generation,
    GenerationRequest,
    Message,
    Policy,
    SamplingParams,
    message_images,
    message_text,
)

__all__ = [
    "FinishReason",
    "Generation",
    "GenerationRequest",
    "Message",
    "Policy",
    "SamplingParams",
    "message_images",
    "message_text",
]
