"""Continuous batching in the hf backend: rows join and leave mid-decode and decode as they would alone;
weight updates between decode steps and the per-token versions they leave."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest
import torch

from palaestra.agents import GenerationRequest, SamplingParams
from palaestra.agents.continuous_batching import ContinuousBatch, Row
from palaestra.agents.hf import HFPolicy

GREEDY = SamplingParams(max_new_tokens=12, temperature=0)


def _prompt(tok, words: int) -> list[int]:
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "count " * words}], add_generation_prompt=True, tokenize=True
    )
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _engine(model, tok, **kwargs) -> ContinuousBatch:
    return ContinuousBatch(
        model, eos_ids=[tok.eos_token_id], pad_id=tok.pad_token_id, tokenizer=tok, **kwargs
    )


def _run_engine(engine: ContinuousBatch, arrivals: dict[int, list[Row]]) -> list[int]:
    """Submit `arrivals[k]` before step k, step until every row finished; the batch size of each step."""
    sizes, k = [], 0
    while engine.has_work() or k <= max(arrivals):
        for row in arrivals.get(k, []):
            engine.submit(row)
        if engine.has_work():
            finished = engine.step()
            sizes.append(len(engine.rows) + len(finished))
        k += 1
    return sizes


def _alone(model, tok, prompt: list[int], sampling: SamplingParams, seed: int = 0) -> Row:
    row = Row(prompt, sampling, seed)
    _run_engine(_engine(model, tok), {0: [row]})
    return row


def _assert_same_decoding(got: Row, expected: Row) -> None:
    assert got.token_ids == expected.token_ids
    assert got.finish_reason == expected.finish_reason
    # a padded batch vs one row: float32 reassociation in batched kernels (~1e-6); a wrong position id,
    # mask or cache merge moves logprobs by >1e-2
    torch.testing.assert_close(
        torch.tensor(got.logprobs), torch.tensor(expected.logprobs), atol=1e-5, rtol=1e-5
    )


def test_rows_joining_mid_decode_decode_as_they_would_alone(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    prompts = [_prompt(tok, n) for n in (9, 1, 4, 4, 17)]  # two identical: prefilled once
    budgets = [12, 3, 8, 8, 5]
    rows = [
        Row(p, SamplingParams(max_new_tokens=n, temperature=0), 0)
        for p, n in zip(prompts, budgets, strict=True)
    ]
    engine = _engine(tiny_model, tok)
    sizes = _run_engine(engine, {0: rows[:1], 2: rows[1:2], 3: rows[2:4], 6: rows[4:]})
    # row 1 joins at step 2 and leaves after step 4; rows 2-3 join at step 3; row 4 joins at step 6
    assert sizes[:8] == [1, 1, 2, 4, 4, 3, 4, 4]
    assert engine.prefills == 4 and engine.rows == []
    for row, prompt, budget in zip(rows, prompts, budgets, strict=True):
        _assert_same_decoding(
            row, _alone(tiny_model, tok, prompt, SamplingParams(max_new_tokens=budget, temperature=0))
        )
        assert row.versions == [0] * len(row.token_ids)


def test_rows_wait_for_room_and_join_as_others_leave(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    prompts = [_prompt(tok, n) for n in (3, 11, 6, 2, 8)]
    budgets = [4, 9, 2, 7, 5]
    rows = [
        Row(p, SamplingParams(max_new_tokens=n, temperature=0), 0)
        for p, n in zip(prompts, budgets, strict=True)
    ]
    engine = _engine(tiny_model, tok, max_rows=2)
    sizes = _run_engine(engine, {0: rows})
    assert max(sizes) == 2 and sizes.count(2) > len(sizes) // 2, sizes
    for row, prompt, budget in zip(rows, prompts, budgets, strict=True):
        _assert_same_decoding(
            row, _alone(tiny_model, tok, prompt, SamplingParams(max_new_tokens=budget, temperature=0))
        )


def test_the_kv_budget_bounds_the_batch(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    prompts = [_prompt(tok, 5) for _ in range(4)]
    width = len(prompts[0]) + GREEDY.max_new_tokens
    rows = [Row(p, GREEDY, 0) for p in prompts]
    sizes = _run_engine(_engine(tiny_model, tok, max_tokens=2 * width), {0: rows})
    assert max(sizes) == 2
    single = [Row(p, GREEDY, 0) for p in prompts[:2]]
    assert max(_run_engine(_engine(tiny_model, tok, max_tokens=1), {0: single})) == 1, (
        "a row alone always runs"
    )
    with pytest.raises(ValueError, match="max_tokens"):
        _engine(tiny_model, tok, max_tokens=0)


def test_seeded_rows_sample_the_same_whatever_their_batch_mates(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    sp = SamplingParams(max_new_tokens=10, temperature=0.9, top_p=0.95, top_k=50)
    prompt = _prompt(tok, 3)
    alone = _alone(tiny_model, tok, prompt, sp, seed=7)
    row = Row(prompt, sp, 7)
    others = [
        Row(_prompt(tok, 6), sp, 8),
        Row(_prompt(tok, 2), replace_temperature(sp, 1.3), 9),
        Row(prompt, GREEDY, 0),
    ]
    _run_engine(_engine(tiny_model, tok), {0: others[:1], 1: [row], 3: others[1:]})
    _assert_same_decoding(row, alone)
    assert _alone(tiny_model, tok, prompt, sp, seed=8).token_ids != alone.token_ids


def replace_temperature(sp: SamplingParams, temperature: float) -> SamplingParams:
    from dataclasses import replace

    return replace(sp, temperature=temperature)


def test_stop_strings_end_a_row_in_a_busy_batch(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    sp = SamplingParams(max_new_tokens=12, temperature=1.0)
    prompt = _prompt(tok, 4)
    free = _alone(tiny_model, tok, prompt, sp, seed=5)
    pieces = [tok.decode([t]) for t in free.token_ids]
    cut = next(i for i in range(2, len(pieces)) if pieces[i].strip() and pieces[i] not in "".join(pieces[:i]))
    row = Row(prompt, replace_stop(sp, (pieces[cut],)), 5)
    _run_engine(_engine(tiny_model, tok), {0: [Row(_prompt(tok, 8), GREEDY, 0)], 1: [row]})
    assert row.finish_reason == "stop" and row.token_ids == free.token_ids[: cut + 1]


def replace_stop(sp: SamplingParams, stop: tuple[str, ...]) -> SamplingParams:
    from dataclasses import replace

    return replace(sp, stop=stop)


# -- through HFPolicy ---------------------------------------------------------------------------------


def _flat_copy(model):
    """A copy of `model`, and weights under which its logits are all 0: greedy picks id 0 at logprob -log(V)."""
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    flat = {k: v.clone() for k, v in copy.state_dict().items()}
    flat["model.norm.weight"].zero_()
    return copy.eval(), flat


FLAT_TOKEN = 0  # not an end-of-turn id of the SmolLM2 tokenizer (2)


def _watch_steps(policy: HFPolicy, on_step) -> None:
    """Call `on_step(k)` after the policy's k-th decode step (in the thread that ran it)."""
    step, count = policy.engine.step, [0]

    def counted(version):
        out = step(version)
        count[0] += 1
        on_step(count[0])
        return out

    policy.engine.step = counted  # type: ignore[method-assign]


