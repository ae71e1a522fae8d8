"""The shared-prefix training pass equals the plain pass: logprobs, entropies and gradients."""

from __future__ import annotations

import pytest
import torch

from palaestra.agents.models import build_tiny_model, build_tiny_tokenizer
from palaestra.agents.transformers_api import enable_activation_checkpointing
from palaestra.trainers.core.batching import Row, bucket_by_length, collate, plan
from palaestra.trainers.core.forward import model_allows_shared_prefix, target_logits
from palaestra.trainers.core.losses import entropy_from_logits, selected_logprobs


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_tiny_model(build_tiny_tokenizer(), seed=0).float()


def _rows() -> list[Row]:
    gen = torch.Generator().manual_seed(1)
    rows = []
    prompts = [torch.randint(5, 300, (n,), generator=gen).tolist() for n in (7, 12, 4)]
    for i in range(9):
        prompt = prompts[i % 3]
        reply = torch.randint(5, 300, (3 + 2 * i,), generator=gen).tolist()
        mask = [0] * len(prompt) + [1] * len(reply)
        if i == 4:  # multi-turn: an env turn (not trained) and a second reply
            env, reply2 = [9, 9, 9], [11, 12]
            reply, mask = reply + env + reply2, [*mask, 0, 0, 0, 1, 1]
        ids = prompt + reply
        logp = [0.0] * len(prompt) + [-1.0] * (len(ids) - len(prompt))
        rows.append(Row(ids, mask, logp, advantage=float(i % 3) - 1, index=i))
    return rows


def _logp_entropy(model, batch):
    target = target_logits(model, batch)
    logits = target.logits.float()
    logp = target.place(selected_logprobs(logits, target.targets)) * batch.loss_mask
    ent = target.place(entropy_from_logits(logits)) * batch.loss_mask
    return logp, ent


def test_shared_prefix_pass_equals_plain_pass(model):
    rows = _rows()
    plain, shared = collate(rows, pad_id=0), collate(rows, pad_id=0, share_prefix=True)
    assert plain.prefix is None and shared.prefix is not None
    assert shared.prefix.prefix_ids.shape[0] == 3  # one pass per distinct prompt

    grads = []
    outputs = []
    for batch in (plain, shared):
        model.zero_grad()
        logp, ent = _logp_entropy(model, batch)
        (logp.sum() + 0.1 * ent.sum()).backward()
        outputs.append((logp.detach(), ent.detach()))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    # the same maths in another order (prompt once + cache copy): float32 reassociation only, no optimizer
    # step to amplify it, so ulp-level differences (~1e-7 relative) sit 100x inside these tolerances
    torch.testing.assert_close(outputs[1][0], outputs[0][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs[1][1], outputs[0][1], atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_plan_skips_batches_that_share_little():
    gen = torch.Generator().manual_seed(2)
    distinct = []
    for i in range(4):
        ids = torch.randint(5, 300, (10,), generator=gen).tolist()
        distinct.append(Row(ids, [0] * 5 + [1] * 5, [0.0] * 10, 0.0, i))
    assert plan(distinct, pad_id=0) is None
    no_prompt = Row([1, 2, 3], [1, 1, 1], [0.0] * 3, 0.0, 0)
    assert plan([no_prompt, no_prompt], pad_id=0) is None


def test_bucketing_keeps_a_prompts_rows_together():
    rows = _rows()
    groups = bucket_by_length(rows, max_tokens=3 * 40, keep_prompts_together=True)
    prompts_per_batch = [len({tuple(r.token_ids[: r.loss_mask.index(1)]) for r in g}) for g in groups]
    assert sum(len(g) for g in groups) == len(rows)
    assert max(prompts_per_batch) <= 2  # plain length order would mix all three prompts
    for g in groups:  # the token budget still holds
        assert len(g) * max(len(r) for r in g) <= 3 * 40 or len(g) == 1


def test_gradient_checkpointing_disables_sharing():
    m = build_tiny_model(build_tiny_tokenizer(), seed=0)
    assert model_allows_shared_prefix(m)
    enable_activation_checkpointing(m)
    assert not model_allows_shared_prefix(m)
