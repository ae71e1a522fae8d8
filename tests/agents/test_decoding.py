"""palaestra's lean sampler against transformers `generate`: same greedy tokens, logprobs, endings."""

from __future__ import annotations

import torch

from palaestra.agents.base import SamplingParams
from palaestra.agents.decoding import sample, supports_lean_sampling


def _generate(model, prompts, max_new, eos, pad_id=0):
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=max_new,
            eos_token_id=eos,
            pad_token_id=pad_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
    new = out.sequences[:, width:]
    logp = torch.stack(
        [
            torch.log_softmax(s.float(), -1).gather(-1, new[:, k, None])[:, 0]
            for k, s in enumerate(out.logits)
        ],
        1,
    )
    return new, logp


def test_greedy_matches_generate_with_shared_prompts_and_early_ends(tiny_model):
    model = tiny_model.eval()
    prompts = [[5, 6, 7, 8], [5, 6, 7, 8], [20, 21], [30, 31, 32, 33, 34, 35], [20, 21]]
    free, _ = _generate(model, prompts, 12, eos=[1])
    # end replies on a token some rows sample mid-way, so rows finish at different steps
    counts = torch.bincount(free[:, 2:].flatten())
    eos = int(counts.argmax())
    expected, expected_logp = _generate(model, prompts, 12, eos=[eos])
    out = sample(model, prompts, SamplingParams(max_new_tokens=12, temperature=0), eos_ids=[eos], pad_id=0)
    assert out.prefill_rows == 3  # identical prompts were prefilled once
    lengths = [(row == eos).nonzero()[0].item() + 1 if (row == eos).any() else 12 for row in expected]
    assert len(set(lengths)) > 1 and min(lengths) < 12  # some rows ended early, at different steps
    for i, n in enumerate(lengths):
        assert out.token_ids[i, :n].tolist() == expected[i, :n].tolist()
        assert (out.token_ids[i, n:] == 0).all()  # padding after the end
        # cached step-by-step vs `generate`'s passes: float32 reassociation (~1e-6); 1e-4 is a 100x margin
        torch.testing.assert_close(out.logprobs[i, :n], expected_logp[i, :n], atol=1e-4, rtol=1e-4)


def test_seeded_sampling_reproduces_and_respects_top_k(tiny_model):
    model = tiny_model.eval()
    prompts = [[5, 6, 7]] * 6
    params = SamplingParams(max_new_tokens=8, temperature=0.7, top_k=3)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(sample(model, prompts, params, eos_ids=[1], pad_id=0))
    assert torch.equal(runs[0].token_ids, runs[1].token_ids)
    assert len({tuple(r) for r in runs[0].token_ids.tolist()}) > 1  # samples differ within the group
    # every sampled token is among the 3 most likely at its step (teacher-forced check)
    row = runs[0].token_ids[0]
    with torch.inference_mode():
        logits = model(torch.tensor([prompts[0] + row.tolist()])).logits[0]
    for k, token in enumerate(row.tolist()):
        assert token in logits[len(prompts[0]) - 1 + k].topk(3).indices.tolist()


def test_stop_strings_end_a_row(tiny_model, smollm2_tokenizer):
    model = tiny_model.eval()
    prompt = [5, 6, 7]
    free = sample(model, [prompt], SamplingParams(max_new_tokens=10, temperature=0), eos_ids=[1], pad_id=0)
    text = smollm2_tokenizer.decode(free.token_ids[0, :4])
    stop = text[-2:]
    out = sample(
        model,
        [prompt, [40, 41]],
        SamplingParams(max_new_tokens=10, temperature=0, stop=(stop,)),
        eos_ids=[1],
        pad_id=0,
        tokenizer=smollm2_tokenizer,
    )
    first = out.token_ids[0].tolist()
    end = next(k for k in range(1, 11) if smollm2_tokenizer.decode(first[:k]).endswith(stop))
    assert end <= 4 and all(t == 0 for t in first[end:])


def test_models_with_special_generation_keep_generate(tiny_model, monkeypatch):
    assert supports_lean_sampling(tiny_model)
    monkeypatch.setattr(tiny_model.config, "model_type", "qwen2_vl")  # multimodal rope: generate's job
    assert not supports_lean_sampling(tiny_model)