def test_a_request_arriving_mid_decode_joins_the_batch(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    policy = HFPolicy(tiny_model, tok, max_batch_size=8)
    sizes: list[int] = []
    third_step = asyncio.Event()

    def on_step(k):
        sizes.append(len(policy.engine.rows))
        if k == 3:
            third_step.set()

    _watch_steps(policy, on_step)
    first = [{"role": "user", "content": "count " * 9}]
    second = [{"role": "user", "content": "count " * 2}]

    async def main():
        async def late():
            await third_step.wait()
            return (await policy.generate([GenerationRequest(second, GREEDY)]))[0]

        try:
            return await asyncio.gather(policy.generate([GenerationRequest(first, GREEDY)]), late())
        finally:
            await policy.close()

    (a,), b = asyncio.run(main())
    assert sizes[:6] == [1, 1, 1, 2, 2, 2], "the second request joined at step 4, not after the first ended"
    assert policy.generate_calls == 2
    for messages, got in ((first, a), (second, b)):
        alone = _alone(tiny_model, tok, _prompt(tok, len(messages[0]["content"].split())), GREEDY)
        assert list(got.token_ids) == alone.token_ids
        torch.testing.assert_close(
            torch.tensor(got.logprobs), torch.tensor(alone.logprobs), atol=1e-5, rtol=1e-5
        )
        assert got.token_versions == (0,) * len(got.token_ids)


def test_a_weight_update_mid_decode_applies_at_the_next_step(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    model, flat = _flat_copy(tiny_model)
    policy = HFPolicy(model, tok)
    assert policy.weight_version == 0
    fourth_step = asyncio.Event()
    _watch_steps(policy, lambda k: fourth_step.set() if k == 4 else None)
    messages = [{"role": "user", "content": "count " * 5}]

    async def main():
        async def update():
            await fourth_step.wait()
            policy.sync_weights(flat, version=7)

        try:
            (out,), _ = await asyncio.gather(policy.generate([GenerationRequest(messages, GREEDY)]), update())
            return out
        finally:
            await policy.close()

    out = asyncio.run(main())
    before = _alone(tiny_model, tok, _prompt(tok, 5), GREEDY)
    assert out.token_versions == (0,) * 4 + (7,) * 8
    assert list(out.token_ids[:4]) == before.token_ids[:4]
    assert out.token_ids[4:] == (FLAT_TOKEN,) * 8 and before.token_ids[4:] != [FLAT_TOKEN] * 8
    torch.testing.assert_close(torch.tensor(out.logprobs[4:]), torch.full((8,), -math.log(len(tok))))
    assert policy.weight_version == 7
    policy.sync_weights()
    assert policy.weight_version == 8


def test_weight_updates_from_another_thread_wait_for_the_step(tiny_model, smollm2_tokenizer):
    tok = smollm2_tokenizer
    model, flat = _flat_copy(tiny_model)
    policy = HFPolicy(model, tok, in_worker_thread=True)
    second_step = threading.Event()
    _watch_steps(policy, lambda k: second_step.set() if k == 2 else None)
    updater = threading.Thread(target=lambda: second_step.wait(60) and policy.sync_weights(flat))
    updater.start()
    sp = SamplingParams(max_new_tokens=40, temperature=0)
    messages = [[{"role": "user", "content": "count " * n}] for n in (3, 7)]

    async def main():
        try:
            return [
                r[0]
                for r in await asyncio.gather(
                    *(policy.generate([GenerationRequest(m, sp)]) for m in messages)
                )
            ]
        finally:
            await policy.close()

    outs = asyncio.run(main())
    updater.join()
    for out in outs:
        versions = list(out.token_versions or ())
        assert versions == sorted(versions) and versions[:2] == [0, 0] and versions[-1] == 1
        # the tokens recorded under version 1 are those the new weights force
        switch = versions.index(1)
        assert set(out.token_ids[switch:]) == {FLAT_TOKEN} and FLAT_TOKEN not in out.token_ids[:switch]


def test_static_generate_batches_record_versions_too(tiny_model, smollm2_tokenizer):
    policy = HFPolicy(tiny_model, smollm2_tokenizer, sampler="generate")
    policy.sync_weights(version=3)
    messages = [{"role": "user", "content": "count " * 4}]

    async def main():
        try:
            return (await policy.generate([GenerationRequest(messages, GREEDY)]))[0]
        finally:
            await policy.close()

    out = asyncio.run(main())
    alone = _alone(tiny_model, smollm2_tokenizer, _prompt(smollm2_tokenizer, 4), GREEDY)
    assert list(out.token_ids) == alone.token_ids and out.token_versions == (3,) * len(out.token_ids)


def test_bad_requests_and_knobs_get_one_clear_line(tiny_model, smollm2_tokenizer):
    with pytest.raises(ValueError, match="max_batch_tokens"):
        HFPolicy(tiny_model, smollm2_tokenizer, max_batch_tokens=0)
    policy = HFPolicy(tiny_model, smollm2_tokenizer)

    async def main():
        try:
            return await policy.generate([GenerationRequest((), GREEDY, prompt_token_ids=[])])
        finally:
            await policy.close()

    with pytest.raises(ValueError, match="empty prompt"):
        asyncio.run(main())
    assert policy.generate_calls == 0
